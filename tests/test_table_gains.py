"""Table II's gain lines: our +PCL gains with their intervals under each +PCL row, beside the printed gains.

Paper values quoted below are from resources/reference/paper/table2.csv (P-J Table II as printed).
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from conftest import result_rows

from pcl.cli import main
from pcl.errors import PCLError
from pcl.report.cells import cells_map, write_cells
from pcl.report.gains import GAIN_COLUMNS, compute_gains
from pcl.report.gains_report import write_gains
from pcl.report.paper import read_paper_table
from pcl.report.render import to_latex, to_markdown
from pcl.report.reports import write_reports
from pcl.report.results import result_path, write_rows
from pcl.report.specs import TABLE2
from pcl.report.table_gains import gain_extras, printed_gain, read_gains
from pcl.report.tables import build_table
from pcl.resources import resource_path

PAPER = resource_path("reference", "paper", "table2.csv")


def _gain(tier, protocol, comparison, backbone, dataset, metric, mean, low, high) -> dict:
    return {"tier": tier, "protocol": protocol, "comparison": comparison, "kind": "vs official", "backbone": backbone,
            "dataset": dataset, "metric": metric, "n": 5, "mean_gain": mean, "ci_low": low, "ci_high": high,
            "p_value": 0.06, "p_holm": 0.3, "improved": 4}


@pytest.fixture()
def gains() -> pd.DataFrame:
    """RCAN only: a reported line (Set5 PSNR/SSIM, Set14 PSNR, and an LPIPS gain Table II has no column for)
    and a finetune line (Set5 PSNR only); no gain of any other backbone."""
    reported = ("reported", "authors", "rcan-pcl vs rcan-official", "rcan")
    finetune = ("finetune", "matlab", "rcan-pcl vs rcan_control", "rcan")
    return pd.DataFrame([
        _gain(*reported, "Set5", "psnr", 0.031, 0.012, 0.050),
        _gain(*reported, "Set5", "ssim", 0.0004, -0.0001, 0.0009),
        _gain(*reported, "Set14", "psnr", -0.02, -0.05, 0.01),
        _gain(*reported, "Set5", "lpips", 0.01, 0.0, 0.02),
        _gain(*finetune, "Set5", "psnr", 0.1, 0.05, 0.15),
    ])


def _table():
    return build_table(None, TABLE2, PAPER)


def test_printed_gain_is_the_row_difference_as_printed(tmp_path: Path) -> None:
    paper = read_paper_table(PAPER)
    # table2.csv: RCAN+PCL Set5 PSNR 32.70, RCAN 32.64 -> +0.06; SSIM 0.9005 - 0.9002 -> +0.0003
    assert printed_gain(paper, "RCAN", "Set5", "psnr") == "+0.06"
    assert printed_gain(paper, "RCAN", "Set5", "ssim") == "+0.0003"
    # Decimal on the printed strings: 32.46 - 32.39 in binary floats is 0.07000000000000028
    edited = tmp_path / "table2.csv"
    edited.write_text(PAPER.read_text().replace("RCAN,RCAN,32.64,", "RCAN,RCAN,32.39,").replace(
        "RCAN+PCL,RCAN,32.70,", "RCAN+PCL,RCAN,32.46,"))
    assert printed_gain(read_paper_table(edited), "RCAN", "Set5", "psnr") == "+0.07"
    assert printed_gain(paper, "Bicubic", "Set5", "psnr") == ""  # no +PCL row


def test_gain_lines_follow_the_rcan_pcl_group_only(gains: pd.DataFrame) -> None:
    table = _table()
    md = to_markdown(table, gain_extras(gains, table.paper)).splitlines()
    start = md.index(next(l for l in md if l.startswith("| **RCAN+PCL**")))
    end = md.index(next(l for l in md if l.startswith("| **HAN**")))
    gain_rows = [i for i, l in enumerate(md) if l.startswith("| gain |")]
    # the group is the paper line, its 'no result' line, then the two gain lines: reported before finetune
    assert gain_rows == [end - 2, end - 1] and start < end - 2
    assert md[end - 2].startswith("| gain | reported / `rcan-pcl vs rcan-official` / authors | ")
    assert md[end - 1].startswith("| gain | finetune / `rcan-pcl vs rcan_control` / matlab | ")
    cells = [c.strip() for c in md[end - 2].strip("|").split("|")]
    assert len(cells) == 2 + 10  # label, source and one cell per (data set, metric) of Table II: no LPIPS column
    assert cells[2] == "+0.031 [+0.012, +0.050] (printed +0.06)"
    assert cells[3] == "+0.0004 [-0.0001, +0.0009] (printed +0.0003)"
    assert cells[4] == "-0.020 [-0.050, +0.010] (printed +0.04)"  # 28.89 - 28.85
    assert cells[5] == "– (printed +0.0004)"  # no Set14 SSIM gain: 0.7889 - 0.7885
    assert "| gain |" not in "\n".join(md[:start])
    legend = "\n".join(md[: md.index(next(l for l in md if l.startswith("| Method") or l.startswith("| ---")))])
    assert "paired bootstrap 95% interval" in legend and "reports/tables/gains.md" in legend
    assert "released fine-tuning" in legend


def test_missing_paper_cell_shows_only_the_dash(gains: pd.DataFrame, tmp_path: Path) -> None:
    edited = tmp_path / "table2.csv"
    # blank the RCAN Set5 PSNR cell of the paper: the printed gain cannot be formed
    edited.write_text(PAPER.read_text().replace("RCAN,RCAN,32.64,", "RCAN,RCAN,,"))
    table = build_table(None, TABLE2, edited)
    md = to_markdown(table, gain_extras(gains.iloc[1:], table.paper))
    line = next(l for l in md.splitlines() if l.startswith("| gain | reported"))
    assert [c.strip() for c in line.strip("|").split("|")][2] == "–"


def test_without_gains_the_table_is_unchanged() -> None:
    table = _table()
    assert to_markdown(table, None) == to_markdown(table) == table.to_markdown()
    assert "| gain |" not in to_markdown(table) and "bootstrap" not in to_markdown(table)
    assert to_latex(table, None) == table.to_latex()


def test_latex_gain_lines(gains: pd.DataFrame) -> None:
    table = _table()
    tex = to_latex(table, gain_extras(gains, table.paper))
    body = "\n".join(l for l in tex.splitlines() if not l.startswith("%"))
    line = next(l for l in body.splitlines() if l.startswith("gain & reported"))
    assert line.startswith("gain & reported/rcan-pcl vs rcan-official/authors & "
                           "$+$0.031 [$+$0.012, $+$0.050] (printed $+$0.06) & ")
    assert " & -- (printed $+$0.0004) & " in line
    assert r"gain & finetune/rcan-pcl vs rcan\_control/matlab & " in body
    assert re.search(r"(?<!\\)_", body) is None  # every underscore escaped
    assert "+" not in body.replace("{+}", "").replace("$+$", "")  # every + braced or in math
    assert "–" not in body  # the en dash is written as --
    for row in body.splitlines():
        if row.startswith("gain &"):
            assert row.count(" & ") == 11 and row.endswith(r" \\"), row
    assert body.index("RCAN{+}PCL") < body.index("gain & reported") < body.index("\nHAN\\textsuperscript")
    assert any(l.startswith("% Each `gain` line") for l in tex.splitlines())


def test_bad_gains_files_name_the_file(gains: pd.DataFrame, tmp_path: Path) -> None:
    missing = tmp_path / "absent.csv"
    with pytest.raises(PCLError, match=re.escape(str(missing))):
        read_gains(missing)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(PCLError, match=re.escape(str(empty)) + ".*cannot read"):
        read_gains(empty)
    no_ci = tmp_path / "no_ci.csv"
    gains.drop(columns=["ci_low", "ci_high"]).to_csv(no_ci, index=False)
    with pytest.raises(PCLError, match=re.escape(str(no_ci)) + ".*lacks column\\(s\\) ci_low, ci_high"):
        read_gains(no_ci)
    text = tmp_path / "text.csv"
    gains.assign(mean_gain=["big", 0, 0, 0, 0]).to_csv(text, index=False)
    with pytest.raises(PCLError, match=re.escape(str(text)) + ".*'mean_gain' holds 'big'"):
        read_gains(text)
    twice = tmp_path / "twice.csv"
    pd.concat([gains, gains.iloc[:1]]).to_csv(twice, index=False)
    with pytest.raises(PCLError, match=re.escape(str(twice)) + ".*appears twice"):
        read_gains(twice)
    good = tmp_path / "good.csv"
    gains.to_csv(good, index=False)
    assert read_gains(good)["mean_gain"].tolist() == pytest.approx(gains["mean_gain"].tolist())


def _write(root: Path, rows: list[dict]) -> Path:
    r = rows[0]
    return write_rows(result_path(root, r["tier"], r["experiment"], r["protocol"], r["dataset"]), rows)


def test_write_reports_with_a_gains_file(tmp_path: Path, capsys) -> None:
    # reported RCAN on Set5, 5 images: +PCL is 0.05 dB better on every image but the last (-0.05)
    official = result_rows("reported", "rcan-official", "Set5", method="official", protocol="authors",
                           psnr=[32.60, 32.62, 32.64, 32.66, 32.68], ssim=[0.9000] * 5)
    pcl = result_rows("reported", "rcan-pcl", "Set5", method="pcl", protocol="authors",
                      psnr=[32.65, 32.67, 32.69, 32.71, 32.63], ssim=[0.9003] * 5)
    files = [_write(tmp_path / "results", official), _write(tmp_path / "results", pcl)]
    frame = compute_gains(pd.concat([pd.read_csv(f) for f in files], ignore_index=True), draws=200)
    assert list(frame.columns) == list(GAIN_COLUMNS) and len(frame) == 2  # Set5 PSNR and SSIM
    gains_csv = write_gains(frame, tmp_path / "g")[0]
    with_gains = write_reports(files, tmp_path / "with", gains=gains_csv)
    without = write_reports(files, tmp_path / "without")
    assert [p.name for p in with_gains] == [p.name for p in without]
    md = (tmp_path / "with" / "table2.md").read_text().splitlines()
    ours = md.index(next(l for l in md if l.startswith("|  | reported / `rcan-pcl` / authors |")))
    assert md[ours - 1].startswith("| **RCAN+PCL**") and md[ours + 2].startswith("| **HAN**")
    psnr = frame[frame["metric"] == "psnr"].iloc[0]
    # mean gain (0.05 * 4 - 0.05) / 5 = +0.030; printed 32.70 - 32.64 = +0.06
    assert psnr["mean_gain"] == pytest.approx(0.03)
    assert md[ours + 1].startswith(f"| gain | reported / `rcan-pcl vs rcan-official` / authors | +0.030 "
                                   f"[{psnr['ci_low']:+.3f}, {psnr['ci_high']:+.3f}] (printed +0.06) | +0.0003 [")
    assert "| – (printed +0.04) |" in md[ours + 1]  # Set14 not evaluated
    assert "gain & reported/rcan-pcl vs rcan-official/authors" in (tmp_path / "with" / "table2.tex").read_text()
    # the other tables get no gain lines
    for name in ("table3.csv", "table3.md", "table3.tex"):
        assert (tmp_path / "with" / name).read_text() == (tmp_path / "without" / name).read_text(), name
    # table2.csv: the table's own rows unchanged, then one `gain` row per gain cell (Set5 PSNR, SSIM)
    with_csv, without_csv = (pd.read_csv(tmp_path / d / "table2.csv", keep_default_na=False, dtype={"paper_value": str}) for d in ("with", "without"))
    pd.testing.assert_frame_equal(with_csv.iloc[: len(without_csv)], without_csv)
    added = with_csv.iloc[len(without_csv):]
    assert added["line"].tolist() == ["gain", "gain"] and added["comparable"].tolist() == ["yes", "yes"]
    assert added["metric"].tolist() == ["psnr_gain", "ssim_gain"] and added["paper_value"].tolist()[0] == "+0.06"
    assert float(added["our_value"].iloc[0]) == pytest.approx(0.03)
    # `pcl tables --gains` with a file that is not there: one line naming it, exit 2, nothing written
    cells = tmp_path / "cells.json"
    write_cells(cells, cells_map({}, source="test"))
    code = main(["tables", "--results", str(tmp_path / "results"), "--out-dir", str(tmp_path / "cli"), "--cells",
                 str(cells), "--figures-dir", str(tmp_path / "fig"), "--gains", str(tmp_path / "nope.csv")])
    err = capsys.readouterr().err
    assert code == 2 and str(tmp_path / "nope.csv") in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "cli").exists()
