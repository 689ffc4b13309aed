"""Table III (NIQE / LPIPS) and the LPIPS columns of Table VI, built from result rows; `pcl check` on them.

Paper values come from resources/reference/paper/table3.csv and table6.csv (the TNNLS tables as
printed); the rows here are hand-made so every expected mean is computed by hand.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from conftest import result_rows, write_results

from pcl.errors import PCLError
from pcl.report.cells import read_cells
from pcl.report.check import CheckReport, load_tolerances, run_check
from pcl.report.check_perceptual import check_table3
from pcl.report.specs import TABLE3, TABLE6
from pcl.report.tables import build_table
from pcl.resources import resource_path


def _rows(tier, experiment, backbone, method, dataset, n, psnr=30.0, **extra):
    return result_rows(tier, experiment, dataset, backbone=backbone, method=method, psnr=psnr, n=n, **extra)


def _frame(tmp_path: Path, *groups: list[dict]) -> pd.DataFrame:
    return write_results(tmp_path, *groups)


@pytest.fixture(scope="module")
def cells(tmp_path_factory):
    from pcl.cli import main

    out = tmp_path_factory.mktemp("cells") / "cells.json"
    assert main(["catalog", "cells", "--out", str(out)]) == 0
    return read_cells(out)


def test_table3_places_rows_by_catalog_and_skips_tiers_without_the_metrics(tmp_path: Path, cells) -> None:
    frame = _frame(
        tmp_path,
        _rows("smoke", "rcan-pcl", "rcan", "pcl", "Set5", 5, niqe=[6.0, 7.0, 8.0, 9.0, 10.0]),
        _rows("smoke", "edsr-l-baseline", "edsr-l", "baseline", "Set5", 5, niqe=5.5, lpips=0.25),
        _rows("reported", "rcan-official", "rcan", "official", "Set5", 5),  # PSNR/SSIM only, like the logs
    )
    table = build_table(frame, TABLE3, cells=cells)
    ours = {(l.row_label, l.experiment): l for l in table.lines if not l.is_paper and not l.message}
    assert set(ours) == {("RCAN+PCL", "rcan-pcl"), ("EDSR", "edsr-l-baseline")}
    cell = {(c.dataset, c.metric): c for c in ours[("RCAN+PCL", "rcan-pcl")].cells}
    assert cell[("Set5", "niqe")].our_value == 8.0 and cell[("Set5", "niqe")].paper_printed == "6.964"
    assert cell[("Set5", "lpips")].our_value is None  # not computed: `–`
    edsr = {(c.dataset, c.metric): c.our_value for c in ours[("EDSR", "edsr-l-baseline")].cells}
    assert edsr[("Set5", "lpips")] == 0.25
    md = table.to_markdown()
    assert "8.000 (n/c)" in md and "rcan-official" not in md
    assert "no result" in md  # e.g. NLSN rows: nothing feeds them here
    assert "rgb2gray" in md and "reported" in md  # the legend says how NIQE/LPIPS were made


def test_table6_lpips_columns(tmp_path: Path, cells) -> None:
    frame = _frame(tmp_path, _rows("finetune", "rcan-pcl-pos-only", "rcan", "pcl", "B100", 100, lpips=0.3005))
    table = build_table(frame, TABLE6, cells=cells)
    (line,) = [l for l in table.lines if l.experiment == "rcan-pcl-pos-only"]
    lp = {(c.dataset, c.metric): c for c in line.cells}[("B100", "lpips")]
    # Table VI pos=1, neg=0 prints B100 LPIPS 0.3007
    assert lp.our_value == pytest.approx(0.3005) and lp.delta == pytest.approx(-0.0002)


def test_check_table3_tolerance(tmp_path: Path, cells) -> None:
    # Printed Set5 NIQE: NLSN+PCL 6.861 (6.90 is within 0.05), RCAN+PCL 6.964 (7.024 is not).
    rows = pd.concat([
        _frame(tmp_path / "a", _rows("released", "nlsn-pcl", "nlsn", "pcl", "Set5", 5, niqe=6.90)),
        _frame(tmp_path / "b", _rows("released", "rcan-pcl", "rcan", "pcl", "Set5", 5, niqe=6.964 + 0.06)),
    ], ignore_index=True)
    report = CheckReport()
    check_table3("released", {"niqe": 0.05}, rows, resource_path("reference", "paper"), report)
    status = {(i.subject, i.row): i.status for i in report.items}
    assert status == {("nlsn-pcl", "NLSN+PCL"): "ok", ("rcan-pcl", "RCAN+PCL"): "miss"}


def test_finite_rule_covers_computed_niqe(tmp_path: Path, cells) -> None:
    frame = _frame(tmp_path, _rows("smoke", "rcan-pcl", "rcan", "pcl", "Set5", 5, niqe=[6.0, math.nan, 7.0, 7.0, 7.0]))
    report = run_check(frame, cells=cells)
    bad = [i for i in report.items if i.metric == "niqe" and i.status == "miss"]
    assert [i.detail for i in bad] == ["1/5 images not finite: img001"]


def test_table3_tolerance_block_is_validated(tmp_path: Path) -> None:
    path = tmp_path / "tol.yaml"
    path.write_text("version: 1\ntiers:\n  smoke: {rule: finite, table3: {niqe: -1}}\n")
    with pytest.raises(PCLError, match=r"tiers.smoke.table3.niqe: -1 must be a finite number >= 0"):
        load_tolerances(path)
    path.write_text("version: 1\ntiers:\n  smoke: {rule: finite, table3: {psnr: 0.1}}\n")
    with pytest.raises(PCLError, match="must map niqe and/or lpips"):
        load_tolerances(path)
