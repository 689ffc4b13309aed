"""Rule ``rerun`` of ``pcl check``: the study's one-cell re-run against its committed rows.

Every expected number here is derived by hand from the rows the test writes: a re-run that is
the committed run plus a constant offset d per image has a mean PSNR exactly d away, and a paired
effect (first minus second, same images) that moves by the difference of the two offsets.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pcl.errors import PCLError
from pcl.report.check import run_check
from pcl.report.check_config import DEFAULT_TOLERANCES, load_tolerances
from pcl.report.check_report import MISS, OK, CheckReport
from pcl.report.check_study import check_rerun
from pcl.report.results import SOURCE_COLUMN

CELL, CONTROL = "edsr-s-pcl-l1-w100-a0.1", "edsr-s-control-l1"
RULE = {"rule": "rerun", "reference_tier": "study", "cross_machine_db": 0.16, "effects": [[CELL, CONTROL]]}
IMAGES = ["baby", "bird", "butterfly", "head", "woman"]
COMMITTED = {CELL: [30.0, 31.0, 25.0, 32.0, 29.0], CONTROL: [31.5, 32.5, 26.0, 33.0, 30.5]}
"""Committed seed-1 PSNRs: the cell's effect is -1.3 dB (mean of -1.5, -1.5, -1.0, -1.0, -1.5)."""


def _rows(tier: str, per_experiment: dict[str, list[float]], seed: str | None, offset: dict[str, float] | None = None,
          folder: Path | None = None, share: dict[str, float] | None = None) -> pd.DataFrame:
    records = []
    for experiment, values in per_experiment.items():
        source = ""
        if folder is not None:
            csv = folder / tier / experiment / "Set5.csv"
            csv.parent.mkdir(parents=True, exist_ok=True)
            csv.write_text("image\n")
            training = {"term_grad_share": share[experiment]} if share and experiment in share else {}
            csv.with_suffix(".json").write_text(json.dumps({"training": training}))
            source = str(csv)
        for image, value in zip(IMAGES, values):
            records.append({"tier": tier, "experiment": experiment, "backbone": "edsr-s",
                            "method": "pcl" if "-pcl-" in experiment else "control", "protocol": "matlab",
                            "dataset": "Set5", "image": image, "scale": 4,
                            "psnr": value + (offset or {}).get(experiment, 0.0), "ssim": 0.9, "height": 256,
                            "width": 256, "channels": 3, "seed": seed, "run_id": "r", SOURCE_COLUMN: source})
    return pd.DataFrame.from_records(records)


def _committed(with_other_seed: bool = True) -> pd.DataFrame:
    frames = [_rows("study", COMMITTED, "1")]
    if with_other_seed:  # seed 2 differs widely: comparing with it would fail
        frames.append(_rows("study", {k: [v - 3.0 for v in vals] for k, vals in COMMITTED.items()}, "2"))
    return pd.concat(frames, ignore_index=True)


def _items(report: CheckReport, check: str) -> list:
    return [i for i in report.items if i.check == check]


def test_rerun_within_tolerance_passes_and_compares_with_seed_one() -> None:
    rerun = _rows("study-check", COMMITTED, None, offset={CELL: 0.05, CONTROL: -0.03})
    report = CheckReport()
    check_rerun("study-check", RULE, rerun, _committed(), report)
    levels = _items(report, "rerun")
    assert {i.subject for i in levels} == {f"{CELL} (matlab)", f"{CONTROL} (matlab)"}
    assert all(i.status == OK for i in levels)
    by = {i.subject.split()[0]: i for i in levels}
    assert by[CELL].ours - float(by[CELL].reference) == pytest.approx(0.05, abs=1e-4)
    (effect,) = _items(report, "rerun effect")
    assert effect.status == OK
    assert float(effect.reference) == pytest.approx(-1.3, abs=1e-4)
    assert effect.ours == pytest.approx(-1.3 + 0.08)


def test_rerun_beyond_tolerance_fails_with_what_to_do() -> None:
    rerun = _rows("study-check", COMMITTED, None, offset={CELL: -0.30})
    report = CheckReport()
    check_rerun("study-check", RULE, rerun, _committed(), report)
    cell = next(i for i in _items(report, "rerun") if i.subject.startswith(CELL))
    assert cell.status == MISS and "configfile config/study.yaml" in cell.detail
    (effect,) = _items(report, "rerun effect")  # -1.6 against -1.3: beyond 0.16 dB
    assert effect.status == MISS
    assert report.exit_code == 1


def test_effect_alone_can_fail() -> None:
    # Both runs shift by 0.1 dB the same way (within tolerance each) but in opposite directions:
    # levels pass, the effect moves by 0.2 dB and fails.
    rerun = _rows("study-check", COMMITTED, None, offset={CELL: 0.1, CONTROL: -0.1})
    report = CheckReport()
    check_rerun("study-check", RULE, rerun, _committed(), report)
    assert all(i.status == OK for i in _items(report, "rerun"))
    assert [i.status for i in _items(report, "rerun effect")] == [MISS]


def test_missing_committed_rows_fail() -> None:
    rerun = _rows("study-check", COMMITTED, None)
    report = CheckReport()
    check_rerun("study-check", RULE, rerun, _committed().iloc[0:0], report)
    assert report.items and all(i.status == MISS for i in report.items)
    assert "git checkout -- results/study" in report.items[0].detail


def test_different_image_count_fails() -> None:
    rerun = _rows("study-check", COMMITTED, None)
    rerun = rerun[rerun["image"] != "woman"]
    report = CheckReport()
    check_rerun("study-check", RULE, rerun, _committed(), report)
    assert any("4 images re-run, 5 committed" in i.detail for i in _items(report, "rerun"))


def test_share_is_reported_beside_the_committed_one(tmp_path: Path) -> None:
    rerun = _rows("study-check", COMMITTED, None, folder=tmp_path, share={CELL: 0.51})
    committed = _rows("study", COMMITTED, "1", folder=tmp_path, share={CELL: 0.5})
    report = CheckReport()
    check_rerun("study-check", RULE, rerun, committed, report)
    assert any(f"{CELL}: measured gradient share 0.51 (committed study: 0.5)" in n for n in report.notes)


def test_run_check_applies_the_shipped_rule_and_keeps_study_rows_off_the_tables(tmp_path: Path) -> None:
    # The shipped config/tolerances.yaml names the rule for both study tiers.
    rules = load_tolerances(DEFAULT_TOLERANCES)
    assert rules["study-check"]["rule"] == "rerun" and rules["study"]["rule"] == "finite"
    rows = pd.concat([_rows("study", COMMITTED, "1", folder=tmp_path),
                      _rows("study-check", COMMITTED, None, folder=tmp_path)], ignore_index=True)
    report = run_check(rows)
    assert _items(report, "rerun") and all(i.status == OK for i in _items(report, "rerun") + _items(report, "rerun effect"))
    assert not [i for i in report.items if i.check == "placed"]
    assert any("not placed in Tables II-VII" in n for n in report.notes)


@pytest.mark.parametrize("bad, message", [
    ({"reference_tier": "nope"}, "reference_tier"),
    ({"effects": [[CELL]]}, "effects"),
    ({"cross_machine_db": -1}, "cross_machine_db"),
])
def test_bad_rerun_rule_is_one_line(tmp_path: Path, bad: dict, message: str) -> None:
    path = tmp_path / "tolerances.yaml"
    path.write_text(json.dumps({"version": 1, "tiers": {"study-check": {**RULE, **bad}}}))
    with pytest.raises(PCLError, match=message) as info:
        load_tolerances(path)
    assert "\n" not in str(info.value)
