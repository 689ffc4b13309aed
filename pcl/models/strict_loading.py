"""Strict loading of a state_dict into a model, with a diagnosis when it does not fit.

Why so strict: the official loaders are non-strict, so a checkpoint with wrong keys silently
half-loads and evaluates as a randomly initialised network.  Here every load is strict, and a
mismatch is reported in one line that lists the missing, unexpected and wrong-shape keys and
names the paper architecture that fits the file best.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from pcl.errors import PCLError
from pcl.models import PAPER_CONFIGS, build_model
from pcl.models.basicsr_keys import normalise_state_dict
from pcl.models.common import infer_rgb_range
from pcl.models.state_dict_files import LIST_LIMIT, load_state_dict_file

#: Relative disagreement between configured and inferred rgb_range that triggers a warning.
_RGB_RANGE_TOLERANCE = 0.1


def infer_scale(state_dict: Mapping[str, Tensor]) -> int | None:
    """Upscaling factor implied by the tail shapes (x4: tail.0.2 exists; x2/x3: 4C or 9C outputs)."""
    if "tail.0.2.weight" in state_dict:
        return 4
    weight = state_dict.get("tail.0.0.weight")
    if weight is None or weight.ndim != 4 or weight.shape[1] == 0:
        return None
    return {4: 2, 9: 3}.get(int(weight.shape[0]) // int(weight.shape[1]))


@functools.lru_cache(maxsize=32)
def _reference_shapes(name: str, scale: int | None) -> dict[str, tuple[int, ...]]:
    config = dict(PAPER_CONFIGS[name])
    if scale is not None and "scale" in config:
        config["scale"] = scale
    with torch.device("meta"):
        model = build_model(name, **config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def best_fitting_arch(state_dict: Mapping[str, Tensor]) -> tuple[str, int | None, int, int]:
    """Paper architecture that fits a state_dict best: (name, scale, matching keys, its key count).

    The score is the Jaccard overlap of (key, shape) pairs, so a superset (HAN vs an RCAN file)
    does not win over the exact architecture.
    """
    scale = infer_scale(state_dict)
    best: tuple[float, str, int, int] | None = None
    for name in PAPER_CONFIGS:
        reference = _reference_shapes(name, scale)
        matched = sum(1 for k, v in state_dict.items() if reference.get(k) == tuple(v.shape))
        score = matched / max(1, len(state_dict) + len(reference) - matched)
        if best is None or score > best[0]:
            best = (score, name, matched, len(reference))
    assert best is not None
    _, name, matched, total = best
    return name, (scale if "scale" in PAPER_CONFIGS[name] else None), matched, total


def mismatch_message(model: nn.Module, state_dict: Mapping[str, Tensor], arch_name: str, source: str) -> str | None:
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if not (missing or unexpected or wrong):
        return None
    name, scale, matched, total = best_fitting_arch(state_dict)
    fit = f"{name}" + (f" x{scale}" if scale else "")

    def listing(items: list[str]) -> str:
        more = f" (+{len(items) - LIST_LIMIT} more)" if len(items) > LIST_LIMIT else ""
        return "[" + ", ".join(items[:LIST_LIMIT]) + "]" + more

    return (
        f"checkpoint {source} does not fit architecture {arch_name!r}: "
        f"{len(missing)} missing keys {listing(missing)}; "
        f"{len(unexpected)} unexpected keys {listing(unexpected)}; "
        f"{len(wrong)} wrong-shape keys (checkpoint vs model) {listing(wrong)}; "
        f"best-fitting architecture: {fit} ({matched}/{total} of its keys match); "
        "choose that architecture/configuration or the right checkpoint"
    )


def load_into(model: nn.Module, state_dict_or_path: Any, *, arch_name: str) -> nn.Module:
    """Strictly load a state_dict (or a checkpoint file) into ``model`` and return the model.

    BasicSR EDSR/RCAN keys are converted first.  On any key or shape mismatch a PCLError lists
    the missing, unexpected and wrong-shape keys (first 10 each) and the best-fitting paper
    architecture.  Warns when the checkpoint's MeanShift implies another rgb_range than the
    model's.
    """
    if isinstance(state_dict_or_path, (str, os.PathLike)):
        source = str(state_dict_or_path)
        state_dict = normalise_state_dict(load_state_dict_file(state_dict_or_path), source=source)
    else:
        source = "(in-memory state_dict)"
        state_dict = normalise_state_dict(state_dict_or_path, source=source)
    message = mismatch_message(model, state_dict, arch_name, source)
    if message:
        raise PCLError(message)
    rgb_range = getattr(model, "rgb_range", None)
    if rgb_range and "sub_mean.bias" in state_dict:
        inferred = infer_rgb_range(state_dict)
        if abs(inferred / float(rgb_range) - 1.0) > _RGB_RANGE_TOLERANCE:
            warnings.warn(
                f"checkpoint {source} looks trained with rgb_range ~{inferred:.4g} (from sub_mean.bias) but "
                f"the {arch_name} model is configured with rgb_range {rgb_range:g}; outputs will be wrong "
                "unless rgb_range is set to match",
                UserWarning,
                stacklevel=2,
            )
    model.load_state_dict(state_dict, strict=True)
    return model
