"""``pcl check``: per-tier rules, expected deviations, stale entries and config validation.

Tolerances are those of config/tolerances.yaml (bicubic 0.01 dB / 0.0015 SSIM; released logs
within half a unit of the printed digit); the expected deviations are docs/method.md §8.1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import result_rows, write_results

from pcl.errors import PCLError
from pcl.provenance import code_provenance
from pcl.report.audit import audit_table
from pcl.report.cells import cells_map
from pcl.report.check import DEFAULT_DEVIATIONS, DEFAULT_TOLERANCES, check_files, load_deviations, run_check
from pcl.report.check_provenance import placements, sidecar_status
from pcl.report.released_logs import ingest
from pcl.report.results import read_results, result_path, write_rows
from pcl.resources import resource_path

PAPER = resource_path("reference", "paper")
LOGS = resource_path("reference", "released_logs")


def _rows(tier, experiment, backbone, method, dataset, protocol, psnrs, ssims):
    return result_rows(tier, experiment, dataset, backbone=backbone, method=method, protocol=protocol, psnr=psnrs, ssim=ssims)


def _frame(tmp_path: Path, rows: list[dict]) -> pd.DataFrame:
    return read_results([write_rows(tmp_path / f"r{len(list(tmp_path.iterdir()))}.csv", rows)])


def _check(results, **kw):
    return run_check(results, tolerances_path=kw.pop("tolerances_path", DEFAULT_TOLERANCES),
                     deviations_path=kw.pop("deviations_path", DEFAULT_DEVIATIONS), paper_dir=PAPER, logs_dir=LOGS, **kw)


def _items(report, check):
    return [i for i in report.items if i.check == check]


@pytest.fixture(scope="module")
def reported(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    ingest(LOGS, root)
    return root, read_results(sorted(root.glob("*/*/*/*.csv")))


# --- bicubic ----------------------------------------------------------------------------------


def test_bicubic_within_tolerance_passes(tmp_path):
    # paper Bicubic Set5 28.42 / 0.8104; ours 28.43 / 0.8110 -> |d| = 0.01 dB and 0.0006 (tolerance 0.01 / 0.0015)
    df = _frame(tmp_path, _rows("bicubic", "bicubic", "bicubic", "bicubic", "Set5", "matlab", [28.43] * 5, [0.8110] * 5))
    report = _check(df)
    assert report.exit_code == 0, report.render()
    assert [(i.dataset, i.metric, i.status) for i in report.items] == [("Set5", "psnr", "ok"), ("Set5", "ssim", "ok")]
    # the file lands on Table II's Bicubic row: counted in a note, no item (items are the cells)
    assert "1 result file(s) each on a row of Tables II-VII" in report.notes
    assert placements(df, paper_dir=PAPER, cells=None) == {"results/bicubic/bicubic/matlab/Set5.csv": ["T2:Bicubic"]}


def test_bicubic_outside_tolerance_fails(tmp_path):
    # 28.44 vs 28.42 is 0.02 dB > 0.01
    df = _frame(tmp_path, _rows("bicubic", "bicubic", "bicubic", "bicubic", "Set5", "matlab", [28.44] * 5, [0.8104] * 5))
    report = _check(df)
    assert report.exit_code == 1
    assert [(i.metric, i.status) for i in report.misses] == [("psnr", "miss")]
    assert "Misses:" in report.render()


def test_bicubic_other_protocol_and_partial_set(tmp_path):
    # the paper's Bicubic row is matlab protocol: an authors-protocol row is noted, not compared
    authors = _rows("bicubic", "bicubic", "bicubic", "bicubic", "Set5", "authors", [40.0] * 5, [0.99] * 5)
    partial = _rows("bicubic", "bicubic", "bicubic", "bicubic", "Set14", "matlab", [26.0] * 3, [0.7027] * 3)
    report = _check(_frame(tmp_path, authors + partial))
    assert any("protocol authors not compared" in n for n in report.notes)
    assert report.exit_code == 1 and all("partial set: 3/14" in i.detail for i in report.misses)


# --- reported (released logs) -----------------------------------------------------------------


def test_reported_tier_passes_with_expected_deviations(reported):
    _, df = reported
    report = _check(df)
    assert report.exit_code == 0, report.render()
    # docs/method.md §8.1: 27 cells flagged (±1) or (X) across the eight logs
    assert len(report.expected) == 27
    text = report.render()
    assert "Expected deviations that occurred" in text
    # each occurred deviation is shown with the reason the file documents
    reasons = {d.reason for d in load_deviations(DEFAULT_DEVIATIONS, PAPER)}
    assert {i.detail for i in report.expected} == reasons and all(r in text for r in reasons)
    assert "tier bicubic: no rows; no checks" in text and "tier smoke: no rows; no checks" in text
    # (a) 8 logs x 5 sets x 2 metrics average-line checks, all ok
    avg = [i for i in report.items if i.check == "average-line"]
    assert len(avg) == 80 and {i.status for i in avg} == {"ok"}


def test_check_files_entry(reported, tmp_path):
    root, _ = reported
    report = check_files(sorted(root.rglob("*.csv")))
    assert report.exit_code == 0
    # tier reported comes from the released logs: no sidecar expected, every file on a Table II row
    assert any("no sidecar expected" in n for n in report.notes)
    assert "40 result file(s) each on a row of Tables II-VII" in report.notes
    assert not {i.check for i in report.items} & {"placed", "sidecar"}
    # no files at all: every configured tier says it has no rows, nothing fails
    empty = check_files([])
    assert empty.exit_code == 0 and empty.items == [] and "tier reported: no rows; no checks" in empty.render()
    with pytest.raises(PCLError, match="not found"):
        check_files([tmp_path / "missing.csv"])


def test_deviation_file_matches_the_audit():
    # the documented deviations are exactly the audit's non-equal flags (docs/method.md §8.1 recomputed)
    audit = audit_table(LOGS, PAPER / "table2.csv")
    flagged = audit[(audit["kind"] == "average") & (audit["flag"] != "=")]
    from_audit = {(r, d, m) for r, d, m in zip(flagged["row_label"], flagged["dataset"], flagged["metric"])}
    listed = {(d.row, d.dataset, d.metric) for d in load_deviations(DEFAULT_DEVIATIONS, PAPER)}
    assert listed == from_audit and len(listed) == 27


def _deviations_file(tmp_path: Path, transform) -> Path:
    data = yaml.safe_load(DEFAULT_DEVIATIONS.read_text())
    data["deviations"] = transform(data["deviations"])
    out = tmp_path / "dev.yaml"
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def test_stale_deviation_fails(reported, tmp_path):
    _, df = reported
    # RCAN Set5 PSNR: log 32.6388 vs printed 32.64, within rounding -> an entry for it is stale
    extra = {"table": "table2", "row": "RCAN", "dataset": "Set5", "metric": "psnr", "reason": "test entry"}
    path = _deviations_file(tmp_path, lambda devs: devs + [extra])
    report = _check(df, deviations_path=path)
    assert report.exit_code == 1
    assert [(i.row, i.dataset, i.metric, i.status) for i in report.misses] == [("RCAN", "Set5", "psnr", "stale")]


def test_undocumented_deviation_fails(reported, tmp_path):
    _, df = reported
    # drop docs/method.md §8.1 item 6 (NLSN+PCL B100 SSIM) from the file: it becomes a miss
    path = _deviations_file(tmp_path, lambda devs: [d for d in devs if not (d["row"] == "NLSN+PCL")])
    report = _check(df, deviations_path=path)
    assert report.exit_code == 1
    assert [(i.subject, i.dataset, i.metric, i.status) for i in report.misses] == [("NLSNx4_Ours", "B100", "ssim", "miss")]


def test_tampered_ingested_rows_fail(reported, tmp_path):
    root, df = reported
    changed = df.copy()
    hit = (changed["experiment"] == "rcan-pcl") & (changed["dataset"] == "Set5") & (changed["image"] == "baby")
    changed.loc[hit, "psnr"] += 0.1
    report = _check(changed)
    assert report.exit_code == 1
    assert [(i.check, i.subject, i.dataset) for i in report.misses] == [("ingested", "rcan-pcl", "Set5")]


# --- smoke ------------------------------------------------------------------------------------


def test_smoke_nan_fails_and_finite_passes(tmp_path):
    good = _rows("smoke", "rcan-pcl", "rcan", "pcl", "Set5", "authors", [5.0, 6.0], [0.1, 0.2])
    assert _check(_frame(tmp_path, good)).exit_code == 0  # never compared with the paper (5 dB is fine)
    bad = _rows("smoke", "rcan-pcl", "rcan", "pcl", "Set5", "authors", [5.0, float("nan")], [0.1, 0.2])
    report = _check(_frame(tmp_path, bad))
    assert report.exit_code == 1
    assert [(i.metric, i.detail) for i in report.misses] == [("psnr", "1/2 images not finite: img001")]


def test_unconfigured_tier_is_noted(tmp_path):
    rows = _rows("finetune", "rcan-pcl", "rcan", "pcl", "Set5", "authors", [40.0] * 5, [0.99] * 5)
    report = _check(_frame(tmp_path, rows))
    assert report.exit_code == 0 and report.items == []
    assert any("tier finetune: 5 rows but no rule" in n for n in report.notes)
    # a trained tier is placed by the catalog's cells: without them its placement is not judged either
    assert any("tier finetune: no cells mapping given" in n for n in report.notes)


# --- mini (rule learns) -----------------------------------------------------------------------------


def _mini_run(tmp_path: Path, pcl_sha: str) -> pd.DataFrame:
    """The four mini runs at the README's Set5 means (baseline 29.805, +PCL, control and as-released
    29.936) with hand-written checkpoint hashes, and bicubic at 28.429 dB (printed 28.42)."""
    psnr = {"baseline": 29.805, "pcl": 29.936, "control": 29.936, "pcl-released": 29.936}
    shas = {"baseline": "11" * 32, "pcl": pcl_sha, "control": "cc" * 32, "pcl-released": "cc" * 32}
    groups = [result_rows("bicubic", "bicubic", "Set5", backbone="bicubic", method="bicubic", psnr=28.429, ssim=0.8104, n=5)]
    groups += [result_rows("mini", f"edsr-s-{m}", "Set5", backbone="edsr-s", method=m, psnr=v, n=5) for m, v in psnr.items()]
    frame = write_results(tmp_path, *groups, source=True)
    provenance = code_provenance()  # as `pcl evaluate` records it beside every file
    (tmp_path / "bicubic" / "bicubic" / "matlab" / "Set5.json").write_text(json.dumps(provenance))
    for method, sha in shas.items():
        sidecar = tmp_path / "mini" / f"edsr-s-{method}" / "matlab" / "Set5.json"
        sidecar.write_text(json.dumps({**provenance, "checkpoint": {"sha256": sha}}))
    return frame


def test_mini_tier_through_the_check(tmp_path):
    # baseline +1.376 dB over bicubic (>= 1.0), fine-tunes +0.131 dB from it (<= 0.5), every
    # stored value met exactly, +PCL's weights differ from the control's, the as-released ones equal them
    report = _check(_mini_run(tmp_path / "a", "aa" * 32))
    mini = {(i.check, i.subject): i for i in report.items if i.tier == "mini"}
    assert report.exit_code == 0, report.render()
    assert {c for c, _ in mini} >= {"learns", "drift", "bitwise", "term-moves", "expected"}
    assert mini[("term-moves", "edsr-s-pcl != edsr-s-control")].status == "ok"
    assert all("same-machine comparison" in i.detail for (c, _), i in mini.items() if c in ("bitwise", "term-moves"))
    assert all(i.tolerance == "±0.16 dB cross-machine" for (c, _), i in mini.items() if c == "expected")
    # the same numbers with +PCL's checkpoint equal to the control's: the term was detached
    report = _check(_mini_run(tmp_path / "b", "cc" * 32))
    assert [(i.check, i.subject) for i in report.misses] == [("term-moves", "edsr-s-pcl != edsr-s-control")]


# --- every result file lands in a table -----------------------------------------------------------


def test_trained_result_outside_the_catalog_fails(tmp_path):
    cells = cells_map({"rcan-pcl": [(2, "RCAN+PCL")], "rcan-control": []},
                      backbones={"rcan-pcl": "rcan", "rcan-control": "rcan"}, methods={"rcan-pcl": "pcl", "rcan-control": "control"},
                      source="test catalog")
    known = _rows("finetune", "rcan-pcl", "rcan", "pcl", "Set5", "matlab", [32.7] * 5, [0.9] * 5)
    control = result_rows("finetune", "rcan-control", "Set5", backbone="rcan", method="control", psnr=32.6, niqe=6.5)
    stray = _rows("finetune", "rcan-pcl-v2", "rcan", "pcl", "Set5", "matlab", [32.7] * 5, [0.9] * 5)
    df = write_results(tmp_path, known, control, stray)
    assert placements(df, paper_dir=PAPER, cells=cells) == {
        "results/finetune/rcan-pcl/matlab/Set5.csv": ["T2:RCAN+PCL"],
        # a control feeds no cell: it sits on its backbone's rows of Tables II and III (III: it has NIQE)
        "results/finetune/rcan-control/matlab/Set5.csv": ["T2:RCAN", "T3:RCAN"],
        "results/finetune/rcan-pcl-v2/matlab/Set5.csv": [],
    }
    report = _check(df, cells=cells)
    (miss,) = report.misses
    assert (miss.check, miss.subject, miss.dataset) == ("placed", "results/finetune/rcan-pcl-v2/matlab/Set5.csv", "Set5")
    assert "lands in no table: rcan-pcl-v2 is not in the catalog (test catalog)" in miss.detail
    assert "2 result file(s) each on a row of Tables II-VII" in report.notes


def test_result_at_another_scale_fails(tmp_path):
    rows = [{**r, "scale": 2} for r in _rows("bicubic", "bicubic", "bicubic", "bicubic", "Set5", "matlab", [33.6] * 5, [0.93] * 5)]
    report = _check(_frame(tmp_path, rows))
    (miss,) = report.misses
    assert miss.check == "placed" and "scale x2; the tables are x4" in miss.detail


# --- every result file has a sidecar that names its code --------------------------------------------


def _write_bicubic(root: Path, sidecar: dict | str | None) -> Path:
    path = write_rows(result_path(root, "bicubic", "bicubic", "matlab", "Set5"),
                      _rows("bicubic", "bicubic", "bicubic", "bicubic", "Set5", "matlab", [28.42] * 5, [0.8104] * 5))
    if sidecar is not None:
        path.with_suffix(".json").write_text(sidecar if isinstance(sidecar, str) else json.dumps(sidecar))
    return path


@pytest.mark.parametrize(
    "sidecar, detail",
    [
        (None, "no sidecar Set5.json"),
        ("{not json", "not readable JSON"),
        ({"model": "bicubic"}, "no 'git' with a 'commit' and no 'packages' versions"),
        ({"git": {"commit": "abc"}, "packages": {}}, "no 'packages' versions"),
    ],
)
def test_sidecar_must_record_git_and_packages(tmp_path, sidecar, detail):
    path = _write_bicubic(tmp_path / "results", sidecar)
    report = check_files([path], paper_dir=PAPER, logs_dir=LOGS)
    (miss,) = report.misses
    assert (miss.check, miss.subject) == ("sidecar", "results/bicubic/bicubic/matlab/Set5.csv")
    assert detail in miss.detail and report.exit_code == 1


def test_sidecar_as_evaluate_writes_it_passes(tmp_path):
    path = _write_bicubic(tmp_path / "results", {"model": "bicubic", **code_provenance()})
    report = check_files([path], paper_dir=PAPER, logs_dir=LOGS)
    assert report.exit_code == 0 and _items(report, "sidecar") == []
    assert "1 result file(s) with a sidecar recording git and packages" in report.notes
    status, detail = sidecar_status(path)
    assert status == "ok" and detail.endswith("package versions")


def test_rows_without_their_files_skip_the_sidecar_check(tmp_path):
    report = _check(read_results([_write_bicubic(tmp_path, None)]))
    assert _items(report, "sidecar") == [] and report.exit_code == 0
    assert "result rows given without their files; sidecars not checked" in report.notes


# --- config validation ------------------------------------------------------------------------


def _tolerances(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load(DEFAULT_TOLERANCES.read_text())
    edit(data)
    out = tmp_path / "tol.yaml"
    out.write_text(yaml.safe_dump(data))
    return out


def test_unknown_tier_in_config_is_an_error(tmp_path):
    path = _tolerances(tmp_path, lambda d: d["tiers"].update(lucky={"rule": "finite"}))
    with pytest.raises(PCLError, match=r"tol\.yaml: tiers\.lucky: unknown tier"):
        _check(pd.DataFrame(), tolerances_path=path)


@pytest.mark.parametrize(
    "edit, key",
    [
        (lambda d: d["tiers"]["bicubic"].pop("psnr"), r"tiers\.bicubic\.psnr: missing"),
        (lambda d: d["tiers"]["bicubic"].update(psnr="small"), r"tiers\.bicubic\.psnr: 'small' has the wrong type"),
        (lambda d: d["tiers"]["bicubic"].update(protocols=["cv2"]), r"tiers\.bicubic\.protocols"),
        (lambda d: d["tiers"]["smoke"].update(psnr=0.1), r"tiers\.smoke\.psnr: not a key"),
        (lambda d: d["tiers"]["reported"].update(paper_tolerance="0.02"), r"tiers\.reported\.paper_tolerance"),
        (lambda d: d.update(version=2), r"'version' must be 1"),
    ],
)
def test_tolerance_file_validation(tmp_path, edit, key):
    with pytest.raises(PCLError, match=key):
        _check(pd.DataFrame(), tolerances_path=_tolerances(tmp_path, edit))


@pytest.mark.parametrize(
    "entry, key",
    [
        ({"table": "table2", "row": "RCAN", "dataset": "Set5", "metric": "psnr"}, r"deviations\[27\]\.reason: missing"),
        ({"table": "table2", "row": "RCAN-X", "dataset": "Set5", "metric": "psnr", "reason": "r"}, r"deviations\[27\]\.row"),
        ({"table": "table9", "row": "RCAN", "dataset": "Set5", "metric": "psnr", "reason": "r"}, r"deviations\[27\]\.table"),
        ({"table": "table2", "row": "RCAN", "dataset": "DIV2K", "metric": "psnr", "reason": "r"}, r"deviations\[27\]\.dataset"),
        ({"table": "table2", "row": "RCAN", "dataset": "Set5", "metric": "psnr", "reason": "r", "why": 1}, r"deviations\[27\]\.why"),
        ({"table": "table2", "row": "EDSR-L", "dataset": "Set5", "metric": "psnr", "reason": "r"}, r"deviations\[27\]: duplicate"),
    ],
)
def test_deviation_file_validation(tmp_path, entry, key):
    path = _deviations_file(tmp_path, lambda devs: devs + [entry])
    with pytest.raises(PCLError, match=r"dev\.yaml: " + key):
        load_deviations(path, PAPER)


def test_broken_yaml_names_the_file(tmp_path):
    path = tmp_path / "tol.yaml"
    path.write_text("tiers: [unclosed\n")
    with pytest.raises(PCLError, match=r"tol\.yaml: not valid YAML"):
        _check(pd.DataFrame(), tolerances_path=path)
