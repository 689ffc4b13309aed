"""The measured share of the contrastive term beside each +PCL line of Tables II and VII.

Every expected share below is the number the test writes into a run's ``result.json``
(``pcl_diagnostics.grad_share_median``, as the trainer writes it); the sidecars are then made
by the evaluation's own code (``pcl.evaluate._training_diagnostics`` + ``write_sidecar``), so
the table reads the same chain a real run leaves behind.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from conftest import result_rows
from pcl.report.cells import cells_map, write_cells
from pcl.report.lines import LONG_COLUMNS
from pcl.report.render import to_latex, to_markdown
from pcl.report.results import read_results, result_path, write_rows
from pcl.report.specs import TABLE2, TABLE3, TABLE4, TABLE5, TABLE6, TABLE7
from pcl.report.tables import build_table, csv_frame
from pcl.report.term_share import format_percent, share_text

# A slice of config/experiments.yaml: experiment -> (backbone, method, cells it feeds).
CATALOG = {
    "edsr-s-pcl": ("edsr-s", "pcl", [(2, "EDSR-S+PCL"), (5, "EDSR-S+PCL")]),
    "edsr-s-control": ("edsr-s", "control", []),
    "rcan-pcl": ("rcan", "pcl", [(2, "RCAN+PCL"), (4, "config3"), (6, "pos1-neg1"), (7, "alpha0.1")]),
    "rcan-pcl-released": ("rcan", "pcl-released", []),
    "rcan-pcl-alpha0.5": ("rcan", "pcl", [(7, "alpha0.5")]),
}
CELLS = cells_map({n: c for n, (_, _, c) in CATALOG.items()}, backbones={n: b for n, (b, _, _) in CATALOG.items()},
                  methods={n: m for n, (_, m, _) in CATALOG.items()}, source="test catalog")


def _run(root: Path, name: str, share: float | None) -> Path:
    """A run folder whose result.json records ``share`` (the trainer's ``pcl_diagnostics``) and its checkpoint."""
    run = root / "runs" / name
    run.mkdir(parents=True)
    (run / "model.safetensors").write_bytes(b"")
    diagnostics = {"grad_share_median": share, "grad_cosine_median": 0.1, "embedding_loss_median": 2.0,
                   "embedding_chance": 2.3, "measurements": 4, "after_iteration": 0}
    (run / "result.json").write_text(json.dumps({"pcl_diagnostics": diagnostics}))
    return run / "model.safetensors"


def _write(root: Path, tier: str, experiment: str, dataset: str, *, protocol: str = "matlab", folder: str | None = None,
           seed: int | None = None, checkpoint: Path | None = None, **metrics: float) -> Path:
    """One result CSV (and, given a run's checkpoint, its sidecar as evaluation writes it);
    ``metrics`` adds optional columns (``lpips``, ``niqe``) to every image."""
    from pcl.evaluate import _training_diagnostics
    from pcl.inference.predictor import write_sidecar

    backbone, method, _ = CATALOG[experiment]
    rows = result_rows(tier, experiment, dataset, backbone=backbone, method=method, protocol=protocol, psnr=30.0, n=5,
                       **metrics)
    for row in rows:
        row["seed"] = seed
    path = write_rows(result_path(root / "results", tier, folder or experiment, protocol, dataset), rows)
    if checkpoint is not None:
        write_sidecar(path, {"checkpoint": {"path": str(checkpoint)}, **_training_diagnostics(checkpoint)})
    return path


@pytest.fixture()
def table2_files(tmp_path: Path) -> list[Path]:
    """+PCL with a measured share, released semantics (0 by construction), the authors' logs
    (no sidecar), and an L1-only control whose sidecar carries a share it must not be shown with."""
    pcl, released, control = (_run(tmp_path, n, s) for n, s in
                              (("edsr-s-pcl", 0.0041), ("rcan-pcl-released", 0.0), ("edsr-s-control", 0.5)))
    files = [_write(tmp_path, "smoke", "edsr-s-pcl", ds, checkpoint=pcl) for ds in ("Set5", "Set14")]
    files.append(_write(tmp_path, "smoke", "rcan-pcl-released", "Set5", checkpoint=released))
    files.append(_write(tmp_path, "smoke", "edsr-s-control", "Set5", checkpoint=control))
    files.append(_write(tmp_path, "reported", "rcan-pcl", "Set5", protocol="authors"))
    return files


def _legend_line(markdown: str) -> str:
    return next(line for line in markdown.splitlines() if line.startswith("Measured share of the L1 gradient"))


def test_table2_legend_names_each_pcl_lines_share(table2_files: list[Path]) -> None:
    table = build_table(read_results(table2_files, source=True), TABLE2, cells=CELLS)
    legend = _legend_line(to_markdown(table))
    # 0.0041 written into edsr-s-pcl's result.json is 0.41 %; the two sets are one run, counted once
    assert "`smoke / edsr-s-pcl / matlab` 0.41 %;" in legend
    assert "`smoke / rcan-pcl-released / matlab` 0 %" in legend  # released semantics: no gradient
    assert "`reported / rcan-pcl / authors` not recorded" in legend  # the authors' logs have no sidecar
    assert "edsr-s-control" not in legend and "50.00 %" not in legend  # not a +PCL line
    comment = next(line for line in to_latex(table).splitlines() if line.startswith("% Measured share"))
    assert "smoke / edsr-s-pcl / matlab 0.41 %" in comment and "`" not in comment  # plain text in LaTeX


def test_table2_csv_carries_the_share_of_each_pcl_line(table2_files: list[Path]) -> None:
    frame = csv_frame(build_table(read_results(table2_files, source=True), TABLE2, cells=CELLS))
    assert tuple(frame.columns) == LONG_COLUMNS and LONG_COLUMNS[-1] == "term_grad_share"
    share = frame.groupby("experiment")["term_grad_share"].agg(lambda s: sorted(set(s.dropna())))
    assert share["edsr-s-pcl"] == [0.0041] and share["rcan-pcl-released"] == [0.0]  # the values written above
    assert share["edsr-s-control"] == []  # a control has no share to show
    assert frame.loc[frame["source"].isin(["reported", "paper"]), "term_grad_share"].isna().all()


def test_table7_prints_median_and_range_of_several_seeds(tmp_path: Path) -> None:
    # three seeds of rcan-pcl-alpha0.5, run folders `<name>@seed<N>` as the workflow names them
    files = [_write(tmp_path, "smoke", "rcan-pcl-alpha0.5", "Set14", folder=f"rcan-pcl-alpha0.5@seed{s}", seed=s,
                    checkpoint=_run(tmp_path, f"alpha0.5-{s}", share)) for s, share in ((0, 0.02), (1, 0.03), (2, 0.05))]
    files.append(_write(tmp_path, "smoke", "rcan-pcl", "Set14", checkpoint=_run(tmp_path, "rcan-pcl", 0.0022)))
    table = build_table(read_results(files, source=True), TABLE7, cells=CELLS)
    legend = _legend_line(to_markdown(table))
    # median of 2 %, 3 %, 5 % is 3 %; the range spans the smallest and largest seed
    assert "`smoke / rcan-pcl-alpha0.5 / matlab` median 3.00 % (range 2.00 % to 5.00 % over 3 runs)" in legend
    assert "`smoke / rcan-pcl / matlab` 0.22 %; `smoke / rcan-pcl-alpha0.5" in legend  # table order: alpha=0.1 first
    csv = csv_frame(table)
    assert set(csv.loc[csv["experiment"] == "rcan-pcl-alpha0.5", "term_grad_share"]) == {0.03}


@pytest.mark.parametrize("spec", [TABLE3, TABLE4, TABLE5, TABLE6], ids=lambda s: s.name)
def test_other_tables_do_not_show_the_share(table2_files: list[Path], tmp_path: Path, spec) -> None:
    """The same results rendered with and without their sidecars: byte-identical on Tables III-VI."""
    files = [*table2_files, _write(tmp_path, "smoke", "rcan-pcl", "Set14", checkpoint=_run(tmp_path, "rcan-pcl", 0.0022)),
             _write(tmp_path, "smoke", "rcan-pcl-released", "Set14", checkpoint=tmp_path / "runs" / "rcan-pcl-released" /
                    "model.safetensors", lpips=0.2, niqe=5.0)]  # Table III shows NIQE/LPIPS only
    with_sidecars = build_table(read_results(files, source=True), spec, cells=CELLS)
    # each of these tables has a +PCL line whose sidecars record a share, so leaving it out is a decision
    assert any(line.method.startswith("pcl") and line.files for line in with_sidecars.lines)
    for path in files:
        path.with_suffix(".json").unlink(missing_ok=True)
    without = build_table(read_results(files, source=True), spec, cells=CELLS)
    assert to_markdown(with_sidecars) == to_markdown(without) and to_latex(with_sidecars) == to_latex(without)
    assert "Measured share" not in to_markdown(with_sidecars)
    assert csv_frame(with_sidecars)["term_grad_share"].isna().all()


def test_flag_on_the_spec_decides(table2_files: list[Path]) -> None:
    """Table II without its flag renders exactly as before the share existed: no sentence, no value."""
    results = read_results(table2_files, source=True)
    plain = build_table(results, replace(TABLE2, term_share=False), cells=CELLS)
    shown = build_table(results, TABLE2, cells=CELLS)
    assert "Measured share" not in to_markdown(plain) and csv_frame(plain)["term_grad_share"].isna().all()
    # removing the sentence (and the blank line before it) gives the unflagged table back
    sentence = "\n\n" + _legend_line(to_markdown(shown))
    assert to_markdown(shown).replace(sentence, "") == to_markdown(plain)


def test_no_pcl_line_no_sentence() -> None:
    assert "Measured share" not in to_markdown(build_table(None, TABLE7))


def test_percentages_keep_two_significant_digits() -> None:
    # hand: 100 * 3.2e-05 = 0.0032; 100 * 0.125 = 12.5
    assert format_percent(3.2e-05) == "0.0032 %" and format_percent(0.125) == "12.50 %" and format_percent(0) == "0 %"
    assert share_text(()) == "not recorded" and share_text((0.01, 0.01)) == "1.00 % (2 runs)"


@pytest.mark.faults
@pytest.mark.parametrize("bad", ["0.4", True, -0.1, [0.1]])
def test_damaged_share_stops_the_tables_with_one_line(table2_files: list[Path], tmp_path: Path, capsys, bad) -> None:
    """``pcl tables`` on a sidecar whose share is no number: exit 2, one line naming the sidecar, the
    key and what to do, no table written and no file of the results changed."""
    from pcl.cli import main

    sidecar = table2_files[0].with_suffix(".json")
    data = json.loads(sidecar.read_text())
    data["training"]["term_grad_share"] = bad
    sidecar.write_text(json.dumps(data))
    cells = write_cells(tmp_path / "cells.json", CELLS)
    before = {p: p.read_bytes() for p in (tmp_path / "results").rglob("*") if p.is_file()}
    code = main(["tables", "--results", str(tmp_path / "results"), "--cells", str(cells), "--out-dir",
                 str(tmp_path / "tables"), "--figures-dir", str(tmp_path / "figures")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert str(sidecar) in err and "training.term_grad_share" in err and repr(bad) in err and "re-run" in err
    assert not (tmp_path / "tables").exists() and not (tmp_path / "figures").exists()
    assert {p: p.read_bytes() for p in (tmp_path / "results").rglob("*") if p.is_file()} == before
