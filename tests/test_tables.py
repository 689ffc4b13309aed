"""Result-row I/O, Table II rendering (Markdown, LaTeX, long CSV), provenance and the released-gains figure.

Paper values quoted below are from resources/reference/paper/table2.csv (P-J Table II as printed).
"""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from conftest import result_rows, write_results

from pcl.errors import PCLError
from pcl.report.figures import plot_released_gains, released_gains
from pcl.report.labels import table2_label
from pcl.report.lines import LONG_COLUMNS
from pcl.report.released_logs import log_rows, parse_logs
from pcl.report.render import latex_escape
from pcl.report.reports import write_reports
from pcl.report.results import RESULT_COLUMNS, display_path, read_results, summarise, write_rows
from pcl.report.specs import TABLE2
from pcl.report.tables import build_table, write_table
from pcl.resources import resource_path


def _rows(tier, experiment, backbone, method, dataset, protocol, psnrs, ssims):
    return result_rows(tier, experiment, dataset, backbone=backbone, method=method, protocol=protocol, psnr=psnrs, ssim=ssims)


def _bicubic(psnrs, ssims, dataset="Set5"):
    return _rows("bicubic", "bicubic", "bicubic", "bicubic", dataset, "matlab", psnrs, ssims)


@pytest.fixture()
def bicubic_results(tmp_path):
    """Synthetic bicubic rows: Set5 complete with mean 28.43 / 0.8105, Set14 only 3 of 14 images."""
    set5 = _bicubic([28.40, 28.42, 28.43, 28.44, 28.46], [0.8100, 0.8104, 0.8105, 0.8106, 0.8110])
    set14 = _bicubic([25.0, 26.0, 27.0], [0.70, 0.70, 0.70], "Set14")
    return write_results(tmp_path / "results", set5, set14, source=True)


# --- results I/O ------------------------------------------------------------------------------


def test_write_and_read_round_trip(tmp_path):
    rows = _rows("smoke", "rcan-pcl", "rcan", "pcl", "Set5", "authors", [30.123456789, float("nan")], [0.9, 0.8])
    path = write_rows(tmp_path / "a" / "b" / "Set5.csv", rows)
    assert path.read_text().splitlines()[0] == ",".join(RESULT_COLUMNS)
    df = read_results([path])
    assert list(df.columns) == list(RESULT_COLUMNS)
    assert df["psnr"].iloc[0] == 30.123456789 and math.isnan(df["psnr"].iloc[1])
    assert df["seed"].isna().all() and int(df["height"].iloc[0]) == 64
    # a NaN image makes the set mean NaN instead of being skipped
    summary = summarise(df)
    assert len(summary) == 1 and math.isnan(summary["psnr"].iloc[0]) and summary["n_images"].iloc[0] == 2
    assert abs(summary["ssim"].iloc[0] - 0.85) < 1e-12


def test_numpy_scalars_are_written_as_plain_numbers(tmp_path):
    import numpy as np

    row = _rows("smoke", "x", "rcan", "pcl", "Set5", "authors", [np.float64(31.5)], [np.float32(0.5)])[0]
    row["height"] = np.int64(64)
    text = write_rows(tmp_path / "n.csv", [row]).read_text().splitlines()[1]
    assert ",31.5,0.5,64," in text and "np." not in text


def test_write_rows_refuses_missing_and_unknown_columns(tmp_path):
    row = _rows("smoke", "x", "rcan", "pcl", "Set5", "authors", [1.0], [0.5])[0]
    with pytest.raises(PCLError, match="lacks column"):
        write_rows(tmp_path / "x.csv", [{k: v for k, v in row.items() if k != "psnr"}])
    with pytest.raises(PCLError, match="unknown column.*psnr_y"):
        write_rows(tmp_path / "x.csv", [{**row, "psnr_y": 1.0}])


def test_read_results_names_file_and_missing_column(tmp_path):
    bad = tmp_path / "Set5.csv"
    bad.write_text("tier,experiment\nsmoke,x\n")
    with pytest.raises(PCLError, match=r"Set5\.csv lacks column\(s\) backbone"):
        read_results([bad])
    row = _rows("nonsense", "x", "rcan", "pcl", "Set5", "authors", [1.0], [0.5])
    path = write_rows(tmp_path / "t.csv", row)
    with pytest.raises(PCLError, match=r"t\.csv: line 2, tier 'nonsense'"):
        read_results([path])


def test_table2_labels():
    # backbones -> Table II rows: official weights, baselines and controls on the plain row,
    # the paper's and the released scripts' PCL on the +PCL row
    assert table2_label("edsr-l", "official") == "EDSR-L"
    assert table2_label("edsr-s", "baseline") == "EDSR-S"
    assert table2_label("rcan", "pcl") == "RCAN+PCL"
    assert table2_label("rcan", "pcl-released") == "RCAN+PCL"
    assert table2_label("nlsn", "control") == "NLSN"
    assert table2_label("bicubic", "bicubic") == "Bicubic"
    assert table2_label("swinir", "pcl") is None
    assert table2_label("edsr-s", "pcl-fixed") is None  # Table V only
    # ablation variants belong to Tables IV-VII, not Table II
    assert table2_label("rcan", "pcl", "rcan-pcl-alpha0.5") is None
    assert table2_label("rcan", "pcl", "rcan-pcl-released") == "RCAN+PCL"


