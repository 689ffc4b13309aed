"""MATLAB's bicubic weights and resize plan, shared by the numpy and torch paths of
:mod:`pcl.data.imresize` (which says what MATLAB does and why we match it).

One implementation of the weights (:func:`contributions`, float64, cached); the torch path folds
them into a dense ``out x in`` matrix (:func:`weight_matrix`).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from pcl.errors import PCLError

#: support of Keys' cubic kernel (MATLAB: ``kernel_width = 4`` for 'bicubic')
KERNEL_WIDTH = 4.0


# ----------------------------------------------------------------------------- weights


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5, written as MATLAB's ``cubic`` (float64)."""
    absx = np.abs(np.asarray(x, dtype=np.float64))
    absx2 = absx * absx
    absx3 = absx2 * absx
    inner = (1.5 * absx3 - 2.5 * absx2 + 1.0) * (absx <= 1.0)
    outer = (-0.5 * absx3 + 2.5 * absx2 - 4.0 * absx + 2.0) * ((absx > 1.0) & (absx <= 2.0))
    return inner + outer


@functools.lru_cache(maxsize=64)
def contributions(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Weights and 0-based input indices of every output sample along one dimension.

    Returns ``(weights, indices)``, both of shape ``(out_len, taps)``: output ``k`` is
    ``sum_p weights[k, p] * signal[indices[k, p]]``.  The arithmetic follows MATLAB's
    ``contributions`` operation by operation so that the float64 weights agree bit for bit where
    possible.  The arrays are cached and therefore read-only.
    """
    if scale < 1.0:
        # antialiasing: stretch the kernel by 1/scale and keep its integral at 1
        def kernel(t: np.ndarray) -> np.ndarray:
            return scale * cubic(scale * t)

        width = KERNEL_WIDTH / scale
    else:
        kernel = cubic
        width = KERNEL_WIDTH
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = int(math.ceil(width)) + 2
    indices = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based, may be out of range
    weights = kernel(u[:, None] - indices)
    weights = weights / weights.sum(axis=1, keepdims=True)
    # symmetric padding: 1..n, n..1 repeated (MATLAB's aux = [1:n, n:-1:1])
    aux = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    indices = aux[np.mod(indices.astype(np.int64) - 1, aux.size)]
    keep = np.any(weights != 0.0, axis=0)
    weights = np.ascontiguousarray(weights[:, keep])
    indices = np.ascontiguousarray(indices[:, keep])
    weights.setflags(write=False)
    indices.setflags(write=False)
    return weights, indices


def weight_matrix(in_len: int, out_len: int, scale: float) -> np.ndarray:
    """Dense ``(out_len, in_len)`` float64 matrix equal to applying :func:`contributions`.

    Mirrored taps that land on the same input sample add up, which is exactly what the gather
    and sum does, so ``weight_matrix(...) @ signal`` equals the MATLAB resize of ``signal``.
    """
    weights, indices = contributions(in_len, out_len, scale)
    matrix = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.repeat(np.arange(out_len), weights.shape[1])
    np.add.at(matrix, (rows, indices.ravel()), weights.ravel())
    return matrix


# ----------------------------------------------------------------------------- sizes and checks


def _check_scale(scale: Any) -> float:
    try:
        value = float(scale)
    except (TypeError, ValueError):
        raise PCLError(f"imresize scale must be a positive number, got {scale!r}") from None
    if not (math.isfinite(value) and value > 0.0):
        raise PCLError(f"imresize scale must be a positive finite number, got {scale!r}")
    return value


def _plan(in_hw: tuple[int, int], scale: float | None,
          output_shape: tuple[int, int] | None) -> tuple[tuple[int, int], tuple[float, float]]:
    """Output size and per-dimension scale as MATLAB's ``fixupSizeAndScale`` derives them."""
    if output_shape is None:
        if scale is None:
            raise PCLError("imresize needs a scale or an output_shape; pass one of them")
        s = _check_scale(scale)
        return (math.ceil(in_hw[0] * s), math.ceil(in_hw[1] * s)), (s, s)
    try:
        out_h, out_w = (int(v) for v in output_shape)
        valid = (out_h, out_w) == tuple(output_shape) and out_h > 0 and out_w > 0
    except (TypeError, ValueError):
        valid = False
    if not valid:
        raise PCLError(f"imresize output_shape must be two positive integers (rows, cols), got {output_shape!r}")
    if scale is None:
        return (out_h, out_w), (out_h / in_hw[0], out_w / in_hw[1])
    s = _check_scale(scale)
    return (out_h, out_w), (s, s)


def _order(scales: tuple[float, float]) -> tuple[int, int]:
    """0 = rows, 1 = columns; smaller scale first, rows first on ties (MATLAB ``sort`` is stable)."""
    return (1, 0) if scales[1] < scales[0] else (0, 1)


def _uint8_levels_numpy(x: np.ndarray) -> np.ndarray:
    """Clip to [0, 255] and round half away from zero, as MATLAB's conversion to uint8 does.

    After clipping every value is >= 0, so floor(x + 0.5) is round-half-away-from-zero (numpy's
    ``round`` would round half to even).  Stays float64 so that the next pass can use it.
    """
    return np.floor(np.clip(x, 0.0, 255.0) + 0.5)


def _uint8_levels_torch(x: Any) -> Any:
    """Torch twin of :func:`_uint8_levels_numpy`."""
    return (x.clamp(0.0, 255.0) + 0.5).floor()
