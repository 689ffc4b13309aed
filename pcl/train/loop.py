"""The training loop: one catalog experiment at one tier, resumable, observable, fail-fast.

A run (``Trainer.run``) settles the runtime (``pcl.train.runtime``), builds the network and the
objective (``pcl.train.init``), resumes from ``checkpoints/last.pt`` when there is one
(``pcl.train.state``), then runs the training step (``pcl.train.step``) over the patch batches
(``pcl.train.data``), logging (``pcl.train.runlog``), validating (``pcl.train.validation``) and
checkpointing on the budget's cadence.  On CPU with ``deterministic`` the final weights of a run
killed at any point and resumed are bitwise those of an uninterrupted run (tested).

No host synchronisation in the inner loop: losses are accumulated on the device and read every
``log_every`` iterations (and before each checkpoint); the NaN/inf check happens at those reads,
so a checkpoint is only written after every loss since the previous one (and every weight) was
finite.  A non-finite loss stops the run with exit code 1 and keeps the last good checkpoint; an
out-of-memory error reports the batch and patch that failed.  SIGTERM (a batch system's time
limit) ends the current iteration, writes a checkpoint and exits with code 1.

One trainer per run directory (``pcl.train.lock``): a second one exits with code 2 naming the
first.  Before a session writes anything, the files it resumes from are read back and a damaged
one is refused with one line (``pcl.train.record``, ``pcl.train.runlog``).  The weights are checked
before every validation and a NaN or inf validation output stops the run, so ``best`` is only
ever written from finite weights with a finite score.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from pcl.atomic import atomic_write_text
from pcl.device import device_description
from pcl.errors import PCLError
from pcl.inference.predictor import NonFiniteOutput
from pcl.train.config import TrainOptions, run_identity
from pcl.train.data import DataSpec, PatchBatches, PreparedData, make_loader, prepare_training_data
from pcl.train.init import RunPlaces, build_objective, build_sr_model, load_initial_weights, wrap_for_training
from pcl.train.failures import kept_text, oom_message, weights_finite
from pcl.train.grad_share import diagnostics_summary, measured_fields
from pcl.train.lock import RunLock, clear_staging
from pcl.train.record import (
    check_run_record,
    read_result,
    result_record,
    run_provenance,
    sidecar_provenance,
    write_run_files,
)
from pcl.train.runlog import RunLog, progress_bar, read_log
from pcl.train.runtime import (
    OOM_ERRORS,
    Distributed,
    StopSignal,
    TrainingFailed,
    is_out_of_memory,
    setup_runtime,
    set_memory_format,
)
from pcl.train.schedules import Schedule
from pcl.train.state import (
    LAST,
    atomic_torch_save,
    check_identity,
    load_training_state,
    restore_training_state,
    save_weights,
    seed_global_rngs,
    trained_embedding,
    training_state,
)
from pcl.train.step import ADAM_BETAS, ADAM_EPS, TrainStep
from pcl.train.validation import load_validation_set, validate


class Trainer:
    """Runs one resolved experiment configuration in ``run_dir``; ``run()`` returns the result.

    ``setup()`` builds everything and exposes the training step as ``step`` and the settled
    runtime as ``runtime``; the training benchmark uses exactly these to time the real step.
    """

    def __init__(self, config: dict[str, Any], run_dir: str | os.PathLike[str], options: TrainOptions | None = None) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.options = options or TrainOptions()
        self.places = RunPlaces(self.run_dir, self.options)
        self.dist = Distributed.from_env()
        self.budget = dict(config["budget"])
        self.schedule = Schedule.from_dict(config["schedule"])
        self.identity = run_identity(config)
        self.total = int(self.budget["iterations"])
        if self.budget["batch"] % self.dist.world_size:
            raise PCLError(f"batch {self.budget['batch']} is not divisible by the world size {self.dist.world_size}")
        self.local_batch = self.budget["batch"] // self.dist.world_size
        self.scale = int(config["data"].get("scale", 4))
        self.hr_patch = int(self.budget["lr_patch"]) * self.scale
        self.objective = None
        self.best: dict[str, Any] = {"psnr": None, "iteration": None}
        self.elapsed_before = 0.0
        self.sessions = 1
        self.log_rows: list[dict[str, Any]] | None = None  # log.csv rows: kept on resume, then appended
        self.started = time.perf_counter()

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def last_path(self) -> Path:
        return self.checkpoint_dir / LAST

    def _elapsed(self) -> float:
        """Training seconds over every session of the run."""
        return self.elapsed_before + time.perf_counter() - self.started

    def _say(self, text: str) -> None:
        if self.dist.main:
            print(text, file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ setup

    def run(self) -> dict[str, Any]:
        """Train (or resume, or recognise as complete) and return the result (``result.json``),
        holding the run directory's lock throughout (the main process of a DDP run holds it)."""
        lock = RunLock(self.run_dir) if self.dist.main else None
        if lock is not None:
            lock.acquire()
        try:
            return self._run()
        finally:
            if lock is not None:
                lock.release()

    def _run(self) -> dict[str, Any]:
        self.runtime = setup_runtime(self.options, self.budget, self.dist)
        done = read_result(self.run_dir / "result.json", self.last_path)
        if self.dist.main:
            check_run_record(self.run_dir, self.last_path)
            for path in clear_staging(self.run_dir, self.checkpoint_dir):
                self._say(f"removed {path}: the unfinished write of a trainer that was stopped")
        if done is not None and self.last_path.is_file():
            if done["config_identity"] == self.identity and done["iterations"] == self.total:
                self._say(f"{self.config['experiment']} ({self.config['tier']}): already complete in {self.run_dir} "
                          f"({self.total} iterations); nothing to do")
                return done
        data, start = self.setup(resume=True)
        self.log_rows = read_log(self.run_dir / "log.csv", start, resume_from=str(self.last_path)) if self.dist.main else []
        if start >= self.total:  # the final validation runs again on resume: its old row would be doubled
            self.log_rows = [r for r in self.log_rows if not (r.get("val_psnr") and int(r["iteration"]) >= start)]
        if self.dist.main:
            write_run_files(self.run_dir, self.config, model_config=self.model_config,
                            method_config=self.objective.config.to_dict() if self.objective is not None else None,
                            runtime={**self.runtime.describe(), "per_rank_batch": self.local_batch,
                                     "loss_scale": self.loss_scale, **self._term_weight()},
                            identity=self.identity, provenance=self.provenance)
            self.validation = load_validation_set(self.budget.get("validation_dataset", "Set5"), scale=self.scale,
                                                  limit=self.budget.get("validation_images"))
        return self._loop(data, start)

    def _term_weight(self) -> dict[str, Any]:
        """alpha beside the L1 scale: the term is scale-free while the L1 is multiplied by loss_scale
        (255 for EDSR/RCAN/HAN, 1 for NLSN under `backbone`), so the same alpha weighs differently."""
        if self.objective is None:
            return {}
        alpha = float(self.objective.config.weight)
        return {"contrastive_weight": alpha,
                "contrastive_weight_relative_to_l1_on_0_1": alpha / self.loss_scale}

    def setup(self, *, resume: bool = True) -> tuple[PreparedData | None, int]:
        """Build data, model, objective, optimisers and the step (resuming from
        ``checkpoints/last.pt`` when ``resume`` and present); returns the prepared data and the
        first iteration to run."""
        if not hasattr(self, "runtime"):
            self.runtime = setup_runtime(self.options, self.budget, self.dist)
        runtime = self.runtime
        if self.dist.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        # A 0-iteration run (the fine-tune tier's baselines: the official weights, exported and
        # validated) needs no training data.
        data = self._prepare_data() if self.total > 0 else None
        built = build_sr_model(self.config)
        model, self.model_config, self.loss_scale = built.module, built.config, built.loss_scale
        state = load_training_state(self.last_path) if resume and self.last_path.is_file() else None
        if state is not None:
            check_identity(state, self.identity, self.last_path)
            self.init_text = f"resumed from {self.last_path} (iteration {state['iteration']})"
        else:
            self.init_text = load_initial_weights(model, self.config, self.places)
        model.to(runtime.device)
        if runtime.channels_last:
            set_memory_format(model, torch.channels_last)
        model.train()
        self.raw_model = model
        self.objective, embedding_from = build_objective(self.config, runtime, self.places, sr_lr=self.schedule.lr,
                                                         hr_patch=self.hr_patch)
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=self.schedule.lr_at(0), betas=ADAM_BETAS, eps=ADAM_EPS)
        self.scaler = torch.amp.GradScaler("cuda") if runtime.precision == "fp16" else None
        start = 0
        seed_global_rngs(self.config["seed"], self.dist.rank)
        if state is not None:
            start = restore_training_state(state, model=model, optimizer=self.optimizer, objective=self.objective,
                                           scaler=self.scaler, seed=self.config["seed"], path=self.last_path)
            if start > self.total:
                raise PCLError(f"{self.last_path} is at iteration {start}, past the requested {self.total} iterations; "
                               "raise --iterations or use another --run-dir")
            self.best = dict(state.get("best") or self.best)
            self.elapsed_before = float(state.get("elapsed_seconds", 0.0))
            self.sessions = int(state.get("sessions", 1)) + 1
        self.step = TrainStep(model=wrap_for_training(model, runtime, compile_model=bool(self.budget.get("compile"))),
                              params=params, optimizer=self.optimizer, schedule=self.schedule, runtime=runtime,
                              seed=self.config["seed"], loss_scale=self.loss_scale, objective=self.objective,
                              scaler=self.scaler, grad_clip=self.config.get("grad_clip"))
        self.provenance = run_provenance(runtime=runtime, options=self.options, data=data, init=self.init_text,
                                         identity=self.identity, embedding_from=embedding_from)
        return data, start

    def batches(self, data: PreparedData) -> PatchBatches:
        """The patch dataset of this run (item i = the uint8 batch of iteration i)."""
        return PatchBatches(data, batch=self.local_batch, lr_patch=int(self.budget["lr_patch"]), seed=self.config["seed"],
                            augment=self.config["augment"], rank=self.dist.rank, world_size=self.dist.world_size)

    def _prepare_data(self) -> PreparedData:
        spec = DataSpec.from_dict(self.config["data"])
        if self.dist.main:
            data = prepare_training_data(spec, self.options.data_cache, workers=max(1, int(self.budget["workers"])))
        self.dist.barrier()
        if not self.dist.main:
            data = prepare_training_data(spec, self.options.data_cache)
        return data

    # ------------------------------------------------------------------ loop

    def _loop(self, data: PreparedData | None, start: int) -> dict[str, Any]:
        loader: Any = []
        if data is not None and start < self.total:
            loader = make_loader(self.batches(data), start=start, stop=self.total, workers=int(self.budget["workers"]),
                                 pin_memory=self.runtime.device.type == "cuda")
        self._say(self._header(start))
        logger = RunLog(self.run_dir, start, enabled=self.dist.main, tensorboard=self.options.tensorboard,
                        rows=self.log_rows)
        bar = progress_bar(self.total, start, self.config["experiment"], enabled=self.options.progress and self.dist.main)
        acc = torch.zeros(4, device=self.runtime.device)
        n_acc = 0
        window_start = start
        last_read = time.perf_counter()
        last_read_it = start
        log_every = int(self.budget["log_every"])
        ckpt_every = int(self.budget["checkpoint_every"])
        val_every = int(self.budget["validate_every"])
        with StopSignal() as stop:
            try:
                self.step.measure_when = lambda i: (i + 1) % log_every == 0 or i + 1 == self.total or (
                    bool(ckpt_every) and (i + 1) % ckpt_every == 0)  # the iterations that write a log row
                for iteration, (lr_u8, hr_u8) in zip(range(start, self.total), loader):
                    try:
                        acc += self.step(lr_u8, hr_u8, iteration)
                    except OOM_ERRORS as exc:
                        if not is_out_of_memory(exc):
                            raise
                        raise TrainingFailed(oom_message(iteration, self)) from None
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
                        self.log_rows.append(row)
                        bar.set_postfix(loss=f"{values[0]:.4g}", l1=f"{values[1]:.4g}", cl=f"{values[2]:.3g}",
                                        lr=f"{row['lr']:.2e}", refresh=False)
                        acc.zero_()
                        n_acc, window_start, last_read, last_read_it = 0, done, now, done
                    if val_every and done % val_every == 0 and done != self.total:
                        self._validate_and_log(done, logger)
                    if is_ckpt:
                        self._save_state(done)
                    if stop.received is not None and done != self.total:
                        self._interrupted(done, acc, n_acc, window_start, stop.received)
                bar.close()
                done = self.total
                final = self._validate_and_log(done, logger) if self.dist.main else None
                self._save_state(done)
                result = self._finish(done, final, data) if self.dist.main else {}
            finally:
                bar.close()
                logger.close()
        self.dist.barrier()
        return result

    def _header(self, start: int) -> str:
        c = self.config
        method = c["method"] + (f" ({self.objective.config.semantics} semantics)" if self.objective is not None else "")
        return (f"train {c['experiment']} [{c['tier']}]: {c['backbone']} {c['model_kwargs'] or '(paper configuration)'}, "
                f"{method}; iterations {start}->{self.total}, batch {c['budget']['batch']}, LR patch {c['budget']['lr_patch']}, "
                f"{self.schedule.type} lr {self.schedule.lr:g}; {device_description(self.runtime.device)}, "
                f"{self.runtime.precision}; init: {self.init_text}; run dir {self.run_dir}")

    def _row(self, done: int, values: list[float], speed: float) -> dict[str, Any]:
        return {"iteration": done, "epoch": self.schedule.epoch_of(done - 1), "lr": self.schedule.lr_at(done - 1),
                "loss": values[0], "l1": values[1], "contrastive": values[2], "embedding_loss": values[3],
                "it_per_s": speed, "elapsed_s": self._elapsed(), "val_psnr": None, "val_ssim": None,
                **(measured_fields(self.step) if self.objective is not None else {})}

    # ------------------------------------------------------------------ failures

    def _kept_text(self) -> str:
        return kept_text(self.last_path, self.checkpoint_dir / "best.safetensors", self.best.get("iteration"))

    def _check_finite(self, values: list[float], first: int, last: int) -> None:
        if all(math.isfinite(v) for v in values):
            return
        raise TrainingFailed(
            f"{self.config['experiment']} ({self.config['tier']}): the loss became NaN or inf between iterations "
            f"{first + 1} and {last} (mean loss terms {['%.4g' % v for v in values]}); the run stopped and "
            f"{self._kept_text()}. "
            "Lower the learning rate, enable grad_clip, or check the training data"
        )

    def _interrupted(self, done: int, acc: torch.Tensor, n_acc: int, window_start: int, signum: int) -> None:
        if n_acc:
            self._check_finite((acc / n_acc).tolist(), window_start, done)
        self._save_state(done)
        raise TrainingFailed(
            f"{self.config['experiment']}: stopped by signal {signum} after iteration {done}; checkpoint "
            f"{self.last_path} written, run the same command again to resume"
        )

    # ------------------------------------------------------------------ validation and files

    def _diverged(self, done: int, what: str) -> TrainingFailed:
        return TrainingFailed(f"{self.config['experiment']} ({self.config['tier']}): {what} by iteration {done}; the "
                              f"run stopped and {self._kept_text()}. Lower the learning rate or enable grad_clip")

    def _validate_and_log(self, done: int, logger: RunLog) -> dict[str, Any] | None:
        if not self.dist.main:
            return None
        if not weights_finite(self.raw_model, self.objective):
            raise self._diverged(done, "the weights became NaN or inf (found before validating them)")
        try:
            result = validate(self.raw_model, self.validation, self.runtime.device, scale=self.scale,
                              source=f"weights at iteration {done}")
        except NonFiniteOutput as exc:
            raise self._diverged(done, f"the validation output of {exc.image} had {exc.bad} of {exc.total} values NaN "
                                       "or inf") from None
        if math.isnan(result["psnr"]):
            raise self._diverged(done, f"the validation PSNR became {result['psnr']}")
        previous = max(done - 1, 0)
        logger.write_validation(done, result, elapsed=self._elapsed(), lr=self.schedule.lr_at(previous),
                                epoch=self.schedule.epoch_of(previous))
        if self.best["psnr"] is None or result["psnr"] > self.best["psnr"]:
            self.best = {"psnr": result["psnr"], "iteration": done}
            self._save_weights(self.raw_model, self.checkpoint_dir / "best.safetensors",
                               {"validation_psnr": result["psnr"], "iteration": done})
        return result

    def _save_state(self, done: int) -> None:
        if not self.dist.main:
            return
        if not weights_finite(self.raw_model, self.objective):
            raise self._diverged(done, "the weights became NaN or inf")
        state = training_state(
            run={"experiment": self.config["experiment"], "tier": self.config["tier"], "identity": self.identity},
            iteration=done, model=self.raw_model, optimizer=self.optimizer, objective=self.objective,
            scaler=self.scaler, schedule=self.schedule.state_dict(), seed=self.config["seed"], rank=self.dist.rank,
            world_size=self.dist.world_size,
            progress={"best": dict(self.best), "elapsed_seconds": self._elapsed(), "sessions": self.sessions,
                      "provenance": json.loads(json.dumps(self.provenance))},
        )
        atomic_torch_save(state, self.last_path)

    def _save_weights(self, module: torch.nn.Module, path: Path, extra: dict[str, Any], *, arch: str | None = None,
                      config: dict[str, Any] | None = None) -> Path:
        return save_weights(module, path, arch=arch or self.config["backbone"],
                            config=self.model_config if config is None else config,
                            provenance=sidecar_provenance(self.config, self.provenance, extra))

    def _finish(self, done: int, final: dict[str, Any] | None, data: PreparedData | None) -> dict[str, Any]:
        model_path = self._save_weights(self.raw_model, self.run_dir / "model.safetensors", {"iteration": done})
        embedding_path = None
        embedding = trained_embedding(self.objective)
        if embedding is not None:
            first = embedding.features[0][0]
            config = {"use_wavelet": embedding.use_wavelet, "patch_d": embedding.patch_d, "patch_size": embedding.patch_size,
                      "n_colors": first.in_channels // (3 if embedding.use_wavelet else 1)}
            embedding_path = self._save_weights(embedding, self.run_dir / "embedding.safetensors", {"iteration": done},
                                                arch="embedding", config=config)
        wall = self._elapsed()
        sidecar = json.loads((self.run_dir / "model.json").read_text(encoding="utf-8"))
        semantics = self.objective.config.semantics if self.objective is not None else None
        result = result_record(self.config, semantics=semantics, done=done, wall=wall, sessions=self.sessions,
                               final=final, best=self.best, model=model_path.name, model_sha256=sidecar["sha256"],
                               embedding=embedding_path.name if embedding_path else None,
                               data_sha256=data.content_sha256 if data is not None else None,
                               identity=self.identity, provenance=self.provenance)
        if self.objective is not None:
            result["pcl_diagnostics"] = diagnostics_summary(self.log_rows or [],
                                                            warmup=self.objective.config.embedding_warmup)
        atomic_write_text(self.run_dir / "result.json", json.dumps(result, indent=2) + "\n")
        if final is not None:
            self._say(f"{self.config['experiment']} [{self.config['tier']}]: {done} iterations in {wall:.1f} s; "
                      f"{final['dataset']} ({final['images']} images) PSNR {final['psnr']:.4f} dB, SSIM {final['ssim']:.5f}; "
                      f"-> {model_path}")
        return result
