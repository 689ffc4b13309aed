"""PSNR/SSIM under the two evaluation protocols (docs/protocols.md §1-§5; docs/method.md §7 points there).

Expected numbers are hand-derived from the formulas in docs/protocols.md §2 (Y = 16 + (65.481 R + 128.553 G
+ 24.966 B)/255, PSNR = 10 log10(255^2/MSE), SSIM with C1 = (0.01*255)^2, C2 = (0.03*255)^2),
or come from the independent float64 numpy/scipy reference (pcl.metrics.reference), or from
scikit-image's ``structural_similarity`` plus a numpy PSNR -- what SR users run, code we share
nothing with.  All paths are float64; the agreement is ~1e-15, the tolerances below are looser.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from pcl.errors import PCLError
from pcl.metrics import (
    PROTOCOLS,
    check_protocol,
    evaluate_pair,
    min_size,
    prepare_pair,
    psnr_ssim_batch,
    rgb_to_y,
)
import pcl.metrics.ssim_strips as scorer
from pcl.metrics.ssim_filter import gaussian_filter_valid
from pcl.metrics.reference import reference_psnr_ssim
from pcl.resources import resource_path

C1 = (0.01 * 255) ** 2  # docs/protocols.md §2
# Spec §7.2: replicating a gray image and taking Y compresses differences by 219/255.
GRAY_SHIFT_DB = 20 * math.log10(255 / 219)


def _structured(rng: np.random.Generator, h: int, w: int, c: int) -> np.ndarray:
    """Smooth ramps plus noise, uint8: local variances vary, so SSIM is not degenerate."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = 127 + 60 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + 0.8 * (xx - yy)
    chans = [base + 25 * k + rng.normal(0, 12, (h, w)) for k in range(c)]
    img = np.clip(np.stack(chans, axis=2), 0, 255).round().astype(np.uint8)
    return img[:, :, 0] if c == 1 else img


def _degrade(rng: np.random.Generator, img: np.ndarray, sigma: float = 6.0) -> np.ndarray:
    noisy = img.astype(np.float64) + rng.normal(0, sigma, img.shape)
    return np.clip(noisy, 0, 255).round().astype(np.uint8)


def _to_channels(img: np.ndarray, c: int) -> np.ndarray:
    """Gray -> replicated RGB, or RGB -> its first channel, for mixed channel-count cases."""
    if c == 3:
        return img if img.ndim == 3 else np.repeat(img[:, :, None], 3, axis=2)
    return img if img.ndim == 2 else img[:, :, 0]


