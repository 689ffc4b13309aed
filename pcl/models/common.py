"""Building blocks shared by the EDSR-family super-resolution backbones.

Why this module exists: EDSR, RCAN, HAN and NLSN all come from the EDSR-PyTorch code family and
share the mean-shift layers, the residual block and the upsampler.  Their state_dict key names
and ``nn.Sequential`` indices must match the official classes exactly (docs/backbones.md §1.2, 1.3,
11) so that released checkpoints load strictly; keeping the pieces in one place keeps the indices
consistent across the five networks.

Value-range convention of the harness: every SR model takes RGB in [0, 1] and returns the same
scale.  ``rgb_range`` (R) is applied inside (``x * R`` in, ``/ R`` out), so a model built with
rgb_range R and loaded with official weights equals the official model applied to ``x * R``,
divided by R.  The official forward on 0..R inputs stays available as ``forward_official``.
"""

from __future__ import annotations

import math
from abc import ABCMeta, abstractmethod
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from pcl.errors import PCLError

#: DIV2K RGB mean used by every network of the family (docs/backbones.md §1.2).
DIV2K_RGB_MEAN: tuple[float, float, float] = (0.4488, 0.4371, 0.4040)
#: The family divides by a unit standard deviation (docs/backbones.md §1.2).
UNIT_RGB_STD: tuple[float, float, float] = (1.0, 1.0, 1.0)

#: Scales for which an upsampler is defined (x2, x3, x4).
SUPPORTED_SCALES: tuple[int, ...] = (2, 3, 4)


