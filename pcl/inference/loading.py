"""Loading an SR network for evaluation from a checkpoint: named, automatic or from its sidecar.

Why a module of its own: every model-based number in the tables (released checkpoints, our
fine-tunes, smoke runs) must say which network and which file produced it.  A checkpoint is
loaded strictly (:mod:`pcl.models.strict_loading`) into the architecture that ``--model`` names,
the one its harness sidecar records, or, with ``auto``, the paper architecture that fits every
key; the result carries the file's sha256 and the configuration used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from pcl.errors import PCLError
from pcl.hashing import sha256_file

from pcl.models.registry import backbones

#: SR backbones ``pcl evaluate --model`` accepts (``auto`` reads the architecture from the checkpoint).
SR_MODELS: tuple[str, ...] = tuple(backbones())
#: Aliases of the factory that name the same preset as an ``SR_MODELS`` entry.
_PRESET_ALIASES = {alias: b.name for b in backbones().values() for alias in b.aliases}


def _preset(name: str) -> str:
    """Canonical SR preset of a factory name (edsr/edsr-baseline -> edsr-s); PCLError otherwise."""
    from pcl.models import canonical_name

    key = str(name).strip().lower().replace("_", "-")
    if key == "auto":
        return key
    try:
        key = canonical_name(key)
    except PCLError:
        raise PCLError(f"unknown model {name!r}; use one of bicubic, {', '.join(SR_MODELS)} or auto") from None
    key = _PRESET_ALIASES.get(key, key)
    if key not in SR_MODELS:
        raise PCLError(f"{name!r} is not a super-resolution model; use one of bicubic, {', '.join(SR_MODELS)} or auto")
    return key


def _sidecar_preset(architecture: str, config: dict[str, Any]) -> str:
    """Preset of a harness checkpoint: the sidecar's architecture, except that the generic ``edsr``
    name is resolved to EDSR-L when its width and depth are EDSR-L's (else EDSR-S)."""
    if architecture == "embedding":
        return architecture
    preset = _preset(architecture)
    if architecture in _PRESET_ALIASES:
        from pcl.models import PAPER_CONFIGS

        large = PAPER_CONFIGS["edsr-l"]
        if all(config.get(k) == large[k] for k in ("n_feats", "n_resblocks")):
            return "edsr-l"
    return preset


@dataclass(frozen=True)
class LoadedModel:
    """A model ready for evaluation and what identifies it."""

    model: nn.Module
    backbone: str
    checkpoint: Path
    sha256: str
    config: dict[str, Any]
    source: str
    """'harness sidecar' (safetensors + json), 'named' (--model NAME) or 'auto (best fit)'."""


def load_model(name: str, checkpoint: str | Path) -> LoadedModel:
    """Build the SR network ``name`` (or ``auto``), load ``checkpoint`` strictly, and tag the network
    with the file (``SOURCE_ATTR``) so that a predictor built from it names the file in its errors."""
    from pcl.inference.predictor import SOURCE_ATTR

    loaded = _load_model(name, checkpoint)
    setattr(loaded.model, SOURCE_ATTR, str(loaded.checkpoint))
    return loaded


def _load_model(name: str, checkpoint: str | Path) -> LoadedModel:
    """Build the SR network ``name`` (or ``auto``) and strictly load ``checkpoint`` into it.

    * A harness checkpoint (``.safetensors`` with its ``<stem>.json`` sidecar) is rebuilt from the
      sidecar's architecture and config; ``name`` must then agree with the sidecar (or be ``auto``).
    * Any other file (official ``.pt``, bare safetensors) is loaded into the paper configuration of
      ``name``; a key/shape mismatch raises the loader's message (missing, unexpected, best fit).
      ``auto`` picks the paper architecture that fits every key, or refuses.
    """
    from pcl.models import PAPER_CONFIGS, build_model
    from pcl.models.checkpoints import (
        best_fitting_arch,
        load_checkpoint,
        load_into,
        load_state_dict_file,
        normalise_state_dict,
        sidecar_path,
    )

    preset = _preset(name)
    path = Path(checkpoint)
    if not path.is_file():
        raise PCLError(f"checkpoint file {path} not found; check --checkpoint (or run `pcl checkpoints list`)")
    if path.suffix == ".safetensors" and sidecar_path(path).is_file():
        model, meta = load_checkpoint(path)
        arch = _sidecar_preset(meta["architecture"], meta.get("config") or {})
        if arch not in SR_MODELS:
            raise PCLError(f"checkpoint {path} holds a {meta['architecture']!r} network, not a super-resolution model")
        if preset not in ("auto", arch):
            raise PCLError(
                f"checkpoint {path} was saved as architecture {arch!r} (sidecar {sidecar_path(path)}), "
                f"not {preset!r}; use --model {arch} or --model auto"
            )
        return LoadedModel(model, arch, path, sha256_file(path), dict(meta["config"]), "harness sidecar")
    if preset == "auto":
        state_dict = normalise_state_dict(load_state_dict_file(path), source=str(path))
        fit, _, matched, total = best_fitting_arch(state_dict)
        fit = _PRESET_ALIASES.get(fit, fit)
        if fit not in SR_MODELS or matched != total or len(state_dict) != total:
            raise PCLError(
                f"--model auto: {path} has no harness sidecar and fits no paper architecture exactly "
                f"(best fit {fit}: {matched}/{total} keys); name the architecture with --model"
            )
        model = build_model(fit)
        load_into(model, state_dict, arch_name=fit)
        return LoadedModel(model, fit, path, sha256_file(path), dict(PAPER_CONFIGS[fit]), "auto (best fit)")
    model = build_model(preset)
    load_into(model, path, arch_name=preset)
    return LoadedModel(model, preset, path, sha256_file(path), dict(PAPER_CONFIGS[preset]), "named")
