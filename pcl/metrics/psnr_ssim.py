"""PSNR and SSIM on the luma channel, under the two evaluation protocols of docs/protocols.md §1.

Why two protocols: the paper's released logs were produced by the authors' cv2 script
(``src/test_psnr_ssim.py``, docs/protocols.md §3), while most literature rows follow the classic MATLAB
``Evaluate_PSNR_SSIM.m`` (docs/protocols.md §4).  Both agree on 3-channel ground truth; they differ on
single-channel (gray) ground truth such as Set14 ``bridge``:

* ``matlab`` (default): a gray GT is scored on its gray values directly.  If the SR image is
  3-channel it is converted back to gray as ``(Y_sr - 16) * 255 / 219``.  Why this choice: for
  an SR with R = G = B = g the Y formula gives ``16 + 219 g / 255`` (because
  65.481 + 128.553 + 24.966 = 219), so the inverse returns exactly ``g``; a colour SR is scored
  by its luma expressed on the gray scale.  (The MATLAB helper's own behaviour for that case is
  ill-defined, docs/protocols.md §4.)
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

Everything runs in float64 on whatever device the tensors live on, batched over N images of
the same size; the separable Gaussian is applied as two 1-D 'valid' passes, each a batched
float64 matmul with a small banded Toeplitz matrix (see ``_filter_padded`` for why not
``conv2d``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pcl.errors import PCLError

PROTOCOLS: tuple[str, ...] = ("matlab", "authors")

#: MATLAB ``rgb2ycbcr`` luma coefficients for 0-255 input (docs/protocols.md §3).
Y_COEFFS: tuple[float, float, float] = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0
#: Sum of the three coefficients: the gray-scale compression factor 219/255 comes from it.
Y_GRAY_GAIN = 219.0

DATA_RANGE = 255.0
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


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


def prepare_pair(
    sr: torch.Tensor, hr: torch.Tensor, *, scale: int, protocol: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mod-crop, size-check, shave, quantise and convert; return float64 (N, 1, h, w) planes (sr, hr)."""
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
    # The colour transform is per pixel, so shaving first is equivalent and cheaper.
    crop = (Ellipsis, slice(s, hc - s), slice(s, wc - s))
    sr_f = _as_float64(sr[crop], quantise=True, role="SR")
    hr_f = _as_float64(hr[..., :hc, :wc][crop], quantise=False, role="HR")
    gray_gt = hr.shape[1] == 1
    return (
        _plane(sr_f, gray_gt=gray_gt, protocol=protocol),
        _plane(hr_f, gray_gt=gray_gt, protocol=protocol),
    )


