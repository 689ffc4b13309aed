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
The weights live in :mod:`pcl.data.imresize_kernel`, the torch path in :mod:`pcl.data.imresize_torch`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pcl.data.imresize_kernel import (  # noqa: F401  (cubic, contributions, weight_matrix: public)
    KERNEL_WIDTH,
    _order,
    _plan,
    _uint8_levels_numpy,
    contributions,
    cubic,
    weight_matrix,
)
from pcl.errors import PCLError


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
        from pcl.data.imresize_torch import _imresize_torch

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
