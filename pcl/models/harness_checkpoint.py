"""The harness's own checkpoint format: safetensors weights plus a JSON sidecar.

Why: a checkpoint the harness writes must be rebuilt without pickle and without knowing which
configuration produced it.  The sidecar (``<stem>.json``) holds the architecture, the keyword
config that rebuilds it, the caller's provenance and the sha256 of the weights file, which is
verified before the weights are loaded (strictly, :mod:`pcl.models.strict_loading`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pcl.atomic import atomic_write, atomic_write_text
from pcl.errors import PCLError
from pcl.hashing import sha256_file
from pcl.models import build_model, canonical_name, count_parameters
from pcl.models.state_dict_files import PathLike
from pcl.models.strict_loading import load_into, mismatch_message


def sidecar_path(path: PathLike) -> Path:
    """``<stem>.json`` beside the weights file."""
    return Path(path).with_suffix(".json")


def save_checkpoint(
    model: nn.Module, path: PathLike, *, arch: str, config: dict[str, Any], provenance: dict[str, Any]
) -> Path:
    """Write ``model`` as safetensors plus a ``<stem>.json`` sidecar, both atomically (weights first).

    The sidecar holds the architecture, the keyword config that rebuilds it with
    ``build_model(arch, **config)``, the caller's provenance and the sha256 of the weights file.
    The config is checked against the model's state_dict first, so that ``load_checkpoint`` works.
    """
    from safetensors.torch import save

    path = Path(path)
    if path.suffix != ".safetensors":
        raise PCLError(f"checkpoint path {path} must end in .safetensors")
    arch = canonical_name(arch)
    with torch.device("meta"):
        reference = build_model(arch, **config)
    message = mismatch_message(reference, model.state_dict(), arch, f"of the {type(model).__name__} being saved")
    if message:
        raise PCLError(f"save_checkpoint: config does not rebuild the model: {message}")
    try:
        json.dumps({"config": config, "provenance": provenance})
    except (TypeError, ValueError) as exc:
        raise PCLError(f"save_checkpoint: config and provenance must be JSON-serialisable ({exc})") from None

    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in model.state_dict().items()}
    data = save(tensors, metadata={"architecture": arch})
    sidecar = {
        "format_version": 1,
        "weights": path.name,
        "architecture": arch,
        "config": config,
        "provenance": provenance,
        "sha256": hashlib.sha256(data).hexdigest(),
        "n_entries": len(tensors),
        "n_parameters": count_parameters(model),
    }
    # Through pcl.atomic: temp file, fsync, rename, and the same 0644-style mode as every output.
    atomic_write(path, lambda handle: handle.write(data))
    atomic_write_text(sidecar_path(path), json.dumps(sidecar, indent=2) + "\n")
    return path


def load_checkpoint(path: PathLike) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild and strictly load a model saved by :func:`save_checkpoint`; returns (model, sidecar).

    ``path`` may name the .safetensors file or its .json sidecar.  The sha256 is verified first.
    """
    weights = Path(path).with_suffix(".safetensors")
    meta_file = sidecar_path(weights)
    if not meta_file.is_file():
        raise PCLError(f"checkpoint sidecar {meta_file} not found; harness checkpoints are <stem>.safetensors + <stem>.json")
    if not weights.is_file():
        raise PCLError(f"checkpoint weights {weights} not found (sidecar {meta_file} exists)")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        arch, config, expected = meta["architecture"], meta["config"], meta["sha256"]
    except (ValueError, KeyError, TypeError) as exc:
        raise PCLError(f"checkpoint sidecar {meta_file} is malformed ({type(exc).__name__}: {exc}); re-save the checkpoint") from None
    actual = sha256_file(weights)
    if actual != expected:
        raise PCLError(
            f"checkpoint {weights} has sha256 {actual} but its sidecar records {expected}; the file was "
            "modified or truncated - re-download or re-save it"
        )
    model = build_model(arch, **config)
    load_into(model, weights, arch_name=arch)
    return model, meta
