"""The training loop: one catalog experiment at one tier, resumable, observable, fail-fast.

One iteration (spec method.md 0, in the order of the released trainer): SR forward on the LR
batch; L1 on images scaled by ``loss_scale`` (the backbone's rgb_range by default, i.e. the L1
that each backbone's official code computes); for the PCL methods ``PCLObjective.step`` draws the
positives/negatives, updates the embedding on the *detached* SR output and returns the
contrastive term, computed with the embedding frozen (with gradient to the SR output in
``paper`` semantics, without in ``released``); backward, optional gradient *value* clipping,
Adam step.  The learning rate of iteration i is ``Schedule.lr_at(i)`` (per-epoch steps).

What makes resume exact: patches and PCL samples are pure functions of (seed, iteration, index)
(``pcl.train.data``; the sample generator is re-seeded from (seed, iteration, rank) every
iteration), models are initialised from seeds derived from the run seed under ``fork_rng``,
the data loader draws its worker base seed from a private generator, validation runs under
``fork_rng``, and the checkpoint holds models, optimisers, schedule, grad scaler, every RNG
state and the sampler state (seed, iteration).  On CPU with ``deterministic`` the final weights
of a run killed at any point and resumed are bitwise those of an uninterrupted run (tested).

No host synchronisation in the inner loop: losses are accumulated on the device and read every
``log_every`` iterations (and before each checkpoint); the NaN/inf check happens at those
reads, so a checkpoint is only written after every loss since the previous one (and every
weight) was finite.  A non-finite loss stops the run with exit code 1 and keeps the last good
checkpoint; an out-of-memory error reports the batch and patch that failed.  SIGTERM (a batch
system's time limit) ends the current iteration, writes a checkpoint and exits with code 1.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import logging
import math
import os
import platform
import socket
import signal
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

from pcl.device import device_description
from torch import Tensor, nn

from pcl.atomic import atomic_write_text
from pcl.errors import PCLError
from pcl.provenance import git_commit, package_versions
from pcl.train.catalog import PCL_METHODS, Experiment
from pcl.train.checkpointing import (
    CHECKPOINT_FORMAT,
    LAST,
    atomic_torch_save,
    capture_rng_states,
    load_training_state,
    restore_rng_states,
)
from pcl.train.data import (
    DataSpec,
    PatchBatches,
    PreparedData,
    ValidationSet,
    load_validation,
    make_loader,
    prepare_training_data,
    to_float,
)
from pcl.train.schedules import Schedule

log = logging.getLogger(__name__)

#: Environment hook of the NaN test: the loss of this (1-based) iteration is made NaN.
NAN_HOOK = "PCL_TEST_NAN_AT"
LOG_COLUMNS = ["iteration", "epoch", "lr", "loss", "l1", "contrastive", "embedding_loss", "it_per_s",
               "elapsed_s", "val_psnr", "val_ssim"]
#: Budget keys that change nothing in the trained weights (excluded from the resume identity).
_CADENCE_KEYS = {"iterations", "workers", "log_every", "checkpoint_every", "validate_every", "validation_images",
                 "validation_dataset"}
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


class TrainingFailed(PCLError):
    """The run itself failed (non-finite loss, out of memory): exit code 1, checkpoint kept."""

    exit_code = 1


@dataclass
class TrainOptions:
    """How to run (not what): device, determinism, caches, where other runs live, overrides."""

    device: str = "auto"
    deterministic: bool = False
    progress: bool = True
    data_cache: Path = Path("data/prepared/train")
    checkpoints_config: Path = Path("config/checkpoints.yaml")
    runs_root: Path | None = None
    init: str | None = None
    embedding_from: str | None = None
    threads: int | None = None
    tensorboard: bool = True
    command: list[str] = field(default_factory=lambda: list(sys.argv))


def derive_seed(*parts: Any) -> int:
    """A 63-bit seed from any tuple of values (BLAKE2b), for independent, reproducible streams."""
    digest = hashlib.blake2b(repr(parts).encode(), digest_size=8, person=b"pcl-seeds").digest()
    return struct.unpack("<Q", digest)[0] & ((1 << 63) - 1)


def resolve_config(experiment: Experiment, tier: str, *, budget: Mapping[str, Any] | None = None,
                   seed: int | None = None, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The experiment's settings at ``tier`` with command-line overrides applied."""
    config = experiment.resolve(tier)
    if budget:
        unknown = sorted(set(budget) - set(config["budget"]))
        if unknown:
            raise PCLError(f"unknown budget override {unknown[0]!r}; valid: {', '.join(config['budget'])}")
        config["budget"].update({k: v for k, v in budget.items() if v is not None})
    if seed is not None:
        config["seed"] = int(seed)
    if data:
        config["data"].update(data)  # verbatim: None is meaningful (no range, no LR folder)
    return config


