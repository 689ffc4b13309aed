"""PCL positive/negative samples (docs/method.md §1): operators, samplers, the Samples structure."""

from __future__ import annotations

import math

import kornia
import pytest
import torch

from pcl.errors import PCLError
from pcl.method import MethodConfig, draw_sample_params, gaussian_blur, make_samples, quantize_8bit, sharpen, upsample_lr
from pcl.method.samples import gaussian_kernels_1d

torch.set_num_threads(1)


def _images(n: int = 4, c: int = 3, h: int = 20, w: int = 17, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------- sharpen


def test_sharpen_factor_one_is_identity() -> None:
    x = _images()
    assert torch.equal(sharpen(x, 1.0), x)
    assert torch.equal(sharpen(x, torch.ones(4)), x)


def test_sharpen_hand_values_on_3x3() -> None:
    # Hand derivation (docs/method.md §1.2): centre 0.5, ring 0.2 -> d = (8 * 0.2 + 5 * 0.5) / 13 = 4.1 / 13;
    # out = d + f (0.5 - d); the border ring keeps the input (out = img + f * 0 = img).
    img = torch.full((1, 1, 3, 3), 0.2)
    img[0, 0, 1, 1] = 0.5
    d = 4.1 / 13
    out = sharpen(img, 2.0)
    assert out[0, 0, 1, 1].item() == pytest.approx(d + 2.0 * (0.5 - d), abs=1e-6)  # 0.684615
    ring = torch.ones(3, 3, dtype=torch.bool)
    ring[1, 1] = False
    assert torch.equal(out[0, 0][ring], img[0, 0][ring])
    # f = 0.5 smooths without clipping; f = 4 overshoots 1 at the centre (0.8 centre) and is clipped.
    assert sharpen(img, 0.5)[0, 0, 1, 1].item() == pytest.approx(d + 0.5 * (0.5 - d), abs=1e-6)
    bright = img.clone()
    bright[0, 0, 1, 1] = 0.8
    assert sharpen(bright, 4.0)[0, 0, 1, 1].item() == 1.0


def test_sharpen_equals_kornia_sharpness() -> None:
    # kornia.enhance.sharpness is the released code's exact operation (docs/method.md §1.2).
    x = _images(6)
    factors = torch.tensor([1.2, 1.5, 2.0, 2.9, 5.0, 3.0])
    assert torch.equal(sharpen(x, factors), kornia.enhance.sharpness(x, factors))
    smooth = torch.tensor([0.5, 0.7, 0.9, 0.6, 0.99, 0.51])  # kornia 0.9 also clips here: a no-op on [0,1]
    assert torch.allclose(sharpen(x, smooth), kornia.enhance.sharpness(x, smooth), atol=1e-6, rtol=0)


def test_sharpen_rejects_tiny_images() -> None:
    with pytest.raises(PCLError, match="H, W >= 3"):
        sharpen(torch.rand(1, 3, 2, 5), 2.0)


# ---------------------------------------------------------------------------- blur


def test_gaussian_kernel_hand_values() -> None:
    # size 3, sigma 1: taps exp(-1/2), 1, exp(-1/2), normalised -> 0.274068, 0.451863, 0.274068;
    # zero-padded to 5 taps (radius 2) the outer taps are exactly 0.
    k = gaussian_kernels_1d(torch.tensor([3]), torch.tensor([1.0]), radius=2)[0]
    e = math.exp(-0.5)
    expected = torch.tensor([0.0, e, 1.0, e, 0.0]) / (1 + 2 * e)
    assert torch.allclose(k, expected, atol=1e-7)
    assert k[0].item() == 0.0 and k[-1].item() == 0.0


def test_gaussian_blur_per_image_kernels_equal_kornia() -> None:
    # kornia.filters.gaussian_blur2d (reflect border) is the released code's exact operation (docs/method.md §1.3).
    x = _images(6)
    sizes = torch.tensor([[3, 5], [7, 11], [11, 3], [5, 5], [9, 9], [3, 3]])
    sigmas = torch.tensor([[0.1, 2.0], [0.3, 1.5], [1.9, 0.2], [0.7, 0.7], [1.2, 1.3], [0.5, 0.4]])
    out = gaussian_blur(x, sizes, sigmas, max_ksize=11)
    for i in range(6):
        ref = kornia.filters.gaussian_blur2d(x[i : i + 1], (int(sizes[i, 0]), int(sizes[i, 1])), sigmas[i : i + 1])
        assert torch.allclose(out[i : i + 1], ref, atol=1e-6, rtol=0), i


def test_gaussian_blur_shared_kernel_equals_kornia() -> None:
    x = _images(3)
    out = gaussian_blur(x, (7, 5), (1.1, 0.6))
    ref = kornia.filters.gaussian_blur2d(x, (7, 5), (1.1, 0.6))
    assert torch.allclose(out, ref, atol=1e-6, rtol=0)


def test_gaussian_blur_preserves_constant_and_mean() -> None:
    # A normalised kernel keeps a constant image (reflect border) and, when the image content is
    # away from the border (constant margin wider than the kernel radius), the image mean.
    const = torch.full((2, 3, 16, 16), 0.37)
    out = gaussian_blur(const, torch.tensor([[11, 11], [3, 9]]), torch.tensor([[1.5, 1.5], [0.3, 2.0]]))
    assert torch.allclose(out, const, atol=1e-6)
    img = torch.full((1, 1, 40, 40), 0.3)
    img[0, 0, 15:25, 12:28] = torch.rand(10, 16, generator=torch.Generator().manual_seed(3))
    blurred = gaussian_blur(img, (11, 11), (1.5, 1.5))
    assert blurred.mean().item() == pytest.approx(img.mean().item(), abs=1e-6)
    assert not torch.allclose(blurred, img)  # it did blur


def test_gaussian_blur_errors() -> None:
    with pytest.raises(PCLError, match="odd"):
        gaussian_blur(_images(1), (4, 3), (1.0, 1.0))
    with pytest.raises(PCLError, match="too small"):
        gaussian_blur(torch.rand(1, 3, 5, 5), (11, 11), (1.0, 1.0))
    with pytest.raises(PCLError, match="kernels for"):
        gaussian_blur(_images(4), torch.tensor([[3, 3], [5, 5]]), torch.ones(2, 2))


# ---------------------------------------------------------------------------- small helpers


def test_quantize_to_8bit_grid() -> None:
    x = torch.tensor([-0.1, 0.0, 0.5, 0.502, 1.0, 1.3])
    q = quantize_8bit(x)
    # round(clip(v * 255, 0, 255)) / 255 (docs/method.md §1.1): 127.5 rounds half to even -> 128; 128.01 -> 128.
    assert torch.allclose(q * 255, torch.tensor([0.0, 0.0, 128.0, 128.0, 255.0, 255.0]), atol=1e-4)


def test_upsample_lr_align_corners_keeps_corners() -> None:
    lr = _images(2, h=6, w=5)
    up = upsample_lr(lr, (24, 20))
    assert up.shape == (2, 3, 24, 20)
    # align_corners=True maps corner pixel centres onto each other (docs/method.md §1.4).
    for r, c in ((0, 0), (-1, -1), (0, -1), (-1, 0)):
        assert torch.allclose(up[..., r, c], lr[..., r, c], atol=1e-6)
    assert up.min() >= 0 and up.max() <= 1


# ---------------------------------------------------------------------------- samplers


def test_paper_sampler_parameters_stay_in_range() -> None:
    cfg = MethodConfig()  # paper: K_P = K_N = 4, factor U[1.5, 3), size U{3..11}, sigma U[0.3, 1.5]
    gen = torch.Generator().manual_seed(0)
    draws = [draw_sample_params(cfg, 32, generator=gen) for _ in range(40)]
    f = torch.cat([d.sharpen_factor for d in draws])
    size = torch.cat([d.blur_size for d in draws])
    sigma = torch.cat([d.blur_sigma for d in draws])
    assert f.shape[1] == 4 and size.shape[1:] == (4, 2) and draws[0].blur_size.shape[0] == 32  # per image
    assert f.min() >= 1.5 and f.max() < 3.0 and f.max() > 2.9 and f.min() < 1.6
    assert set(size.unique().tolist()) == {3, 5, 7, 9, 11}
    assert torch.equal(size[..., 0], size[..., 1]) and torch.equal(sigma[..., 0], sigma[..., 1])  # isotropic
    assert sigma.min() >= 0.3 and sigma.max() < 1.5 and sigma.max() > 1.45 and sigma.min() < 0.35


def test_released_sampler_parameters_stay_in_range() -> None:
    # docs/method.md §1.1: factor U[0.5, 3); kx, ky, sx, sy independent; per batch
    cfg = MethodConfig.preset("released")
    gen = torch.Generator().manual_seed(1)
    draws = [draw_sample_params(cfg, 16, generator=gen) for _ in range(200)]
    f = torch.cat([d.sharpen_factor for d in draws])
    size = torch.cat([d.blur_size for d in draws])
    sigma = torch.cat([d.blur_sigma for d in draws])
    assert draws[0].blur_size.shape == (1, 3, 2) and draws[0].sharpen_factor.shape == (16, 3)
    assert f.min() >= 0.5 and f.max() < 3.0
    assert (f < 1).float().mean().item() == pytest.approx(0.2, abs=0.03)  # (1 - 0.5) / 2.5 of the draws smooth
    assert set(size.unique().tolist()) == {3, 5, 7, 9, 11}
    assert (size[..., 0] != size[..., 1]).any() and (sigma[..., 0] != sigma[..., 1]).all()  # anisotropic
    assert sigma.min() >= 0.1 and sigma.max() < 2.0 and sigma.max() > 1.95


def test_paper_samples_structure_and_values() -> None:
    cfg = MethodConfig()
    hr = _images(3, h=24, w=24)
    s = make_samples(hr, None, cfg, generator=torch.Generator().manual_seed(0))
    assert s.positives.shape == (3, 5, 3, 24, 24) and s.negatives.shape == (3, 4, 3, 24, 24)
    assert torch.equal(s.positives[:, 0], hr)  # GT is positive 0
    assert s.generated_positives.shape[1] == 4 and s.generated_negatives.shape[1] == 4  # no LR negative
    gen = torch.cat((s.generated_positives, s.negatives), 1)
    assert torch.allclose(gen * 255, (gen * 255).round(), atol=1e-4)  # 8-bit grid
    assert s.stacked.min() >= 0 and s.stacked.max() <= 1


def test_paper_negatives_use_their_own_kernels() -> None:
    # Unquantised, negative j of image b must be exactly kornia's blur with the (b, j) draw.
    cfg = MethodConfig(quantize=False)
    hr = _images(3, h=24, w=24)
    s = make_samples(hr, None, cfg, generator=torch.Generator().manual_seed(5))
    for b in range(3):
        for j in range(4):
            k = s.params.blur_size[b, j]
            ref = kornia.filters.gaussian_blur2d(hr[b : b + 1], (int(k[0]), int(k[1])), s.params.blur_sigma[b, j : j + 1])
            assert torch.allclose(s.negatives[b, j : j + 1], ref, atol=1e-6, rtol=0)
        ref = kornia.enhance.sharpness(hr[b].expand(4, -1, -1, -1), s.params.sharpen_factor[b])
        assert torch.equal(s.generated_positives[b], ref)


def test_released_samples_lr_negative_and_rcan_variant() -> None:
    hr = _images(2, h=24, w=24)
    lr = _images(2, h=6, w=6, seed=1)
    s = make_samples(hr, lr, MethodConfig.preset("released"), generator=torch.Generator().manual_seed(0))
    assert s.positives.shape[1] == 4 and s.negatives.shape[1] == 4  # GT + 3 / LR + 3 (docs/method.md §1.1)
    assert torch.equal(s.negatives[:, 0], upsample_lr(lr, (24, 24)))  # unquantised LR negative
    # one kernel per negative index for the whole batch: the same blur of identical images is identical
    twins = make_samples(hr[:1].expand(2, -1, -1, -1), lr, MethodConfig.preset("released"),
                         generator=torch.Generator().manual_seed(0))
    assert torch.equal(twins.generated_negatives[0], twins.generated_negatives[1])
    rcan = make_samples(hr, lr, MethodConfig.preset("released-rcan"), generator=torch.Generator().manual_seed(0))
    assert rcan.positives.shape[1] == 1 and torch.equal(rcan.positives[:, 0], hr)  # GT only (docs/method.md §1.1)
    assert rcan.generated_positives.shape[1] == 0
    with pytest.raises(PCLError, match="lr is None"):
        make_samples(hr, None, MethodConfig.preset("released"), generator=torch.Generator())


def test_samples_are_seeded_by_the_generator() -> None:
    hr = _images(2, h=24, w=24)
    cfg = MethodConfig()
    a = make_samples(hr, None, cfg, generator=torch.Generator().manual_seed(7))
    b = make_samples(hr, None, cfg, generator=torch.Generator().manual_seed(7))
    c = make_samples(hr, None, cfg, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a.stacked, b.stacked)
    assert not torch.equal(a.stacked, c.stacked)


def test_no_generated_negatives_leaves_the_lr_input_as_the_only_negative() -> None:
    # Tables IV config 4 / VI pos0-neg0: the released code without --use_aug uses N = [LR up]
    # (docs/method.md §0 step 2), i.e. K_N = 0 generated negatives beside the LR input.
    hr = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    lr = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(2))
    cfg = MethodConfig.from_dict({"preset": "paper", "num_positives": 0, "num_negatives": 0, "lr_negative": True})
    s = make_samples(hr, lr, cfg, generator=torch.Generator().manual_seed(0))
    assert s.positives.shape == (2, 1, 3, 16, 16) and torch.equal(s.positives[:, 0], hr)
    assert s.negatives.shape == (2, 1, 3, 16, 16)
    torch.testing.assert_close(s.negatives[:, 0], upsample_lr(lr, (16, 16)))
    with pytest.raises(PCLError, match="num_negatives"):
        MethodConfig.from_dict({"preset": "paper", "num_negatives": 0, "lr_negative": False})