# --- Table II ---------------------------------------------------------------------------------


def _table2(results, paper_csv=None, **kw):
    return build_table(results, TABLE2, paper_csv, **kw)


def test_bicubic_line_shows_ours_and_delta(bicubic_results):
    table = _table2(bicubic_results)
    md = table.to_markdown()
    line = next(l for l in md.splitlines() if "bicubic / `bicubic` / matlab" in l)
    cells = [c.strip() for c in line.strip("|").split("|")]
    # paper Bicubic Set5 28.42 / 0.8104; ours mean 28.43 / 0.8105 (hand: mean of the five values)
    assert cells[2] == "28.43 (+0.01)"
    assert cells[3] == "0.8105 (+0.0001)"
    # Set14: 3 of 14 images, mean 26.00 vs printed 26.00
    assert cells[4] == "26.00 (+0.00) [n=3/14]"
    assert cells[6] == "–"  # B100 not evaluated


def test_rows_without_results_and_literature_rows(bicubic_results):
    md = _table2(bicubic_results).to_markdown()
    lines = md.splitlines()
    i = next(k for k, l in enumerate(lines) if l.startswith("| **RCAN**"))
    assert "no result (tiers run: bicubic)" in lines[i + 1]
    j = next(k for k, l in enumerate(lines) if l.startswith("| **SRCNN**"))
    assert lines[j + 1].startswith("| **FSRCNN**")  # literature rows stay paper-only
    # every line that is not the paper's states tier / experiment / protocol, the order of the file path
    ours = [l for l in lines if l.startswith("|  | ") and "no result" not in l]
    assert ours == [l for l in ours if l.startswith("|  | bicubic / `bicubic` / matlab | ")]
    assert "| Method | Source (tier / experiment / protocol) |" in md


def test_footnotes_and_legend():
    md = _table2(pd.DataFrame()).to_markdown()
    assert "Legend:" in md and "tiers run: none" in md
    # the VDSR note of table2.csv becomes a footnote (typo 0.0726 kept as printed)
    assert re.search(r"\*\*VDSR\*\*\[\^(\d+)\]", md)
    assert "b100_ssim printed as 0.0726" in md
    assert "| 0.0726 |" in md


def test_long_csv(bicubic_results, tmp_path):
    paths = write_table(_table2(bicubic_results), tmp_path)
    assert [p.name for p in paths] == ["table2.md", "table2.tex", "table2.csv"]
    df = pd.read_csv(paths[2], dtype={"paper_value": str})
    assert tuple(df.columns) == LONG_COLUMNS
    cell = df[(df["row_label"] == "Bicubic") & (df["source"] == "bicubic") & (df["dataset"] == "Set5") & (df["metric"] == "psnr")]
    assert len(cell) == 1
    assert cell["protocol"].iloc[0] == "matlab" and cell["paper_value"].iloc[0] == "28.42"
    assert abs(cell["delta"].iloc[0] - 0.01) < 1e-9 and cell["n_images"].iloc[0] == 5
    # paper lines keep the printed strings (trailing zeros) and have no value of ours
    paper = df[(df["row_label"] == "Bicubic") & (df["source"] == "paper") & (df["dataset"] == "Set14") & (df["metric"] == "psnr")]
    assert paper["paper_value"].iloc[0] == "26.00" and paper["our_value"].isna().all()
    # every value of ours names the file it was read from; paper lines name none
    ours = df[df["source"] == "bicubic"]
    files = dict(zip(ours["dataset"], ours["source_files"]))
    assert files["Set5"].endswith("results/bicubic/bicubic/matlab/Set5.csv")
    assert files["Set14"].endswith("results/bicubic/bicubic/matlab/Set14.csv")
    assert ours[ours["dataset"] == "B100"]["source_files"].isna().all()  # not evaluated: no file
    assert df[df["source"] == "paper"]["source_files"].isna().all()


def test_source_files_follow_the_path_order(tmp_path, monkeypatch):
    # relative to the working directory (the workflow runs in the repository root) ...
    monkeypatch.chdir(tmp_path)
    rows = _rows("reported", "rcan-pcl", "rcan", "pcl", "Set5", "authors", [32.7] * 5, [0.9] * 5)
    df = write_results(tmp_path / "results", rows, source=True)
    table = _table2(df)
    (line,) = [l for l in table.lines if l.source == "reported"]
    assert line.files == ("results/reported/rcan-pcl/authors/Set5.csv",)
    assert "| reported / `rcan-pcl` / authors |" in table.to_markdown()
    # ... else from the results folder on, when the file sits at its canonical place
    elsewhere = tmp_path / "a" / "b"
    elsewhere.mkdir(parents=True)
    monkeypatch.chdir(elsewhere)
    assert display_path(tmp_path / "results/reported/rcan-pcl/authors/Set5.csv") == "results/reported/rcan-pcl/authors/Set5.csv"
    assert display_path(tmp_path / "x.csv") == (tmp_path / "x.csv").as_posix()
    # rows built in memory are named by their canonical path
    (line,) = [l for l in _table2(read_results([write_rows(tmp_path / "r.csv", rows)])).lines if l.source == "reported"]
    assert line.files == ("results/reported/rcan-pcl/authors/Set5.csv",)


