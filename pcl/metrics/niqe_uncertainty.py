"""How far a NIQE score moves under last-bit choices that MATLAB's own result depends on.

Why: NIQE is ill-conditioned in one place.  Where a 7x7 window's weighted mean equals its centre
level in exact arithmetic (flat or symmetric areas), the MSCN coefficient is rounding noise and
``estimateaggdparam`` uses its *sign* (``vec < 0`` / ``vec > 0``).  A change of one unit in the
last place of the local mean (relative 1e-16) then moves the score by up to ~5e-2 on ordinary
photos (measured on Set14 ``ppt3``, see docs/metrics.md), and which sign MATLAB gets depends on
how its filter rounds (its conv2 source is not public).  Everything else in the pipeline (the
pseudo-inverse, the sums, the grid) moves the score by less than ~1e-12.

:func:`niqe_uncertainty` re-scores an image under every arithmetic model of
:mod:`pcl.metrics.niqe_filter` and reports the largest change, so a table can print each NIQE
value with the part of it that no implementation can pin down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from pcl.metrics.niqe import as_batch, niqe_distance, niqe_features
from pcl.metrics.niqe_filter import ARITHMETIC_MODELS

DEFAULT_MODEL = "fma"  # what niqe() uses
IDEAL_MODEL = "zero"  # exact arithmetic: reported apart, no floating-point filter gives it


@dataclass(frozen=True)
class NiqeUncertainty:
    """NIQE of one image and its sensitivity to the local mean's rounding.

    ``score``: :func:`pcl.metrics.niqe.niqe` (model ``fma``).  ``alternatives``: the score under
    each other floating-point model (``fma-reverse``, ``rounded``, ``rounded-reverse``): filters
    that MATLAB could equally be running.  ``spread``: ``max |alternative - score|``, the
    uncertainty to report (0.0 when no sign changes; NaN when a score is NaN).  ``ideal``: the
    score in exact arithmetic (every rounding-noise coefficient exactly 0); no floating-point
    filter produces it, so it is not part of ``spread``, but it shows how far an implementation
    with a different filter (a Python port, MATLAB's SVD factors) can land.  ``blocks_affected``:
    blocks whose 36 features differ between the floating-point models by more than rounding
    (1e-9 relative), out of ``blocks``.
    """

    score: float
    alternatives: dict[str, float]
    spread: float
    ideal: float
    blocks_affected: int
    blocks: int


def niqe_uncertainty_batch(imgs: torch.Tensor, *, convention: str = "niqe",
                           crop_border: int = 0) -> list[NiqeUncertainty]:
    """:class:`NiqeUncertainty` of each image of an (N, C, H, W) uint8 batch (same rules as ``niqe_batch``)."""
    feats = {m: niqe_features(imgs, convention=convention, crop_border=crop_border, arithmetic=m)
             for m in ARITHMETIC_MODELS}
    scores = {m: niqe_distance(f).tolist() for m, f in feats.items()}
    ref = feats[DEFAULT_MODEL]
    changed = torch.zeros(ref.shape[:2], dtype=torch.bool, device=ref.device)
    for model, f in feats.items():
        if model == IDEAL_MODEL:
            continue
        same = torch.isclose(f, ref, rtol=1e-9, atol=1e-300, equal_nan=True)
        changed |= ~same.all(-1)
    out = []
    for i in range(ref.shape[0]):
        score = scores[DEFAULT_MODEL][i]
        alternatives = {m: s[i] for m, s in scores.items() if m not in (DEFAULT_MODEL, IDEAL_MODEL)}
        diffs = [abs(v - score) for v in alternatives.values()]
        spread = float("nan") if np.isnan(score) or any(np.isnan(diffs)) else max(diffs)
        out.append(NiqeUncertainty(score, alternatives, spread, scores[IDEAL_MODEL][i],
                                   int(changed[i].sum()), ref.shape[1]))
    return out


def niqe_uncertainty(img: np.ndarray | torch.Tensor, *, convention: str = "niqe",
                     crop_border: int = 0) -> NiqeUncertainty:
    """:class:`NiqeUncertainty` of one uint8 image, given as :func:`pcl.metrics.niqe.niqe` takes it.

    Costs five NIQE evaluations.  ``spread`` is the score's uncertainty from arithmetic alone:
    report it beside the score (e.g. ``5.468 +- 0.054``) when comparing with MATLAB values.
    """
    return niqe_uncertainty_batch(as_batch(img, convention, crop_border), convention=convention,
                                  crop_border=crop_border)[0]