def default_conv(in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> nn.Conv2d:
    """3x3 (or kxk) convolution with 'same' zero padding and bias, as ``common.default_conv``."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class MeanShift(nn.Conv2d):
    """Mean subtraction / addition as a frozen 1x1 convolution with bias.

    Why a convolution and not a constant: the official checkpoints store ``weight`` [3,3,1,1] and
    ``bias`` [3] for ``sub_mean`` and ``add_mean``, and released RCAN weights may hold trained,
    non-analytic values (docs/backbones.md §1.2).  The analytic values are only the construction-time default;
    the forward always uses whatever tensors were loaded.
    """

    def __init__(
        self,
        rgb_range: float,
        rgb_mean: tuple[float, float, float] = DIV2K_RGB_MEAN,
        rgb_std: tuple[float, float, float] = UNIT_RGB_STD,
        sign: int = -1,
    ) -> None:
        super().__init__(3, 3, kernel_size=1)
        weight, bias = analytic_mean_shift(rgb_range, sign=sign, rgb_mean=rgb_mean, rgb_std=rgb_std)
        with torch.no_grad():
            self.weight.copy_(weight)
            self.bias.copy_(bias)
        for parameter in self.parameters():
            parameter.requires_grad = False


def analytic_mean_shift(
    rgb_range: float,
    *,
    sign: int,
    rgb_mean: tuple[float, float, float] = DIV2K_RGB_MEAN,
    rgb_std: tuple[float, float, float] = UNIT_RGB_STD,
) -> tuple[Tensor, Tensor]:
    """Return the (weight, bias) a freshly built MeanShift holds (identity/std, sign*R*mean/std).

    The float32 arithmetic follows the official construction order (``sign * R`` first, then the
    mean tensor, then the division by std) so the synthesised values are bit-identical to theirs.
    Used by the BasicSR key converter, which has to invent these tensors.
    """
    std = torch.tensor(rgb_std, dtype=torch.float32)
    weight = torch.eye(3, dtype=torch.float32).view(3, 3, 1, 1) / std.view(3, 1, 1, 1)
    bias = sign * rgb_range * torch.tensor(rgb_mean, dtype=torch.float32) / std
    return weight, bias


def infer_rgb_range(state_dict: Mapping[str, Tensor]) -> float:
    """Estimate the rgb_range a checkpoint was trained with: ``-sub_mean.bias[0] / 0.4488``.

    Why: the constructor's rgb_range only sets the MeanShift default, so a checkpoint trained at
    rgb_range 1 silently misbehaves in a model configured for 255 (or vice versa).  The loader
    compares this estimate (about 255 or about 1) with the configured value and warns.
    """
    bias = state_dict.get("sub_mean.bias")
    if bias is None:
        raise PCLError(
            "checkpoint has no 'sub_mean.bias' entry, so its rgb_range cannot be inferred; "
            "pass a state_dict in EDSR-PyTorch format (or convert a BasicSR one first)"
        )
    return float(-bias.reshape(-1)[0].item() / DIV2K_RGB_MEAN[0])


class ResBlock(nn.Module):
    """EDSR residual block: ``x + res_scale * conv(ReLU(conv(x)))`` (keys body.0, body.2)."""

    def __init__(self, n_feats: int, kernel_size: int = 3, res_scale: float = 1.0) -> None:
        super().__init__()
        self.body = nn.Sequential(
            default_conv(n_feats, n_feats, kernel_size),
            nn.ReLU(inplace=True),
            default_conv(n_feats, n_feats, kernel_size),
        )
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        res = self.body(x).mul(self.res_scale)
        res += x
        return res


class Upsampler(nn.Sequential):
    """Sub-pixel upsampler with the EDSR-PyTorch indices.

    x2: conv C->4C, PixelShuffle(2) (indices 0, 1); x3: conv C->9C, PixelShuffle(3);
    x4: two x2 stages (indices 0..3).  No activation, no BN (docs/backbones.md §1.3).
    """

    def __init__(self, scale: int, n_feats: int) -> None:
        check_scale(scale)
        layers: list[nn.Module] = []
        if scale & (scale - 1) == 0:  # a power of two: repeated x2 stages
            for _ in range(int(math.log2(scale))):
                layers.append(default_conv(n_feats, 4 * n_feats, 3))
                layers.append(nn.PixelShuffle(2))
        else:  # scale 3
            layers.append(default_conv(n_feats, 9 * n_feats, 3))
            layers.append(nn.PixelShuffle(3))
        super().__init__(*layers)


def make_tail(scale: int, n_feats: int, n_colors: int) -> nn.Sequential:
    """``tail`` = [Upsampler, conv C->n_colors]: keys tail.0.* and tail.1.* (docs/backbones.md §1.3)."""
    return nn.Sequential(Upsampler(scale, n_feats), default_conv(n_feats, n_colors, 3))


def check_scale(scale: int) -> None:
    """Refuse scales without an upsampler definition."""
    if scale not in SUPPORTED_SCALES:
        raise PCLError(f"scale {scale!r} is not supported; use one of {list(SUPPORTED_SCALES)}")


def check_positive(name: str, value: float, model: str) -> None:
    """Refuse zero/negative sizes with a message naming the keyword."""
    if not value > 0:
        raise PCLError(f"{model}: {name} must be positive, got {value!r}")


def check_rgb(n_colors: int, model: str) -> None:
    """The MeanShift layers are 3x3, so the SR backbones only exist for RGB."""
    if n_colors != 3:
        raise PCLError(
            f"{model}: n_colors must be 3 (the MeanShift layers of this code family are RGB-only), "
            f"got {n_colors!r}"
        )


class SRModel(nn.Module, metaclass=ABCMeta):
    """Base class: applies the rgb_range convention around the official forward.

    Subclasses implement :meth:`forward_official` (input and output in 0..rgb_range, exactly the
    official computation).  ``forward`` takes and returns [0, 1] images.
    """

    #: Set by the subclass constructors; a plain attribute, not part of the state_dict.
    rgb_range: float
    scale: int

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_official(x * self.rgb_range) / self.rgb_range

    @abstractmethod
    def forward_official(self, x: Tensor) -> Tensor:
        """The official network on values in 0..rgb_range (each backbone defines it)."""

    def _setup_io(self, model: str, scale: int, n_colors: int, rgb_range: float) -> None:
        """Check the arguments every backbone shares and register the MeanShift pair.

        Called where the official classes create ``sub_mean``/``add_mean`` (before ``head``), so
        the state_dict keeps their order.
        """
        check_scale(scale)
        check_rgb(n_colors, model)
        check_positive("rgb_range", rgb_range, model)
        self.scale = scale
        self.rgb_range = float(rgb_range)
        self.sub_mean = MeanShift(rgb_range, sign=-1)
        self.add_mean = MeanShift(rgb_range, sign=1)

    def _long_skip_forward(self, x: Tensor) -> Tensor:
        """sub_mean -> head -> body (+ long skip from the head) -> tail -> add_mean (EDSR, RCAN, NLSN)."""
        x = self.sub_mean(x)
        x = self.head(x)
        res = self.body(x)
        res += x
        x = self.tail(res)
        return self.add_mean(x)
