"""Model factory: the five SR backbones and the PCL embedding network by name.

Why a factory with a closed keyword list: configurations come from YAML files and the command
line, so a misspelt keyword must fail loudly (PCLError naming the valid ones) instead of being
ignored the way argparse namespaces are in the official code.  Defaults are the paper
configurations at x4 (docs/backbones.md §2.1); NLSN alone defaults to rgb_range 1.

Every SR model takes RGB in [0, 1] and returns [0, 1]-scaled output; see ``pcl.models.common``.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from pcl.errors import PCLError
from pcl.models.common import MeanShift, SRModel, infer_rgb_range
from pcl.models.edsr import EDSR
from pcl.models.embedding import EmbeddingNet, HaarDWT, haar_detail_bands
from pcl.models.han import HAN
from pcl.models.nlsn import NLSN
from pcl.models.rcan import RCAN

from pcl.models.registry import Backbone, backbone_names, backbones, get_backbone, register

_EMBEDDING = dict(use_wavelet=True, patch_d=True, patch_size=192, n_colors=3)


def _factory() -> dict[str, tuple[type[nn.Module], dict[str, Any]]]:
    """name -> (class, default keyword arguments): every registered backbone (and its aliases) and
    the embedding network.  ``edsr`` is EDSR-PyTorch's default, i.e. the baseline (EDSR-S)."""
    table: dict[str, tuple[type[nn.Module], dict[str, Any]]] = {}
    for b in backbones().values():
        for name in (b.name, *b.aliases):
            table[name] = (b.cls, b.defaults)
    table["embedding"] = (EmbeddingNet, _EMBEDDING)
    return table


_REGISTRY = _factory()

#: Every name ``build_model`` accepts.
MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)

#: The paper configurations (x4), by name; used to name the best-fitting architecture of a
#: checkpoint.  ``embedding`` is the released wavelet + patch-head discriminator.
PAPER_CONFIGS: dict[str, dict[str, Any]] = {
    **{b.name: dict(b.defaults) for b in backbones().values()},
    "embedding": dict(_EMBEDDING),
}


def _refresh() -> None:
    """Re-read the registry after a backbone registered late (tests register toy backbones)."""
    global _REGISTRY, MODEL_NAMES
    _REGISTRY = _factory()
    MODEL_NAMES = tuple(_REGISTRY)
    PAPER_CONFIGS.update({b.name: dict(b.defaults) for b in backbones().values() if b.name not in PAPER_CONFIGS})


def canonical_name(name: str) -> str:
    """Normalise a model name (case, '_' for '-'); PCLError listing the valid names if unknown."""
    key = str(name).strip().lower().replace("_", "-")
    if key not in _REGISTRY and key in backbones():
        _refresh()
    if key not in _REGISTRY:
        raise PCLError(f"unknown model {name!r}; valid names: {', '.join(MODEL_NAMES)}")
    return key


def model_defaults(name: str) -> dict[str, Any]:
    """The full keyword set (with defaults) that ``build_model(name)`` uses."""
    return dict(_REGISTRY[canonical_name(name)][1])


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build a model by name; keyword arguments override the paper defaults.

    Raises PCLError for an unknown name or keyword, listing the valid ones.
    """
    key = canonical_name(name)
    cls, defaults = _REGISTRY[key]
    unknown = sorted(set(kwargs) - set(defaults))
    if unknown:
        raise PCLError(
            f"unknown keyword(s) {', '.join(unknown)} for model {key!r}; valid keywords: {', '.join(defaults)}"
        )
    return cls(**{**defaults, **kwargs})


def count_parameters(model: nn.Module) -> int:
    """Number of parameter scalars, frozen MeanShift ones included (docs/backbones.md §2.2); no buffers."""
    return sum(p.numel() for p in model.parameters())


__all__ = [
    "Backbone",
    "backbone_names",
    "backbones",
    "get_backbone",
    "register",
    "EDSR",
    "HAN",
    "MODEL_NAMES",
    "NLSN",
    "PAPER_CONFIGS",
    "RCAN",
    "EmbeddingNet",
    "HaarDWT",
    "MeanShift",
    "SRModel",
    "build_model",
    "canonical_name",
    "count_parameters",
    "haar_detail_bands",
    "infer_rgb_range",
    "model_defaults",
]
