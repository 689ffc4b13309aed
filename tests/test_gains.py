"""Gains with intervals, their statistics on hand-made cases, and the verdict on the released logs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pcl.errors import PCLError
from pcl.report.gains import compute_gains, recompute_means
from pcl.report.stats import bootstrap_interval, gain_stats, holm, wilcoxon_p


def test_constant_gain_has_a_zero_width_interval() -> None:
    low, high = bootstrap_interval(np.full(14, 0.05))
    assert low == pytest.approx(0.05, abs=1e-15) and high == pytest.approx(0.05, abs=1e-15)
    s = gain_stats(np.full(14, 0.05))
    assert s.improved == 14 and s.mean_gain == pytest.approx(0.05)


def test_symmetric_gains_give_an_interval_around_zero() -> None:
    g = np.concatenate([np.linspace(0.01, 0.3, 50), -np.linspace(0.01, 0.3, 50)])
    low, high = bootstrap_interval(g)
    assert low < 0 < high and abs(low + high) < 0.02  # centred on the mean 0 up to resampling noise
    assert wilcoxon_p(g) == pytest.approx(1.0)  # ranks of + and - are identical: W at its null centre


def test_wilcoxon_equals_scipy_documentation_example() -> None:
    # scipy.stats.wilcoxon docstring (the Cushny-Peebles style example of differences):
    # d = [6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75] -> statistic 24, p = 0.041259765625 (exact).
    d = np.array([6, 8, 14, 16, 23, 24, 28, 29, 41, -48, 49, 56, 60, -67, 75], dtype=float)
    assert wilcoxon_p(d) == pytest.approx(0.041259765625, abs=1e-12)
    assert wilcoxon_p(np.zeros(5)) == 1.0


def test_holm_textbook_example() -> None:
    # Holm (1979) step-down by hand: sorted p 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04,
    # made monotone: 0.02, 0.03, 0.06, 0.06; returned in the input order.
    assert holm([0.01, 0.04, 0.03, 0.005]).tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    out = holm([0.5, math.nan, 0.6])
    assert out[0] == pytest.approx(1.0) and math.isnan(out[1]) and out[2] == pytest.approx(1.0)


def _rows(experiment, method, values, names=None, tier="mini", seed=""):
    names = names or [f"img_{i:03d}" for i in range(len(values))]
    return pd.DataFrame({
        "tier": tier, "experiment": experiment, "backbone": "edsr-s", "method": method, "dataset": "Set14",
        "image": names, "scale": 4, "protocol": "matlab", "psnr": values, "ssim": 0.8, "height": 1, "width": 1,
        "channels": 3, "seed": seed, "run_id": "", "niqe": [5.0 - v / 100 for v in values],
    })


def test_gains_pair_by_normalised_name_and_flip_lower_is_better() -> None:
    pcl = _rows("edsr-s-pcl", "pcl", [30.1, 28.2, 27.0])
    ctrl = _rows("edsr-s-control", "control", [27.1, 30.0, 28.0], names=["IMG000", "img001", "img002"])[::-1]
    frame = compute_gains(pd.concat([pcl, ctrl], ignore_index=True), draws=500)
    psnr = frame[frame["metric"] == "psnr"].iloc[0]
    # pairs by name whatever the order: img_000 30.1 vs IMG000 27.1 (+3.0), img_001 28.2 vs 30.0 (-1.8), img_002 27.0 vs 28.0 (-1.0)
    assert psnr["comparison"] == "edsr-s-pcl vs edsr-s-control" and psnr["kind"] == "vs control"
    assert psnr["mean_gain"] == pytest.approx((3.0 - 1.8 - 1.0) / 3) and psnr["improved"] == 1
    niqe = frame[frame["metric"] == "niqe"].iloc[0]
    assert niqe["mean_gain"] == pytest.approx(psnr["mean_gain"] / 100)  # lower NIQE is a positive gain
    assert recompute_means(pd.concat([pcl, ctrl], ignore_index=True), frame) == []
    broken = frame.copy()
    broken.loc[0, "mean_gain"] += 0.01
    assert recompute_means(pd.concat([pcl, ctrl], ignore_index=True), broken)


def test_different_image_sets_name_the_missing_images() -> None:
    pcl = _rows("edsr-s-pcl", "pcl", [30.1, 28.2, 27.0])
    ctrl = _rows("edsr-s-control", "control", [30.0, 28.0], names=["img_000", "img_001"])
    with pytest.raises(PCLError, match="only in the \\+PCL rows: img002"):
        compute_gains(pd.concat([pcl, ctrl], ignore_index=True), draws=100)


def test_seeds_are_averaged_per_image() -> None:
    a = pd.concat([_rows("edsr-s-pcl", "pcl", [30.0, 28.0], seed=1), _rows("edsr-s-pcl", "pcl", [30.2, 28.4], seed=2)])
    b = _rows("edsr-s-baseline", "baseline", [30.0, 28.0], seed=1)
    rec = compute_gains(pd.concat([a, b], ignore_index=True), draws=100).iloc[0]
    assert rec["mean_gain"] == pytest.approx(0.15) and rec["n_seeds"] == 2
    assert rec["seed_sd"] == pytest.approx(np.std([29.0, 29.3], ddof=1))


@pytest.fixture(scope="module")
def log_rows(tmp_path_factory) -> pd.DataFrame:
    from pcl.cli import main
    from pcl.report.results import read_results

    out = tmp_path_factory.mktemp("logs")
    assert main(["ingest-logs", "--logs-dir", "resources/reference/released_logs", "--out-dir", str(out / "reported")]) == 0
    return read_results(sorted(out.rglob("*.csv")))


def test_released_log_gains_equal_the_hand_made_table(log_rows: pd.DataFrame) -> None:
    # docs/method.md §8.2 (computed by hand from the logs when they were first audited): PSNR gains per set and the
    # images improved of +PCL vs official, in the order Set5, Set14, B100, Urban100, Manga109.
    expected = {
        "edsr-l": ([0.039, 0.024, 0.015, 0.062, 0.163], [4, 12, 66, 79, 102]),
        "rcan": ([0.058, 0.042, 0.030, 0.093, 0.213], [4, 10, 79, 74, 98]),
        "han": ([0.064, 0.023, 0.013, 0.107, 0.005], [4, 9, 65, 77, 44]),
        "nlsn": ([0.125, 0.115, 0.064, 0.157, 0.246], [4, 13, 94, 93, 109]),
    }
    frame = compute_gains(log_rows, draws=200)
    psnr = frame[frame["metric"] == "psnr"]
    for backbone, (gains, improved) in expected.items():
        rows = psnr[psnr["backbone"] == backbone].set_index("dataset").loc[["Set5", "Set14", "B100", "Urban100", "Manga109"]]
        assert rows["mean_gain"].round(3).tolist() == pytest.approx(gains, abs=6e-4), backbone
        assert rows["improved"].tolist() == improved, backbone


def test_verdict_on_the_released_logs(log_rows: pd.DataFrame, tmp_path: Path) -> None:
    from pcl.report.verdict import build_verdicts, load_claims, render

    claims = load_claims(Path("config/claims.yaml"))
    gains = compute_gains(log_rows, draws=1000)
    verdicts = {v.claim["id"]: v for v in build_verdicts(claims, log_rows, gains)}
    assert set(verdicts) == {c["id"] for c in claims}
    # HAN Manga109 PSNR: +0.005 dB with 44/109 images improved cannot be "all sets surpassed"
    assert verdicts["table2-all-surpass"].status == "not significant"
    assert any("han-pcl vs han-official` | Manga109 | PSNR" in c and c.endswith("not significant |")
               for c in verdicts["table2-all-surpass"].cells)
    # docs/method.md §8.2: NLSN five-set mean log gain 0.141 dB (printed 0.16) and 0.0022 SSIM
    assert "+0.141" in verdicts["nlsn-mean-gain"].evidence[0] and "+0.0022" in verdicts["nlsn-mean-gain"].evidence[1]
    assert verdicts["table4-config3-best"].status == "not testable here"
    assert verdicts["attribution"].status == "not testable here"
    text = render(list(verdicts.values()), gains, "config/claims.yaml")
    assert text.count("\n- **") == len(claims)