def _gaussian_1d(device: torch.device) -> torch.Tensor:
    """Normalised 1-D Gaussian (11 taps, sigma 1.5); its outer product is the 2-D SSIM window."""
    k = torch.arange(SSIM_WINDOW, dtype=torch.float64, device=device) - (SSIM_WINDOW // 2)
    g = torch.exp(-(k * k) / (2.0 * SSIM_SIGMA**2))
    return g / g.sum()


#: Outputs per matmul block; 32 was the fastest of 8..64 on a 1024x768 image (CPU, float64).
FILTER_BLOCK = 32


def _band(taps: torch.Tensor, block: int) -> torch.Tensor:
    """(block, block + 10) banded Toeplitz matrix: row i holds the taps in columns i..i+10.

    Multiplying it by ``block + 10`` consecutive samples gives ``block`` consecutive 'valid'
    correlation outputs, each the same 11-product sum as a direct filter.
    """
    t = taps.numel()
    cols = torch.arange(block, device=taps.device)[:, None] + torch.arange(t, device=taps.device)
    band = torch.zeros(block, block + t - 1, dtype=taps.dtype, device=taps.device)
    return band.scatter_(1, cols, taps.expand(block, t))


def _filter_grid(height: int, width: int, block: int = FILTER_BLOCK) -> tuple[int, int, int]:
    """Block size and padded (H, W) such that each 'valid' output axis is whole blocks."""
    halo = SSIM_WINDOW - 1
    block = max(1, min(block, height - halo, width - halo))
    pad_h = -(-(height - halo) // block) * block + halo
    pad_w = -(-(width - halo) // block) * block + halo
    return block, pad_h, pad_w


def _filter_padded(buf: torch.Tensor, out_h: int, out_w: int, block: int) -> torch.Tensor:
    """Separable 11x11 Gaussian, 'valid' mode, of zero-padded (M, Hp, Wp) maps -> (M, out_h, out_w).

    Why not ``conv2d``: on CPU, float64 convolution has no optimised kernel (it unfolds the
    input once per tap): for the four 1016x760 maps of a 1024x768 image it took 0.36 s against
    0.03 s for this (one thread).  Instead each
    axis is cut into overlapping runs of ``block + 10`` samples (strided views, no copy) and
    every run is multiplied by the small banded matrix of :func:`_band`: batched float64 BLAS
    on CPU, cuBLAS on GPU.  ``buf`` is padded with zeros so that both output axes are whole
    blocks; the zeros only feed outputs past ``out_h``/``out_w``, which are dropped.  The loop
    runs over the M maps (4 per image), never over pixels: one map keeps every bmm operand a
    plain strided matrix, so torch does not copy the overlapping runs.
    """
    halo = SSIM_WINDOW - 1
    n_maps, pad_h, pad_w = buf.shape
    blocks_h, blocks_w = (pad_h - halo) // block, (pad_w - halo) // block
    band = _band(_gaussian_1d(buf.device), block)
    band_h = band.expand(blocks_h, block, block + halo)
    band_w = band.T.expand(blocks_w, block + halo, block)
    out = buf.new_empty(n_maps, blocks_h * block, blocks_w * block)
    for m in range(n_maps):
        # Along H: (blocks_h, block, block+10) @ (blocks_h, block+10, Wp) -> rows of the result.
        runs_h = buf[m].unfold(0, block + halo, block).transpose(1, 2)
        along_h = torch.bmm(band_h, runs_h).view(blocks_h * block, pad_w)
        # Along W: (blocks_w, Hq, block+10) @ (blocks_w, block+10, block) -> column blocks.
        runs_w = along_h.unfold(1, block + halo, block).permute(1, 0, 2)
        along_w = torch.bmm(runs_w, band_w)
        out[m].view(blocks_h * block, blocks_w, block).copy_(along_w.permute(1, 0, 2))
    return out[:, :out_h, :out_w]


def gaussian_filter_valid(z: torch.Tensor) -> torch.Tensor:
    """Filter (..., H, W) float64 maps with the 11x11 SSIM Gaussian; returns (..., H - 10, W - 10).

    The window is separable (outer product of the normalised 1-D Gaussian), so this equals a
    2-D correlation with MATLAB's ``fspecial('gaussian', 11, 1.5)`` keeping the 'valid' part.
    """
    height, width = z.shape[-2:]
    block, pad_h, pad_w = _filter_grid(height, width)
    buf = z.new_zeros(*z.shape[:-2], pad_h, pad_w)
    buf[..., :height, :width] = z
    halo = SSIM_WINDOW - 1
    out = _filter_padded(buf.view(-1, pad_h, pad_w), height - halo, width - halo, block)
    return out.view(*z.shape[:-2], height - halo, width - halo) if z.ndim > 2 else out[0]


def psnr_planes(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR (dB) of two (N, 1, h, w) float64 planes; MSE 0 gives +inf."""
    mse = (x - y).square().mean(dim=(1, 2, 3))
    inf = torch.full_like(mse, math.inf)
    return torch.where(mse > 0, 10.0 * torch.log10(DATA_RANGE**2 / mse), inf)


def ssim_planes(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-image mean SSIM of two (N, 1, h, w) float64 planes over the 'valid' window region.

    SSIM's denominator only needs var_x + var_y, so E[x^2 + y^2] is filtered as one map: four
    filtered maps instead of five, the same formula.
    """
    c1 = (SSIM_K1 * DATA_RANGE) ** 2
    c2 = (SSIM_K2 * DATA_RANGE) ** 2
    n, _, height, width = x.shape
    block, pad_h, pad_w = _filter_grid(height, width)
    # The moments are written straight into the zero-padded buffer the filter works on.
    # Only the padding strips are zeroed (the rest is overwritten next).  They must be finite:
    # each matmul row multiplies a whole run, and 0 * NaN from stale memory would be NaN.
    buf = x.new_empty(n, 4, pad_h, pad_w)
    buf[..., height:, :] = 0.0
    buf[..., :height, width:] = 0.0
    moments = buf[..., :height, :width]
    moments[:, 0:1] = x
    moments[:, 1:2] = y
    torch.addcmul(x * x, y, y, out=moments[:, 2:3])
    torch.mul(x, y, out=moments[:, 3:4])
    halo = SSIM_WINDOW - 1
    filtered = _filter_padded(buf.view(n * 4, pad_h, pad_w), height - halo, width - halo, block)
    mu_x, mu_y, e_sq, e_xy = filtered.view(n, 4, height - halo, width - halo).unbind(dim=1)
    # SSIM map, written with in-place steps to limit temporaries on large images:
    # ((2 mu_x mu_y + C1)(2 cov + C2)) / ((mu_x^2 + mu_y^2 + C1)(var_x + var_y + C2)).
    mu_xy = mu_x * mu_y
    mu_sq = (mu_x * mu_x).addcmul_(mu_y, mu_y)
    cov_term = (e_xy - mu_xy).mul_(2.0).add_(c2)
    var_term = (e_sq - mu_sq).add_(c2)
    ssim_map = mu_xy.mul_(2.0).add_(c1).mul_(cov_term)
    ssim_map.div_(mu_sq.add_(c1).mul_(var_term))
    return ssim_map.mean(dim=(1, 2))


def psnr_ssim_batch(
    sr: torch.Tensor, hr: torch.Tensor, *, scale: int, protocol: str = "matlab"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image (PSNR, SSIM) float64 tensors of shape (N,) for same-size (N, C, H, W) batches."""
    x, y = prepare_pair(sr, hr, scale=scale, protocol=protocol)
    return psnr_planes(x, y), ssim_planes(x, y)


def _numpy_to_batch(img: np.ndarray, role: str) -> torch.Tensor:
    if not isinstance(img, np.ndarray):
        raise PCLError(f"{role} image must be a numpy array, got {type(img).__name__}")
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        img = img[:, :, None]
    elif not (img.ndim == 3 and img.shape[2] == 3):
        raise PCLError(f"{role} image must be (H, W) or (H, W, 3), got shape {img.shape}")
    # A copy: decoded images are often read-only views, which torch.from_numpy warns about.
    return torch.from_numpy(np.array(img, order="C")).permute(2, 0, 1).unsqueeze(0)


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
