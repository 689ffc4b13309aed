"""The local mean of NIQE (``imfilter(im, window, 'replicate')``) in MATLAB's last-bit arithmetic.

Why a module of its own: NIQE's score depends on the *sign* of MSCN coefficients that are zero in
exact arithmetic.  In a window whose weighted mean equals its centre level (a flat 7x7 area, or a
symmetric one such as ``107 106 106 106 105``) the computed ``im - mu`` is 0 or about +-1e-14,
depending only on how the filter rounds; ``estimateaggdparam`` counts ``vec < 0`` and ``vec > 0``,
so that sign moves whole blocks' left/right spreads (by up to ~0.1 in the score on photos with
large flat areas).  Everywhere else the rounding changes the score by ~1e-13.

Arithmetic models of the separable filter (vertical 7-tap pass, then horizontal, with the rank-1
factor ``g = w[:, 3] / sqrt(w[3, 3])``):

* ``fma`` (the default, MATLAB's as far as published scores pin it): every tap is accumulated with
  one rounding, ``acc = fma(g_k, x_k, acc)``, taps in increasing offset;
* ``fma-reverse``: the same, taps in decreasing offset;
* ``rounded`` / ``rounded-reverse``: each product rounded before it is added;
* ``zero``: the ideal result, ``im - mu = 0`` exactly where rounding decides the sign.

The whole image is filtered fast with rounded products; only the pixels where ``|im - mu|`` is
below :data:`AMBIGUOUS_TOL` (the only ones whose sign an arithmetic model can change: every model
is within ~1e-12 of the exact sum) are recomputed under the chosen model, from their 7x7
neighbourhoods.  An exact fused multiply-add is emulated with error-free transformations
(Dekker's TwoProduct, Knuth's TwoSum, and Boldo-Melquiond's rounding to odd), because torch does
not promise fused operations on any device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

ARITHMETIC_MODELS = ("fma", "fma-reverse", "rounded", "rounded-reverse", "zero")
#: |im - mu| below this is rounding noise (every model is within ~1e-12 of the exact sum for
#: levels up to ~300), so the sign there depends on the arithmetic
AMBIGUOUS_TOL = 1e-9
_SPLITTER = 134217729.0  # 2**27 + 1: Dekker's split of a double into two 26-bit halves
_TAPS = 7
_FEW_AMBIGUOUS = 64  # below 1/64 of the pixels, skip the constant-window search (it costs more)


def _split(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Dekker: ``a = hi + lo`` exactly, each half with at most 26 significant bits."""
    c = a * _SPLITTER
    hi = c - (c - a)
    return hi, a - hi


