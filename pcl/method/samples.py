"""Positive and negative samples of PCL, generated on the device from the HR batch (docs/method.md §1).

Why our own image operations: the released code calls kornia (``enhance.sharpness`` and
``filters.gaussian_blur2d``), which draws one blur kernel per *batch*; the paper sampler draws a
kernel per *image*, and looping over images (or calling kornia per image) would serialise the
hot path.  Here every kernel of the batch is built at once, zero-padded to the largest size the
configuration allows, and applied as one grouped (depthwise) convolution per axis.  Zero taps
change nothing but the summation order, so each image gets exactly kornia's normalised sampled
Gaussian with reflect borders (tests compare against kornia).

Randomness comes only from the ``torch.Generator`` passed in.  A generator on the images'
device keeps sampling free of host synchronisation (nothing here reads a device value on the
host); a CPU generator also works, at the cost of small host-to-device copies.

Value convention: images are in [0, 1] (the harness' convention); the released code works on
[0, R] and divides by R before kornia, which gives the same samples up to the factor R.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from pcl.errors import PCLError
from pcl.method.config import MethodConfig

#: PIL / kornia smoothing kernel of the sharpness operation (docs/method.md §1.2), divided by 13.
_SHARPEN_WEIGHTS = ((1.0, 1.0, 1.0), (1.0, 5.0, 1.0), (1.0, 1.0, 1.0))


# ---------------------------------------------------------------------------- image operations


def sharpen(img: Tensor, factor: Tensor | float) -> Tensor:
    """PIL-style sharpness blend (docs/method.md §1.2; kornia ``enhance.sharpness`` semantics).

    ``img`` (M, C, H, W) in [0, 1], H, W >= 3; ``factor`` a float or one value per image (M,).
    d = valid 3x3 convolution with [[1,1,1],[1,5,1],[1,1,1]]/13, clipped to [0, 1], its 1-pixel
    border ring replaced by the input; out = d + f (img - d), clipped to [0, 1] where f > 1 or
    f < 0.  f = 1 returns the input exactly; 0 <= f < 1 (smoothing) is not clipped (kornia 0.6.8,
    the version the authors ran; kornia 0.9 clips always, which is a no-op for [0, 1] inputs up to
    one float32 rounding step).
    """
    if img.dim() != 4 or img.shape[-1] < 3 or img.shape[-2] < 3:
        raise PCLError(f"sharpen: expected (M, C, H, W) with H, W >= 3, got {tuple(img.shape)}")
    channels = img.shape[1]
    # Built on the device (ones + one scalar fill): no host-to-device copy on the hot path.
    kernel = torch.ones(1, 1, 3, 3, dtype=img.dtype, device=img.device)
    kernel[..., 1, 1] = _SHARPEN_WEIGHTS[1][1]
    kernel = kernel / 13
    smooth = F.conv2d(img, kernel.expand(channels, 1, 3, 3), groups=channels).clamp(0.0, 1.0)
    degenerate = img.clone()
    degenerate[..., 1:-1, 1:-1] = smooth
    f = torch.as_tensor(factor, dtype=img.dtype, device=img.device)
    f = f.view(-1, 1, 1, 1) if f.dim() else f
    out = degenerate + (img - degenerate) * f
    out = torch.where((f > 1) | (f < 0), out.clamp(0.0, 1.0), out)
    return torch.where(f == 1, img, out)


def gaussian_kernels_1d(size: Tensor, sigma: Tensor, radius: int) -> Tensor:
    """Normalised sampled Gaussians, one per entry, zero-padded to 2 * radius + 1 taps.

    ``size`` (odd, <= 2 * radius + 1) and ``sigma`` have the same shape S; the result is S + (taps,).
    Tap n (offset from the centre) is exp(-n^2 / (2 sigma^2)) for |n| <= size // 2, else 0.
    """
    offsets = torch.arange(-radius, radius + 1, device=sigma.device, dtype=sigma.dtype)
    sq = offsets.pow(2.0)
    gauss = torch.exp(-sq / (2 * sigma.unsqueeze(-1).pow(2.0)))
    inside = offsets.abs() <= torch.div(size, 2, rounding_mode="floor").unsqueeze(-1).to(sigma.dtype)
    gauss = torch.where(inside, gauss, torch.zeros_like(gauss))
    return gauss / gauss.sum(-1, keepdim=True)


def _separable_pass(x: Tensor, kernels: Tensor, dim: int) -> Tensor:
    """Correlate each image of x (M, C, H, W) with its own 1-D kernel (M, T) along dim (2 = H, 3 = W)."""
    m, c, h, w = x.shape
    taps = kernels.shape[-1]
    radius = taps // 2
    pad = (radius, radius, 0, 0) if dim == 3 else (0, 0, radius, radius)
    shape = (1, taps) if dim == 3 else (taps, 1)
    x = F.pad(x, pad, mode="reflect")
    if kernels.shape[0] == 1:  # one kernel for the whole batch: a plain depthwise convolution
        weight = kernels.to(x.dtype).view(1, 1, *shape).expand(c, 1, *shape)
        return F.conv2d(x, weight, groups=c)
    weight = kernels.to(x.dtype).repeat_interleave(c, dim=0).view(m * c, 1, *shape)
    out = F.conv2d(x.reshape(1, m * c, x.shape[-2], x.shape[-1]), weight, groups=m * c)
    return out.view(m, c, h, w)


def gaussian_blur(
    img: Tensor,
    ksize: tuple[int, int] | Tensor,
    sigma: tuple[float, float] | Tensor,
    *,
    max_ksize: int | None = None,
) -> Tensor:
    """Gaussian blur with kornia ``gaussian_blur2d`` semantics, one kernel per image if wanted.

    ``ksize`` (kh, kw): ints shared by the batch, or an integer tensor (M, 2) / (1, 2);
    ``sigma`` (sigma_y, sigma_x): floats or a tensor (M, 2) / (1, 2).  Separable, normalised,
    sampled; border 'reflect' (mirror without repeating the edge).  With tensor sizes the kernels
    are zero-padded to ``max_ksize`` taps (default 11); sizes above it are not checked on the
    device (that would need a host sync) and would be truncated, so pass the configured maximum.
    """
    if img.dim() != 4:
        raise PCLError(f"gaussian_blur: expected (M, C, H, W), got {tuple(img.shape)}")
    m = img.shape[0]
    dtype = img.dtype if img.dtype in (torch.float32, torch.float64) else torch.float32
    sigma_t = torch.as_tensor(sigma, dtype=dtype, device=img.device).reshape(-1, 2)
    if isinstance(ksize, Tensor):
        size_t = ksize.to(device=img.device).reshape(-1, 2)
        taps_h = taps_w = int(max_ksize if max_ksize is not None else 11)
    else:
        kh, kw = (int(ksize), int(ksize)) if isinstance(ksize, int) else (int(ksize[0]), int(ksize[1]))
        for k in (kh, kw):
            if k < 1 or k % 2 == 0:
                raise PCLError(f"gaussian_blur: kernel sizes must be odd and positive, got {(kh, kw)}")
        size_t = torch.tensor([[kh, kw]], device=img.device)
        taps_h, taps_w = kh, kw
        if max_ksize is not None:
            taps_h = taps_w = max(int(max_ksize), kh, kw)
    if taps_h % 2 == 0:
        raise PCLError(f"gaussian_blur: max_ksize must be odd, got {taps_h}")
    rh, rw = taps_h // 2, taps_w // 2
    if img.shape[-2] <= rh or img.shape[-1] <= rw:
        raise PCLError(
            f"gaussian_blur: image {tuple(img.shape[-2:])} too small for reflect padding of a "
            f"{taps_h}x{taps_w} kernel"
        )
    n = max(size_t.shape[0], sigma_t.shape[0])
    if n not in (1, m):
        raise PCLError(f"gaussian_blur: got {n} kernels for {m} images; give 1 or one per image")
    size_t = size_t.expand(n, 2)
    sigma_t = sigma_t.expand(n, 2)
    kernel_x = gaussian_kernels_1d(size_t[:, 1], sigma_t[:, 1], rw)
    kernel_y = gaussian_kernels_1d(size_t[:, 0], sigma_t[:, 0], rh)
    out = _separable_pass(img, kernel_x, dim=3)
    return _separable_pass(out, kernel_y, dim=2)


def quantize_8bit(img: Tensor) -> Tensor:
    """Round to the 8-bit grid: round(clip(v * 255, 0, 255)) / 255.

    The released ``utility.quantize`` at R = 1 (docs/method.md §1.1).
    """
    return img.mul(255.0).clamp(0.0, 255.0).round().div(255.0)


def upsample_lr(lr: Tensor, size: tuple[int, int]) -> Tensor:
    """The released LR negative: bicubic, align_corners=True, clipped to [0, 1], not quantised.

    As in the released code (docs/method.md §1.4).
    """
    return F.interpolate(lr, size=size, mode="bicubic", align_corners=True).clamp(0.0, 1.0)


# ---------------------------------------------------------------------------- sampling


@dataclass
class SampleParams:
    """The random draws of one batch (kept for logging and for the range tests).

    sharpen_factor (B, K_P); blur_size (B or 1, K_N, 2) as (k_y, k_x); blur_sigma (B or 1, K_N, 2)
    as (sigma_y, sigma_x).  A leading 1 means one kernel per negative index for the whole batch.
    """

    sharpen_factor: Tensor
    blur_size: Tensor
    blur_sigma: Tensor


@dataclass
class Samples:
    """Positives (B, P, C, H, W) and negatives (B, N, C, H, W), stacked for one batched embedding call.

    Both are views of ``stacked`` (B, P + N, C, H, W).  ``gt_positive``: positives[:, 0] is the GT;
    ``lr_negative``: negatives[:, 0] is the upsampled LR input.
    """

    stacked: Tensor
    num_positives: int
    gt_positive: bool
    lr_negative: bool
    params: SampleParams | None = field(default=None, repr=False)

    @property
    def positives(self) -> Tensor:
        return self.stacked[:, : self.num_positives]

    @property
    def negatives(self) -> Tensor:
        return self.stacked[:, self.num_positives :]

    @property
    def generated_positives(self) -> Tensor:
        """The sharpened positives only (real samples of contrastive D training)."""
        return self.positives[:, int(self.gt_positive) :]

    @property
    def generated_negatives(self) -> Tensor:
        """The blurred negatives only (fake samples of contrastive D training; LR excluded, docs/method.md §3.2)."""
        return self.negatives[:, int(self.lr_negative) :]


@functools.lru_cache(maxsize=32)
def _device_constant(values: tuple[int, ...], device: str) -> Tensor:
    """Small integer table cached per device, so sampling never copies from the host."""
    return torch.tensor(values, device=device)


def _uniform(shape: tuple[int, ...], lo: float, hi: float, generator: torch.Generator | None, device) -> Tensor:
    return torch.rand(shape, generator=generator, device=device).mul_(hi - lo).add_(lo)


def draw_sample_params(
    config: MethodConfig, batch: int, *, generator: torch.Generator | None = None, device=None
) -> SampleParams:
    """Draw the sharpening factors and blur kernels of one batch (on the generator's device).

    Paper sampler (``blur_per_image``, ``blur_isotropic``): one size and one sigma per image and
    negative.  Released sampler: one (k_y, k_x, sigma_y, sigma_x) per negative index for the
    whole batch, axes independent (docs/method.md §1.1).  Sharpening factors are per image in both.
    """
    if device is None:
        device = generator.device if generator is not None else torch.device("cpu")
    kp, kn = config.num_positives, config.num_negatives
    rows = batch if config.blur_per_image else 1
    axes = 1 if config.blur_isotropic else 2
    sizes = _device_constant(config.blur_sizes, str(device))
    index = torch.randint(len(config.blur_sizes), (rows, kn, axes), generator=generator, device=device)
    blur_size = sizes[index].expand(rows, kn, 2)
    blur_sigma = _uniform((rows, kn, axes), *config.blur_sigma_range, generator, device).expand(rows, kn, 2)
    factor = _uniform((batch, kp), *config.sharpen_range, generator, device)
    return SampleParams(sharpen_factor=factor, blur_size=blur_size, blur_sigma=blur_sigma)


def make_samples(
    hr: Tensor,
    lr: Tensor | None,
    config: MethodConfig,
    *,
    generator: torch.Generator | None = None,
    params: SampleParams | None = None,
) -> Samples:
    """Build the positives and negatives of one batch (docs/method.md §1), all in one tensor.

    ``hr`` (B, C, H, W) and ``lr`` (B, C, h, w) in [0, 1]; ``lr`` is needed only when
    ``config.lr_negative``.  Order: positives [GT?, sharpened...], negatives [LR-up?, blurred...].
    """
    if hr.dim() != 4:
        raise PCLError(f"make_samples: expected HR (B, C, H, W), got {tuple(hr.shape)}")
    b, c, h, w = hr.shape
    if params is None:
        params = draw_sample_params(config, b, generator=generator,
                                    device=generator.device if generator is not None else hr.device)
    parts: list[Tensor] = []
    if config.gt_positive:
        parts.append(hr.unsqueeze(1))
    kp = config.num_positives
    if kp:
        src = hr.unsqueeze(1).expand(b, kp, c, h, w).reshape(b * kp, c, h, w)
        factor = params.sharpen_factor.to(device=hr.device, dtype=hr.dtype, non_blocking=True).reshape(b * kp)
        sharp = sharpen(src, factor)
        if config.quantize:
            sharp = quantize_8bit(sharp)
        parts.append(sharp.view(b, kp, c, h, w))
    if config.lr_negative:
        if lr is None:
            raise PCLError("make_samples: the configuration uses the LR input as a negative but lr is None")
        parts.append(upsample_lr(lr, (h, w)).unsqueeze(1))
    kn = config.num_negatives
    if kn:
        parts.append(_blurred_negatives(hr, params, kn, config))
    stacked = torch.cat(parts, dim=1)
    return Samples(stacked=stacked, num_positives=config.total_positives, gt_positive=config.gt_positive,
                   lr_negative=config.lr_negative, params=params)


def _blurred_negatives(hr: Tensor, params: SampleParams, kn: int, config: MethodConfig) -> Tensor:
    """The K_N blurred copies of the GT, (B, K_N, C, H, W); skipped entirely when K_N = 0."""
    b, c, h, w = hr.shape
    size = params.blur_size.to(device=hr.device, non_blocking=True)
    sigma = params.blur_sigma.to(device=hr.device, non_blocking=True)
    if size.shape[0] == 1:  # one kernel per negative index: broadcast over the batch
        size = size.expand(b, kn, 2)
        sigma = sigma.expand(b, kn, 2)
    src = hr.unsqueeze(1).expand(b, kn, c, h, w).reshape(b * kn, c, h, w)
    blurred = gaussian_blur(src, size.reshape(b * kn, 2), sigma.reshape(b * kn, 2), max_ksize=config.max_blur_size)
    if config.quantize:
        blurred = quantize_8bit(blurred)
    return blurred.view(b, kn, c, h, w)
