"""Frequency-domain inputs of the embedding network (docs/method.md §2.1; P-J Table IV).

Table IV compares the embedding on RGB ("D"), on Haar detail bands ("H+D", the default and the
released scripts' choice) and on a Fourier transform ("F+D").  The released code has no working
FFT input (``--use_fft`` trains the RGB network; docs/method.md §2.1, §9 item 13) and the paper does not
define one, so ``fft_features`` is our choice, documented in docs/method_choices.md:

* the orthonormal 2-D DFT (``norm='ortho'``: Parseval, coefficients on the image's scale) of each
  colour channel, centred with ``fftshift`` so that neighbouring positions are neighbouring
  frequencies (the 3x3 convolutions then see a smooth layout, low frequencies in the middle);
* real and imaginary parts as channels, [real RGB, imag RGB] (6 channels at H x W) - a linear,
  invertible map like the Haar input, without the phase wrap-around of a magnitude/phase split;
* the DC term removed (the channel mean is subtracted first), the analogue of dropping LL in
  H+D: at ortho scaling DC is sqrt(HW) times the mean and would otherwise dominate the first
  BatchNorm's statistics.

``make_embedding_input(kind)`` returns the map from images to the embedding trunk's input.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from pcl.errors import PCLError
from pcl.models.embedding import HaarDWT, haar_detail_bands

INPUT_KINDS: tuple[str, ...] = ("rgb", "haar", "fft")

_DWT_CACHE: dict[tuple[str, torch.dtype], HaarDWT] = {}


def _dwt(x: Tensor) -> HaarDWT:
    """One analytic Haar module per device (its filters are created once, not per call)."""
    key = (str(x.device), torch.float32)
    if key not in _DWT_CACHE:
        _DWT_CACHE[key] = HaarDWT().to(x.device)
    return _DWT_CACHE[key]


def haar_decompose(x: Tensor) -> tuple[Tensor, Tensor]:
    """One-level orthonormal Haar DWT: (LL (B, C, h, w), details (B, 3C, h, w)), h = ceil(H/2).

    Details are stacked band-major [LH RGB, HL RGB, HH RGB] as the embedding network takes them
    (docs/method.md §2.1); odd sizes are extended by one reflected sample at the bottom/right.
    """
    ll, highs = _dwt(x)(x)
    return ll, torch.cat((highs[:, :, 0], highs[:, :, 1], highs[:, :, 2]), 1)


def haar_highpass(x: Tensor) -> Tensor:
    """The 3C detail bands (LL dropped) fed to the H+D embedding: (B, 3C, ceil(H/2), ceil(W/2))."""
    return haar_detail_bands(x, _dwt(x))


def haar_inverse(ll: Tensor, high: Tensor, size: tuple[int, int] | None = None) -> Tensor:
    """Inverse of ``haar_decompose``: perfect reconstruction from LL and the detail bands.

    With a, b (top-left/right) and c, d (bottom-left/right) of each 2x2 block:
    a = (LL+LH+HL+HH)/2, b = (LL+LH-HL-HH)/2, c = (LL-LH+HL-HH)/2, d = (LL-LH-HL+HH)/2.
    ``size`` crops the (2h, 2w) result back to an odd original size.
    """
    if ll.dim() != 4 or high.dim() != 4 or high.shape[1] != 3 * ll.shape[1] or high.shape[-2:] != ll.shape[-2:]:
        raise PCLError(
            f"haar_inverse: expected LL (B, C, h, w) and details (B, 3C, h, w), got {tuple(ll.shape)} "
            f"and {tuple(high.shape)}"
        )
    b, c, h, w = ll.shape
    lh, hl, hh = high.view(b, 3, c, h, w).unbind(1)
    blocks = torch.stack(
        (ll + lh + hl + hh, ll + lh - hl - hh, ll - lh + hl - hh, ll - lh - hl + hh), dim=2
    ) * 0.5  # (B, C, 4, h, w): [a, b, c, d] = pixel_shuffle order (row-major in the 2x2 block)
    out = F.pixel_shuffle(blocks.view(b, 4 * c, h, w), 2)
    if size is not None:
        out = out[..., : size[0], : size[1]]
    return out


def fft_features(x: Tensor) -> Tensor:
    """F+D input: [real, imag] of the centred orthonormal 2-D DFT without DC, (B, 2C, H, W).

    Computed in float32 (float64 for float64 input; FFTs of bf16/half are not generally supported)
    and returned in x's dtype.
    """
    if x.dim() != 4:
        raise PCLError(f"fft_features: expected (B, C, H, W), got {tuple(x.shape)}")
    work = x if x.dtype == torch.float64 else x.float()
    work = work - work.mean(dim=(-2, -1), keepdim=True)
    spectrum = torch.fft.fftshift(torch.fft.fft2(work, norm="ortho"), dim=(-2, -1))
    return torch.cat((spectrum.real, spectrum.imag), dim=1).to(x.dtype)


def embedding_input_channels(kind: str, n_colors: int = 3) -> int:
    """Channels of the embedding trunk's input for ``kind``: rgb C, haar 3C, fft 2C."""
    _check_kind(kind)
    return {"rgb": n_colors, "haar": 3 * n_colors, "fft": 2 * n_colors}[kind]


def make_embedding_input(kind: str) -> Callable[[Tensor], Tensor]:
    """Map images (B, C, H, W) to the embedding trunk's input: identity, Haar details or FFT features."""
    _check_kind(kind)
    if kind == "rgb":
        return _identity
    if kind == "haar":
        return haar_highpass
    return fft_features


def _identity(x: Tensor) -> Tensor:
    return x


def _check_kind(kind: str) -> None:
    if kind not in INPUT_KINDS:
        raise PCLError(f"unknown embedding input kind {kind!r}; valid kinds: {', '.join(INPUT_KINDS)}")