def _bicubic_x4(hr: Image.Image) -> np.ndarray:
    """A realistic SR stand-in: PIL bicubic down x4 then up x4 (sizes are multiples of 4)."""
    w, h = hr.size
    lr = hr.resize((w // 4, h // 4), Image.Resampling.BICUBIC)
    return np.asarray(lr.resize((w, h), Image.Resampling.BICUBIC))


# --- protocol names and sizes ---------------------------------------------------------------


def test_protocol_names() -> None:
    assert PROTOCOLS == ("matlab", "authors")
    assert check_protocol("authors") == "authors"
    with pytest.raises(PCLError, match="matlab, authors"):
        check_protocol("cv2")


def test_min_size_is_two_shaves_plus_window() -> None:
    # 2*scale shaved pixels + one 11-px SSIM window (docs/protocols.md §2).
    assert min_size(4) == 19
    assert min_size(2) == 15
    with pytest.raises(PCLError, match="positive integer"):
        min_size(0)


def test_rgb_to_y_pure_colours() -> None:
    # Hand values: 16 + coefficient (for 255 in one channel), 16 + 219 for white.
    img = torch.tensor(
        [[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]], dtype=torch.float64
    ).T.reshape(1, 3, 1, 5)
    y = rgb_to_y(img).flatten().tolist()
    assert y == pytest.approx([16.0, 235.0, 81.481, 144.553, 40.966], abs=1e-12)
    with pytest.raises(PCLError, match="N, 3, H, W"):
        rgb_to_y(torch.zeros(1, 1, 4, 4))


def test_mod_crop_and_shave_sizes() -> None:
    # HR 50x43 at x4 -> mod-crop 48x40 -> shave 4 per side -> 40x32.
    hr = torch.zeros(2, 3, 50, 43, dtype=torch.uint8)
    sr = torch.zeros(2, 3, 48, 40, dtype=torch.uint8)
    x, y = prepare_pair(sr, hr, scale=4, protocol="matlab")
    assert x.shape == y.shape == (2, 1, 40, 32)
    assert x.dtype == y.dtype == torch.float64
    # The shave must remove the border rows/columns, not only shrink the shape.
    hr_marked = torch.full((1, 1, 50, 43), 7, dtype=torch.uint8)
    hr_marked[..., 4:44, 4:36] = 200
    _, y = prepare_pair(torch.zeros(1, 1, 48, 40, dtype=torch.uint8), hr_marked, scale=4,
                        protocol="matlab")
    assert torch.all(y == 200)


def test_size_mismatch_names_both_sizes() -> None:
    hr = np.zeros((50, 43, 3), np.uint8)
    with pytest.raises(PCLError, match=r"50x43.*48x40"):
        evaluate_pair(hr, hr, scale=4)  # SR not mod-cropped


def test_too_small_images_are_rejected() -> None:
    ok = np.zeros((20, 20), np.uint8)  # 20 >= min_size(4) = 19
    assert evaluate_pair(ok, ok, scale=4)[1] == pytest.approx(1.0)
    small = np.zeros((16, 40), np.uint8)
    with pytest.raises(PCLError, match="at least 19"):
        evaluate_pair(small, small, scale=4)
    # 19 rows mod-crop to 16 at x4: too small although 19 == min_size(4).
    hr = np.zeros((19, 40), np.uint8)
    with pytest.raises(PCLError, match="mod-cropped 16x40"):
        evaluate_pair(hr[:16], hr, scale=4)


def test_input_errors() -> None:
    img = np.zeros((24, 24, 3), np.uint8)
    with pytest.raises(PCLError, match="unknown evaluation protocol"):
        evaluate_pair(img, img, scale=2, protocol="ycbcr")
    with pytest.raises(PCLError, match=r"\(H, W, 3\)"):
        evaluate_pair(np.zeros((24, 24, 2), np.uint8), img, scale=2)
    with pytest.raises(PCLError, match="dtype"):
        evaluate_pair(img.astype(np.int32), img, scale=2)
    with pytest.raises(PCLError, match="batch"):
        psnr_ssim_batch(torch.zeros(2, 3, 24, 24), torch.zeros(1, 3, 24, 24), scale=2)
    if not torch.cuda.is_available():
        with pytest.raises(PCLError, match="CUDA"):
            evaluate_pair(img, img, scale=2, device="cuda")


# --- hand-derived values ----------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_psnr_of_one_grey_level_offset(protocol: str) -> None:
    rng = np.random.default_rng(1)
    hr = rng.integers(0, 255, (40, 36), dtype=np.uint8)  # <= 254 so +1 does not clip
    sr = hr + np.uint8(1)
    psnr, _ = evaluate_pair(sr, hr, scale=2, protocol=protocol)
    # matlab scores gray values: MSE = 1 -> 10 log10(255^2) = 48.1308 dB.  authors scores Y of the
    # replicated gray image: offset 219/255 -> +20 log10(255/219) (docs/protocols.md §5).
    expected = 10 * math.log10(255**2) + (GRAY_SHIFT_DB if protocol == "authors" else 0.0)
    assert round(10 * math.log10(255**2), 4) == 48.1308
    assert psnr == pytest.approx(expected, abs=1e-9)
    assert reference_psnr_ssim(sr, hr, scale=2, protocol=protocol)[0] == pytest.approx(
        expected, abs=1e-9
    )


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_identical_images(protocol: str) -> None:
    img = _structured(np.random.default_rng(2), 33, 30, 3)
    psnr, ssim = evaluate_pair(img, img, scale=3, protocol=protocol)
    assert psnr == math.inf
    assert ssim == pytest.approx(1.0, abs=1e-12)


def test_ssim_of_two_constant_images() -> None:
    # Constant planes: all local variances/covariance are 0, so SSIM = (2 a b + C1)/(a^2 + b^2 + C1)
    # exactly (the contrast-structure factor is C2/C2); MSE = 10^2.
    a, b = 110.0, 100.0
    sr = np.full((30, 28), a, np.uint8)
    hr = np.full((30, 28), b, np.uint8)
    psnr, ssim = evaluate_pair(sr, hr, scale=2, protocol="matlab")
    assert ssim == pytest.approx((2 * a * b + C1) / (a * a + b * b + C1), abs=1e-12)
    assert psnr == pytest.approx(10 * math.log10(255**2 / 100), abs=1e-9)


def test_float_sr_is_quantised_like_a_saved_png() -> None:
    # clamp(0, 255) then round half to even (torch.round, as EDSR's quantize): -3 -> 0,
    # 100.5 -> 100, 101.5 -> 102, 254.6 -> 255, 300 -> 255.
    values = torch.tensor([-3.0, 100.5, 101.5, 254.6, 300.0], dtype=torch.float32)
    sr = values.repeat(25 * 5).reshape(1, 1, 25, 25)
    hr = torch.zeros(1, 1, 25, 25, dtype=torch.uint8)
    x, y = prepare_pair(sr, hr, scale=1, protocol="matlab")
    row = x[0, 0, 0, :5].tolist()  # shave 1 -> column 1.. of the repeating pattern
    assert sorted(set(x.flatten().tolist())) == [0.0, 100.0, 102.0, 255.0]
    assert row == [100.0, 102.0, 255.0, 255.0, 0.0]
    assert torch.all(y == 0)
    # A float SR scores exactly like its rounded uint8 PNG.
    rng = np.random.default_rng(3)
    hr_np = _structured(rng, 36, 36, 3)
    sr_float = hr_np.astype(np.float32) + rng.normal(0, 4, hr_np.shape).astype(np.float32)
    sr_png = np.clip(sr_float, 0, 255).round().astype(np.uint8)
    assert evaluate_pair(sr_float, hr_np, scale=3) == evaluate_pair(sr_png, hr_np, scale=3)


# --- agreement with the independent reference -------------------------------------------------


@pytest.mark.parametrize("shape", [(11, 11), (12, 40), (45, 43), (75, 106)])
def test_gaussian_filter_matches_2d_valid_correlation(shape: tuple[int, int]) -> None:
    # The blocked separable filter must equal MATLAB filter2(fspecial('gaussian', 11, 1.5), z,
    # 'valid') at any size: smallest (one output), thin, and sizes that are not whole blocks.
    from scipy.signal import correlate2d

    ax = np.arange(-5, 6)
    win = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * 1.5**2))
    win /= win.sum()
    z = np.random.default_rng(6).uniform(0, 255, (2, *shape))
    got = gaussian_filter_valid(torch.from_numpy(z))
    assert got.shape == (2, shape[0] - 10, shape[1] - 10)
    for i in range(2):
        expected = correlate2d(z[i], win, mode="valid")
        assert np.abs(got[i].numpy() - expected).max() < 1e-10


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("hr_c,sr_c", [(1, 1), (1, 3), (3, 3), (3, 1)])
@pytest.mark.parametrize("sr_float", [False, True])
def test_torch_matches_reference(protocol: str, hr_c: int, sr_c: int, sr_float: bool) -> None:
    rng = np.random.default_rng(10 * hr_c + sr_c)
    hr = _structured(rng, 47, 38, hr_c)  # 47x38 mod-crops to 45x36 at x3
    sr = _to_channels(_degrade(rng, _structured(rng, 45, 36, 3)), sr_c)
    if sr_float:
        sr = sr.astype(np.float64) + rng.uniform(-0.7, 0.7, sr.shape)
    got = evaluate_pair(sr, hr, scale=3, protocol=protocol)
    ref = reference_psnr_ssim(sr, hr, scale=3, protocol=protocol)
    assert math.isfinite(got[0]) and 0.0 < got[1] < 1.0
    assert got[0] == pytest.approx(ref[0], abs=1e-9)
    assert got[1] == pytest.approx(ref[1], abs=1e-9)