def test_smoke_lines_carry_no_delta(tmp_path):
    from pcl.report.cells import cells_map

    rows = _rows("smoke", "rcan-pcl", "rcan", "pcl", "Set5", "authors", [10.0] * 5, [0.1] * 5)
    df = read_results([write_rows(tmp_path / "s.csv", rows)])
    table = _table2(df, cells=cells_map({"rcan-pcl": [(2, "RCAN+PCL")]}))
    md = table.to_markdown()
    assert "| smoke / `rcan-pcl` / authors | 10.00 (n/c) | 0.1000 (n/c) |" in md
    long = table.long_frame()
    assert long[long["source"] == "smoke"]["delta"].isna().all()


def test_latex_escaping_and_structure(tmp_path):
    assert latex_escape("EDSR-L+PCL") == "EDSR-L{+}PCL"
    assert latex_escape("a_b & 5% #1 $x$") == r"a\_b \& 5\% \#1 \$x\$"
    rows = _rows("released", "rcan-pcl", "rcan", "pcl", "Set5", "matlab", [32.7] * 5, [0.9] * 5)
    # a paper row label with LaTeX specials (copy of table2.csv with SRCNN renamed)
    paper = tmp_path / "table2.csv"
    paper.write_text(resource_path("reference", "paper", "table2.csv").read_text().replace("SRCNN,", "SR_CNN&co,", 1))
    tex = _table2(read_results([write_rows(tmp_path / "f.csv", rows)]), paper).to_latex()
    body = "\n".join(l for l in tex.splitlines() if not l.startswith("%"))
    assert body.count(r"\begin{tabular}") == 1 and body.count(r"\end{tabular}") == 1
    assert r"\toprule" in body and r"\midrule" in body and r"\bottomrule" in body
    assert re.search(r"(?<!\\)_", body) is None  # every underscore escaped
    assert "+" not in body.replace("{+}", "").replace("$+$", "")  # every + braced or in math
    assert "RCAN{+}PCL" in body and "32.70 ($+$0.00)" in body and r"SR\_CNN\&co & paper" in body
    assert r" & released/rcan-pcl/matlab & " in body  # tier/experiment/protocol, as in the file path
    # braces balance and every row has the same number of columns (2 labels + 10 values)
    assert body.count("{") == body.count("}")
    for line in body.splitlines():
        if line.endswith(r"\\") and r"\multicolumn{10}" not in line and r"\multicolumn{2}" not in line:
            assert line.count(" & ") == 11, line


def test_write_reports_from_ingested_logs(tmp_path):
    from pcl.report.released_logs import ingest

    # the Snakemake rule passes the tier folder itself as --out-dir
    files = ingest(resource_path("reference", "released_logs"), tmp_path / "results" / "reported")
    assert files[0].relative_to(tmp_path / "results").parts[0] == "reported" and len(files) == 40
    paths = write_reports(files, tmp_path / "tables", figures_dir=tmp_path / "figures")
    tables = [f"table{n}.{ext}" for n in (2, 3, 4, 5, 6, 7) for ext in ("md", "tex", "csv")]
    assert sorted(p.name for p in paths) == sorted(
        [*tables, "audit_released_logs.md", "audit_released_logs.csv", "released_gains.png"]
    )
    # without released-log rows there is no figure, but the 18 table files and the audit still appear
    assert len(write_reports([], tmp_path / "t2", figures_dir=tmp_path / "f2")) == 20
    md = (tmp_path / "tables" / "table2.md").read_text()
    # NLSN Manga109 log 31.3236 vs printed 31.27 (docs/method.md §8.1): +0.05
    assert "31.32 (+0.05)" in md
    assert "reported / `nlsn-official` / authors" in md


# --- figure -----------------------------------------------------------------------------------


def test_released_gains_figure(tmp_path):
    rows = [r for p in parse_logs(resource_path("reference", "released_logs")).values() for r in log_rows(p)]
    df = pd.DataFrame(rows)
    gains = released_gains(df)
    # docs/method.md §8.2: HAN Manga109 mean gain +0.005 dB with 44/109 images improved
    han = gains[(gains["backbone"] == "han") & (gains["dataset"] == "Manga109")]["gain"]
    assert len(han) == 109 and int((han > 0).sum()) == 44 and abs(han.mean() - 0.005) < 0.0005
    out = plot_released_gains(df, tmp_path / "fig" / "released_gains.png")
    width, height = _png_size(out)
    # one panel per dataset: the same figure for Set5 alone is a fifth as wide
    one = plot_released_gains(df[df["dataset"] == "Set5"], tmp_path / "fig" / "set5.png")
    assert _png_size(one) == (width // 5, height)
    with pytest.raises(PCLError, match="ingest-logs"):
        released_gains(df[df["method"] == "pcl"])


def _png_size(path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; fails on anything that is not a PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