def _two_sum(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Knuth: ``s = fl(a + b)`` and ``e`` with ``s + e = a + b`` exactly."""
    s = a + b
    bb = s - a
    return s, (a - (s - bb)) + (b - bb)


def fma(g: float, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``g * x + c`` rounded once (round to nearest even), elementwise, in float64.

    Boldo & Melquiond (2008), "Emulation of FMA and correctly rounded sums", Algorithm 5: the
    exact product and sum are kept as unevaluated pairs; their small parts are added with
    rounding to odd, so the final rounding to nearest cannot be a double rounding.
    """
    gh, gl = _split(torch.tensor(g, dtype=torch.float64))
    gh_f, gl_f = float(gh), float(gl)
    p = x * g
    xh, xl = _split(x)
    p_err = ((xh * gh_f - p) + xh * gl_f + xl * gh_f) + xl * gl_f  # p + p_err = g * x exactly
    th, tl = _two_sum(c, p_err)
    vh, vl = _two_sum(p, th)
    t, t_err = _two_sum(tl, vl)
    inexact_even = (t_err != 0) & ((t.view(torch.int64) & 1) == 0)
    towards = torch.where(t_err > 0, math.inf, -math.inf).to(t.dtype)
    t = torch.where(inexact_even, torch.nextafter(t, towards), t)  # rounded to odd
    return vh + t


def _accumulate(terms: list[torch.Tensor], g: list[float], model: str) -> torch.Tensor:
    """``sum_k g[k] * terms[k]`` with the rounding of ``model`` (see module doc)."""
    order = list(range(_TAPS))[::-1] if model.endswith("reverse") else list(range(_TAPS))
    acc = terms[order[0]] * g[order[0]]
    for k in order[1:]:
        acc = fma(g[k], terms[k], acc) if model.startswith("fma") else acc + terms[k] * g[k]
    return acc


def window_means(patches: torch.Tensor, g: list[float], model: str) -> torch.Tensor:
    """(P, 7, 7) neighbourhoods -> (P,) separable weighted means: columns first, then the row."""
    cols = _accumulate([patches[:, k, :] for k in range(_TAPS)], g, model)  # (P, 7)
    return _accumulate([cols[:, k] for k in range(_TAPS)], g, model)


def fast_local_mean(x: torch.Tensor, g: list[float]) -> torch.Tensor:
    """``imfilter(x, g*g', 'replicate')`` over the last two dims, products rounded before each add.

    ``add_`` with alpha 1 is one rounding on every device (FMA or not), so this is bit-identical
    everywhere; it differs from the ``fma`` model only in the last bits, which matter only at
    the pixels :func:`local_stats` recomputes.
    """
    h, w = x.shape[-2:]
    p = F.pad(x, (3, 3, 3, 3), mode="replicate")
    cols = torch.mul(p[..., 0:h, :], g[0])
    tmp = torch.empty_like(cols)
    for i in range(1, _TAPS):
        cols.add_(torch.mul(p[..., i:i + h, :], g[i], out=tmp))
    out = torch.mul(cols[..., 0:w], g[0])
    tmp = torch.empty_like(out)
    for j in range(1, _TAPS):
        out.add_(torch.mul(cols[..., j:j + w], g[j], out=tmp))
    return out


def ambiguous_pixels(x: torch.Tensor, mu: torch.Tensor) -> torch.Tensor:
    """Mask of the pixels whose ``x - mu`` is rounding noise (its sign depends on the arithmetic)."""
    return (x - mu).abs() < AMBIGUOUS_TOL


def local_stats(x: torch.Tensor, g: list[float], model: str = "fma") -> tuple[torch.Tensor, torch.Tensor]:
    """(N, H, W) -> ``mu`` and ``imfilter(x.*x)`` under the arithmetic ``model``.

    Both are recomputed at the ambiguous pixels (the second one too: in an area where every
    coefficient is rounding noise the block's fit depends on the noise's relative sizes).
    A constant 7x7 window's result depends on its level only, so it is computed once per level;
    other windows are recomputed from their neighbourhoods.
    """
    if model not in ARITHMETIC_MODELS:
        raise ValueError(f"unknown NIQE arithmetic model {model!r}; use one of {', '.join(ARITHMETIC_MODELS)}")
    both = torch.stack([x, x * x], 1)
    stats = fast_local_mean(both, g)
    mu, mu2 = stats[:, 0], stats[:, 1]
    ambiguous = ambiguous_pixels(x, mu)
    if not bool(ambiguous.any()):
        return mu, mu2
    arith = "fma" if model == "zero" else model
    padded = F.pad(both, (3, 3, 3, 3), mode="replicate")
    if int(ambiguous.sum()) * _FEW_AMBIGUOUS < ambiguous.numel():  # a few: recompute each window
        _recompute_windows(padded, ambiguous, g, arith, (mu, mu2))
    else:  # flat areas: once per level for constant windows, the rest window by window
        constant = ambiguous & _constant_windows(padded[:, 0])
        levels, where = torch.unique(x[constant], return_inverse=True)
        for channel, target in ((0, mu), (1, mu2)):
            v = levels if channel == 0 else levels * levels
            column = _accumulate([v] * _TAPS, g, arith)
            target[constant] = _accumulate([column] * _TAPS, g, arith)[where]
        _recompute_windows(padded, ambiguous & ~constant, g, arith, (mu, mu2))
    if model == "zero":
        mu.copy_(torch.where(ambiguous, x, mu))
    return mu, mu2


def _constant_windows(padded: torch.Tensor) -> torch.Tensor:
    """(N, H+6, W+6) -> (N, H, W): whether the 7x7 window of each pixel holds one value only
    (separable max and min: 2 x 7 comparisons per pixel instead of 49)."""
    h, w = padded.shape[-2] - _TAPS + 1, padded.shape[-1] - _TAPS + 1
    hi, lo = padded[:, 0:h], padded[:, 0:h]
    for k in range(1, _TAPS):
        hi, lo = torch.maximum(hi, padded[:, k:k + h]), torch.minimum(lo, padded[:, k:k + h])
    hi_w, lo_w = hi[..., 0:w], lo[..., 0:w]
    for k in range(1, _TAPS):
        hi_w, lo_w = torch.maximum(hi_w, hi[..., k:k + w]), torch.minimum(lo_w, lo[..., k:k + w])
    return hi_w == lo_w


def _recompute_windows(padded: torch.Tensor, mask: torch.Tensor, g: list[float], arith: str,
                       targets: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Both channels' means at the pixels of ``mask`` under ``arith``, written into ``targets``.
    Each vertical 7-tap sum is computed once, where some masked pixel's window needs it."""
    if not bool(mask.any()):
        return
    w = mask.shape[-1]
    need = torch.zeros(mask.shape[:-1] + (w + _TAPS - 1,), dtype=torch.bool, device=mask.device)
    for k in range(_TAPS):  # the padded columns j .. j+6 of every masked pixel (n, i, j)
        need[..., k:k + w] |= mask
    cn, ci, cj = need.nonzero(as_tuple=True)
    n, i, j = mask.nonzero(as_tuple=True)
    offs = torch.arange(_TAPS, device=mask.device)
    for channel, target in enumerate(targets):
        column = padded[cn[:, None], channel, ci[:, None] + offs, cj[:, None]]  # (Q, 7) vertical taps
        sums = torch.zeros(need.shape, dtype=padded.dtype, device=padded.device)
        sums[cn, ci, cj] = _accumulate([column[:, k] for k in range(_TAPS)], g, arith)
        row = sums[n[:, None], i[:, None], j[:, None] + offs]  # (P, 7) horizontal taps
        target[n, i, j] = _accumulate([row[:, k] for k in range(_TAPS)], g, arith)
