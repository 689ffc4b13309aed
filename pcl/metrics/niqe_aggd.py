"""The grid search of NIQE's ``estimateaggdparam.m``, with MATLAB's semantics at the last bit.

Why apart from :mod:`pcl.metrics.niqe`: the grid and the search have rules of their own that
the score depends on where data are degenerate (MATLAB's colon arithmetic, ``min`` ignoring NaN
and returning the first of equal minima), and tests pin them on their own.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch


def matlab_colon(start: float, step: float, stop: float) -> np.ndarray:
    """``start:step:stop`` as MATLAB builds it: the upper half is ``stop - k*step`` and the midpoint
    ``(start+stop)/2``, where ``np.arange`` uses ``start + k*step`` throughout (last-bit differences)."""
    tol = 2.0 * np.finfo(np.float64).eps * max(abs(start), abs(stop))
    n = math.floor((stop - start) / step + 0.5)  # MATLAB round: half away from zero
    if start + n * step - stop > tol:
        n -= 1
    last = stop if start + n * step - stop > -tol else start + n * step
    k = np.arange(n // 2 + 1, dtype=np.float64)
    out = np.empty(n + 1)
    out[: k.size] = start + k * step
    out[n - k.astype(np.int64)] = last - k * step
    if n % 2 == 0:
        out[n // 2] = (start + last) / 2.0
    return out


@functools.lru_cache(maxsize=1)
def aggd_tables() -> dict[str, np.ndarray]:
    """The ``estimateaggdparam`` grid ``gam``, ``r_gam`` (checked strictly increasing, which
    :func:`alpha_index` relies on) and the per-``alpha`` gamma factors of the betas."""
    from scipy.special import gamma

    gam = matlab_colon(0.2, 0.001, 10.0)
    g1, g2, g3 = gamma(1.0 / gam), gamma(2.0 / gam), gamma(3.0 / gam)
    tables = {
        "gam": gam,
        "r_gam": (g2 * g2) / (g1 * g3),
        "beta_factor": np.sqrt(g1 / g3),  # betal = leftstd * sqrt(gamma(1/a) / gamma(3/a))
        "mean_factor": g2 / g1,  # meanparam = (betar - betal) * gamma(2/a) / gamma(1/a)
    }
    if not np.all(np.diff(tables["r_gam"]) > 0):
        raise RuntimeError("NIQE: r_gam is not strictly increasing on the alpha grid")
    return tables


def alpha_index(rhatnorm: torch.Tensor, r_gam: torch.Tensor) -> torch.Tensor:
    """MATLAB's ``[~, i] = min((r_gam - rhatnorm).^2)`` (0-based) for every value, without the 9801-wide scan.

    ``r_gam`` increases strictly and rounding is monotone, so the squared distances fall (not
    strictly) up to ``rhatnorm`` and rise after it: the minimum is at one of the two grid points
    around it, and MATLAB's ``min`` returns the *first* index holding that minimum, found by a
    binary search over the falling side (equal distances occur when ``rhatnorm`` is huge or
    infinite: all 9801 squares are then the same, and index 0 wins).  NaN gives index 0
    (``min`` ignores NaN and returns index 1 when all are NaN).
    """
    hi = torch.searchsorted(r_gam, rhatnorm.contiguous()).clamp(max=r_gam.numel() - 1)
    lo = (hi - 1).clamp(min=0)
    d_lo, d_hi = (r_gam[lo] - rhatnorm) ** 2, (r_gam[hi] - rhatnorm) ** 2
    pick = torch.where(d_lo <= d_hi, lo, hi)
    d_min = torch.minimum(d_lo, d_hi)
    first = torch.zeros_like(pick)
    for _ in range(r_gam.numel().bit_length()):  # smallest k <= pick with d_k <= d_min
        mid = (first + pick) // 2
        at_or_below = (r_gam[mid] - rhatnorm) ** 2 <= d_min
        pick, first = torch.where(at_or_below, mid, pick), torch.where(at_or_below, first, mid + 1)
    return torch.where(torch.isnan(rhatnorm), torch.zeros_like(pick), pick)
