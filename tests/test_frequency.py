"""Frequency inputs of the embedding (docs/method.md §2.1): Haar analysis/synthesis, FFT features."""

from __future__ import annotations

import math

import pytest
import torch

from pcl.errors import PCLError
from pcl.method import (
    build_embedding,
    embed_groups,
    embedding_input_channels,
    fft_features,
    haar_decompose,
    haar_highpass,
    haar_inverse,
    make_embedding_input,
)

torch.set_num_threads(1)


def test_haar_hand_values_and_band_order() -> None:
    # One 2x2 block a=1, b=2 (top), c=3, d=4 (bottom); docs/method.md §2.1:
    # LL=(a+b+c+d)/2=5, LH=(a+b-c-d)/2=-2, HL=(a-b+c-d)/2=-1, HH=(a-b-c+d)/2=0.
    block = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    x = torch.stack((block, 10 * block, 100 * block)).unsqueeze(0)  # RGB scaled 1, 10, 100
    ll, high = haar_decompose(x)
    assert torch.allclose(ll.flatten(), torch.tensor([5.0, 50.0, 500.0]), atol=1e-4)
    # band-major channel order [LH RGB, HL RGB, HH RGB]
    expected = torch.tensor([-2.0, -20.0, -200.0, -1.0, -10.0, -100.0, 0.0, 0.0, 0.0])
    assert torch.allclose(high.flatten(), expected, atol=1e-4)
    assert torch.equal(haar_highpass(x), high)


def test_haar_highpass_shape() -> None:
    x = torch.rand(2, 3, 16, 12)
    assert haar_highpass(x).shape == (2, 9, 8, 6)
    assert haar_highpass(torch.rand(1, 3, 15, 9)).shape == (1, 9, 8, 5)  # odd: ceil(N/2), reflect


@pytest.mark.parametrize("size", [(16, 12), (15, 9)])
def test_haar_perfect_reconstruction(size: tuple[int, int]) -> None:
    # The filters are the released float32 taps 0.70710677 (pcl.models.embedding), so the round
    # trip is exact to float32 precision, also for float64 data.
    for dtype in (torch.float32, torch.float64):
        x = torch.rand(2, 3, *size, dtype=dtype)
        ll, high = haar_decompose(x)
        assert torch.allclose(haar_inverse(ll, high, size), x, atol=1e-6, rtol=0)


def test_haar_is_orthonormal() -> None:
    # Orthonormal filters: energy is preserved (Parseval) for even sizes, to float32 tap precision.
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    ll, high = haar_decompose(x)
    assert (ll.square().sum() + high.square().sum()).item() == pytest.approx(x.square().sum().item(), rel=1e-6)


def test_haar_inverse_rejects_mismatched_bands() -> None:
    with pytest.raises(PCLError, match="haar_inverse"):
        haar_inverse(torch.rand(1, 3, 4, 4), torch.rand(1, 6, 4, 4))


def test_fft_features_shape_dc_and_parseval() -> None:
    x = torch.rand(2, 3, 16, 12, dtype=torch.float64)
    f = fft_features(x)
    assert f.shape == (2, 6, 16, 12)
    # DC removed: a constant image maps to zeros.
    assert torch.allclose(fft_features(torch.full((1, 3, 8, 8), 0.7)), torch.zeros(1, 6, 8, 8), atol=1e-6)
    # Orthonormal DFT: energy of the features = energy of the mean-free image (Parseval).
    centred = x - x.mean(dim=(-2, -1), keepdim=True)
    assert f.square().sum().item() == pytest.approx(centred.square().sum().item(), rel=1e-10)


def test_fft_features_centred_peak() -> None:
    # cos(2 pi k n / W) along the width has its energy at horizontal frequencies +-k; after
    # fftshift they sit at column W/2 +- k of the centre row.
    h, w, k = 8, 16, 3
    n = torch.arange(w, dtype=torch.float64)
    x = torch.cos(2 * math.pi * k * n / w).expand(1, 1, h, w).clone()
    real = fft_features(x)[0, 0]
    peaks = (real.abs() > 1e-6).nonzero().tolist()
    assert sorted(peaks) == [[h // 2, w // 2 - k], [h // 2, w // 2 + k]]
    # value: sum over HW of cos^2 / sqrt(HW) / 1 = HW / 2 / sqrt(HW) = sqrt(HW) / 2 at each peak
    assert real[h // 2, w // 2 + k].item() == pytest.approx(math.sqrt(h * w) / 2, rel=1e-10)


def test_make_embedding_input_kinds() -> None:
    x = torch.rand(2, 3, 16, 16)
    assert torch.equal(make_embedding_input("rgb")(x), x)
    assert torch.equal(make_embedding_input("haar")(x), haar_highpass(x))
    assert torch.equal(make_embedding_input("fft")(x), fft_features(x))
    assert [embedding_input_channels(k) for k in ("rgb", "haar", "fft")] == [3, 9, 6]
    with pytest.raises(PCLError, match="unknown embedding input kind 'dct'"):
        make_embedding_input("dct")


@pytest.mark.parametrize("kind, spatial", [("haar", 8), ("rgb", 16), ("fft", 16)])
def test_embedding_variants_take_their_input(kind: str, spatial: int) -> None:
    # Table IV: H+D (Haar, H/2), D (RGB, H), F+D (FFT, H): first-block features (B, G, 64, s, s).
    net = build_embedding(kind, patch_size=16)
    x = torch.rand(2, 1, 3, 16, 16)
    feats, logits = embed_groups(net, x, layers=(0,), input_kind=kind, with_logits=True)
    assert feats[0].shape == (2, 1, 64, spatial, spatial)
    assert logits.shape == (2, 1, 16)


def test_embedding_input_mismatch_is_reported() -> None:
    x = torch.rand(2, 1, 3, 16, 16)
    with pytest.raises(PCLError, match="use_wavelet=True"):
        embed_groups(build_embedding("rgb"), x, layers=(0,), input_kind="haar")
    with pytest.raises(PCLError, match="first convolution takes 3"):
        embed_groups(build_embedding("rgb"), x, layers=(0,), input_kind="fft")
