"""PCL embedding network E_D = the released wavelet patch discriminator (docs/backbones.md §7,
method.md 2).

Why a hand-written Haar transform: the released code uses ``pytorch_wavelets.DWTForward(J=1,
wave='haar', mode='reflect')``, whose import breaks with current setuptools.  One Haar level is
four fixed 2-tap filters, applied here exactly as the library does (a stride-2 pass along the
width, then one along the height, grouped convolutions with reflect padding of one sample for odd
sizes).  The filters stay registered as the persistent buffers ``DWT2.h0_col`` etc., so the
released discriminator's state_dict (54 entries) loads strictly and the forward uses the loaded
filter values.

Band order and formulas (a, b = top-left/right, c, d = bottom-left/right of each 2x2 block):
band0 = (a+b-c-d)/2, band1 = (a-b+c-d)/2, band2 = (a-b-c+d)/2; the 9 input channels are
band-major: [band0 RGB, band1 RGB, band2 RGB].  The network is a pure function of its input:
no rgb_range scaling or mean shift.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pcl.errors import PCLError

#: float32 value of 1/sqrt(2) used by every Haar tap (prints as 0.70710677).
HAAR_TAP = 1.0 / math.sqrt(2.0)
#: Number of stride-2 stages of the trunk (depth 7 -> 4 halvings); fixes the linear head input.
_TRUNK_HALVINGS = 4
#: Conv-block widths and strides of the released trunk (features indices 0, 2, ..., 14).
TRUNK_LAYOUT: tuple[tuple[int, int], ...] = (
    (64, 1), (64, 2), (128, 1), (128, 2), (256, 1), (256, 2), (512, 1), (512, 2),
)


class HaarDWT(nn.Module):
    """One-level 2-D Haar analysis with the pytorch_wavelets buffer names and shapes.

    Buffers (persistent): h0_col, h1_col [1,1,2,1]; h0_row, h1_row [1,1,1,2]; low-pass (+,+) and
    high-pass (+,-) taps of magnitude 1/sqrt(2).  ``forward`` returns (LL, highs) with highs of
    shape (N, C, 3, ceil(H/2), ceil(W/2)), bands in the library order (LH, HL, HH).
    """

    def __init__(self) -> None:
        super().__init__()
        low = torch.tensor([HAAR_TAP, HAAR_TAP], dtype=torch.float32)
        high = torch.tensor([HAAR_TAP, -HAAR_TAP], dtype=torch.float32)
        self.register_buffer("h0_col", low.reshape(1, 1, 2, 1).clone())
        self.register_buffer("h1_col", high.reshape(1, 1, 2, 1).clone())
        self.register_buffer("h0_row", low.reshape(1, 1, 1, 2).clone())
        self.register_buffer("h1_row", high.reshape(1, 1, 1, 2).clone())

    @staticmethod
    def _analysis_pass(x: Tensor, low: Tensor, high: Tensor, dim: int) -> Tensor:
        """Filter and decimate along ``dim`` (2 = height, 3 = width); channels become [lo, hi] pairs."""
        channels = x.shape[1]
        size = x.shape[dim]
        if size < 2:
            raise PCLError(
                f"embedding: Haar wavelet input needs height and width >= 2 (reflect padding), got "
                f"{tuple(x.shape[-2:])}"
            )
        # Output length ceil(size/2); odd sizes get one reflected sample at the end (mode 'reflect').
        extra = 2 * ((size + 1) // 2 - 1) - size + 2
        pad = (0, 0, extra // 2, (extra + 1) // 2) if dim == 2 else (extra // 2, (extra + 1) // 2, 0, 0)
        x = F.pad(x, pad, mode="reflect")
        weight = torch.cat([low, high] * channels, dim=0).to(dtype=x.dtype)
        stride = (2, 1) if dim == 2 else (1, 2)
        return F.conv2d(x, weight, stride=stride, groups=channels)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        lohi = self._analysis_pass(x, self.h0_row, self.h1_row, dim=3)
        y = self._analysis_pass(lohi, self.h0_col, self.h1_col, dim=2)
        y = y.reshape(y.shape[0], -1, 4, y.shape[-2], y.shape[-1])
        return y[:, :, 0].contiguous(), y[:, :, 1:].contiguous()


def haar_detail_bands(x: Tensor, dwt: HaarDWT | None = None) -> Tensor:
    """The 9-channel (for RGB) detail-band image fed to E_D: [band0 RGB, band1 RGB, band2 RGB].

    ``dwt`` supplies the filter buffers (e.g. loaded from a checkpoint); by default the analytic
    Haar filters are used.  Output size ceil(H/2) x ceil(W/2); LL is discarded.
    """
    if dwt is None:
        dwt = HaarDWT().to(x.device)
    _, highs = dwt(x)
    return torch.cat((highs[:, :, 0], highs[:, :, 1], highs[:, :, 2]), 1)


def _conv_bn(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """Block = conv3x3 (no bias) + BatchNorm2d; keys ``.0.weight`` and ``.1.*``."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, stride=stride, bias=False),
        nn.BatchNorm2d(out_channels),
    )


