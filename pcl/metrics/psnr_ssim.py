"""PSNR and SSIM on the luma channel, under the two evaluation protocols of spec §7.

Why two protocols: the paper's released logs were produced by the authors' cv2 script
(``src/test_psnr_ssim.py``, spec §7.1), while most literature rows follow the classic MATLAB
``Evaluate_PSNR_SSIM.m`` (spec §7.2).  Both agree on 3-channel ground truth; they differ on
single-channel (gray) ground truth such as Set14 ``bridge``:

* ``matlab`` (default): a gray GT is scored on its gray values directly.  If the SR image is
  3-channel it is converted back to gray as ``(Y_sr - 16) * 255 / 219``.  Why this choice: for
  an SR with R = G = B = g the Y formula gives ``16 + 219 g / 255`` (because
  65.481 + 128.553 + 24.966 = 219), so the inverse returns exactly ``g``; a colour SR is scored
  by its luma expressed on the gray scale.  (The MATLAB helper's own behaviour for that case is
  ill-defined, spec §7.2.)
* ``authors``: cv2 reads every PNG as 3 channels, so a gray GT (and a gray SR) is replicated to
  R = G = B and converted to Y.  Errors shrink by 219/255, raising that image's PSNR by
  ``20 log10(255/219) = 1.3219 dB``.

A gray SR beside a 3-channel GT is replicated to 3 channels under both protocols (what cv2
does and the only reading in which an RGB GT has a luma to compare against).

Common steps: the GT is mod-cropped to ``(H - H mod s, W - W mod s)``; the SR must then have
exactly that size; ``s`` pixels are shaved on every side of both; Y = 16 + (65.481 R +
128.553 G + 24.966 B) / 255 on 0-255 floats, not rounded.  PSNR = 10 log10(255^2 / MSE)
(infinite for MSE 0).  SSIM uses an 11x11 normalised Gaussian window (sigma 1.5), the 'valid'
region only (5 px discarded on each side after filtering), K1 = 0.01, K2 = 0.03, L = 255, the
mean of the SSIM map and no downsampling.

Quantisation: an SR image given as floats is first brought to 8 bits by ``clamp(0, 255)``
followed by ``torch.round`` (round half to even), which is what saving a PNG through the EDSR
``quantize`` helper (``clamp(0, 255).round()``) produces; ``uint8`` input passes through.  A GT
given as floats is used as given (ground truth is 8-bit already; hand-built test images keep
their exact values).

Implementation (strips, banded Gaussian, worker threads, measured speed and precision):
:mod:`pcl.metrics.ssim_strips` and :mod:`pcl.metrics.ssim_filter`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pcl.errors import PCLError
from pcl.metrics.ssim_filter import SSIM_SIGMA, SSIM_WINDOW, cached_const, scratch
from pcl.metrics.ssim_strips import DATA_RANGE, SSIM_K1, SSIM_K2, score_planes

__all__ = [
    "DATA_RANGE", "PROTOCOLS", "SSIM_K1", "SSIM_K2", "SSIM_SIGMA", "SSIM_WINDOW", "check_protocol",
    "evaluate_pair", "min_size", "prepare_pair", "psnr_planes", "psnr_ssim_batch", "rgb_to_y",
    "ssim_planes",
]

PROTOCOLS: tuple[str, ...] = ("matlab", "authors")

#: MATLAB ``rgb2ycbcr`` luma coefficients for 0-255 input (spec §7.1).
Y_COEFFS: tuple[float, float, float] = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0
#: Sum of the three coefficients: the gray-scale compression factor 219/255 comes from it.
Y_GRAY_GAIN = 219.0


def check_protocol(name: str) -> str:
    """Return ``name`` if it is a known protocol, else raise a PCLError listing the valid ones."""
    if name not in PROTOCOLS:
        raise PCLError(
            f"unknown evaluation protocol {name!r}; use one of: {', '.join(PROTOCOLS)}"
        )
    return name


def min_size(scale: int) -> int:
    """Smallest (mod-cropped) HR side that still leaves one 11x11 SSIM window after shaving."""
    return 2 * _check_scale(scale) + SSIM_WINDOW


def _check_scale(scale: int) -> int:
    # bool is an int subclass; a True scale is a bug, not a request for x1.
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise PCLError(f"scale must be a positive integer (got {scale!r})")
    return int(scale)


def rgb_to_y(img: torch.Tensor) -> torch.Tensor:
    """Luma of an (N, 3, H, W) 0-255 float tensor as (N, 1, H, W), unrounded (MATLAB rgb2ycbcr)."""
    if img.ndim != 4 or img.shape[1] != 3:
        raise PCLError(f"rgb_to_y expects an (N, 3, H, W) tensor, got shape {tuple(img.shape)}")
    r, g, b = img[:, 0:1], img[:, 1:2], img[:, 2:3]
    # In place after the first product: the same formula with one allocation (large images).
    y = r * Y_COEFFS[0]
    y.add_(g, alpha=Y_COEFFS[1]).add_(b, alpha=Y_COEFFS[2])
    return y.div_(255.0).add_(Y_OFFSET)


def _as_float64(img: torch.Tensor, *, quantise: bool, role: str) -> torch.Tensor:
    """uint8 -> float64 as is; floats -> float64 (8-bit quantised when ``quantise``)."""
    if img.dtype == torch.uint8:
        return img.to(torch.float64)
    if img.is_floating_point():
        out = img.to(torch.float64)
        return out.clamp(0.0, DATA_RANGE).round() if quantise else out
    raise PCLError(
        f"{role} image has dtype {img.dtype}; pass uint8 or a float tensor on the 0-255 scale"
    )


def _check_batch(img: torch.Tensor, role: str) -> None:
    if img.ndim != 4 or img.shape[1] not in (1, 3):
        raise PCLError(
            f"{role} must be an (N, C, H, W) tensor with C = 1 or 3, got shape {tuple(img.shape)}"
        )


def _plane(img: torch.Tensor, *, gray_gt: bool, protocol: str) -> torch.Tensor:
    """Single-channel plane that the protocol scores (see the module docstring)."""
    if gray_gt and protocol == "matlab":
        if img.shape[1] == 1:
            return img
        return (rgb_to_y(img) - Y_OFFSET) * (DATA_RANGE / Y_GRAY_GAIN)
    if img.shape[1] == 1:
        img = img.expand(-1, 3, -1, -1)
    return rgb_to_y(img)


def _check_pair(sr: torch.Tensor, hr: torch.Tensor, *, scale: int, protocol: str) -> tuple[int, int, int]:
    """Validate a (SR, HR) batch pair; return (scale, mod-cropped HR height, width)."""
    check_protocol(protocol)
    s = _check_scale(scale)
    _check_batch(sr, "SR")
    _check_batch(hr, "HR")
    if sr.shape[0] != hr.shape[0]:
        raise PCLError(f"SR batch has {sr.shape[0]} images but HR batch has {hr.shape[0]}")
    if sr.device != hr.device:
        raise PCLError(f"SR is on {sr.device} but HR is on {hr.device}; move both to one device")
    h, w = hr.shape[-2:]
    hc, wc = h - h % s, w - w % s
    if tuple(sr.shape[-2:]) != (hc, wc):
        raise PCLError(
            f"SR size {sr.shape[-2]}x{sr.shape[-1]} (HxW) does not match HR size {h}x{w} "
            f"mod-cropped to a multiple of scale {s}: {hc}x{wc}; the SR image must be exactly "
            f"{hc}x{wc}"
        )
    need = min_size(s)
    if min(hc, wc) < need:
        raise PCLError(
            f"HR image {h}x{w} (mod-cropped {hc}x{wc}) is too small for scale {s}: each "
            f"mod-cropped side must be at least {need} px to leave an {SSIM_WINDOW}x{SSIM_WINDOW} "
            f"SSIM window after shaving {s} px per side"
        )
    return s, hc, wc


def _check_dtype(img: torch.Tensor, role: str) -> None:
    if img.dtype != torch.uint8 and not img.is_floating_point():
        raise PCLError(
            f"{role} image has dtype {img.dtype}; pass uint8 or a float tensor on the 0-255 scale"
        )


def prepare_pair(
    sr: torch.Tensor, hr: torch.Tensor, *, scale: int, protocol: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mod-crop, size-check, shave, quantise and convert; return float64 (N, 1, h, w) planes (sr, hr).

    The planes that :func:`psnr_ssim_batch` scores, materialised whole; it builds them strip by
    strip instead, in units of 1/255 (:func:`_luma_rows`), which can differ in the last bit.
    """
    s, hc, wc = _check_pair(sr, hr, scale=scale, protocol=protocol)
    # The colour transform is per pixel, so shaving first is equivalent and cheaper.
    crop = (Ellipsis, slice(s, hc - s), slice(s, wc - s))
    sr_f = _as_float64(sr[crop], quantise=True, role="SR")
    hr_f = _as_float64(hr[..., :hc, :wc][crop], quantise=False, role="HR")
    gray_gt = hr.shape[1] == 1
    return (
        _plane(sr_f, gray_gt=gray_gt, protocol=protocol),
        _plane(hr_f, gray_gt=gray_gt, protocol=protocol),
    )