@pytest.mark.parametrize("channels", [1, 3])
def test_batch_equals_one_at_a_time(channels: int) -> None:
    rng = np.random.default_rng(4)
    hrs = [_structured(rng, 40, 44, channels) for _ in range(3)]
    srs = [_degrade(rng, h, sigma=3.0 + 4 * i) for i, h in enumerate(hrs)]

    def batch(imgs: list[np.ndarray]) -> torch.Tensor:
        t = torch.from_numpy(np.stack(imgs))
        return t.unsqueeze(1) if channels == 1 else t.permute(0, 3, 1, 2)

    psnr, ssim = psnr_ssim_batch(batch(srs), batch(hrs), scale=4, protocol="authors")
    assert psnr.shape == ssim.shape == (3,)
    for i in range(3):
        single = evaluate_pair(srs[i], hrs[i], scale=4, protocol="authors")
        assert psnr[i].item() == pytest.approx(single[0], abs=1e-12)
        assert ssim[i].item() == pytest.approx(single[1], abs=1e-12)
    assert psnr[0] > psnr[1] > psnr[2]  # more noise, lower PSNR


@pytest.mark.parametrize("rows,workers", [(16, 1), (16, 2), (16, 3), (10_000, 1)])
def test_strips_and_workers_match_reference(monkeypatch: pytest.MonkeyPatch, rows: int, workers: int) -> None:
    # The scorer cuts the image into strips of STRIP_ROWS SSIM rows (each strip takes over the
    # 10 halo rows of the one before) and hands contiguous runs of strips to worker threads.
    # Small strips (ragged last strip, width not a multiple of the block) with 1-3 workers, and
    # the whole image as one strip (what CUDA runs), must all give the reference's numbers.
    monkeypatch.setattr(scorer, "STRIP_ROWS", rows)
    monkeypatch.setattr(scorer, "STRIP_PIXELS", 0)  # strips of exactly STRIP_ROWS rows
    monkeypatch.setattr(scorer, "TEAM_STRIP_PIXELS", 0)
    monkeypatch.setattr(scorer, "STRIP_WORKERS", workers)
    rng = np.random.default_rng(7)
    hr = _structured(rng, 132, 58, 3)  # shaved at x2: 128x54 -> 118 SSIM rows = 8 strips
    sr = _degrade(rng, hr, sigma=5.0)
    for protocol in PROTOCOLS:
        got = evaluate_pair(sr, hr, scale=2, protocol=protocol)
        ref = reference_psnr_ssim(sr, hr, scale=2, protocol=protocol)
        assert got == pytest.approx(ref, abs=1e-9)