def config_identity(config: Mapping[str, Any]) -> str:
    """Hash of everything that determines the trained weights (cadence keys and iterations excluded,
    so a run can be extended with more iterations and resumed)."""
    core = json.loads(json.dumps(config, sort_keys=True, default=str))
    core["budget"] = {k: v for k, v in core["budget"].items() if k not in _CADENCE_KEYS}
    for key in ("cells",):
        core.pop(key, None)
    return hashlib.sha256(json.dumps(core, sort_keys=True).encode()).hexdigest()


# ---------------------------------------------------------------------------- environment


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise PCLError(f"unknown device {name!r} ({exc}); use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise PCLError(f"device {name!r} requested but CUDA is not available; use --device cpu")
        if device.index is None:
            device = torch.device(f"cuda:{local_rank}")
    return device


def resolve_precision(name: str, device: torch.device) -> str:
    if name == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return "bf16"
        return "fp32"
    if name == "fp16" and device.type != "cuda":
        raise PCLError("precision fp16 needs a CUDA device (use bf16 or fp32 on the CPU)")
    return name


@dataclass
class Distributed:
    """torchrun environment: rank, world size, local rank (1 process = not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_env(cls) -> "Distributed":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return cls(rank=int(os.environ.get("RANK", "0")), world_size=world, local_rank=int(os.environ.get("LOCAL_RANK", "0")))

    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()


# ---------------------------------------------------------------------------- the trainer


class Trainer:
    """Runs one resolved experiment configuration in ``run_dir``; ``run()`` returns the result."""

    def __init__(self, config: dict[str, Any], run_dir: str | os.PathLike[str], options: TrainOptions | None = None) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.options = options or TrainOptions()
        self.dist = Distributed.from_env()
        self.budget = dict(config["budget"])
        self.schedule = Schedule.from_dict(config["schedule"])
        self.method = config["method"]
        self.identity = config_identity(config)
        self.total = int(self.budget["iterations"])
        if self.budget["batch"] % self.dist.world_size:
            raise PCLError(f"batch {self.budget['batch']} is not divisible by the world size {self.dist.world_size}")
        self.local_batch = self.budget["batch"] // self.dist.world_size
        self.scale = int(config["data"].get("scale", 4))
        self.hr_patch = int(self.budget["lr_patch"]) * self.scale
        nan_at = os.environ.get(NAN_HOOK)
        self.nan_at = int(nan_at) if nan_at else None
        self.objective = None
        self.scaler = None
        self.best: dict[str, Any] = {"psnr": None, "iteration": None}
        self.elapsed_before = 0.0
        self.sessions = 1
        self._stop_signal: int | None = None
        self.started = time.perf_counter()

    # ------------------------------------------------------------------ paths

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def last_path(self) -> Path:
        return self.checkpoint_dir / LAST

    def _sibling(self, name: str) -> Path:
        root = self.options.runs_root if self.options.runs_root is not None else self.run_dir.parent
        return Path(root) / name

    # ------------------------------------------------------------------ setup

    def _setup_runtime(self) -> None:
        if self.options.threads:
            torch.set_num_threads(int(self.options.threads))
        if self.dist.active and not torch.distributed.is_initialized():
            backend = "nccl" if torch.cuda.is_available() and self.options.device != "cpu" else "gloo"
            torch.distributed.init_process_group(backend)
        self.device = resolve_device(self.options.device, self.dist.local_rank)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.precision = resolve_precision(str(self.budget["precision"]), self.device)
        channels_last = self.budget["channels_last"]
        self.channels_last = (self.device.type == "cuda") if channels_last == "auto" else bool(channels_last)
        if self.options.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.loss_scale = None  # set after the model exists

    def _autocast(self):
        if self.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def _build_model(self) -> nn.Module:
        from pcl.models import build_model, model_defaults

        backbone = self.config["backbone"]
        self.model_config = {**model_defaults(backbone), **self.config["model_kwargs"]}
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.config["seed"], "model"))
            model = build_model(backbone, **self.config["model_kwargs"])
        loss_scale = self.config.get("loss_scale", "backbone")
        self.loss_scale = float(model.rgb_range) if loss_scale == "backbone" else float(loss_scale)
        return model

    def _init_path(self) -> tuple[Path | None, str]:
        """The file the SR network starts from (None = scratch) and a description."""
        if self.options.init:
            path = Path(self.options.init)
            if path.is_dir():
                path = path / "model.safetensors"
            return path, f"--init {self.options.init}"
        init = self.config["init"]
        backbone = self.config["backbone"]
        if init == "scratch":
            return None, "scratch"
        if init == "official" or (isinstance(init, Mapping) and "checkpoint" in init):
            from pcl.released import load_registry

            name = f"{backbone}-official" if init == "official" else init["checkpoint"]
            registry = load_registry(Path(self.options.checkpoints_config))
            entry = registry.get(name)
            if not entry.path.is_file():
                raise PCLError(f"initial weights {name} not found at {entry.path}; get them: {entry.how_to_get()}")
            return entry.path, f"checkpoint {name}"
        if isinstance(init, Mapping) and "path" in init:
            return Path(init["path"]), f"file {init['path']}"
        if isinstance(init, Mapping) and "experiment" in init:
            run = self._sibling(init["experiment"])
            path = run / "model.safetensors"
            if not (run / "result.json").is_file():
                raise PCLError(f"initial weights: run {run} of experiment {init['experiment']!r} is not complete "
                               f"(no result.json); train it first or pass --runs-root")
            return path, f"experiment {init['experiment']} ({run})"
        raise PCLError(f"unknown init {init!r}")

    def _load_init(self, model: nn.Module) -> str:
        from pcl.models.checkpoints import load_into

        path, text = self._init_path()
        if path is None:
            return text
        if not path.is_file():
            raise PCLError(f"initial weights {path} not found ({text})")
        load_into(model, path, arch_name=self.config["backbone"])
        return f"{text}: {path}"

    def _build_objective(self):
        """The PCL objective (None for baseline/control); pcl-fixed loads and freezes the embedding."""
        if self.method not in PCL_METHODS:
            return None
        from pcl.method import MethodConfig, PCLObjective

        method_config = MethodConfig.from_dict(self.config["method_settings"])
        embedding = None
        if self.method == "pcl-fixed":
            embedding = self._load_fixed_embedding()
        self.sample_generator = torch.Generator(device=self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(self.config["seed"], "embedding"))
            objective = PCLObjective(method_config, device=self.device, sr_lr=self.schedule.lr, embedding=embedding,
                                     generator=self.sample_generator, patch_size=self.hr_patch,
                                     vgg_pretrained=bool(self.config.get("vgg_pretrained", True)))
        if self.method == "pcl-fixed":
            objective.optimizer = None  # frozen: the term still sends its gradient to the SR output
            objective.embedding.requires_grad_(False)
        elif self.dist.active and objective.optimizer is not None:
            self._sync_embedding_gradients(objective.embedding)
        return objective

    def _load_fixed_embedding(self) -> nn.Module:
        from pcl.models.checkpoints import load_checkpoint

        source = self.options.embedding_from or self.config.get("embedding_from")
        if not source:
            raise PCLError("pcl-fixed needs embedding_from (an experiment) or --embedding-from RUN_DIR")
        run = Path(source) if (self.options.embedding_from or os.sep in str(source)) else self._sibling(source)
        path = run / "embedding.safetensors" if run.is_dir() or not run.suffix else run
        if not path.is_file():
            raise PCLError(f"pcl-fixed: embedding {path} not found; train {source!r} at this tier first "
                           "(every PCL run writes embedding.safetensors) or pass --embedding-from RUN_DIR")
        embedding, meta = load_checkpoint(path)
        if meta["architecture"] != "embedding":
            raise PCLError(f"pcl-fixed: {path} holds a {meta['architecture']!r} network, not an embedding")
        self.embedding_source = str(path)
        return embedding

    def _sync_embedding_gradients(self, embedding: nn.Module) -> None:
        """DDP for the embedding: average its gradients over ranks as each one is accumulated (the
        objective runs its own backward/step, so a DDP wrapper would never see its forward)."""
        world = self.dist.world_size

        def hook(param: Tensor) -> None:
            torch.distributed.all_reduce(param.grad)
            param.grad.div_(world)

        for param in embedding.parameters():
            if param.requires_grad:
                param.register_post_accumulate_grad_hook(hook)

    # ------------------------------------------------------------------ run

    def run(self) -> dict[str, Any]:
        """Train (or resume, or recognise as complete) and return the result (``result.json``)."""
        self._setup_runtime()
        result_path = self.run_dir / "result.json"
        if self.last_path.is_file() and result_path.is_file():
            done = json.loads(result_path.read_text(encoding="utf-8"))
            if done.get("config_identity") == self.identity and int(done.get("iterations", -1)) == self.total:
                self._say(f"{self.config['experiment']} ({self.config['tier']}): already complete in {self.run_dir} "
                          f"({self.total} iterations); nothing to do")
                return done
        data, start = self.setup(resume=True)
        if self.dist.main:
            self._write_run_files()
        self.validation = self._load_validation()
        return self._loop(data, start)

    def setup(self, *, resume: bool = True) -> tuple[PreparedData | None, int]:
        """Build data, model, objective and optimisers (resuming from ``checkpoints/last.pt`` when
        ``resume`` and present); returns the prepared data and the first iteration to run.  Used by
        ``run`` and by the training benchmark, which then calls ``train_step`` directly."""
        if not hasattr(self, "device"):
            self._setup_runtime()
        if self.dist.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        # A 0-iteration run (the fine-tune tier's baselines: the official weights, exported and
        # validated) needs no training data.
        data = self._prepare_data() if self.total > 0 else None
        model = self._build_model()
        state = load_training_state(self.last_path) if resume and self.last_path.is_file() else None
        if state is not None:
            self._check_identity(state)
            self.init_text = f"resumed from {self.last_path} (iteration {state['iteration']})"
        else:
            self.init_text = self._load_init(model)
        model.to(self.device)
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        model.train()
        self.raw_model = model
        self.objective = self._build_objective()
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=self.schedule.lr_at(0), betas=ADAM_BETAS, eps=ADAM_EPS)
        self.scaler = torch.amp.GradScaler("cuda") if self.precision == "fp16" else None
        start = 0
        self._seed_global_rngs()
        if state is not None:
            start = self._restore(state)
            if start > self.total:
                raise PCLError(f"{self.last_path} is at iteration {start}, past the requested {self.total} iterations; "
                               "raise --iterations or use another --run-dir")
        self.train_model = self._wrap(model)
        self.provenance = self._provenance(data)
        return data, start

    def batches(self, data: PreparedData) -> PatchBatches:
        """The patch dataset of this run (item i = the uint8 batch of iteration i)."""
        return PatchBatches(data, batch=self.local_batch, lr_patch=int(self.budget["lr_patch"]), seed=self.config["seed"],
                            augment=self.config["augment"], rank=self.dist.rank, world_size=self.dist.world_size)

    def _say(self, text: str) -> None:
        if self.dist.main:
            print(text, file=sys.stderr, flush=True)

    def _prepare_data(self) -> PreparedData:
        spec = DataSpec.from_dict(self.config["data"])
        if self.dist.main:
            data = prepare_training_data(spec, self.options.data_cache, workers=max(1, int(self.budget["workers"])))
        self.dist.barrier()
        if not self.dist.main:
            data = prepare_training_data(spec, self.options.data_cache)
        return data

    def _load_validation(self) -> ValidationSet | None:
        if not self.dist.main:
            return None
        from pcl.resources import resource_path

        dataset = self.budget.get("validation_dataset", "Set5")
        return load_validation(resource_path("benchmarks", dataset, "HR"), dataset=dataset, scale=self.scale,
                               limit=self.budget.get("validation_images"))

    def _wrap(self, model: nn.Module) -> nn.Module:
        wrapped = model
        if self.budget.get("compile"):
            wrapped = torch.compile(wrapped)
        if self.dist.active:
            from torch.nn.parallel import DistributedDataParallel

            wrapped = DistributedDataParallel(wrapped, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        return wrapped

    def _seed_global_rngs(self) -> None:
        """Seed torch (CPU, CUDA), numpy and Python ``random`` from the run seed (the global streams
        that models may draw from in their forward, e.g. NLSN's random rotations); a resumed run then
        overwrites them with the checkpoint's states."""
        import random

        base = derive_seed(self.config["seed"], "global", self.dist.rank)
        torch.manual_seed(base)
        np.random.seed(base % (2**32))
        random.seed(base)

    def _check_identity(self, state: Mapping[str, Any]) -> None:
        if state.get("identity") != self.identity:
            raise PCLError(
                f"{self.last_path} was written by a different configuration of {state.get('experiment')!r} "
                f"(identity {str(state.get('identity'))[:12]} vs {self.identity[:12]}); use another --run-dir or "
                "delete the run directory to start over"
            )

    def _restore(self, state: dict[str, Any]) -> int:
        self.raw_model.load_state_dict(state["model"], strict=True)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.objective is not None and state.get("embedding") is not None:
            self.objective.embedding.load_state_dict(state["embedding"], strict=True)
        if self.objective is not None and self.objective.optimizer is not None and state.get("embedding_optimizer"):
            self.objective.optimizer.load_state_dict(state["embedding_optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        restore_rng_states(state["rng"])
        sampler = state["sampler"]
        if int(sampler["seed"]) != int(self.config["seed"]):
            raise PCLError(f"{self.last_path}: sampler seed {sampler['seed']} differs from the run seed {self.config['seed']}")
        self.best = dict(state.get("best") or self.best)
        self.elapsed_before = float(state.get("elapsed_seconds", 0.0))
        self.sessions = int(state.get("sessions", 1)) + 1
        return int(state["iteration"])

    # ------------------------------------------------------------------ provenance and files

    def _provenance(self, data: PreparedData | None) -> dict[str, Any]:
        prov = {
            "git": git_commit(),
            "packages": package_versions(),
            "device": device_description(self.device),
            "precision": self.precision,
            "channels_last": self.channels_last,
            "deterministic": self.options.deterministic,
            "world_size": self.dist.world_size,
            "host": socket.gethostname(),
            "data_manifest_sha256": data.content_sha256 if data is not None else None,
            "data_manifest": str(data.root / "manifest.json") if data is not None else None,
            "data_images": len(data.images) if data is not None else 0,
            "init": self.init_text,
            "config_identity": self.identity,
            "command": list(self.options.command),
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if getattr(self, "embedding_source", None):
            prov["embedding_from"] = self.embedding_source
        return prov

    def _write_run_files(self) -> None:
        import yaml

        resolved = dict(self.config)
        resolved["model_config"] = self.model_config
        if self.objective is not None:
            resolved["method_config"] = self.objective.config.to_dict()
        resolved["runtime"] = {"device": str(self.device), "precision": self.precision, "channels_last": self.channels_last,
                               "deterministic": self.options.deterministic, "world_size": self.dist.world_size,
                               "per_rank_batch": self.local_batch, "loss_scale": self.loss_scale}
        resolved["config_identity"] = self.identity
        atomic_write_text(self.run_dir / "config.yaml", yaml.safe_dump(resolved, sort_keys=False, default_flow_style=None))
        atomic_write_text(self.run_dir / "provenance.json", json.dumps(self.provenance, indent=2) + "\n")

    # ------------------------------------------------------------------ one step

    def train_step(self, lr_u8: Tensor, hr_u8: Tensor, iteration: int) -> Tensor:
        """One SR (and embedding) update on a uint8 batch; returns [total, l1, term, embedding loss]
        on the device without reading it."""
        lr = to_float(lr_u8, self.device, channels_last=self.channels_last)
        hr = to_float(hr_u8, self.device, channels_last=self.channels_last)
        rate = self.schedule.lr_at(iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        with self._autocast():
            sr = self.train_model(lr)
        sr = sr.float()
        l1 = (sr - hr).abs().mean() * self.loss_scale
        total = l1
        zero = l1.new_zeros(())
        term, d_loss = zero, zero
        if self.objective is not None:
            self.sample_generator.manual_seed(derive_seed(self.config["seed"], "samples", iteration, self.dist.rank))
            with self._autocast():
                out = self.objective.step(sr, hr, lr)
            total = total + out.weighted.float()
            term = out.term.detach().float()
            if out.embedding_loss is not None:
                d_loss = out.embedding_loss.detach().float()
        if self.nan_at is not None and iteration + 1 == self.nan_at:
            total = total * float("nan")
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(total).backward()
            if self.config.get("grad_clip"):
                self.scaler.unscale_(self.optimizer)
                torch.nn.utils.clip_grad_value_(self.params, float(self.config["grad_clip"]))
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            total.backward()
            if self.config.get("grad_clip"):
                torch.nn.utils.clip_grad_value_(self.params, float(self.config["grad_clip"]))
            self.optimizer.step()
        return torch.stack([total.detach(), l1.detach(), term, d_loss])

    # ------------------------------------------------------------------ loop

    def _loop(self, data: PreparedData | None, start: int) -> dict[str, Any]:
        loader: Any = []
        if data is not None and start < self.total:
            loader = make_loader(self.batches(data), start=start, stop=self.total, workers=int(self.budget["workers"]),
                                 pin_memory=self.device.type == "cuda")
        self._say(self._header(start))
        logger = _RunLog(self.run_dir, start, enabled=self.dist.main, tensorboard=self.options.tensorboard)
        bar = _progress(self.total, start, self.config["experiment"], enabled=self.options.progress and self.dist.main)
        acc = torch.zeros(4, device=self.device)
        n_acc = 0
        window_start = start
        last_read = time.perf_counter()
        last_read_it = start
        log_every = int(self.budget["log_every"])
        ckpt_every = int(self.budget["checkpoint_every"])
        val_every = int(self.budget["validate_every"])
        previous_handler = self._catch_sigterm()
        try:
            for iteration, (lr_u8, hr_u8) in zip(range(start, self.total), loader):
                try:
                    acc += self.train_step(lr_u8, hr_u8, iteration)
                except _OOM_ERRORS as exc:
                    if not _is_oom(exc):
                        raise
                    raise TrainingFailed(
                        f"out of memory at iteration {iteration + 1} of {self.config['experiment']} on {self.device}: "
                        f"batch {self.local_batch} per process, LR patch {self.budget['lr_patch']}x{self.budget['lr_patch']} "
                        f"(HR {self.hr_patch}x{self.hr_patch}), {self.precision}; lower --batch or the patch, or use "
                        f"bf16; the last good checkpoint is kept ({self.last_path})"
                    ) from None
                n_acc += 1
                done = iteration + 1
                bar.update(1)
                is_ckpt = bool(ckpt_every) and done % ckpt_every == 0 and done != self.total
                if done % log_every == 0 or is_ckpt or done == self.total:
                    now = time.perf_counter()
                    values = (acc / n_acc).tolist()
                    self._check_finite(values, window_start, done)
                    speed = (done - last_read_it) / max(now - last_read, 1e-9)
                    row = self._row(done, values, speed)
                    logger.write(row)
                    bar.set_postfix(loss=f"{values[0]:.4g}", l1=f"{values[1]:.4g}", cl=f"{values[2]:.3g}", lr=f"{row['lr']:.2e}",
                                    refresh=False)
                    acc.zero_()
                    n_acc, window_start, last_read, last_read_it = 0, done, now, done
                if val_every and done % val_every == 0 and done != self.total:
                    self._validate_and_log(done, logger)
                if is_ckpt:
                    self._save_state(done)
                if self._stop_signal is not None and done != self.total:
                    self._interrupted(done, acc, n_acc, window_start)
            bar.close()
            done = self.total
            final = self._validate_and_log(done, logger) if self.dist.main else None
            self._save_state(done)
            result = self._finish(done, final, data) if self.dist.main else {}
        finally:
            bar.close()
            logger.close()
            if previous_handler is not None:
                signal.signal(signal.SIGTERM, previous_handler)
        self.dist.barrier()
        return result

    def _catch_sigterm(self):
        """SIGTERM (a batch system's time limit or pre-emption) stops the run at the end of the current
        iteration with a checkpoint, so that no work since the last periodic checkpoint is lost."""
        self._stop_signal = None
        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum, frame):  # noqa: ARG001 - signal handler signature
            self._stop_signal = signum

        return signal.signal(signal.SIGTERM, handler)

    def _interrupted(self, done: int, acc: Tensor, n_acc: int, window_start: int) -> None:
        if n_acc:
            self._check_finite((acc / n_acc).tolist(), window_start, done)
        self._save_state(done)
        raise TrainingFailed(
            f"{self.config['experiment']}: stopped by signal {self._stop_signal} after iteration {done}; checkpoint "
            f"{self.last_path} written, run the same command again to resume"
        )

    def _header(self, start: int) -> str:
        c = self.config
        method = c["method"] + (f" ({self.objective.config.semantics} semantics)" if self.objective is not None else "")
        return (f"train {c['experiment']} [{c['tier']}]: {c['backbone']} {c['model_kwargs'] or '(paper configuration)'}, "
                f"{method}; iterations {start}->{self.total}, batch {c['budget']['batch']}, LR patch {c['budget']['lr_patch']}, "
                f"{self.schedule.type} lr {self.schedule.lr:g}; {device_description(self.device)}, {self.precision}; "
                f"init: {self.init_text}; run dir {self.run_dir}")

    def _row(self, done: int, values: list[float], speed: float) -> dict[str, Any]:
        return {"iteration": done, "epoch": self.schedule.epoch_of(done - 1), "lr": self.schedule.lr_at(done - 1),
                "loss": values[0], "l1": values[1], "contrastive": values[2], "embedding_loss": values[3],
                "it_per_s": speed, "elapsed_s": self.elapsed_before + time.perf_counter() - self.started,
                "val_psnr": None, "val_ssim": None}

    def _check_finite(self, values: list[float], first: int, last: int) -> None:
        if all(math.isfinite(v) for v in values):
            return
        kept = self.last_path if self.last_path.is_file() else None
        kept_text = (f"the last good checkpoint {kept} (iteration {_checkpoint_iteration(kept)}) is kept; rerunning "
                     "the command resumes from it") if kept else "no checkpoint had been written yet"
        raise TrainingFailed(
            f"{self.config['experiment']} ({self.config['tier']}): the loss became NaN or inf between iterations "
            f"{first + 1} and {last} (mean loss terms {['%.4g' % v for v in values]}); the run stopped and {kept_text}. "
            "Lower the learning rate, enable grad_clip, or check the training data"
        )

    def _weights_finite(self) -> bool:
        tensors = [p for p in self.raw_model.parameters()]
        if self.objective is not None:
            tensors += [p for p in self.objective.embedding.parameters()]
        flags = torch.stack([torch.isfinite(t).all() for t in tensors])
        return bool(flags.all().item())

    @torch.no_grad()
    def validate(self) -> dict[str, Any]:
        """PSNR/SSIM on the Y channel (matlab protocol) of the validation images, fp32, model in eval
        mode, under ``fork_rng`` (NLSN draws random rotations) so that training is unaffected."""
        from pcl.metrics import evaluate_pair

        model = self.raw_model
        was_training = model.training
        model.eval()
        rows = []
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        try:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(0)
                for name, hr, lr in zip(self.validation.names, self.validation.hr, self.validation.lr):
                    x = torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1)[None].to(self.device).float().div_(255.0)
                    y = model(x).clamp_(0.0, 1.0).mul_(255.0).round_().to(torch.uint8)[0].permute(1, 2, 0).cpu().numpy()
                    psnr, ssim = evaluate_pair(y, hr, scale=self.scale, protocol="matlab")
                    rows.append({"image": name, "psnr": float(psnr), "ssim": float(ssim), "height": int(hr.shape[0]),
                                 "width": int(hr.shape[1])})
        finally:
            model.train(was_training)
        return {"dataset": self.validation.dataset, "protocol": "matlab", "images": len(rows),
                "psnr": float(np.mean([r["psnr"] for r in rows])), "ssim": float(np.mean([r["ssim"] for r in rows])),
                "rows": rows}

    def _validate_and_log(self, done: int, logger: "_RunLog") -> dict[str, Any] | None:
        if not self.dist.main:
            return None
        result = self.validate()
        logger.write_validation(done, result, elapsed=self.elapsed_before + time.perf_counter() - self.started,
                                lr=self.schedule.lr_at(max(done - 1, 0)), epoch=self.schedule.epoch_of(max(done - 1, 0)))
        if self.best["psnr"] is None or result["psnr"] > self.best["psnr"]:
            self.best = {"psnr": result["psnr"], "iteration": done}
            self._save_weights(self.checkpoint_dir / "best.safetensors", {"validation_psnr": result["psnr"],
                                                                          "iteration": done})
        return result

    # ------------------------------------------------------------------ saving

    def _save_state(self, done: int) -> None:
        if not self.dist.main:
            return
        if not self._weights_finite():
            kept = self.last_path if self.last_path.is_file() else None
            raise TrainingFailed(
                f"{self.config['experiment']}: weights became NaN or inf by iteration {done}; the run stopped"
                + (f" and the last good checkpoint {kept} is kept" if kept else "")
                + ". Lower the learning rate or enable grad_clip"
            )
        embedding_state = None
        embedding_optimizer = None
        if self.objective is not None and isinstance(self.objective.embedding, _embedding_class()):
            embedding_state = self.objective.embedding.state_dict()
            if self.objective.optimizer is not None:
                embedding_optimizer = self.objective.optimizer.state_dict()
        state = {
            "format": CHECKPOINT_FORMAT,
            "experiment": self.config["experiment"],
            "tier": self.config["tier"],
            "identity": self.identity,
            "iteration": done,
            "model": self.raw_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "embedding": embedding_state,
            "embedding_optimizer": embedding_optimizer,
            "schedule": {**self.schedule.state_dict(), "iteration": done},
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "rng": capture_rng_states(),
            "sampler": {"seed": int(self.config["seed"]), "iteration": done, "rank": self.dist.rank,
                        "world_size": self.dist.world_size},
            "best": dict(self.best),
            "elapsed_seconds": self.elapsed_before + time.perf_counter() - self.started,
            "sessions": self.sessions,
            "provenance": json.loads(json.dumps(self.provenance)),
        }
        atomic_torch_save(state, self.last_path)

    def _small_provenance(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        keep = ("git", "device", "precision", "data_manifest_sha256", "config_identity", "init", "created")
        return {"experiment": self.config["experiment"], "tier": self.config["tier"], "method": self.method,
                **{k: self.provenance[k] for k in keep if k in self.provenance}, **(extra or {})}

    def _save_weights(self, path: Path, extra: Mapping[str, Any] | None = None) -> Path:
        from pcl.models.checkpoints import save_checkpoint

        return save_checkpoint(self.raw_model, path, arch=self.config["backbone"], config=self.model_config,
                               provenance=self._small_provenance(extra))

    def _finish(self, done: int, final: dict[str, Any] | None, data: PreparedData | None) -> dict[str, Any]:
        from pcl.models.checkpoints import save_checkpoint

        model_path = self._save_weights(self.run_dir / "model.safetensors", {"iteration": done})
        embedding_path = None
        embedding = self.objective.embedding if self.objective is not None else None
        if embedding is not None and isinstance(embedding, _embedding_class()):
            first = embedding.features[0][0]
            config = {"use_wavelet": embedding.use_wavelet, "patch_d": embedding.patch_d, "patch_size": embedding.patch_size,
                      "n_colors": first.in_channels // (3 if embedding.use_wavelet else 1)}
            embedding_path = save_checkpoint(embedding, self.run_dir / "embedding.safetensors", arch="embedding",
                                             config=config, provenance=self._small_provenance({"iteration": done}))
        wall = self.elapsed_before + time.perf_counter() - self.started
        sidecar = json.loads((self.run_dir / "model.json").read_text(encoding="utf-8"))
        result = {
            "experiment": self.config["experiment"],
            "tier": self.config["tier"],
            "backbone": self.config["backbone"],
            "method": self.method,
            "semantics": self.objective.config.semantics if self.objective is not None else None,
            "cells": self.config.get("cells", []),
            "iterations": done,
            "complete": True,
            "wall_seconds": round(wall, 3),
            "sessions": self.sessions,
            "seed": self.config["seed"],
            "validation": final,
            "best": self.best,
            "model": model_path.name,
            "model_sha256": sidecar["sha256"],
            "embedding": embedding_path.name if embedding_path else None,
            "data_manifest_sha256": data.content_sha256 if data is not None else None,
            "config_identity": self.identity,
            "provenance": self.provenance,
        }
        atomic_write_text(self.run_dir / "result.json", json.dumps(result, indent=2) + "\n")
        if final is not None:
            self._say(f"{self.config['experiment']} [{self.config['tier']}]: {done} iterations in {wall:.1f} s; "
                      f"{final['dataset']} ({final['images']} images) PSNR {final['psnr']:.4f} dB, SSIM {final['ssim']:.5f}; "
                      f"-> {model_path}")
        return result


def _embedding_class():
    from pcl.models.embedding import EmbeddingNet

    return EmbeddingNet


def _checkpoint_iteration(path: Path | None) -> Any:
    if path is None:
        return None
    try:
        return load_training_state(path)["iteration"]
    except PCLError:
        return "?"


_OOM_ERRORS: tuple[type[BaseException], ...] = (getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError), RuntimeError)


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)):
        return True
    text = str(exc).lower()
    return "out of memory" in text or "can't allocate memory" in text


# ---------------------------------------------------------------------------- logging


def _progress(total: int, initial: int, name: str, *, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=name, unit="it", disable=not enabled, dynamic_ncols=True,
                mininterval=0.5, smoothing=0.1)


class _RunLog:
    """log.csv (one row per log step and per validation) and TensorBoard scalars under tb/.

    On resume, rows past the resumed iteration are dropped (the run repeats them) and TensorBoard
    events after it are purged, so both logs read as one uninterrupted run.
    """

    def __init__(self, run_dir: Path, start: int, *, enabled: bool, tensorboard: bool) -> None:
        self.enabled = enabled
        self.path = run_dir / "log.csv"
        self.writer = None
        if not enabled:
            return
        rows = []
        if self.path.is_file():
            with self.path.open(newline="", encoding="utf-8") as handle:
                rows = [r for r in csv.DictReader(handle) if r.get("iteration") and int(r["iteration"]) <= start]
        with self.path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS)
            writer.writeheader()
            writer.writerows({k: r.get(k, "") for k in LOG_COLUMNS} for r in rows)
        self.handle = self.path.open("a", newline="", encoding="utf-8")
        self.csv = csv.DictWriter(self.handle, fieldnames=LOG_COLUMNS)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=start + 1 if start else None)
            except ImportError:  # tensorboard missing: the CSV log still has everything
                self.writer = None

    def write(self, row: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.csv.writerow({k: _fmt(row.get(k)) for k in LOG_COLUMNS})
        self.handle.flush()
        if self.writer is not None:
            step = row["iteration"]
            for key, tag in (("loss", "loss/total"), ("l1", "loss/l1"), ("contrastive", "loss/contrastive"),
                             ("embedding_loss", "loss/embedding"), ("lr", "lr"), ("it_per_s", "speed/it_per_s")):
                self.writer.add_scalar(tag, row[key], step)

    def write_validation(self, done: int, result: dict[str, Any], *, elapsed: float, lr: float, epoch: int) -> None:
        if not self.enabled:
            return
        self.csv.writerow({k: _fmt(v) for k, v in {"iteration": done, "epoch": epoch, "lr": lr, "elapsed_s": elapsed,
                                                   "val_psnr": result["psnr"], "val_ssim": result["ssim"]}.items()})
        self.handle.flush()
        if self.writer is not None:
            self.writer.add_scalar(f"val/{result['dataset']}_psnr", result["psnr"], done)
            self.writer.add_scalar(f"val/{result['dataset']}_ssim", result["ssim"], done)

    def close(self) -> None:
        if not self.enabled:
            return
        self.handle.close()
        if self.writer is not None:
            self.writer.close()


def _fmt(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


# ---------------------------------------------------------------------------- entry point


def run_experiment(name: str, tier: str, run_dir: str | os.PathLike[str] | None = None, *,
                   catalog_path: str | os.PathLike[str] | None = None, options: TrainOptions | None = None,
                   budget: Mapping[str, Any] | None = None, seed: int | None = None,
                   data: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Load the catalog, resolve ``name`` at ``tier`` (with overrides) and train it in ``run_dir``
    (default ``runs/<tier>/<name>``); returns the result (``result.json``)."""
    from pcl.train.catalog import load_catalog

    catalog = load_catalog(catalog_path)
    experiment = catalog.get(name)
    config = resolve_config(experiment, tier, budget=budget, seed=seed, data=data)
    run_dir = Path(run_dir) if run_dir is not None else Path("runs") / tier / name
    return Trainer(config, run_dir, options).run()