def _psnr_from_sq(sq_sum: torch.Tensor, n_pixels: int) -> torch.Tensor:
    mse = sq_sum / n_pixels
    return torch.where(mse > 0, 10.0 * torch.log10(DATA_RANGE**2 / mse), torch.full_like(mse, math.inf))


def psnr_planes(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of two (N, 1, h, w) float64 planes; MSE 0 gives +inf."""
    mse = (x - y).square().mean(dim=(1, 2, 3))
    inf = torch.full_like(mse, math.inf)
    return torch.where(mse > 0, 10.0 * torch.log10(DATA_RANGE**2 / mse), inf)


def ssim_planes(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image mean SSIM of two (N, 1, h, w) float64 planes over the 'valid' window region."""
    n, _, height, width = x.shape
    out = []
    for i in range(n):
        xi, yi = x[i, 0], y[i, 0]

        def fill(r0: int, r1: int, xo: torch.Tensor, yo: torch.Tensor, xi=xi, yi=yi) -> None:
            xo.copy_(xi[r0:r1])
            yo.copy_(yi[r0:r1])

        out.append(score_planes(fill, height, width, x.device)[1])
    return torch.stack(out)


#: The luma rows are produced as 255 Y: the unrounded sum 65.481 R + 128.553 G + 24.966 B plus
#: 255 * 16, with no division (see :func:`score_planes`).
LUMA_UNIT = 255.0


def _luma_rows(
    img: torch.Tensor, kind: str, quantise: bool, r0: int, r1: int, out: torch.Tensor
) -> None:
    """Rows [r0, r1) of the scored plane of one (h, w, C) image view into ``out``, times 255.

    ``kind`` is ``gray`` (the values themselves), ``y`` (luma; one channel is replicated) or
    ``y_gray`` (luma mapped back to the gray scale), see the module docstring.  Same formulas
    as :func:`rgb_to_y` / :func:`_plane` in units of 1/255: 255 Y = 65.481 R + 128.553 G +
    24.966 B + 4080 is one ``torch.addmv``; the gray scale (Y - 16) 255/219 becomes
    (255 Y - 4080) 255/219.
    """
    rows = img[r0:r1]
    if kind == "gray":
        out.copy_(rows[..., 0])
        if quantise:
            out.clamp_(0.0, DATA_RANGE).round_()
        out.mul_(LUMA_UNIT)
        return
    n, w = out.shape
    rgb = scratch("rgb", n * w * 3, out.device).view(n, w, 3)
    rgb.copy_(rows if rows.shape[-1] == 3 else rows.expand(n, w, 3))
    if quantise:
        rgb.clamp_(0.0, DATA_RANGE).round_()
    coeffs = cached_const(Y_COEFFS, out.device)
    if kind == "y_gray":
        torch.mv(rgb.view(-1, 3), coeffs, out=out.view(-1)).mul_(DATA_RANGE / Y_GRAY_GAIN)
    else:
        torch.addmv(cached_const(Y_OFFSET * LUMA_UNIT, out.device), rgb.view(-1, 3), coeffs, out=out.view(-1))


def _plane_kind(channels: int, *, gray_gt: bool, protocol: str) -> str:
    if gray_gt and protocol == "matlab":
        return "gray" if channels == 1 else "y_gray"
    return "y"


def psnr_ssim_batch(
    sr: torch.Tensor, hr: torch.Tensor, *, scale: int, protocol: str = "matlab"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image (PSNR, SSIM) float64 tensors of shape (N,) for same-size (N, C, H, W) batches."""
    s, hc, wc = _check_pair(sr, hr, scale=scale, protocol=protocol)
    _check_dtype(sr, "SR")
    _check_dtype(hr, "HR")
    gray_gt = hr.shape[1] == 1
    sr_kind = _plane_kind(sr.shape[1], gray_gt=gray_gt, protocol=protocol)
    hr_kind = _plane_kind(hr.shape[1], gray_gt=gray_gt, protocol=protocol)
    sr_quantise = sr.is_floating_point()
    height, width = hc - 2 * s, wc - 2 * s
    psnr, ssim = [], []
    for i in range(sr.shape[0]):
        # (h, w, C) views of the shaved images: channels-last rows, as decoded images are stored.
        sr_img = sr[i, :, s:hc - s, s:wc - s].permute(1, 2, 0)
        hr_img = hr[i, :, s:hc - s, s:wc - s].permute(1, 2, 0)

        def fill(r0: int, r1: int, xo: torch.Tensor, yo: torch.Tensor, sr_img=sr_img, hr_img=hr_img) -> None:
            _luma_rows(sr_img, sr_kind, sr_quantise, r0, r1, xo)
            _luma_rows(hr_img, hr_kind, False, r0, r1, yo)

        sq_sum, mean_ssim = score_planes(fill, height, width, sr.device, unit=LUMA_UNIT)
        psnr.append(_psnr_from_sq(sq_sum, height * width))
        ssim.append(mean_ssim)
    return torch.stack(psnr), torch.stack(ssim)


def _numpy_to_batch(img: np.ndarray, role: str) -> torch.Tensor:
    if not isinstance(img, np.ndarray):
        raise PCLError(f"{role} image must be a numpy array, got {type(img).__name__}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        img = img[:, :, None]
    elif not (img.ndim == 3 and img.shape[2] == 3):
        raise PCLError(f"{role} image must be (H, W) or (H, W, 3), got shape {img.shape}")
    # Shared, not copied, when torch can view it (only read here); a copy for read-only arrays
    # (PIL's buffers; torch.from_numpy warns about them) and negative strides (unsupported).
    if not img.flags.writeable or any(step < 0 for step in img.strides):
        img = np.array(img, order="C")
    return torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0)


def _device(name: str) -> torch.device:
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as exc:
        raise PCLError(f"unknown device {name!r}; use 'cpu' or 'cuda'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PCLError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    return dev


def evaluate_pair(
    sr: np.ndarray,
    hr: np.ndarray,
    *,
    scale: int,
    protocol: str = "matlab",
    device: str = "cpu",
) -> tuple[float, float]:
    """(PSNR, SSIM) of one SR/HR pair given as (H, W) or (H, W, 3) arrays (the CLI's path)."""
    check_protocol(protocol)
    dev = _device(device)
    sr_t = _numpy_to_batch(sr, "SR").to(dev)
    hr_t = _numpy_to_batch(hr, "HR").to(dev)
    psnr, ssim = psnr_ssim_batch(sr_t, hr_t, scale=scale, protocol=protocol)
    return float(psnr[0]), float(ssim[0])
