"""The study's two lines at miniature scale on the verdict page, and the workflow paths that feed it.

Expected values: the study table is computed by ``pcl study`` on the hand-built rows of
tests/test_study.py (alpha 0.1 gains +0.1/+0.2/+0.3 dB over its control on seeds 1-3, alpha 1
loses 1 dB), so its attribution line names that cell; the check must re-derive exactly the lines
the page holds. Job counts come from config/study_check.yaml (one +PCL cell and its control,
seed 1, the baseline installed from resources/study_baseline) and the catalog.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from pcl.cli import main
from pcl.errors import PCLError
from pcl.report.check_report import MISS, OK, CheckReport
from pcl.report.check_verdict import check_verdict_file
from pcl.report.gains import GAIN_COLUMNS
from pcl.report.study import study_table
from pcl.report.study_write import STUDY_SECTION, parse_verdict_section, read_study_table, verdict_section, write_study
from pcl.report.verdict import render

from tests.test_study import CELL, CELL_A1, EFFECTS, grid_rows  # noqa: F401  (fixture)
from tests.test_workflow import _job_counts, _snakemake

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def study_csv(grid_rows, tmp_path) -> Path:  # noqa: F811
    table = study_table(grid_rows, [CELL, CELL_A1], tier="study", min_effects=EFFECTS, draws=300)
    return write_study(table, tmp_path / "tables")[0]


def _page(study_csv: Path) -> str:
    return render([], pd.DataFrame(columns=list(GAIN_COLUMNS)), "config/claims.yaml", study=verdict_section(study_csv))


def _study_items(report: CheckReport) -> list:
    return [i for i in report.items if i.tier == "study" and i.check == "verdict"]


def test_section_sits_under_its_own_heading_and_names_its_table(study_csv) -> None:
    text = _page(study_csv)
    assert STUDY_SECTION in text and text.index(STUDY_SECTION) < text.index("## Protocol and printed-table sensitivity")
    source, lines = parse_verdict_section(text)
    assert source == str(study_csv)
    assert lines[0].startswith("attribution at miniature scale: term improves on its control in L1 x1, warm-up 0, alpha 0.1")
    assert lines[1].startswith("Table VII alpha claim at miniature scale")
    assert not any(line.startswith("**") for line in lines)  # never read as one of the paper's claims


def test_check_rederives_the_section_and_catches_an_edit(study_csv, tmp_path) -> None:
    page = tmp_path / "verdict.md"
    page.write_text(_page(study_csv))
    report = CheckReport()
    check_verdict_file(page, [], report)
    assert [i.status for i in _study_items(report)] == [OK]
    page.write_text(_page(study_csv).replace("term improves on its control", "term hurts its control"))
    report = CheckReport()
    check_verdict_file(page, [], report)
    assert [i.status for i in _study_items(report)] == [MISS]
    study_csv.unlink()
    report = CheckReport()
    check_verdict_file(page, [], report)
    assert [i.status for i in _study_items(report)] == [MISS] and "run `pcl study` first" in _study_items(report)[0].detail


def test_a_table_that_is_not_the_study_s_is_one_line(tmp_path) -> None:
    path = tmp_path / "gains.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(PCLError, match="not a study table") as info:
        read_study_table(path)
    assert "\n" not in str(info.value)


def test_pcl_verdict_with_a_missing_study_table_exits_2_and_writes_nothing(tmp_path, capsys) -> None:
    gains = tmp_path / "gains.csv"
    gains.write_text("tier\n")
    out = tmp_path / "verdict.md"
    (tmp_path / "none").mkdir()
    code = main(["verdict", "--results", str(tmp_path / "none"), "--gains", str(gains), "--catalog",
                 str(REPO / "config" / "experiments.yaml"), "--study", str(tmp_path / "study.csv"), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "study.csv" in err
    assert not out.exists()


# --- the workflow -----------------------------------------------------------------------------


@pytest.mark.slow  # one dry run: about 10 s on a shared 2-core machine
def test_study_check_trains_one_cell_and_its_control_from_the_committed_baseline(workdir) -> None:
    plain = _job_counts(workdir)
    counts = _job_counts(workdir, "--configfile", "config/study_check.yaml")
    assert counts["train"] - plain["train"] == 2  # edsr-s-pcl-l1-w100-a0.1 and edsr-s-control-l1, seed 1
    assert counts["study_baseline_pinned"] == 1  # resources/study_baseline installed, not trained
    assert "study_baseline" not in counts
    assert counts["evaluate_trained"] - plain["evaluate_trained"] == 3 * 2  # 3 runs x Set5, Set14 (matlab)
    assert counts["study"] == plain["study"] == 1  # the table from the committed rows either way


@pytest.mark.slow  # two dry runs
def test_missing_committed_rows_stop_the_workflow_in_one_line(workdir) -> None:
    victim = workdir / "results" / "study" / "edsr-s-control-l1" / "matlab" / "Set14.csv"
    assert victim.is_file(), "the workflow folder copies the committed study rows"
    victim.unlink()
    proc = _snakemake(workdir, "-n")
    assert proc.returncode != 0
    lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("config: study.committed")]
    assert lines and str(victim.relative_to(workdir)) in lines[0] and "git checkout -- results/study" in lines[0]
    (workdir / "off.yaml").write_text("study: {committed: false, protocols: [matlab], datasets: [Set5]}\n")
    shutil.rmtree(workdir / "results" / "study")
    assert "study" not in _job_counts(workdir, "--configfile", "off.yaml")


def _row(**values) -> dict:
    from pcl.report.study import STUDY_COLUMNS

    base = {c: None for c in STUDY_COLUMNS}
    base.update(comparison="vs control", first="edsr-s-pcl-l255-w0-a0.1", second="edsr-s-control-l255",
                loss_scale="backbone", warmup=0, alpha=0.1, protocol="matlab", dataset="Set5", metric="niqe",
                mean_gain=0.0, status="not significant", fw_status="not significant", family_size=32)
    base.update(values)
    return base


def test_one_cell_in_twenty_does_not_carry_the_attribution() -> None:
    # 32 rows; one per-cell interval says supported (as chance gives about 0.8 of 32 at 2.5 % per
    # side) but its family-wise interval (99.84 %) does not: the line says no cell improves and
    # counts the per-cell hit beside the chance level.
    from pcl.report.study_write import verdict_lines

    rows = [_row() for _ in range(31)] + [_row(mean_gain=0.035, status="supported", fw_status="too few images to decide")]
    attribution, _ = verdict_lines(pd.DataFrame(rows))
    assert "no cell improves on its control" in attribution
    assert "32 comparisons, family-wise intervals at 99.84 % (Bonferroni)" in attribution
    assert "1 of 32 supported (L1 x255, warm-up 0, alpha 0.1 Set5 niqe +0.035), where chance alone gives about 0.8" in attribution
    rows[-1]["fw_status"] = "supported"  # decided at the family-wise level: now it counts
    attribution, _ = verdict_lines(pd.DataFrame(rows))
    assert attribution.startswith("attribution at miniature scale: term improves on its control in L1 x255")


def test_family_wise_interval_is_wider_than_the_cell_s(grid_rows) -> None:  # noqa: F811
    # the same per-image gains, the interval at 1 - 0.05/m instead of 95 %: it contains the 95 % one
    table = study_table(grid_rows, [CELL, CELL_A1], tier="study", min_effects=EFFECTS, draws=2000)
    ctrl = table[table["comparison"] == "vs control"]
    assert set(ctrl["family_size"]) == {len(ctrl)}
    assert (ctrl["fw_ci_low"] <= ctrl["ci_low"] + 1e-12).all() and (ctrl["fw_ci_high"] >= ctrl["ci_high"] - 1e-12).all()
