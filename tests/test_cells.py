"""Catalog cells -> Tables II, IV, V, VI, VII and the smoke completeness check.

Paper values quoted below are from resources/reference/paper/table{2,4,5,6,7}.csv (P-J, as
printed); row keys are those of pcl.train.catalog.TABLE_ROWS.  Result rows are synthetic: every
image of a set gets the same value, so a set mean equals that value exactly.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pandas as pd
import pytest

from conftest import result_rows, write_results

from pcl.errors import PCLError
from pcl.report.cells import CellsMap, cells_map, read_cells, write_cells
from pcl.report.check import DEFAULT_DEVIATIONS, DEFAULT_TOLERANCES, run_check
from pcl.report.paper import read_paper_table
from pcl.report.specs import TABLE2, TABLE3, TABLE4, TABLE5, TABLE6, TABLE7, TABLES
from pcl.report.tables import build_table
from pcl.resources import resource_path

PAPER = resource_path("reference", "paper")
LOGS = resource_path("reference", "released_logs")

# A slice of config/experiments.yaml (the catalog is the source; these are its values):
# experiment -> (backbone, method, cells).
CATALOG = {
    "rcan-pcl": ("rcan", "pcl", [(2, "RCAN+PCL"), (4, "config3"), (6, "pos1-neg1"), (7, "alpha0.1")]),
    "rcan-pcl-cfg1-vgg": ("rcan", "pcl", [(4, "config1")]),
    "rcan-pcl-cfg4-noaug": ("rcan", "pcl", [(4, "config4"), (6, "pos0-neg0")]),
    "rcan-pcl-pos-only": ("rcan", "pcl", [(6, "pos1-neg0")]),
    "rcan-pcl-alpha0.5": ("rcan", "pcl", [(7, "alpha0.5")]),
    "edsr-s-pcl": ("edsr-s", "pcl", [(2, "EDSR-S+PCL"), (5, "EDSR-S+PCL")]),
    "edsr-s-pcl-fixed": ("edsr-s", "pcl-fixed", [(5, "EDSR-S+PCL-F")]),
    "rcan-control": ("rcan", "control", []),
    "rcan-pcl-released": ("rcan", "pcl-released", []),
    "edsr-s-control": ("edsr-s", "control", []),
}
CELLS = {name: cells for name, (_, _, cells) in CATALOG.items()}


def _mapping() -> CellsMap:
    return cells_map(CELLS, backbones={n: b for n, (b, _, _) in CATALOG.items()},
                     methods={n: m for n, (_, m, _) in CATALOG.items()}, source="test catalog")


def _rows(tier, experiment, dataset, protocol, psnr, ssim, n=None, **extra):
    backbone, method, _ = CATALOG.get(experiment, ("rcan", "pcl", []))
    return result_rows(tier, experiment, dataset, backbone=backbone, method=method, protocol=protocol, psnr=psnr, ssim=ssim,
                       n=n, **extra)


def _results(tmp_path, blocks) -> pd.DataFrame:
    return write_results(tmp_path, *blocks)


def _smoke_all(tmp_path, *, skip=(), nan=None, partial=None) -> pd.DataFrame:
    """Smoke rows for every experiment of CELLS on Set5 and Set14 (matlab), values 10 dB / 0.1."""
    blocks = []
    for name in CELLS:
        for ds in ("Set5", "Set14"):
            if (name, ds) in skip:
                continue
            n = 3 if partial == (name, ds) else None
            rows = _rows("smoke", name, ds, "matlab", 10.0, 0.1, n=n)
            if nan == (name, ds):
                rows[1]["psnr"] = float("nan")
            blocks.append(rows)
    return _results(tmp_path, blocks)


def _our_lines(table, label):
    return [l for l in table.lines if l.row_label == label and not l.is_paper and not l.message]


def _cell(line, dataset, metric):
    return next(c for c in line.cells if (c.dataset, c.metric) == (dataset, metric))


# --- specs against the paper CSVs and the catalog ---------------------------------------------


def test_every_catalog_row_key_names_one_paper_row():
    from pcl.train.catalog import TABLE_ROWS

    for spec in TABLES:
        paper = read_paper_table(PAPER / spec.paper_file, spec.label_columns, spec.name, named=spec.named_labels)
        keys = [spec.row_key(r) for _, r in paper.frame.iterrows()]
        assert len(keys) == len(set(keys)), spec.name
        # Table II also holds literature rows (Bicubic, SRCNN, ...) that no experiment feeds
        assert set(TABLE_ROWS[spec.number]) <= set(keys), (spec.name, set(TABLE_ROWS[spec.number]) - set(keys))
        if spec.number != 2:
            assert set(TABLE_ROWS[spec.number]) == set(keys), spec.name


def test_trained_tiers_are_the_catalogs_tiers():
    # the report places exactly the tiers the catalog trains by the catalog's cells, the others by name
    from pcl.names import TIERS, TRAINED_TIERS
    from pcl.train.catalog import load_catalog

    assert set(load_catalog().tiers) == set(TRAINED_TIERS)
    assert set(TRAINED_TIERS) < set(TIERS) and {"reported", "bicubic", "released"}.isdisjoint(TRAINED_TIERS)


def test_row_labels_show_the_ablation_settings():
    labels = {s.name: read_paper_table(PAPER / s.paper_file, s.label_columns, s.name, named=s.named_labels).labels for s in TABLES}
    assert labels["table4"][0] == "config=1, embedding=VGG, aug=1"
    assert labels["table6"] == ["pos=0, neg=0", "pos=1, neg=0", "pos=0, neg=1", "pos=1, neg=1"]
    assert labels["table7"] == ["alpha=0.01", "alpha=0.1", "alpha=0.25", "alpha=0.5", "alpha=1", "alpha=5"]
    assert labels["table5"] == ["EDSR-S", "EDSR-S+PCL", "EDSR-S+PCL-F"]


# --- placement --------------------------------------------------------------------------------


def test_smoke_rows_are_placed_by_the_catalog_cells(tmp_path):
    df = _smoke_all(tmp_path)
    cells = _mapping()
    t4 = build_table(df, TABLE4, cells=cells)
    # config3 is fed by rcan-pcl, config1 by rcan-pcl-cfg1-vgg; smoke lines carry no delta
    (line,) = _our_lines(t4, "config=3, embedding=H+D, aug=1")
    assert (line.source, line.protocol, line.experiment) == ("smoke", "matlab", "rcan-pcl")
    assert _cell(line, "Set5", "psnr").our_value == 10.0 and not line.comparable
    assert [l.experiment for l in _our_lines(t4, "config=1, embedding=VGG, aug=1")] == ["rcan-pcl-cfg1-vgg"]
    md = t4.to_markdown()
    # paper config3 Set5 32.70 / 0.9005; ours 10 dB / 0.1 shown as not comparable
    assert "| smoke / `rcan-pcl` / matlab | 10.00 (n/c) | 0.1000 (n/c) | 10.00 (n/c) | 0.1000 (n/c) | – |" in md
    # configs 2 and 5 have no experiment in this slice of the catalog
    assert md.count("no result (tiers run: smoke)") == 2


def test_tables_v_vi_vii_and_table2(tmp_path):
    df = _smoke_all(tmp_path)
    cells = _mapping()
    t5 = build_table(df, TABLE5, cells=cells)
    assert [l.experiment for l in _our_lines(t5, "EDSR-S+PCL-F")] == ["edsr-s-pcl-fixed"]
    assert [l.experiment for l in _our_lines(t5, "EDSR-S+PCL")] == ["edsr-s-pcl"]
    t6 = build_table(df, TABLE6, cells=cells)
    assert [l.experiment for l in _our_lines(t6, "pos=1, neg=0")] == ["rcan-pcl-pos-only"]
    assert [l.experiment for l in _our_lines(t6, "pos=0, neg=0")] == ["rcan-pcl-cfg4-noaug"]
    (line,) = _our_lines(t6, "pos=1, neg=1")
    # Table VI has no Set5/Set14 columns: the smoke line is there but holds no value of ours
    assert line.experiment == "rcan-pcl" and all(c.our_value is None for c in line.cells)
    t7 = build_table(df, TABLE7, cells=cells)
    (line,) = _our_lines(t7, "alpha=0.5")
    # Table VII: Set14 PSNR only (paper alpha 0.5: 28.77)
    assert [(c.dataset, c.metric, c.paper_printed, c.our_value) for c in line.cells] == [("Set14", "psnr", "28.77", 10.0)]
    t2 = build_table(df, TABLE2, cells=cells)
    by_row = {label: [l.experiment for l in _our_lines(t2, label)] for label in t2.paper.labels}
    assert by_row["EDSR-S+PCL"] == ["edsr-s-pcl"]
    # experiments that feed no cell sit on their backbone's row, by the catalog's backbone and
    # method: the L1-only control on RCAN, the authors' script as released beside the paper's +PCL
    assert by_row["RCAN"] == ["rcan-control"]
    assert by_row["RCAN+PCL"] == ["rcan-pcl", "rcan-pcl-released"]
    # ablation runs never land on Table II; every experiment of the slice is on some table
    placed = {e for v in by_row.values() for e in v}
    assert not placed & {"rcan-pcl-cfg1-vgg", "rcan-pcl-pos-only", "rcan-pcl-alpha0.5", "edsr-s-pcl-fixed"}
    assert not any(t.unplaced for t in (t2, t5, t6, t7))
    # Tables IV-VII place by cells only: no backbone row there for the control or the released script
    assert not {"rcan-control", "rcan-pcl-released"} & {l.experiment for t in (t5, t6, t7) for l in t.lines}


def test_no_cell_experiments_on_table3_backbone_rows(tmp_path):
    # Table III has RCAN rows (no HAN row): a control and a released-script run with NIQE land there
    df = _results(tmp_path, [_rows("finetune", "rcan-control", "Set5", "matlab", 32.6, 0.90, niqe=6.0),
                             _rows("finetune", "rcan-pcl-released", "Set5", "matlab", 32.7, 0.90, niqe=5.9)])
    t3 = build_table(df, TABLE3, cells=_mapping())
    assert [l.experiment for l in _our_lines(t3, "RCAN")] == ["rcan-control"]
    (line,) = _our_lines(t3, "RCAN+PCL")
    assert line.experiment == "rcan-pcl-released" and _cell(line, "Set5", "niqe").our_value == 5.9
    assert "| finetune / `rcan-pcl-released` / matlab | 5.900 (" in t3.to_markdown()


def test_mini_tier_is_placed_by_the_catalog_and_not_compared(tmp_path):
    df = _results(tmp_path, [_rows("mini", "edsr-s-pcl", "Set5", "matlab", 30.0, 0.85),
                             _rows("mini", "edsr-s-control", "Set5", "matlab", 29.9, 0.85)])
    t2 = build_table(df, TABLE2, cells=_mapping())
    (line,) = _our_lines(t2, "EDSR-S+PCL")
    assert (line.source, line.experiment) == ("mini", "edsr-s-pcl") and not line.comparable
    assert [l.experiment for l in _our_lines(t2, "EDSR-S")] == ["edsr-s-control"]
    assert "| mini / `edsr-s-pcl` / matlab | 30.00 (n/c) | 0.8500 (n/c) |" in t2.to_markdown()
    assert t2.long_frame().query("source == 'mini'")["delta"].isna().all()


def test_untrained_tiers_are_not_placed_by_the_catalog(tmp_path):
    # the released logs are ingested as experiment `rcan-pcl` (tier reported): a different model
    # (the released script) from the catalog's rcan-pcl, so it must stay off Tables IV/VI/VII
    df = _results(tmp_path, [_rows("reported", "rcan-pcl", "Set5", "authors", 32.7, 0.9)])
    cells = _mapping()
    assert not _our_lines(build_table(df, TABLE4, cells=cells), "config=3, embedding=H+D, aug=1")
    assert [l.source for l in _our_lines(build_table(df, TABLE2, cells=cells), "RCAN+PCL")] == ["reported"]


def test_finetune_lines_get_deltas_and_lpips_shows_when_present(tmp_path):
    # paper Table VI pos1-neg1: B100 27.78 / 0.7437 / LPIPS 0.3010
    df = _results(tmp_path, [_rows("finetune", "rcan-pcl", "B100", "matlab", 27.80, 0.7440, lpips=0.3)])
    t6 = build_table(df, TABLE6, cells=_mapping())
    (line,) = _our_lines(t6, "pos=1, neg=1")
    assert line.comparable
    assert math.isclose(_cell(line, "B100", "psnr").delta, 0.02, abs_tol=1e-9)
    assert math.isclose(_cell(line, "B100", "lpips").our_value, 0.3) and _cell(line, "Urban100", "lpips").our_value is None
    assert "0.3000 (-0.0010)" in t6.to_markdown()


def test_unknown_row_key_is_listed_as_unplaced(tmp_path):
    df = _results(tmp_path, [_rows("smoke", "rcan-pcl-alpha2", "Set14", "matlab", 10.0, 0.1)])
    cells = cells_map({**CELLS, "rcan-pcl-alpha2": [(7, "alpha2")]})
    t7 = build_table(df, TABLE7, cells=cells)
    assert t7.unplaced == ("rcan-pcl-alpha2",)
    assert "Results with no row in this table: `rcan-pcl-alpha2`." in t7.to_markdown()


def test_trained_results_are_never_placed_by_name(tmp_path):
    # without a mapping no trained result has a row, on any table: each is listed as unplaced
    df = _smoke_all(tmp_path)
    for spec in (TABLE2, TABLE4):
        table = build_table(df, spec)
        assert not any(not l.is_paper and not l.message for l in table.lines)
        assert table.unplaced == tuple(sorted(CELLS))
    # with one, an experiment the catalog lacks is unplaced even though its name reads like a Table II run
    df = _results(tmp_path / "x", [_rows("smoke", "rcan-pcl-v2", "Set5", "matlab", 10.0, 0.1)])
    t2 = build_table(df, TABLE2, cells=_mapping())
    assert t2.unplaced == ("rcan-pcl-v2",) and not _our_lines(t2, "RCAN+PCL")
    assert "Results with no row in this table: `rcan-pcl-v2`." in t2.to_markdown()


# --- the mapping file -------------------------------------------------------------------------


def test_cells_file_round_trip(tmp_path):
    path = write_cells(tmp_path / "cells.json", _mapping())
    back = read_cells(path)
    assert back.cells == _mapping().cells
    assert back.backbones["edsr-s-pcl-fixed"] == "edsr-s" and back.methods["edsr-s-pcl-fixed"] == "pcl-fixed"
    assert back.backbones["rcan-pcl-released"] == "rcan" and back.methods["rcan-pcl-released"] == "pcl-released"
    assert back.source == "test catalog"
    assert back.rows("rcan-pcl", 4) == ["config3"] and back.rows("rcan-control", 2) == []
    assert back.experiments_with_cells() == [n for n, c in CELLS.items() if c]
    assert json.loads(path.read_text())["experiments"]["rcan-pcl"]["cells"][1] == [4, "config3"]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"a": [(2, "RCAN"), (8, "RCAN")]}, r"table 8 is not one of"),
        ({"a": [(2, "RCAN")], "b": [(2, "RCAN")]}, r"table 2 row 'RCAN' is fed by both 'a' and 'b'"),
        ({"a": [(2, "")]}, r"must be a non-empty string"),
        ({"a": [(2,)]}, r"each cell is \[table, row\]"),
    ],
)
def test_cells_validation(data, message):
    with pytest.raises(PCLError, match=message):
        cells_map(data)


def test_cells_file_errors_name_the_file(tmp_path):
    with pytest.raises(PCLError, match=r"cells mapping .*missing\.json not found; write it with `pcl catalog cells"):
        read_cells(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 1, "experiments": {"a": {"cells": [[9, "x"]]}}}))
    with pytest.raises(PCLError, match=r"experiments\.a\.cells: table 9"):
        read_cells(bad)
    bad.write_text("{")
    with pytest.raises(PCLError, match=r"bad\.json: not valid JSON"):
        read_cells(bad)


def test_catalog_cells_cli_feeds_every_paper_row(tmp_path):
    from pcl.cli import main
    from pcl.train.catalog import TABLE_ROWS

    out = tmp_path / "cells.json"
    assert main(["catalog", "cells", "--out", str(out)]) == 0
    cells = read_cells(out)
    fed = {cell for c in cells.cells.values() for cell in c}
    # every row of Tables II, IV-VII that the catalog lists is fed by exactly one experiment
    assert fed == {(t, row) for t, rows in TABLE_ROWS.items() for row in rows}
    assert cells.rows("edsr-s-pcl-fixed", 5) == ["EDSR-S+PCL-F"]
    # experiments without cells carry what places them on their backbone's rows
    assert (cells.backbones["nlsn-pcl-released"], cells.methods["nlsn-pcl-released"]) == ("nlsn", "pcl-released")
    assert (cells.backbones["han-control"], cells.methods["han-control"]) == ("han", "control")


# --- pcl check, smoke tier ----------------------------------------------------------------------


def _check(df, cells):
    return run_check(df, tolerances_path=DEFAULT_TOLERANCES, deviations_path=DEFAULT_DEVIATIONS,
                     paper_dir=PAPER, logs_dir=LOGS, cells=cells)


def test_smoke_complete_and_finite_passes(tmp_path):
    report = _check(_smoke_all(tmp_path), _mapping())
    assert report.exit_code == 0, report.render()
    # one presence item per (experiment with cells, protocol, dataset): 7 x 1 x 2, plus finiteness
    present = [i for i in report.items if i.check == "cell"]
    assert len(present) == 14 and {i.status for i in present} == {"ok"}
    assert all(i.reference == "" for i in report.items)  # never compared with the paper


def test_smoke_missing_cell_fails(tmp_path):
    report = _check(_smoke_all(tmp_path, skip={("rcan-pcl-pos-only", "Set14")}), _mapping())
    assert report.exit_code == 1
    (miss,) = report.misses
    assert (miss.subject, miss.row, miss.dataset) == ("rcan-pcl-pos-only (matlab)", "T6:pos1-neg0", "Set14")
    assert "results/smoke/rcan-pcl-pos-only/matlab/Set14.csv is missing" in miss.detail


def test_smoke_experiment_absent_fails_for_every_evaluated_set(tmp_path):
    skip = {("edsr-s-pcl-fixed", "Set5"), ("edsr-s-pcl-fixed", "Set14")}
    report = _check(_smoke_all(tmp_path, skip=skip), _mapping())
    assert sorted((m.subject, m.dataset) for m in report.misses) == [
        ("edsr-s-pcl-fixed (matlab)", "Set14"), ("edsr-s-pcl-fixed (matlab)", "Set5")]


def test_smoke_nan_and_partial_sets_fail(tmp_path):
    report = _check(_smoke_all(tmp_path, nan=("rcan-pcl", "Set5")), _mapping())
    assert report.exit_code == 1
    assert [(m.check, m.subject, m.metric, m.detail) for m in report.misses] == [
        ("finite", "rcan-pcl (matlab)", "psnr", "1/5 images not finite: img001")]
    report = _check(_smoke_all(tmp_path / "p", partial=("rcan-pcl", "Set14")), _mapping())
    assert [(m.check, m.detail) for m in report.misses] == [("cell", "partial set: 3/14 images")]


def test_smoke_without_mapping_checks_finiteness_and_says_so(tmp_path):
    report = _check(_smoke_all(tmp_path, skip={("rcan-pcl", "Set5")}), None)
    assert report.exit_code == 0
    assert any("no cells mapping given" in n for n in report.notes)


def test_check_cli_reads_the_cells_file(tmp_path):
    from pcl.cli import main

    _smoke_all(tmp_path / "results", skip={("rcan-pcl", "Set14")})
    cells = write_cells(tmp_path / "cells.json", _mapping())
    out = tmp_path / "check.txt"
    code = main(["check", "--results", str(tmp_path / "results"), "--cells", str(cells), "--out", str(out)])
    assert code == 1
    assert "results/smoke/rcan-pcl/matlab/Set14.csv is missing" in out.read_text()


def test_report_layer_does_not_import_train():
    # architecture.md package map: pcl.report must not import pcl.train (the mapping travels as a file)
    code = ("import sys, pcl.report.reports, pcl.report.check, pcl.report.cells; "
            "print(sorted(m for m in sys.modules if m.startswith('pcl.train')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_tables_cli_writes_every_table_with_the_cells_file(tmp_path):
    from pcl.cli import main

    _smoke_all(tmp_path / "results")
    cells = write_cells(tmp_path / "cells.json", _mapping())
    out = tmp_path / "tables"
    code = main(["tables", "--results", str(tmp_path / "results"), "--cells", str(cells), "--out-dir", str(out),
                 "--figures-dir", str(tmp_path / "figures")])
    assert code == 0
    assert sorted(p.name for p in out.glob("table*.md")) == [f"table{n}.md" for n in (2, 3, 4, 5, 6, 7)]
    assert "| smoke / `edsr-s-pcl-fixed` / matlab |" in (out / "table5.md").read_text()
    long = pd.read_csv(out / "table6.csv")
    smoke = long[(long["source"] == "smoke") & (long["row_label"] == "pos=1, neg=0")]
    assert set(smoke["experiment"]) == {"rcan-pcl-pos-only"} and smoke["delta"].isna().all()
    # Table VI has no Set5/Set14 columns: the smoke line stands for its files but no cell reads one
    assert smoke["source_files"].isna().all()
    t7 = pd.read_csv(out / "table7.csv")
    cell = t7[(t7["source"] == "smoke") & (t7["experiment"] == "rcan-pcl-alpha0.5")]
    assert list(cell["source_files"]) == [f"{(tmp_path / 'results').name}/smoke/rcan-pcl-alpha0.5/matlab/Set14.csv"]
