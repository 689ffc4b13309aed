"""NIQE on degenerate data: each MATLAB semantic of computequality.m / estimateaggdparam.m pinned
on a small synthetic case whose expected value is derived from MATLAB's rules (said per test)."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.special import gamma

from pcl.errors import PCLError
from pcl.metrics.niqe import aggd_fit, aggd_tables, alpha_index, load_model, niqe, niqe_distance, niqe_features
from pcl.metrics.niqe import _circular_product
from pcl.metrics.niqe_filter import fma, local_stats, window_means
from pcl.metrics.niqe_uncertainty import niqe_uncertainty

REPO = Path(__file__).resolve().parents[1]
G = [float(v) for v in load_model()["g"]]
ALPHA_COLUMNS = [0, 2, 6, 10, 14]  # computefeature: alpha of the coefficients, then of each product


def _exact_fma(a: float, b: float, c: float) -> float:
    # Fraction arithmetic is exact and float(Fraction) rounds once to nearest: a true fused multiply-add
    return float(Fraction(a) * Fraction(b) + Fraction(c))


def _taps(values: list[float], model: str) -> float:
    """Hand model of one 7-tap pass: ``fma``: acc = fma(g_k, x_k, acc); ``rounded``: acc + fl(g_k x_k)."""
    order = list(range(7))[::-1] if model.endswith("reverse") else list(range(7))
    acc = G[order[0]] * values[order[0]]
    for k in order[1:]:
        acc = _exact_fma(G[k], values[k], acc) if model.startswith("fma") else acc + G[k] * values[k]
    return acc


def _hand_mean(window: np.ndarray, model: str) -> float:
    """Separable 7x7 mean by hand: every column first (vertical pass), then the row of column sums."""
    return _taps([_taps([float(v) for v in window[:, c]], model) for c in range(7)], model)


def _grey(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8))[None, None]


def _textured_top(level: int) -> np.ndarray:
    # 192x192: random texture in rows 0..80 over the full width, the constant `level` below.  The
    # lower two blocks see only `level` at both scales (7x7 windows reach 3 rows up; imresize's
    # 8-tap kernel at scale 1/2 reaches 4 input rows), so every coefficient there is the same value
    img = np.full((192, 192), level, np.uint8)
    img[:81] = np.random.default_rng(7).integers(0, 256, (81, 192))
    return img


def test_fma_emulation_is_correctly_rounded() -> None:
    # expected: g*x + c rounded once, from exact rational arithmetic; includes near-total
    # cancellations (c = -g*x*(1 +- 2^-53)) where a product-then-add differs from a fused one
    rng = np.random.default_rng(3)
    for g in rng.uniform(-1, 1, 20) * 2.0 ** rng.integers(-20, 20, 20):
        x = rng.uniform(-300, 300, 64)
        c = np.where(rng.random(64) < 0.5, -g * x * (1 + rng.choice([0, 2**-53, -2**-53, 3 * 2**-54], 64)),
                     rng.uniform(-300, 300, 64))
        got = fma(float(g), torch.from_numpy(x), torch.from_numpy(c)).tolist()
        assert got == [_exact_fma(float(g), a, b) for a, b in zip(x.tolist(), c.tolist())]


def test_flat_window_sign_follows_fused_taps() -> None:
    # MATLAB's imfilter on a flat area behaves like one rounding per tap (fused multiply-add, see
    # docs/metrics.md).  Expected: sign(v - mu) for every level from the hand model above; the
    # model with rounded products gives another sign for 51 levels (23 is the first), so this
    # test tells the two apart.
    levels = torch.arange(256, dtype=torch.float64)[:, None, None].expand(256, 9, 9).contiguous()
    signs = {}
    for model in ("fma", "rounded"):
        mu, _ = local_stats(levels, G, model)
        got = torch.sign(levels[:, 4, 4] - mu[:, 4, 4]).tolist()
        assert got == [np.sign(v - _hand_mean(np.full((7, 7), v), model)) for v in range(256)]
        signs[model] = got
    differ = [v for v in range(256) if signs["fma"][v] != signs["rounded"][v]]
    assert len(differ) == 51 and differ[0] == 23
    # the levels the published MATLAB scores pin (I06: 248 above, 249 equal; baboon Y: 98 equal)
    assert (signs["fma"][248], signs["fma"][249], signs["fma"][98]) == (-1.0, 0.0, 0.0)


@pytest.mark.parametrize("model", ["fma", "fma-reverse", "rounded", "rounded-reverse"])
def test_symmetric_ramps_follow_the_tap_order(model: str) -> None:
    # a ramp a + b*j has its exact mean at the centre level, so only rounding decides the sign;
    # expected: the bit pattern of the hand model (columns first, taps in the model's order)
    for a, b in [(106, 1), (105, 2), (40, 3), (200, -4), (17, 1)]:
        ramp = np.tile(a + b * np.arange(7, dtype=np.float64), (7, 1))
        x = torch.from_numpy(np.pad(ramp, 3, mode="edge"))[None]  # only the centre pixel is used
        mu, _ = local_stats(x, G, model)
        assert float(mu[0, 6, 6]) == _hand_mean(ramp, model)


def _ppt3_crop() -> np.ndarray:
    rgb = np.asarray(Image.open(REPO / "resources" / "benchmarks" / "Set14" / "HR" / "ppt3.png").convert("RGB"))
    return rgb[:96, :160, 1].astype(np.float64)


def _noise_with_small_flat_square() -> np.ndarray:
    x = np.random.default_rng(2).integers(0, 256, (96, 160)).astype(np.float64)
    x[40:49, 60:69] = 23.0  # 9x9: the 3x3 centre pixels see a constant window
    return x


@pytest.mark.parametrize("make, many", [(_ppt3_crop, True), (_noise_with_small_flat_square, False)])
def test_sparse_recompute_equals_fused_filter_everywhere(make, many: bool) -> None:
    # local_stats filters fast and recomputes only where |x - mu| < 1e-9 (constant windows once
    # per level when there are many, window by window when few); expected: the fused filter
    # applied at every pixel (window_means on all 7x7 neighbourhoods), bit for bit where the sign
    # can change and within 1e-12 elsewhere (last-bit differences of non-flat windows)
    x = torch.from_numpy(make())[None]
    mu, mu2 = local_stats(x, G, "fma")
    padded = torch.nn.functional.pad(torch.stack([x, x * x], 1), (3, 3, 3, 3), mode="replicate")[0]
    patches = padded.unfold(1, 7, 1).unfold(2, 7, 1).reshape(2, -1, 7, 7)
    full = [window_means(patches[c], G, "fma").reshape(x.shape) for c in (0, 1)]
    flat = (x - full[0]).abs() < 1e-9
    assert (int(flat.sum()) * 64 > flat.numel()) == many and int(flat.sum()) >= 9
    assert torch.equal(mu[flat], full[0][flat]) and torch.equal(mu2[flat], full[1][flat])
    assert torch.allclose(mu, full[0], rtol=0, atol=1e-12) and torch.equal(torch.sign(x - mu), torch.sign(x - full[0]))


def test_replicate_padding_at_the_corner() -> None:
    # imfilter(..., 'replicate'): a single 1 at (1,1) of a zero image is copied into the 3 padded
    # rows above and columns left of it, so mu(1,1) = (g1+g2+g3+g4)^2 (zero padding: g4^2)
    x = torch.zeros((1, 10, 10), dtype=torch.float64)
    x[0, 0, 0] = 1.0
    mu, _ = local_stats(x, G, "fma")
    assert float(mu[0, 0, 0]) == pytest.approx(sum(G[:4]) ** 2, rel=1e-14)


def test_circshift_wraps_inside_each_block() -> None:
    # computefeature: structdis .* circshift(structdis, [dy dx]) on the block alone;
    # circshift(A, s) is numpy's roll(A, s) (rows down for dy = 1, columns left for dx = -1)
    b = torch.from_numpy(np.random.default_rng(1).normal(size=(2, 6, 6)))
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        expected = b.numpy() * np.roll(b.numpy(), (dy, dx), axis=(1, 2))
        assert np.array_equal(_circular_product(b, dy, dx).numpy(), expected)
    assert float(_circular_product(b, 1, -1)[0, 0, 5]) == float(b[0, 0, 5] * b[0, 5, 0])  # by hand


def test_flat_blocks_all_used_in_column_major_order() -> None:
    # level 128 is exact under the fused filter (mu == 128), so in the two lower blocks every
    # coefficient is 0: mean([]) is NaN for both sides, rhat = 0/0, min picks index 1 -> alpha = 0.2
    # and every beta is NaN.  blkproc + reshape give blocks column by column, so the flat ones are
    # rows 1 and 3 (row-major would be 2 and 3); sharpness selects nothing (4 rows, not 2)
    feat = niqe_features(_grey(_textured_top(128)))[0].numpy()
    assert feat.shape == (4, 36)
    for row in (1, 3):
        alphas = ALPHA_COLUMNS + [c + 18 for c in ALPHA_COLUMNS]
        assert np.all(feat[row, alphas] == 0.2)
        assert np.all(np.isnan(np.delete(feat[row], alphas)))
    assert np.all(np.isfinite(feat[[0, 2]]))


def test_one_signed_flat_block_keeps_its_finite_side() -> None:
    # level 248: the fused filter gives mu slightly above 248, so every coefficient of a flat block
    # is the same negative number: fit 1 has betal finite, betar = sqrt(mean([])) = NaN, so
    # (betal+betar)/2 is NaN; the products are all positive, so each product fit has betal NaN,
    # betar finite, meanparam NaN; every alpha is 0.2 (gammahat NaN -> rhatnorm NaN -> index 1)
    feat = niqe_features(_grey(_textured_top(248)))[0].numpy()
    for scale in (0, 18):
        row = feat[1, scale:scale + 18]
        assert np.all(row[ALPHA_COLUMNS] == 0.2) and np.isnan(row[1])
        for k in range(4):
            mean, betal, betar = row[3 + 4 * k: 6 + 4 * k]
            assert math.isnan(mean) and math.isnan(betal) and 0 < betar < 1e-12


def test_nanmean_keeps_partial_rows_and_nancov_drops_them() -> None:
    # expected by hand from the features: mu_d = column-wise mean ignoring NaN (the flat blocks'
    # alpha 0.2 and tiny betas count), cov_d from the 2 complete rows with N-1 = 1, and
    # sqrt(d pinv((cov_p+cov_d)/2) d') with MATLAB's pinv tolerance
    feat = niqe_features(_grey(_textured_top(248)))[0].numpy()
    complete = feat[~np.isnan(feat).any(1)]
    assert complete.shape[0] == 2
    mu_d = np.nanmean(feat, 0)
    cov_d = np.cov(complete, rowvar=False)
    model = np.load(REPO / "resources" / "niqe" / "niqe_pris_params.npz")
    a = (model["cov_pris_param"] + cov_d) / 2
    s = np.linalg.svd(a, compute_uv=False)
    d = model["mu_pris_param"].reshape(36) - mu_d
    expected = math.sqrt(d @ np.linalg.pinv(a, rcond=36 * np.spacing(s[0]) / s[0], hermitian=False) @ d)
    got = niqe(_textured_top(248))
    assert got == pytest.approx(expected, rel=1e-10)
    only_complete = np.mean(complete, 0)  # a plain mean over complete rows would give another score
    d2 = model["mu_pris_param"].reshape(36) - only_complete
    assert abs(math.sqrt(d2 @ np.linalg.pinv(a) @ d2) - got) > 1e-3


def test_crop_to_whole_blocks_happens_before_filtering() -> None:
    # computequality crops im to whole blocks first, so rows/columns past the last block never
    # reach the replicate padding: expected, the score of the cropped image, bit for bit
    img = np.random.default_rng(5).integers(0, 256, (200, 300), dtype=np.uint8)
    assert niqe(img) == niqe(np.ascontiguousarray(img[:192, :288]))
    changed = img.copy()
    changed[192:] = 0
    assert niqe(changed) == niqe(img)


def test_zero_spread_on_one_side_of_aggd() -> None:
    # x/0 follows IEEE, as in MATLAB.  (-1e-170)^2 underflows to 0, so leftstd = 0 and
    # gammahat = 0: rhatnorm = rhat = mean|v|^2 / mean(v^2) = 1 / (5/3) = 0.6 (nearest grid point);
    # mirrored, rightstd = 0: gammahat = Inf, rhatnorm = Inf/Inf = NaN -> alpha = 0.2 (index 1)
    tables = aggd_tables()
    alpha, betal, betar = aggd_fit(np.array([-1e-170, 1.0, 2.0]))
    assert alpha == tables["gam"][np.argmin((tables["r_gam"] - 0.6) ** 2)] and betal == 0.0
    alpha, betal, betar = aggd_fit(np.array([1e-170, -1.0, -2.0]))
    assert alpha == 0.2 and betar == 0.0
    assert betal == pytest.approx(math.sqrt(2.5) * math.sqrt(gamma(5) / gamma(15)), rel=1e-13)
    alpha, betal, betar = aggd_fit(np.zeros(10))  # mean of two empty selections: all NaN, index 1
    assert alpha == 0.2 and math.isnan(betal) and math.isnan(betar)


def test_alpha_index_first_minimum_for_huge_values() -> None:
    # MATLAB min((r_gam - x).^2) returns the first of equal minima.  For x = +-Inf, +-1e200 every
    # square is Inf; for large finite x (1e153, 1e12 ...) neighbouring squares round to the same
    # value, so the first of that run wins, not the nearest grid point.  Expected: numpy's argmin
    # (first minimum) over all 9801 squares, and index 0 for the all-Inf and NaN cases.
    r_gam = aggd_tables()["r_gam"]
    x = np.concatenate([np.logspace(-1, 300, 400), -np.logspace(-1, 300, 50), [0.75, 0.8, 1.3, 1e153, 1e12]])
    with np.errstate(over="ignore"):
        expected = np.argmin((r_gam[None, :] - x[:, None]) ** 2, axis=1)
    got = alpha_index(torch.from_numpy(x), torch.from_numpy(r_gam)).numpy()
    assert np.array_equal(got, expected)
    assert expected[-2] == 0 and 0 < expected[-1] < r_gam.size - 1  # both kinds of tie occur
    special = torch.tensor([math.inf, -math.inf, 1e200, math.nan], dtype=torch.float64)
    assert alpha_index(special, torch.from_numpy(r_gam)).tolist() == [0, 0, 0, 0]


def test_distance_matches_numpy_pinv_on_a_photo() -> None:
    # expected: the same formula in numpy (nanmean, cov of complete rows, pinv with MATLAB's
    # tolerance); the matrix's condition number is ~2e5, so both agree far below 1e-9
    rgb = np.asarray(Image.open(REPO / "resources" / "benchmarks" / "Set5" / "HR" / "bird.png").convert("RGB"))
    feat = niqe_features(torch.from_numpy(rgb).permute(2, 0, 1)[None].contiguous())
    f = feat[0].numpy()
    model = np.load(REPO / "resources" / "niqe" / "niqe_pris_params.npz")
    a = (model["cov_pris_param"] + np.cov(f[~np.isnan(f).any(1)], rowvar=False)) / 2
    d = model["mu_pris_param"].reshape(36) - np.nanmean(f, 0)
    assert float(niqe_distance(feat)[0]) == pytest.approx(math.sqrt(d @ np.linalg.pinv(a) @ d), rel=1e-12)


def test_uncertainty_is_zero_without_flat_windows() -> None:
    # random noise has no window whose mean equals its centre: every model gives the same bits
    img = np.random.default_rng(9).integers(0, 256, (192, 192), dtype=np.uint8)
    u = niqe_uncertainty(img)
    assert u.score == niqe(img) and u.spread == 0.0 and u.blocks_affected == 0 and u.blocks == 4
    assert set(u.alternatives.values()) == {u.score} and u.ideal == u.score


def test_uncertainty_sees_a_level_the_models_disagree_on() -> None:
    # level 23: fused taps give mu == 23 (coefficients 0), rounded products give mu != 23
    # (by hand, test_flat_window_sign_follows_fused_taps); every block holds flat level-23 rows
    # (the upper ones 15), so all 4 blocks' fits differ
    u = niqe_uncertainty(_textured_top(23))
    assert u.blocks_affected == 4 and u.spread > 1e-3
    assert u.alternatives["rounded"] != u.score and u.alternatives["fma-reverse"] == u.score


@pytest.mark.slow
def test_flat_window_sign_is_ill_conditioned_on_a_photo() -> None:
    # perturbation analysis on Set14 ppt3 (Y of YCbCr): the fused and the rounded filters differ
    # by a few units in the last place of mu (relative < 1e-15), yet the scores differ by ~5e-2
    # (measured 5.4e-2): a relative condition number above 1e13, far beyond what float64 pins
    rgb = np.asarray(Image.open(REPO / "resources" / "benchmarks" / "Set14" / "HR" / "ppt3.png").convert("RGB"))
    u = niqe_uncertainty(rgb, convention="niqe-y")
    assert abs(u.alternatives["rounded"] - u.score) > 1e-2 and u.spread >= abs(u.alternatives["rounded"] - u.score)
    x = torch.from_numpy(rgb[:96, :96, 0].astype(np.float64))[None]
    mu_f, _ = local_stats(x, G, "fma")
    mu_r, _ = local_stats(x, G, "rounded")
    rel = float(((mu_f - mu_r).abs() / mu_r.abs().clamp(min=1)).max())
    assert 0 < rel < 1e-15


def test_unknown_arithmetic_is_refused() -> None:
    with pytest.raises(PCLError, match="'exact'.*fma, fma-reverse, rounded"):
        niqe_features(_grey(_textured_top(23)), arithmetic="exact")


def test_uncertainty_of_an_image_without_a_score() -> None:
    # a constant image has no complete feature row, so no score under any model (MATLAB's pinv
    # fails there): the spread is NaN too, not 0
    u = niqe_uncertainty(np.full((96, 96), 23, np.uint8))
    assert math.isnan(u.score) and math.isnan(u.spread) and u.blocks == 1
