"""MATLAB-exact bicubic ``imresize`` for numpy images and batched torch tensors.

Why our own: every LR image of the SR benchmarks (and DIV2K's LR set) was made with MATLAB's
``imresize(img, 1/scale, 'bicubic')``; PSNR differences between papers are a few hundredths of a
dB, so a resize that differs from MATLAB by even one grey level in a few pixels moves the bicubic
baseline and every trained model scored on our LR.  OpenCV / PIL / ``torch.nn.functional.interpolate``
use other kernels, other pixel-centre conventions, no antialiasing or edge clamping instead of
mirroring, so none of them can stand in.

What MATLAB does (``imresize.m``, functions ``contributions``, ``resizeAlongDim``,
``dimensionOrder``), and what this module reproduces:

* kernel: Keys' cubic convolution with a = -0.5, support [-2, 2] (width 4);
* shrinking (scale < 1) antialiases: the kernel becomes ``h(x) = scale * cubic(scale * x)``
  with width ``4 / scale``;
* output pixel ``x`` (1-based) maps to input coordinate ``u = x/scale + 0.5*(1 - 1/scale)``;
  taps ``left .. left + P - 1`` with ``left = floor(u - width/2)`` and ``P = ceil(width) + 2``;
* each output's weights are normalised to sum to 1, out-of-range tap indices are mirrored
  (symmetric padding: 0 -> 1, -1 -> 2, n+1 -> n, ...), tap columns whose weight is zero for every
  output are dropped;
* output size ``ceil(in * scale)`` per dimension, unless an output size is given, in which case a
  missing scale is derived per dimension as ``out / in``;
* the two 1-D passes run in the order of increasing scale factor (rows first on ties);
* the class of the image is kept after *each* pass (see ``imresize`` on uint8).

There is one implementation of the weights (:func:`contributions`, float64, cached).  The numpy
path gathers and sums taps like MATLAB's ``imresizemex``; the torch path folds the same weights
and mirrored indices into a dense ``out x in`` matrix (:func:`weight_matrix`) and applies it
with matrix products, cut into row blocks so that the zero band of the matrix is skipped on CPU.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from pcl.errors import PCLError

#: support of Keys' cubic kernel (MATLAB: ``kernel_width = 4`` for 'bicubic')
KERNEL_WIDTH = 4.0

#: output rows per matrix block in the torch CPU path, for scale >= 1 (fewer when shrinking, see
#: :func:`_cpu_block_rows`).  Why blocks: the folded matrix is banded (an output depends on
#: ~4/scale inputs), so multiplying the full ``out x in`` matrix wastes ~in/(4/scale) of the work.
#: Measured on 2040x1356x3, x1/4 then x4, 1-2 CPU threads (shared machine, best of 8): dense
#: product 0.2-0.25 s (float32) / 0.37-0.45 s (float64); blocks of 16-32 rows 20 ms / 61-74 ms;
#: 64 rows 20-23 ms / 76 ms; 8 rows 35 ms / 77-96 ms.
_CPU_BLOCK_ROWS = 32

#: torch threads of the CPU path.  Why one: each block is a small product (tens of rows), so an
#: OpenMP team costs more to wake than it saves, and when another process or numpy's BLAS pool
#: holds a core its spinning workers stall every block.  Measured in one process on a 2-core Intel
#: Xeon VM whose two cores were busy with a training run, 2040x1356x3 float32 x1/4: 0.32 s at two
#: torch threads against 0.014 s at one (BasicSR's ``imresize`` alternating with it: 0.039-0.08 s).
#: The caller's thread setting is restored after the call.
_CPU_THREADS = 1


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


# ----------------------------------------------------------------------------- numpy path


def _resize_axis_numpy(x: np.ndarray, axis: int, out_len: int, scale: float) -> np.ndarray:
    """Resize float64 ``x`` along ``axis`` by gathering and summing taps (MATLAB ``imresizemex``)."""
    weights, indices = contributions(x.shape[axis], out_len, scale)
    lead = np.ascontiguousarray(np.moveaxis(x, axis, 0))
    flat = lead.reshape(lead.shape[0], -1)
    out = np.zeros((out_len, flat.shape[1]), dtype=np.float64)
    for p in range(weights.shape[1]):  # loop over the few taps, vectorised over all pixels
        out += weights[:, p, None] * flat[indices[:, p]]
    return np.moveaxis(out.reshape((out_len,) + lead.shape[1:]), 0, axis)


def _imresize_numpy(img: np.ndarray, scale: float | None, output_shape: tuple[int, int] | None,
                    round_between_passes: bool) -> np.ndarray:
    if img.ndim not in (2, 3):
        raise PCLError(f"imresize expects a numpy image of shape (H, W) or (H, W, C), got shape {img.shape}")
    if img.size == 0:
        raise PCLError(f"imresize got an empty image of shape {img.shape}")
    is_uint8 = img.dtype == np.uint8
    if not (is_uint8 or np.issubdtype(img.dtype, np.floating)):
        raise PCLError(f"imresize supports uint8 and float images, got dtype {img.dtype}; convert it first")
    out_hw, scales = _plan((img.shape[0], img.shape[1]), scale, output_shape)
    x = img.astype(np.float64)
    for step, axis in enumerate(_order(scales)):
        x = _resize_axis_numpy(x, axis, out_hw[axis], scales[axis])
        if is_uint8 and (round_between_passes or step == 1):
            x = _uint8_levels_numpy(x)
    return x.astype(img.dtype, order="C")


# ----------------------------------------------------------------------------- torch path


@functools.lru_cache(maxsize=64)
def _torch_blocks(in_len: int, out_len: int, scale: float, dtype: Any, device: str,
                  block_rows: int) -> tuple[tuple[int, int, Any], ...]:
    """Row blocks ``(lo, hi, M[rows, lo:hi])`` of :func:`weight_matrix` as tensors on ``device``.

    ``lo:hi`` is the span of input samples with a non-zero weight for the block's rows, so each
    block's product touches only the band of the matrix.  One block covers all rows when
    ``block_rows >= out_len`` (plain dense matmul).
    """
    import torch

    matrix = weight_matrix(in_len, out_len, scale)
    blocks = []
    for r0 in range(0, out_len, block_rows):
        rows = matrix[r0:r0 + block_rows]
        nonzero = np.flatnonzero(np.any(rows != 0.0, axis=0))
        lo, hi = int(nonzero[0]), int(nonzero[-1]) + 1
        block = torch.from_numpy(np.ascontiguousarray(rows[:, lo:hi])).to(device=device, dtype=dtype)
        blocks.append((lo, hi, block))
    return tuple(blocks)


def _cpu_block_rows(scale: float) -> int:
    """Output rows per block: ``_CPU_BLOCK_ROWS`` when enlarging, down to 8 when shrinking, so that a
    block spans a similar number of input rows (32 / scale + 4 / scale taps).  Measured at one thread,
    x1/4 of 2040x1356x3 float32 (loaded 2-core Intel Xeon, median of 7): 8 rows 4.2 ms, 16 rows
    8.2 ms, 32 rows 7.8 ms, 64 rows 10.4 ms; x4 back: 32 rows 5.5-6.3 ms, 64 and 128 rows 5.8-6.2 ms."""
    return int(min(_CPU_BLOCK_ROWS, max(8, round(_CPU_BLOCK_ROWS * scale))))


@contextlib.contextmanager
def _cpu_threads(device_type: str) -> Iterator[None]:
    """Run the block products on ``_CPU_THREADS`` torch threads (CPU only), then restore the caller's."""
    import torch

    before = torch.get_num_threads()
    if device_type != "cpu" or before == _CPU_THREADS:
        yield
        return
    torch.set_num_threads(_CPU_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _resize_axis_torch(x: Any, axis: int, out_len: int, scale: float) -> Any:
    """Resize an ``(N, C, H, W)`` tensor along H (``axis=0``) or W (``axis=1``) with matmuls.

    Each row block of the weight matrix multiplies only its band of the input and writes
    straight into its slice of a preallocated output (no concatenation copy).
    """
    import torch

    n, c, h, w = (int(v) for v in x.shape)
    in_len = (h, w)[axis]
    block_rows = _cpu_block_rows(scale) if x.device.type == "cpu" else out_len  # GPUs: one dense product
    blocks = _torch_blocks(in_len, out_len, scale, x.dtype, str(x.device), block_rows)
    r0 = 0
    if axis == 0:
        src = x.reshape(n * c, h, w)
        out = x.new_empty((n * c, out_len, w))
        for lo, hi, m in blocks:
            torch.matmul(m, src[:, lo:hi, :], out=out[:, r0:r0 + m.shape[0], :])
            r0 += m.shape[0]
        return out.reshape(n, c, out_len, w)
    src = x.reshape(n * c * h, w)
    out = x.new_empty((n * c * h, out_len))
    for lo, hi, m in blocks:
        torch.mm(src[:, lo:hi], m.T, out=out[:, r0:r0 + m.shape[0]])
        r0 += m.shape[0]
    return out.reshape(n, c, h, out_len)


def _imresize_torch(img: Any, scale: float | None, output_shape: tuple[int, int] | None,
                    round_between_passes: bool) -> Any:
    import torch

    if img.ndim != 4:
        raise PCLError(f"imresize expects a torch tensor of shape (N, C, H, W), got shape {tuple(img.shape)}")
    if img.numel() == 0:
        raise PCLError(f"imresize got an empty tensor of shape {tuple(img.shape)}")
    is_uint8 = img.dtype == torch.uint8
    if is_uint8:
        work = torch.float64  # as exact as the numpy path; values are re-quantised per pass
    elif img.dtype in (torch.float32, torch.float64):
        work = img.dtype
    elif img.dtype in (torch.float16, torch.bfloat16):
        work = torch.float32
    else:
        raise PCLError(f"imresize supports uint8 and float tensors, got dtype {img.dtype}; convert it first")
    out_hw, scales = _plan((int(img.shape[2]), int(img.shape[3])), scale, output_shape)
    x = img.to(work)
    with _cpu_threads(x.device.type):
        for step, axis in enumerate(_order(scales)):
            x = _resize_axis_torch(x, axis, out_hw[axis], scales[axis])
            if is_uint8 and (round_between_passes or step == 1):
                x = _uint8_levels_torch(x)
    return x.to(img.dtype)


# ----------------------------------------------------------------------------- public API


def imresize(img: Any, scale: float | None = None, *, output_shape: tuple[int, int] | None = None,
             round_between_passes: bool = True) -> Any:
    """MATLAB ``imresize(img, scale, 'bicubic')`` (antialiased) for numpy images or torch batches.

    Args:
        img: numpy ``(H, W)`` or ``(H, W, C)`` array (uint8 or float), or torch ``(N, C, H, W)``
            tensor (uint8, float16/bfloat16/32/64) on any device.  The result has the same type,
            dtype and device.
        scale: resize factor; output size ``ceil(H*scale) x ceil(W*scale)``.  May be omitted when
            ``output_shape`` is given; then, as in ``imresize(img, [rows cols])``, each dimension
            uses its own scale ``out/in``.  Given together with ``output_shape``, ``scale`` sets the
            kernel and ``output_shape`` the size, as MATLAB does with ``'OutputSize'``.
        output_shape: ``(rows, cols)`` of the result.
        round_between_passes: uint8 input only.  MATLAB resizes one dimension at a time
            (``B = resizeAlongDim(B, dim, ...)``) and ``imresizemex`` returns the class of its
            input ("Otherwise 'out' datatype will be same as 'in' datatype", ``resizeAlongDim``),
            so a uint8 image is rounded and saturated to uint8 after the first pass, not only at
            the end.  The widely used numpy port fatheral/matlab_imresize does the same and
            reports 0 grey-level difference from MATLAB R2015b on uint8 Lena.  The default
            ``True`` therefore reproduces MATLAB; ``False`` keeps float64 between the passes
            (the BasicSR/mmagic behaviour, which differs from MATLAB by 1 grey level in a few
            pixels).  Rounding is half away from zero (MATLAB's conversion rule; a tie needs an
            exact .5 in float64 and is rare).

    Float inputs are neither clipped nor rounded; float32 (numpy) is computed in float64.  Torch
    float tensors are computed in their own dtype (float16/bfloat16 in float32), uint8 tensors
    in float64.

    Raises:
        PCLError: wrong number of dimensions, empty image, unsupported dtype, non-positive scale
            or invalid ``output_shape``.
    """
    if isinstance(img, np.ndarray):
        return _imresize_numpy(img, scale, output_shape, round_between_passes)
    if type(img).__module__.startswith("torch") and hasattr(img, "ndim"):
        return _imresize_torch(img, scale, output_shape, round_between_passes)
    raise PCLError(f"imresize expects a numpy array or a torch tensor, got {type(img).__name__}")


def _check_uint8_image(img: Any, name: str, scale: Any) -> int:
    if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim not in (2, 3):
        got = f"{type(img).__name__} {getattr(img, 'dtype', '')} {getattr(img, 'shape', '')}"
        raise PCLError(f"{name} expects a uint8 numpy image (H, W) or (H, W, C), got {got.strip()}")
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise PCLError(f"{name} scale must be a positive integer, got {scale!r}")
    return int(scale)


def bicubic_degrade(hr: np.ndarray, scale: int) -> np.ndarray:
    """LR image as the standard SR benchmarks make it: ``imresize(modcrop(hr, s), 1/s, 'bicubic')``.

    The HR image is first cropped (bottom/right) to a multiple of ``scale`` so that the LR size
    is exactly ``H/s x W/s`` and the SR output aligns with the cropped HR.  uint8 in, uint8 out
    (MATLAB's uint8 semantics, including rounding between the two passes).
    """
    s = _check_uint8_image(hr, "bicubic_degrade", scale)
    h, w = hr.shape[0] - hr.shape[0] % s, hr.shape[1] - hr.shape[1] % s
    if h == 0 or w == 0:
        raise PCLError(f"bicubic_degrade: image of shape {hr.shape} is smaller than the scale {s}")
    cropped = hr[:h, :w]
    # 1/s and the explicit size give MATLAB's kernel and its ceil(h * (1/s)) == h/s size
    return imresize(cropped, 1.0 / s, output_shape=(h // s, w // s))


def bicubic_upscale(lr: np.ndarray, scale: int) -> np.ndarray:
    """Bicubic SR baseline: MATLAB ``imresize(lr, s, 'bicubic')`` on uint8, returning uint8."""
    s = _check_uint8_image(lr, "bicubic_upscale", scale)
    return imresize(lr, float(s))
