"""`pcl check` on the findings: gains.csv recomputed column by column with its recorded bootstrap
settings, and verdict.md re-derived claim by claim with the verdict's own rules.

Inputs: the authors' released logs (ingested as tier `reported`: 40 pairings of real per-image
values) run through `pcl gains` and `pcl verdict` exactly as the pipeline does, and a hand-built
pairing whose statistics are known by hand.  Every check is shown passing on the intact files and
failing on a tampered copy.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import result_rows, write_results

from pcl.cli import main
from pcl.cli_report import catalog_cells
from pcl.report import verdict as verdict_module
from pcl.report.check_findings import FLOAT_SLACK, check_gains_file, check_verdict_file, compare_gains
from pcl.report.check_report import CheckReport
from pcl.report.check_verdict import parse_claim_lines
from pcl.report.gains import compute_gains
from pcl.report.results import read_results
from pcl.report.stats import BOOTSTRAP_SEED
from pcl.report.verdict import load_claims

REPO = Path(__file__).resolve().parents[1]
CLAIMS = REPO / "config" / "claims.yaml"
DRAWS = 500  # fewer than the default 10,000 to keep the test fast; recorded in gains.csv like any other


@pytest.fixture(scope="module")
def findings(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("findings")
    results, tables = root / "results", root / "tables"
    assert main(["ingest-logs", "--logs-dir", str(REPO / "resources/reference/released_logs"),
                 "--out-dir", str(results / "reported")]) == 0
    assert main(["gains", "--results", str(results), "--out-dir", str(tables), "--figures-dir", str(root / "figures"),
                 "--draws", str(DRAWS)]) == 0
    assert main(["verdict", "--results", str(results), "--gains", str(tables / "gains.csv"), "--out", str(root / "verdict.md"),
                 "--results-dir", str(results), "--claims", str(CLAIMS)]) == 0
    return {"results": results, "gains": tables / "gains.csv", "verdict": root / "verdict.md"}


@pytest.fixture(scope="module")
def rows(findings) -> pd.DataFrame:
    return read_results(sorted(findings["results"].rglob("*.csv")), source=True)


def _gains_item(rows: pd.DataFrame, path: Path):
    report = CheckReport()
    check_gains_file(rows, path, report)
    (item,) = report.items
    return item


def _verdict_item(rows: pd.DataFrame, verdict: Path, gains: Path | None, cells=True):
    report = CheckReport()
    check_verdict_file(verdict, load_claims(CLAIMS), report, results=rows, gains_csv=gains,
                       cells=catalog_cells(REPO / "config" / "experiments.yaml") if cells else None)
    (item,) = report.items
    return item, report


# --- gains.csv ------------------------------------------------------------------------------------


def test_intact_gains_recompute_bit_for_bit(findings, rows) -> None:
    item = _gains_item(rows, findings["gains"])
    assert item.status == "ok", item.detail
    assert f"40 gains, intervals and p-values recompute from the result rows ({DRAWS} draws, seed {BOOTSTRAP_SEED})" in item.detail
    # on the machine that wrote the file the recomputation is not merely within FLOAT_SLACK: it is equal
    stored = pd.read_csv(findings["gains"])
    fresh = compute_gains(rows, draws=DRAWS, seed=BOOTSTRAP_SEED)
    for column in ("mean_gain", "ci_low", "ci_high", "p_value", "p_holm", "mde", "sd_diff"):
        assert np.array_equal(stored[column].to_numpy(), fresh[column].to_numpy(), equal_nan=True), column


def test_bootstrap_is_deterministic_for_a_seed(rows) -> None:
    # two runs in one process (numpy's PCG64 stream, one thread): identical frames, bit for bit
    a = compute_gains(rows, draws=DRAWS, seed=7)
    b = compute_gains(rows, draws=DRAWS, seed=7)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert not np.array_equal(a["ci_low"], compute_gains(rows, draws=DRAWS, seed=8)["ci_low"])  # the seed matters


@pytest.mark.parametrize("column", ["ci_low", "ci_high", "p_value", "p_holm", "mean_gain", "mde"])
def test_tampered_statistic_is_a_miss_naming_row_and_column(findings, rows, tmp_path, column) -> None:
    gains = pd.read_csv(findings["gains"])
    gains.loc[7, column] += 1e-6  # far above FLOAT_SLACK, below any printed digit
    gains.to_csv(tmp_path / "gains.csv", index=False)
    item = _gains_item(rows, tmp_path / "gains.csv")
    key = "/".join(str(gains.loc[7, c]) for c in ("tier", "protocol", "comparison", "dataset", "metric"))
    assert item.status == "miss"
    assert item.detail.startswith(f"line 9 ({key}) column {column}: gains.csv says "), item.detail  # header = line 1
    assert item.detail.count("column") == 1  # only the edited cell


def test_one_ulp_moves_a_p_value_but_not_a_bound(findings, rows, tmp_path) -> None:
    # p-values are compared exactly, sums of floats (bounds) within FLOAT_SLACK = 1e-12
    gains = pd.read_csv(findings["gains"])
    gains.loc[2, "ci_low"] = np.nextafter(gains.loc[2, "ci_low"], np.inf)
    gains.to_csv(tmp_path / "bound.csv", index=False)
    assert _gains_item(rows, tmp_path / "bound.csv").status == "ok"
    gains.loc[2, "ci_low"] += 10 * FLOAT_SLACK
    gains.to_csv(tmp_path / "bound.csv", index=False)
    assert "column ci_low" in _gains_item(rows, tmp_path / "bound.csv").detail
    gains = pd.read_csv(findings["gains"])
    gains.loc[2, "p_value"] = np.nextafter(gains.loc[2, "p_value"], 1.0)
    gains.to_csv(tmp_path / "p.csv", index=False)
    item = _gains_item(rows, tmp_path / "p.csv")
    assert item.status == "miss" and "line 4 " in item.detail and "column p_value" in item.detail


def test_the_recorded_seed_is_the_one_used(findings, rows, tmp_path) -> None:
    # gains computed with another seed and recorded as such pass; the same numbers under the default seed do not
    other = compute_gains(rows, draws=DRAWS, seed=123)
    other.to_csv(tmp_path / "seed123.csv", index=False)
    assert _gains_item(rows, tmp_path / "seed123.csv").status == "ok"
    other.assign(bootstrap_seed=BOOTSTRAP_SEED).to_csv(tmp_path / "relabelled.csv", index=False)
    item = _gains_item(rows, tmp_path / "relabelled.csv")
    assert item.status == "miss" and "column ci_low" in item.detail and "column p_value" not in item.detail


def test_mixed_settings_missing_and_doubled_rows(findings, rows, tmp_path) -> None:
    gains = pd.read_csv(findings["gains"])
    mixed = gains.copy()
    mixed.loc[0, "draws"] = DRAWS + 1
    mixed.to_csv(tmp_path / "mixed.csv", index=False)
    assert "different bootstrap settings" in _gains_item(rows, tmp_path / "mixed.csv").detail
    pd.concat([gains.iloc[1:], gains.iloc[[1]]]).to_csv(tmp_path / "shuffled.csv", index=False)
    detail = _gains_item(rows, tmp_path / "shuffled.csv").detail
    assert "line 41 " in detail and "the same pairing appears twice" in detail and "a pair in the rows but not in gains.csv" in detail


def test_hand_built_pairing(tmp_path) -> None:
    # +PCL = control + (0.1, 0.2, 0.3, 0.4, 0.5) dB on five images: mean 0.3, 5 of 5 improved, and the
    # exact two-sided Wilcoxon p of five positive differences is 2 / 2^5 = 0.0625 (only all-positive and
    # all-negative sign patterns are as extreme); Holm over one cell leaves it unchanged.
    control = [30.0, 31.0, 29.0, 28.5, 32.0]
    plus = [c + g for c, g in zip(control, (0.1, 0.2, 0.3, 0.4, 0.5))]
    frame = write_results(tmp_path / "results",
                          result_rows("mini", "edsr-s-pcl", "Set5", backbone="edsr-s", method="pcl", psnr=plus, ssim=0.9),
                          result_rows("mini", "edsr-s-control", "Set5", backbone="edsr-s", method="control", psnr=control, ssim=0.9))
    gains = compute_gains(frame, draws=DRAWS)
    (psnr,) = gains[gains["metric"] == "psnr"].to_dict("records")
    assert psnr["p_value"] == 0.0625 and psnr["p_holm"] == 0.0625 and psnr["improved"] == psnr["n"] == 5
    assert math.isclose(psnr["mean_gain"], 0.3, abs_tol=1e-12) and 0.1 <= psnr["ci_low"] < psnr["ci_high"] <= 0.5
    gains.to_csv(tmp_path / "gains.csv", index=False)
    assert _gains_item(frame, tmp_path / "gains.csv").status == "ok"
    gains.loc[gains["metric"] == "psnr", "p_value"] = 0.03  # a p-value typed below 0.05
    assert compare_gains(frame, gains) == ["line 2 (mini/matlab/edsr-s-pcl vs edsr-s-control/Set5/psnr) column p_value: "
                                           "gains.csv says '0.03', the rows give 0.0625"]


# --- verdict.md -----------------------------------------------------------------------------------


def test_intact_verdict_passes_with_every_status_rederived(findings, rows) -> None:
    item, report = _verdict_item(rows, findings["verdict"], findings["gains"])
    assert item.status == "ok", item.detail
    assert item.detail == f"every claim has its line ({len(load_claims(CLAIMS))}), each with the status its rule gives"
    assert not any("not re-derived" in n for n in report.notes)


def test_verdict_edited_to_supported_is_a_miss(findings, rows, tmp_path) -> None:
    text = findings["verdict"].read_text()
    found, _ = parse_claim_lines(text)
    claim, status = next((c, s) for c, s in found.items() if s != "supported")  # the rule's status, from the file
    edited = tmp_path / "verdict.md"
    edited.write_text(text.replace(f"- **{claim}**: {status}.", f"- **{claim}**: supported."))
    item, _ = _verdict_item(rows, edited, findings["gains"])
    assert item.status == "miss"
    assert f"{claim}: verdict.md says 'supported', its rule gives '{status}'" in item.detail


def test_verdict_cell_edited_is_a_miss(findings, rows, tmp_path) -> None:
    text = findings["verdict"].read_text()
    lines = text.splitlines()
    start = lines.index("## Cells of `table2-all-surpass`")
    i = next(k for k in range(start, len(lines)) if lines[k].startswith("| reported/"))
    status = lines[i].rstrip(" |").rsplit("| ", 1)[1]
    other = "contradicted" if status != "contradicted" else "supported"
    lines[i] = lines[i][: lines[i].rindex(status)] + other + " |"
    edited = tmp_path / "verdict.md"
    edited.write_text("\n".join(lines) + "\n")
    item, _ = _verdict_item(rows, edited, findings["gains"])
    assert item.status == "miss" and "table2-all-surpass: cell line" in item.detail and other in item.detail


def test_unknown_status_is_a_miss_naming_the_vocabulary(findings, rows, tmp_path) -> None:
    text = findings["verdict"].read_text()
    claim, status = next(iter(parse_claim_lines(text)[0].items()))
    edited = tmp_path / "verdict.md"
    edited.write_text(text.replace(f"- **{claim}**: {status}.", f"- **{claim}**: proven."))
    item, _ = _verdict_item(rows, edited, None)
    assert item.status == "miss"
    assert f"{claim}: status 'proven' is not one of {', '.join(verdict_module.STATUSES)}" in item.detail


def test_a_second_line_for_a_claim_is_a_miss(findings, rows, tmp_path) -> None:
    text = findings["verdict"].read_text()
    claim, status = next(iter(parse_claim_lines(text)[0].items()))
    edited = tmp_path / "verdict.md"
    edited.write_text(text + f'\n- **{claim}**: {status}. "again" (here)\n')
    item, _ = _verdict_item(rows, edited, findings["gains"])
    assert item.status == "miss" and f"more than one line for: {claim}" in item.detail


def test_status_vocabulary_comes_from_the_verdict_module(monkeypatch) -> None:
    line = '- **x**: decided by fiat. "t" (s)\n'
    assert parse_claim_lines(line) == ({}, {"x": "decided by fiat"})
    monkeypatch.setattr(verdict_module, "STATUSES", (*verdict_module.STATUSES, "decided by fiat"))
    assert parse_claim_lines(line) == ({"x": "decided by fiat"}, {})


def test_without_gains_or_cells_the_check_says_what_it_skipped(findings, rows) -> None:
    item, report = _verdict_item(rows, findings["verdict"], None)
    assert item.status == "ok" and "verdict: statuses not re-derived (pass --gains with --verdict)" in report.notes
    ordering = [c["id"] for c in load_claims(CLAIMS) if c["kind"] == "ordering"]
    item, report = _verdict_item(rows, findings["verdict"], findings["gains"], cells=False)
    assert item.status == "ok", item.detail
    assert f"verdict: status of {', '.join(ordering)} not re-derived (no cells mapping; pass --cells)" in report.notes


def test_damaged_gains_file_is_one_miss_and_the_verdict_says_why(findings, rows, tmp_path) -> None:
    # a text cell where a bound belongs: the gains check names it; the verdict's rules are not run on it
    gains = pd.read_csv(findings["gains"])
    gains["ci_low"] = gains["ci_low"].astype(object)
    gains.loc[4, "ci_low"] = "low"
    gains.to_csv(tmp_path / "gains.csv", index=False)
    item = _gains_item(rows, tmp_path / "gains.csv")
    assert item.status == "miss" and "line 6 " in item.detail and "column ci_low: gains.csv says 'low'" in item.detail
    item, report = _verdict_item(rows, findings["verdict"], tmp_path / "gains.csv")
    assert item.status == "ok" and any("has non-numbers in column(s) ci_low" in n for n in report.notes)
    item, report = _verdict_item(rows, findings["verdict"], tmp_path / "absent.csv")
    assert item.status == "ok" and any("absent.csv is not readable (FileNotFoundError)" in n for n in report.notes)


# --- the command ----------------------------------------------------------------------------------


def test_pcl_check_runs_both_checks(findings, tmp_path, capsys) -> None:
    config = ["--tolerances", str(REPO / "config" / "tolerances.yaml"), "--deviations",
              str(REPO / "config" / "expected_deviations.yaml"), "--catalog", str(REPO / "config" / "experiments.yaml")]
    argv = ["check", "--results", str(findings["results"]), "--gains", str(findings["gains"]),
            "--verdict", str(findings["verdict"]), "--claims", str(CLAIMS), *config]
    assert main(argv) == 0, capsys.readouterr().out
    gains = pd.read_csv(findings["gains"])
    gains.loc[0, "ci_high"] += 0.001
    gains.to_csv(tmp_path / "gains.csv", index=False)
    argv[argv.index("--gains") + 1] = str(tmp_path / "gains.csv")
    capsys.readouterr()
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "line 2 (reported/authors/" in out and "column ci_high" in out
