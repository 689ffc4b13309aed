"""Trainers of the GPU check: a catalog experiment at paper size (or tiny), set up for timing.

Why through ``pcl.train.loop.Trainer``: the figures are only meaningful if they time the very
step that trains (``pcl.train.step.TrainStep``), built the way the trainer builds it.  The
experiment is resolved at the ``smoke`` tier (random initialisation, shipped stand-in photos, no
official weights needed) with the budget's batch and patch overridden and, at paper size, the
model keywords cleared (the registry's paper configuration).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from pcl.train.runtime import set_memory_format

#: Methods of the step part: L1 only, +PCL in the paper's semantics, +PCL as released.
METHODS: dict[str, str] = {"l1": "baseline", "pcl-paper": "pcl", "pcl-released": "pcl-released"}
PAPER_BATCH, PAPER_LR_PATCH = 16, 48
TINY_BATCH, TINY_LR_PATCH = 2, 8


def experiment_config(backbone: str, method: str, *, tiny: bool, batch: int, lr_patch: int) -> dict[str, Any]:
    """The resolved smoke-tier configuration of ``<backbone>-<catalog method>`` at the given batch
    and patch; a backbone without a released-semantics experiment gets its ``pcl`` entry with the
    released preset of its recipe."""
    from pcl.train.catalog import load_catalog
    from pcl.train.config import resolve_config

    catalog = load_catalog()
    kind = METHODS[method]
    budget = {"batch": batch, "lr_patch": lr_patch, "precision": "fp32", "channels_last": False, "workers": 0}
    names = set(catalog.tier_experiments("smoke"))
    name = f"{backbone}-{kind}"
    if name in names:
        config = resolve_config(catalog.get(name), "smoke", budget=budget)
    else:
        config = resolve_config(catalog.get(f"{backbone}-pcl"), "smoke", budget=budget)
        config["method"] = "pcl-released"
        config["experiment"] = name
        config["method_settings"] = {"preset": "released-nlsn" if config["recipe"] == "released-nlsn" else "released-rcan"}
    if not tiny:
        config["model_kwargs"] = {}
    config["vgg_pretrained"] = False
    return config


def build_trainer(config: dict[str, Any], device: str, work: Path, *, deterministic: bool = False):
    """A set-up ``Trainer`` (model, objective, optimiser, step) in ``work/<experiment>``."""
    from pcl.train.config import TrainOptions
    from pcl.train.loop import Trainer

    options = TrainOptions(device=device, progress=False, tensorboard=False, data_cache=work / "cache",
                           deterministic=deterministic)
    trainer = Trainer(config, work / config["experiment"], options)
    trainer.setup(resume=False)
    return trainer


def step_variant(trainer, *, precision: str, channels_last: bool):
    """The trainer's step with another precision / memory format (same model and optimiser)."""
    runtime = dataclasses.replace(trainer.runtime, precision=precision, channels_last=channels_last)
    set_memory_format(trainer.raw_model, torch.channels_last if channels_last else torch.contiguous_format)
    changes: dict[str, Any] = {"runtime": runtime}
    if "measure_when" in {f.name for f in dataclasses.fields(trainer.step)}:
        changes["measure_when"] = None  # the occasional gradient-share diagnostic is not the steady-state step
    return dataclasses.replace(trainer.step, **changes)


def random_batches(count: int, batch: int, lr_patch: int, scale: int = 4, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """uint8 (LR, HR) batches of noise: the cost of a step does not depend on the content."""
    gen = torch.Generator().manual_seed(seed)
    hr_patch = lr_patch * scale
    return [(torch.randint(0, 256, (batch, 3, lr_patch, lr_patch), generator=gen, dtype=torch.uint8),
             torch.randint(0, 256, (batch, 3, hr_patch, hr_patch), generator=gen, dtype=torch.uint8))
            for _ in range(count)]
