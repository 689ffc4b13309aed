"""NIQE and its arithmetic spread for result rows, at the cost of one NIQE evaluation where the
spread is zero by construction.

Why: :func:`pcl.metrics.niqe_uncertainty.niqe_uncertainty_batch` scores an image under five
filter models.  The models differ only at pixels where ``|im - mu| < AMBIGUOUS_TOL`` for the fast
local mean (:func:`pcl.metrics.niqe_filter.local_stats` recomputes exactly those pixels and
returns the fast filter's ``mu`` and ``imfilter(im.*im)`` untouched when there are none).  That
mask does not depend on the model: it is computed from the fast filter and from grey images
(scale 1, and the ``imresize`` half of it at scale 2) that no model changes.  So when neither
scale has such a pixel, every model yields the same bits, every score equals the default one,
and the spread is exactly 0 (NaN when the score is NaN, as ``niqe_uncertainty`` reports it).
Only images with near-flat pixels pay for the four extra evaluations.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pcl.metrics.niqe import NIQE_CONVENTIONS, NIQE_MIN_SIZE, as_batch, niqe_batch, to_luminance
from pcl.metrics.niqe import _half  # the same MATLAB imresize(., 0.5), so scale 2 is bit-identical
from pcl.metrics.niqe_filter import ambiguous_pixels, fast_local_mean
from pcl.metrics.niqe_uncertainty import niqe_uncertainty_batch


def _well_formed(imgs: object, convention: str, crop_border: object) -> bool:
    """Whether the batch is one :func:`near_flat_pixels` can screen (what ``niqe_features``
    accepts); anything else takes the full path, where NIQE refuses it with its own message."""
    if convention not in NIQE_CONVENTIONS or isinstance(crop_border, bool) \
            or not isinstance(crop_border, (int, np.integer)) or crop_border < 0:
        return False
    if not isinstance(imgs, torch.Tensor) or imgs.dtype != torch.uint8 or imgs.ndim != 4 \
            or imgs.shape[1] not in (1, 3) or imgs.shape[0] == 0:
        return False
    return min(imgs.shape[2], imgs.shape[3]) - 2 * int(crop_border) >= NIQE_MIN_SIZE


def near_flat_pixels(imgs: torch.Tensor, *, convention: str = "niqe", crop_border: int = 0) -> torch.Tensor:
    """(N,) bool: whether an image of a well-formed uint8 batch has, at either scale, a pixel whose
    MSCN sign the filter arithmetic can decide (the pixels ``local_stats`` recomputes).

    Same crop as ``niqe_features``: ``crop_border`` on every side, then whole 96x96 blocks from the
    top-left.  Costs one 7x7 filter pass per scale (a fraction of one NIQE evaluation).
    """
    cb = int(crop_border)
    h = (imgs.shape[2] - 2 * cb) // NIQE_MIN_SIZE * NIQE_MIN_SIZE
    w = (imgs.shape[3] - 2 * cb) // NIQE_MIN_SIZE * NIQE_MIN_SIZE
    g = _window_factor()
    x = to_luminance(imgs[:, :, cb:cb + h, cb:cb + w], convention)
    found = torch.zeros(imgs.shape[0], dtype=torch.bool, device=imgs.device)
    for scale in (1, 2):
        mu = fast_local_mean(x[:, None], g)[:, 0]  # each element as local_stats computes it
        found |= ambiguous_pixels(x, mu).flatten(1).any(1)
        if scale == 1:
            x = _half(x)
    return found


def _window_factor() -> list[float]:
    from pcl.metrics.niqe import load_model

    return [float(v) for v in load_model()["g"]]


def niqe_with_spread_batch(imgs: torch.Tensor, *, convention: str = "niqe",
                           crop_border: int = 0) -> list[tuple[float, float]]:
    """(score, spread) of each image of an (N, C, H, W) uint8 batch.

    ``score`` is :func:`pcl.metrics.niqe.niqe_batch`'s value, ``spread`` is
    ``niqe_uncertainty_batch``'s; images without a near-flat pixel are scored once (spread 0, or
    NaN with a NaN score), the others through ``niqe_uncertainty_batch`` (five evaluations).
    Same input rules and errors as ``niqe_batch``.
    """
    if not _well_formed(imgs, convention, crop_border):  # the full path refuses it with NIQE's message
        return [(u.score, u.spread) for u in niqe_uncertainty_batch(imgs, convention=convention,
                                                                    crop_border=crop_border)]
    rescore = near_flat_pixels(imgs, convention=convention, crop_border=crop_border).tolist()
    out: list[tuple[float, float]] = [(math.nan, math.nan)] * len(rescore)
    quiet = [i for i, r in enumerate(rescore) if not r]
    flat = [i for i, r in enumerate(rescore) if r]
    if quiet:
        scores = niqe_batch(imgs[quiet], convention=convention, crop_border=crop_border).tolist()
        for i, s in zip(quiet, scores):
            out[i] = (s, math.nan if math.isnan(s) else 0.0)
    if flat:
        results = niqe_uncertainty_batch(imgs[flat], convention=convention, crop_border=crop_border)
        for i, u in zip(flat, results):
            out[i] = (u.score, u.spread)
    return out


def niqe_with_spread(img: np.ndarray | torch.Tensor, *, convention: str = "niqe",
                     crop_border: int = 0) -> tuple[float, float]:
    """(``niqe(img)``, ``niqe_uncertainty(img).spread``) of one uint8 image, as ``niqe`` takes it."""
    return niqe_with_spread_batch(as_batch(img, convention, crop_border), convention=convention,
                                  crop_border=crop_border)[0]