@pytest.mark.parametrize("row_block,column_block", [(8, 24), (16, 16), (8, 16), (16, 48)])
def test_filter_blocks_match_reference(monkeypatch: pytest.MonkeyPatch, row_block: int, column_block: int) -> None:
    # The banded filter's block sizes are a speed choice only: every pair must give the
    # reference's numbers, with a width that is no multiple of the column block (58 - 4 = 54 px).
    import pcl.metrics.ssim_filter as banded

    for module in (banded, scorer):
        monkeypatch.setattr(module, "ROW_BLOCK", row_block)
        monkeypatch.setattr(module, "COLUMN_BLOCK", column_block)
    monkeypatch.setattr(scorer, "STRIP_ROWS", 48)
    monkeypatch.setattr(scorer, "STRIP_PIXELS", 0)
    monkeypatch.setattr(scorer, "TEAM_STRIP_PIXELS", 0)
    rng = np.random.default_rng(11)
    hr = _structured(rng, 132, 58, 3)
    sr = _degrade(rng, hr, sigma=5.0)
    for protocol in PROTOCOLS:
        got = evaluate_pair(sr, hr, scale=2, protocol=protocol)
        ref = reference_psnr_ssim(sr, hr, scale=2, protocol=protocol)
        assert got == pytest.approx(ref, abs=1e-9)
    maps = torch.from_numpy(rng.normal(size=(2, 40, 37)))
    from scipy.ndimage import correlate

    window = np.outer(*(2 * [np.exp(-((np.arange(11) - 5) ** 2) / (2 * 1.5**2))]))
    window /= window.sum()
    for m in range(2):  # scipy's 'valid' part of the same correlation (an independent filter)
        expected = correlate(maps[m].numpy(), window, mode="constant")[5:-5, 5:-5]
        assert np.abs(gaussian_filter_valid(maps)[m].numpy() - expected).max() < 1e-12


def test_worker_threads_leave_torch_threads_alone() -> None:
    # The strip workers run torch single-threaded; that must not leak into the caller's setting
    # nor into threads created afterwards.
    import threading

    before = torch.get_num_threads()
    img = _structured(np.random.default_rng(8), 200, 60, 3)
    evaluate_pair(_degrade(np.random.default_rng(9), img), img, scale=2)
    assert torch.get_num_threads() == before
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert seen == [before]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu() -> None:
    rng = np.random.default_rng(5)
    hr = _structured(rng, 64, 80, 3)
    sr = _degrade(rng, hr)
    cpu = evaluate_pair(sr, hr, scale=4, device="cpu")
    gpu = evaluate_pair(sr, hr, scale=4, device="cuda")
    assert gpu == pytest.approx(cpu, abs=1e-9)


# --- real images: the two conventions on a gray GT (docs/protocols.md §5) --------------------------------


@pytest.fixture(scope="module")
def bridge() -> tuple[np.ndarray, np.ndarray]:
    img = Image.open(resource_path("benchmarks", "Set14", "HR", "bridge.png"))
    hr = np.asarray(img)
    return _bicubic_x4(img), hr


