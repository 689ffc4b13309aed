"""What a run starts from: the SR network, its initial weights, and the PCL objective.

Why seeded under ``fork_rng``: the SR network and the embedding are initialised from seeds
derived from the run seed (``derive_seed(seed, "model")`` and ``(seed, "embedding")``) without
touching the global RNG streams, so the initial weights depend on the run seed alone and not on
what ran before (an extended or resumed run rebuilds exactly the same modules).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import torch
from torch import Tensor, nn

from pcl.errors import PCLError
from pcl.train.catalog import PCL_METHODS
from pcl.train.config import TrainOptions, derive_seed
from pcl.train.runtime import Runtime

if TYPE_CHECKING:
    from pcl.method import PCLObjective


@dataclass(frozen=True)
class RunPlaces:
    """Where the files a run starts from live: other experiments' run dirs and the checkpoint registry."""

    run_dir: Path
    options: TrainOptions

    def sibling(self, name: str) -> Path:
        """The run dir of experiment ``name`` at this tier (``--runs-root``, else beside this run)."""
        root = self.options.runs_root if self.options.runs_root is not None else self.run_dir.parent
        return Path(root) / name


@dataclass
class SRModel:
    """The SR network as built, with the keyword config that rebuilds it and its loss scale."""

    module: nn.Module
    config: dict[str, Any]
    loss_scale: float


def build_sr_model(config: Mapping[str, Any]) -> SRModel:
    """The backbone with the experiment's keywords, initialised from the run seed.

    ``loss_scale`` multiplies the L1 loss: ``backbone`` is the network's rgb_range, i.e. the L1
    that each backbone's official code computes on its value scale.
    """
    from pcl.models import build_model, model_defaults

    backbone = config["backbone"]
    model_config = {**model_defaults(backbone), **config["model_kwargs"]}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config["seed"], "model"))
        model = build_model(backbone, **config["model_kwargs"])
    loss_scale = config.get("loss_scale", "backbone")
    return SRModel(model, model_config, float(model.rgb_range) if loss_scale == "backbone" else float(loss_scale))


def initial_weights(config: Mapping[str, Any], places: RunPlaces) -> tuple[Path | None, str]:
    """The file the SR network starts from (None = scratch) and a description."""
    options = places.options
    if options.init:
        path = Path(options.init)
        if path.is_dir():
            path = path / "model.safetensors"
        return path, f"--init {options.init}"
    init = config["init"]
    backbone = config["backbone"]
    if init == "scratch":
        return None, "scratch"
    if init == "official" or (isinstance(init, Mapping) and "checkpoint" in init):
        from pcl.released import load_registry

        name = f"{backbone}-official" if init == "official" else init["checkpoint"]
        registry = load_registry(Path(options.checkpoints_config))
        entry = registry.get(name)
        if not entry.path.is_file():
            raise PCLError(f"initial weights {name} not found at {entry.path}; get them: {entry.how_to_get()}")
        return entry.path, f"checkpoint {name}"
    if isinstance(init, Mapping) and "path" in init:
        return Path(init["path"]), f"file {init['path']}"
    if isinstance(init, Mapping) and "experiment" in init:
        run = places.sibling(init["experiment"])
        path = run / "model.safetensors"
        if not (run / "result.json").is_file():
            raise PCLError(f"initial weights: run {run} of experiment {init['experiment']!r} is not complete "
                           f"(no result.json); train it first or pass --runs-root")
        return path, f"experiment {init['experiment']} ({run})"
    raise PCLError(f"unknown init {init!r}")


def load_initial_weights(model: nn.Module, config: Mapping[str, Any], places: RunPlaces) -> str:
    """Load the initial weights (strictly) into ``model``; returns the description for the logs."""
    from pcl.models.checkpoints import load_into

    path, text = initial_weights(config, places)
    if path is None:
        return text
    if not path.is_file():
        raise PCLError(f"initial weights {path} not found ({text})")
    load_into(model, path, arch_name=config["backbone"])
    return f"{text}: {path}"


def load_fixed_embedding(config: Mapping[str, Any], places: RunPlaces) -> tuple[nn.Module, str]:
    """pcl-fixed: the embedding another PCL run wrote, and the file it came from."""
    from pcl.models.checkpoints import load_checkpoint

    option = places.options.embedding_from
    source = option or config.get("embedding_from")
    if not source:
        raise PCLError("pcl-fixed needs embedding_from (an experiment) or --embedding-from RUN_DIR")
    run = Path(source) if (option or os.sep in str(source)) else places.sibling(source)
    path = run / "embedding.safetensors" if run.is_dir() or not run.suffix else run
    if not path.is_file():
        raise PCLError(f"pcl-fixed: embedding {path} not found; train {source!r} at this tier first "
                       "(every PCL run writes embedding.safetensors) or pass --embedding-from RUN_DIR")
    embedding, meta = load_checkpoint(path)
    if meta["architecture"] != "embedding":
        raise PCLError(f"pcl-fixed: {path} holds a {meta['architecture']!r} network, not an embedding")
    return embedding, str(path)


def build_objective(config: Mapping[str, Any], runtime: Runtime, places: RunPlaces, *, sr_lr: float,
                    hr_patch: int) -> tuple[PCLObjective | None, str | None]:
    """The PCL objective (None for baseline/control) and, for pcl-fixed, the embedding file it froze.

    The objective draws its samples from its own generator, which the training step re-seeds
    every iteration; pcl-fixed keeps the embedding frozen (its term still sends gradient to the
    SR output).  Under DDP the embedding's gradients are averaged over the ranks.
    """
    if config["method"] not in PCL_METHODS:
        return None, None
    from pcl.method import MethodConfig, PCLObjective

    method_config = MethodConfig.from_dict(config["method_settings"])
    fixed = config["method"] == "pcl-fixed"
    embedding, source = load_fixed_embedding(config, places) if fixed else (None, None)
    generator = torch.Generator(device=runtime.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(config["seed"], "embedding"))
        objective = PCLObjective(method_config, device=runtime.device, sr_lr=sr_lr, embedding=embedding,
                                 generator=generator, patch_size=hr_patch,
                                 vgg_pretrained=bool(config.get("vgg_pretrained", True)))
    if fixed:
        objective.optimizer = None
        objective.embedding.requires_grad_(False)
    elif runtime.dist.active and objective.optimizer is not None:
        _average_gradients_over_ranks(objective.embedding, runtime.dist.world_size)
    return objective, source


def _average_gradients_over_ranks(embedding: nn.Module, world: int) -> None:
    """DDP for the embedding: average its gradients over ranks as each one is accumulated (the
    objective runs its own backward/step, so a DDP wrapper would never see its forward)."""

    def hook(param: Tensor) -> None:
        torch.distributed.all_reduce(param.grad)
        param.grad.div_(world)

    for param in embedding.parameters():
        if param.requires_grad:
            param.register_post_accumulate_grad_hook(hook)


def wrap_for_training(model: nn.Module, runtime: Runtime, *, compile_model: bool) -> nn.Module:
    """The module the step calls: optionally ``torch.compile``d, under torchrun wrapped in DDP."""
    wrapped = model
    if compile_model:
        wrapped = torch.compile(wrapped)
    if runtime.dist.active:
        from torch.nn.parallel import DistributedDataParallel

        device = runtime.device
        wrapped = DistributedDataParallel(wrapped, device_ids=[device.index] if device.type == "cuda" else None)
    return wrapped
