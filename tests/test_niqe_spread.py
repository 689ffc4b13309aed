"""NIQE spread columns: computed as niqe_uncertainty computes them, stored beside the scores,
averaged per set, never paired as a metric, accepted by the config schema and by `pcl score`.

Expected values come from ``pcl.metrics.niqe`` and ``pcl.metrics.niqe_uncertainty`` themselves
(the columns must hold exactly what those functions return), plus the order of magnitude of
Set14 ``ppt3``'s niqe-y spread that docs/metrics.md records (5.4e-2).
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import pytest
import yaml

from pcl.cli import main
from pcl.data.images import read_image, write_png
from pcl.data.imresize import bicubic_degrade, bicubic_upscale
from pcl.errors import PCLError
from pcl.metrics import niqe_spread
from pcl.metrics.niqe import as_batch, niqe
from pcl.metrics.niqe_spread import near_flat_pixels, niqe_with_spread
from pcl.metrics.niqe_uncertainty import niqe_uncertainty
from pcl.metrics.suite import MetricSuite
from pcl.report.gains import compute_gains
from pcl.report.results import RESULT_COLUMNS, UNCERTAINTY_COLUMNS, read_results, summarise, write_rows

REPO = Path(__file__).resolve().parents[1]
SET5 = REPO / "resources" / "benchmarks" / "Set5" / "HR"
SET14 = REPO / "resources" / "benchmarks" / "Set14" / "HR"


def _same(a: float, b: float) -> bool:
    """Equal to the bit, NaN equal to NaN."""
    return (math.isnan(a) and math.isnan(b)) or a == b


# --- the values --------------------------------------------------------------------------------


def test_ppt3_spread_equals_niqe_uncertainty_and_niqe_is_computed_once() -> None:
    # ppt3 has flat areas whose MSCN sign the filter models disagree on; docs/metrics.md measured
    # its niqe-y spread at 5.4e-2 on the HR image (crop 0), so it must lie within 1e-2 .. 1e-1
    img = read_image(SET14 / "ppt3.png")
    row = MetricSuite(("niqe-y", "niqe-y-spread"), niqe_crop=0).score(img, None)
    assert list(row) == ["niqe_y", "niqe_y_spread"]
    assert row["niqe_y"] == niqe(img, convention="niqe-y")  # bit for bit: the same score
    expected = niqe_uncertainty(img, convention="niqe-y")
    assert row["niqe_y_spread"] == expected.spread and row["niqe_y"] == expected.score
    assert 1e-2 < row["niqe_y_spread"] < 1e-1


def test_image_without_near_flat_pixels_is_scored_once_with_zero_spread(monkeypatch: pytest.MonkeyPatch) -> None:
    # comic (Set14) has no pixel with |im - mu| < 1e-9 under rgb2gray: niqe_uncertainty gives 0,
    # and the row gets that 0 without the four extra evaluations (they would raise here)
    img = read_image(SET14 / "comic.png")
    assert not bool(near_flat_pixels(as_batch(img, "niqe", 4), convention="niqe", crop_border=4)[0])
    expected = niqe_uncertainty(img, convention="niqe", crop_border=4)
    assert expected.spread == 0.0 and expected.blocks_affected == 0

    def _refuse(*args, **kwargs):
        raise AssertionError("re-scored an image whose spread is known to be 0")

    monkeypatch.setattr(niqe_spread, "niqe_uncertainty_batch", _refuse)
    row = MetricSuite(("niqe", "niqe-spread"), niqe_crop=4).score(img, None)
    assert row == {"niqe": niqe(img, convention="niqe", crop_border=4), "niqe_spread": 0.0}
    assert row["niqe"] == expected.score


def test_spread_alone_gives_only_its_column() -> None:
    # foreman's niqe-y spread is nonzero (docs/metrics.md: 9.5e-3 on the HR image)
    img = read_image(SET14 / "foreman.png")
    row = MetricSuite(("niqe-y-spread",), niqe_crop=0).score(img, None)
    assert list(row) == ["niqe_y_spread"] and row["niqe_y_spread"] == niqe_uncertainty(img, convention="niqe-y").spread


def test_spread_of_an_image_without_a_score_is_nan() -> None:
    # a constant image has no score (niqe_uncertainty: NaN score, NaN spread), and neither may the row
    img = np.full((96, 96), 23, np.uint8)
    score, spread = niqe_with_spread(img)
    assert math.isnan(score) and math.isnan(spread) and math.isnan(niqe_uncertainty(img).spread)


def test_bad_input_is_refused_with_niqe_message() -> None:
    with pytest.raises(PCLError, match="at least 96x96"):
        niqe_with_spread(np.zeros((90, 120), np.uint8))
    with pytest.raises(PCLError, match="unknown NIQE convention"):
        niqe_with_spread(np.zeros((96, 96), np.uint8), convention="niqe-z")


@pytest.mark.slow
@pytest.mark.parametrize("convention", ["niqe", "niqe-y"])
def test_shortcut_agrees_with_full_computation_on_every_benchmark_image(convention: str) -> None:
    # the shortcut skips the four other filter models where no pixel is near-flat; there the full
    # computation must find bit-identical features (no block affected, every alternative and the
    # ideal score equal to the score), and on every image the pair must equal niqe_uncertainty's
    shortcut = 0
    for path in sorted(SET5.glob("*.png")) + sorted(SET14.glob("*.png")):
        img = read_image(path)
        for crop in (0, 4):
            full = niqe_uncertainty(img, convention=convention, crop_border=crop)
            assert niqe_with_spread(img, convention=convention, crop_border=crop) == (full.score, full.spread), path.name
            if not bool(near_flat_pixels(as_batch(img, convention, crop), convention=convention, crop_border=crop)[0]):
                shortcut += 1
                assert full.blocks_affected == 0 and full.spread == 0.0 and full.ideal == full.score, path.name
                assert all(v == full.score for v in full.alternatives.values()), path.name
    assert shortcut >= 10  # measured: about half of the 38 image/crop cases take the shortcut


# --- result rows -------------------------------------------------------------------------------


def _row(image: str, niqe_value: float, spread: float, seed: str = "") -> dict:
    return {
        "tier": "mini", "experiment": "edsr-s-baseline", "backbone": "edsr-s", "method": "baseline",
        "dataset": "Set14", "image": image, "scale": 4, "protocol": "matlab", "psnr": 30.0, "ssim": 0.9,
        "height": 96, "width": 96, "channels": 3, "seed": seed, "run_id": "r",
        "niqe": niqe_value, "niqe_y": niqe_value + 1, "niqe_spread": spread, "niqe_y_spread": 2 * spread,
    }


def test_spread_columns_are_written_after_the_metrics_and_read_back_as_floats(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "Set14.csv", [_row("a", 5.0, 0.0), _row("b", 6.0, 0.0125)])
    header = path.read_text().splitlines()[0].split(",")
    assert header == [*RESULT_COLUMNS, "niqe", "niqe_y", *UNCERTAINTY_COLUMNS]
    frame = read_results([path])
    assert list(frame.columns) == header
    assert frame["niqe_spread"].dtype == float and frame["niqe_spread"].tolist() == [0.0, 0.0125]
    assert frame["niqe_y_spread"].tolist() == [0.0, 0.025]


def test_a_misspelt_spread_column_is_refused(tmp_path: Path) -> None:
    row = _row("a", 5.0, 0.0)
    row["niqe_sprd"] = row.pop("niqe_spread")
    with pytest.raises(PCLError, match="unknown column\\(s\\) niqe_sprd"):
        write_rows(tmp_path / "Set14.csv", [row])
    assert not (tmp_path / "Set14.csv").exists()


def test_summary_averages_spreads_per_set_without_a_seed_spread(tmp_path: Path) -> None:
    # two seeds of two images: per-seed means (0.01 + 0.03)/2 = 0.02 and (0.0 + 0.02)/2 = 0.01,
    # then their mean 0.015, which is the mean of the four per-image spreads
    rows = [_row("a", 5.0, 0.01, "1"), _row("b", 6.0, 0.03, "1"), _row("a", 5.5, 0.0, "2"), _row("b", 6.5, 0.02, "2")]
    rec = summarise(read_results([write_rows(tmp_path / "Set14.csv", rows)])).iloc[0]
    assert rec["niqe_spread"] == pytest.approx(0.015, abs=1e-15) and rec["niqe_y_spread"] == pytest.approx(0.03, abs=1e-15)
    assert rec["niqe"] == pytest.approx(5.75) and rec["n_images"] == 2 and rec["n_seeds"] == 2
    assert "niqe_spread_seed_sd" not in rec.index and "niqe_seed_sd" in rec.index
    without = summarise(read_results([write_rows(tmp_path / "b.csv", [{k: v for k, v in _row("a", 5.0, 0.0).items()
                                                                       if k not in UNCERTAINTY_COLUMNS}])]))
    assert not set(UNCERTAINTY_COLUMNS) & set(without.columns)


def test_gains_do_not_pair_the_spread_columns() -> None:
    pcl = pd.DataFrame([_row(f"i{k}", 5.0 - k / 10, 0.01 * k) for k in range(3)]).assign(
        experiment="edsr-s-pcl", method="pcl")
    base = pd.DataFrame([_row(f"i{k}", 5.0, 0.02) for k in range(3)])
    frame = compute_gains(pd.concat([pcl, base], ignore_index=True), draws=200)
    assert set(frame["metric"]) == {"psnr", "ssim", "niqe", "niqe_y"}


# --- configuration and `pcl score` -------------------------------------------------------------


def _config_errors(config: dict) -> list[str]:
    schema = json.loads((REPO / "workflow" / "schemas" / "config.schema.json").read_text())
    return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(config)]


def test_schema_accepts_the_spread_names_and_refuses_a_typo() -> None:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert _config_errors(config) == []
    assert {"niqe-spread", "niqe-y-spread"} <= set(config["metrics"]["bicubic"]) & set(config["metrics"]["mini"])
    typo = copy.deepcopy(config)
    typo["metrics"]["mini"] = [*typo["metrics"]["mini"][:-1], "niqe-y-sprd"]
    assert any("'niqe-y-sprd' is not one of" in e for e in _config_errors(typo))


@pytest.fixture()
def sr_folder(tmp_path: Path) -> tuple[Path, Path]:
    """foreman (nonzero spread) and comic (zero) from Set14 and their bicubic x4 round trips."""
    hr_dir, sr_dir = tmp_path / "hr", tmp_path / "sr"
    for name in ("comic", "foreman"):
        hr = read_image(SET14 / f"{name}.png")
        write_png(hr_dir / f"{name}.png", hr)
        write_png(sr_dir / f"{name}_x4.png", bicubic_upscale(bicubic_degrade(hr, 4), 4))
    return sr_dir, hr_dir


@pytest.mark.parametrize("with_hr", [False, True])
def test_pcl_score_writes_niqe_and_its_spread(sr_folder: tuple[Path, Path], tmp_path: Path, with_hr: bool) -> None:
    sr_dir, hr_dir = sr_folder
    out = tmp_path / "scores.csv"
    metrics = "psnr,niqe,niqe-spread" if with_hr else "niqe,niqe-spread"
    argv = ["score", "--sr-dir", str(sr_dir), "--metrics", metrics, "--crop-border", "4", "--out", str(out)]
    assert main([*argv, "--hr-dir", str(hr_dir)] if with_hr else argv) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["image", *metrics.replace("-", "_").split(",")]
    spreads = []
    for rec in frame.to_dict("records"):
        stem = rec["image"] if rec["image"].endswith("_x4") else f"{rec['image']}_x4"  # rows name the HR stem
        expected = niqe_uncertainty(read_image(sr_dir / f"{stem}.png"), crop_border=4)
        assert _same(rec["niqe"], expected.score) and _same(rec["niqe_spread"], expected.spread)
        spreads.append(rec["niqe_spread"])
    assert sorted(s > 0 for s in spreads) == [False, True]  # one image of each kind
    assert "spread" in json.loads(out.with_suffix(".json").read_text())["niqe"]