def test_bridge_is_single_channel(bridge: tuple[np.ndarray, np.ndarray]) -> None:
    # Spec §7.2 / EDSR-PyTorch issue #69: Set14 bridge ships as a gray PNG.
    sr, hr = bridge
    assert hr.ndim == 2 and hr.shape == (512, 512) and sr.shape == hr.shape


def test_bridge_protocol_shift(bridge: tuple[np.ndarray, np.ndarray]) -> None:
    sr, hr = bridge
    matlab = evaluate_pair(sr, hr, scale=4, protocol="matlab")
    authors = evaluate_pair(sr, hr, scale=4, protocol="authors")
    # Same gray error, Y-compressed by 219/255 under authors: +1.3219 dB exactly (docs/protocols.md §5).
    assert round(GRAY_SHIFT_DB, 4) == 1.3219
    assert authors[0] - matlab[0] == pytest.approx(GRAY_SHIFT_DB, abs=1e-9)
    # Bicubic x4 on bridge lands in the low-to-mid 20s dB (Set14 bicubic mean is ~26 dB).
    assert 20.0 < matlab[0] < 30.0
    # SSIM also moves, because C1, C2 are not rescaled with the 219/255 compression (docs/protocols.md §5).
    assert abs(authors[1] - matlab[1]) > 1e-3
    for protocol, got in (("matlab", matlab), ("authors", authors)):
        ref = reference_psnr_ssim(sr, hr, scale=4, protocol=protocol)
        assert got == pytest.approx(ref, abs=1e-9)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_bridge_rgb_sr_scores_like_gray_sr(
    bridge: tuple[np.ndarray, np.ndarray], protocol: str
) -> None:
    # An SR saved as 3 identical channels: under matlab (Y - 16) * 255/219 gives back g exactly
    # (65.481 + 128.553 + 24.966 = 219); under authors both sides are Y of replicated gray.
    sr, hr = bridge
    gray = evaluate_pair(sr, hr, scale=4, protocol=protocol)
    rgb = evaluate_pair(_to_channels(sr, 3), hr, scale=4, protocol=protocol)
    assert rgb == pytest.approx(gray, abs=1e-9)


def test_rgb_gt_protocols_agree() -> None:
    # For 3-channel GT the two scripts are identical (docs/protocols.md §5).
    img = Image.open(resource_path("benchmarks", "Set5", "HR", "butterfly.png"))
    hr = np.asarray(img)
    sr = _bicubic_x4(img)
    assert hr.shape == (256, 256, 3)
    matlab = evaluate_pair(sr, hr, scale=4, protocol="matlab")
    assert evaluate_pair(sr, hr, scale=4, protocol="authors") == matlab
    assert matlab == pytest.approx(reference_psnr_ssim(sr, hr, scale=4), abs=1e-9)


# --- real images: cross-check with scikit-image ----------------------------------------------


@pytest.mark.parametrize("name", ["baby", "bird", "butterfly", "head", "woman"])
def test_matches_skimage_on_set5(name: str) -> None:
    # What SR users run for Y PSNR/SSIM: numpy luma (MATLAB rgb2ycbcr coefficients, unrounded),
    # numpy PSNR and skimage.metrics.structural_similarity with the Wang et al. settings.
    # skimage filters the whole plane (mode 'reflect', Gaussian truncated at
    # int(3.5 * 1.5 + 0.5) = 5 px, i.e. 11 taps) and averages after cropping
    # (win_size - 1) // 2 = 5 px per side: exactly our 11x11 'valid' region.  Measured
    # agreement on these five images (skimage 0.26): <= 3.6e-15 dB and <= 1.0e-15 SSIM; the
    # assertion uses the harness's budget, 1e-6.
    skm = pytest.importorskip("skimage.metrics")
    img = Image.open(resource_path("benchmarks", "Set5", "HR", f"{name}.png"))
    hr = np.asarray(img)
    sr = _bicubic_x4(img)
    coeffs = np.array([65.481, 128.553, 24.966])
    y_sr, y_hr = ((a[4:-4, 4:-4].astype(np.float64) @ coeffs) / 255.0 + 16.0 for a in (sr, hr))
    psnr = 10 * np.log10(255.0**2 / np.mean((y_sr - y_hr) ** 2))
    ssim = skm.structural_similarity(y_sr, y_hr, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, data_range=255)
    got = evaluate_pair(sr, hr, scale=4)
    assert 20.0 < got[0] < 40.0 and 0.5 < got[1] < 1.0  # a real bicubic x4 result
    assert got[0] == pytest.approx(psnr, abs=1e-6)
    assert got[1] == pytest.approx(ssim, abs=1e-6)
