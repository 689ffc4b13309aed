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

_EDSR_S = dict(scale=4, n_colors=3, n_resblocks=16, n_feats=64, res_scale=1.0, rgb_range=255.0)
_EDSR_L = dict(scale=4, n_colors=3, n_resblocks=32, n_feats=256, res_scale=0.1, rgb_range=255.0)
_RCAN = dict(scale=4, n_colors=3, n_resgroups=10, n_resblocks=20, n_feats=64, reduction=16, res_scale=1.0, rgb_range=255.0)
_NLSN = dict(scale=4, n_colors=3, n_resblocks=32, n_feats=256, res_scale=0.1, rgb_range=1.0, n_hashes=4, chunk_size=144)
_EMBEDDING = dict(use_wavelet=True, patch_d=True, patch_size=192, n_colors=3)

# name -> (class, default keyword arguments).  ``edsr`` defaults to the EDSR-PyTorch defaults,
# i.e. the baseline (EDSR-S); the L preset is explicit.
_REGISTRY: dict[str, tuple[type[nn.Module], dict[str, Any]]] = {
    "edsr": (EDSR, _EDSR_S),
    "edsr-s": (EDSR, _EDSR_S),
    "edsr-baseline": (EDSR, _EDSR_S),
    "edsr-l": (EDSR, _EDSR_L),
    "rcan": (RCAN, _RCAN),
    "han": (HAN, _RCAN),
    "nlsn": (NLSN, _NLSN),
    "embedding": (EmbeddingNet, _EMBEDDING),
}

#: Every name ``build_model`` accepts.
MODEL_NAMES: tuple[str, ...] = tuple(_REGISTRY)

#: The paper configurations (x4), by name; used to name the best-fitting architecture of a
#: checkpoint.  ``embedding`` is the released wavelet + patch-head discriminator.
PAPER_CONFIGS: dict[str, dict[str, Any]] = {
    "edsr-s": dict(_EDSR_S),
    "edsr-l": dict(_EDSR_L),
    "rcan": dict(_RCAN),
    "han": dict(_RCAN),
    "nlsn": dict(_NLSN),
    "embedding": dict(_EMBEDDING),
}


def canonical_name(name: str) -> str:
    """Normalise a model name (case, '_' for '-'); PCLError listing the valid names if unknown."""
    key = str(name).strip().lower().replace("_", "-")
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