class EmbeddingNet(nn.Module):
    """The PCL discriminator used as embedding network.

    ``use_wavelet``: Haar detail bands (3 * n_colors channels) instead of RGB; ``patch_d``: the
    patch head (AdaptiveAvgPool2d(4) + conv1 -> N x 1 x 4 x 4 logits, any input size) instead of
    the linear head (fixed input ``patch_size``).  BatchNorm follows the module's train/eval mode;
    the released training never calls eval(), i.e. batch statistics.
    """

    def __init__(self, use_wavelet: bool = True, patch_d: bool = True, patch_size: int = 192, n_colors: int = 3) -> None:
        super().__init__()
        if n_colors < 1:
            raise PCLError(f"embedding: n_colors must be positive, got {n_colors!r}")
        self.use_wavelet = bool(use_wavelet)
        self.patch_d = bool(patch_d)
        self.patch_size = int(patch_size)
        in_channels = 3 * n_colors if self.use_wavelet else n_colors
        layers: list[nn.Module] = []
        for out_channels, stride in TRUNK_LAYOUT:
            layers.append(_conv_bn(in_channels, out_channels, stride))
            layers.append(nn.LeakyReLU(negative_slope=0.2, inplace=True))
            in_channels = out_channels
        self.features = nn.Sequential(*layers)

        self.head_size = self.patch_size // (2**_TRUNK_HALVINGS) // (2 if self.use_wavelet else 1)
        if self.patch_d:
            self.classifier = nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Conv2d(in_channels, 1, kernel_size=(1, 1)))
        else:
            if self.head_size < 1:
                raise PCLError(
                    f"embedding: patch_size {patch_size} is too small for the linear head (needs >= "
                    f"{2**_TRUNK_HALVINGS * (2 if self.use_wavelet else 1)})"
                )
            self.classifier = nn.Sequential(
                nn.Flatten(),
                nn.Linear(in_channels * self.head_size**2, 1024),
                nn.LeakyReLU(negative_slope=0.2, inplace=True),
                nn.Linear(1024, 1),
            )
        if self.use_wavelet:
            self.DWT2 = HaarDWT()

    def transform(self, x: Tensor) -> Tensor:
        """Input transform: Haar detail bands when ``use_wavelet``, identity otherwise."""
        if self.use_wavelet:
            return haar_detail_bands(x, self.DWT2)
        return x

    def _classify(self, features: Tensor) -> Tensor:
        if not self.patch_d and features.shape[-2:] != (self.head_size, self.head_size):
            raise PCLError(
                f"embedding: the linear head needs {self.patch_size}x{self.patch_size} inputs "
                f"(features {self.head_size}x{self.head_size}), got features {tuple(features.shape[-2:])}; "
                "crop the input or use the patch head"
            )
        return self.classifier(features)

    def forward(self, x: Tensor) -> Tensor:
        return self._classify(self.features(self.transform(x)))

    def forward_features(self, x: Tensor, *, pre_activation: bool = False) -> tuple[list[Tensor], Tensor]:
        """Return (the 8 conv-block features, logits).

        Default: the released behaviour - the collected block outputs are overwritten by the
        following in-place LeakyReLU, so they are post-activation.  ``pre_activation=True`` keeps
        the true BN outputs (what ``--before_relu`` intended); the logits are the same either way.
        """
        h = self.transform(x)
        features: list[Tensor] = []
        layers = list(self.features)
        for block, activation in zip(layers[0::2], layers[1::2]):
            h = block(h)
            if pre_activation:
                features.append(h)
                h = F.leaky_relu(h, negative_slope=activation.negative_slope)
            else:
                h = activation(h)  # in place: the stored tensor is the activated one
                features.append(h)
        return features, self._classify(h)
