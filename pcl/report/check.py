"""``pcl check``: does each tier of results meet its acceptance rule, cell by cell, and does every
result file land in a table with its provenance recorded?

Why: a reproduction claim must fail loudly when numbers drift or results go missing.  Rules come
per tier from ``config/tolerances.yaml`` (``pcl.report.check_config``); documented differences
between the paper and the data come from ``config/expected_deviations.yaml`` and are shown as
"expected" instead of failing, but never by widening a tolerance.  An expected deviation that no
longer occurs is "stale" and fails too, so the file stays honest.  Exit code: 1 on any miss or
stale entry, else 0 (``CheckReport.exit_code``).  CLI entry point: ``check_files``.

The rules: ``paper`` and ``finite`` in ``pcl.report.check_rules``, ``learns`` in
``pcl.report.check_learning``, ``released_logs`` and
``released_models`` in ``pcl.report.check_released``, ``rerun`` (the study's one-cell re-run against its committed rows)
in ``pcl.report.check_study``, the optional ``table3`` block in
``pcl.report.check_perceptual``; every tier's files are also checked by
``pcl.report.check_provenance`` (each lands in a table; each has a sidecar naming its code) and
``pcl.report.check_images`` (each holds every image once).  Rule ``learns`` also compares weights
hashes (bitwise: runs of one machine) and, where the tier stores expected values, compares them
within the measured cross-machine tolerance.  The findings (``pcl check --gains --verdict``) are
checked by ``pcl.report.check_findings`` (gains.csv recomputed with its recorded bootstrap seed)
and ``pcl.report.check_verdict`` (each status re-derived with the verdict's own rules).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pcl.names import OWN_REPORT_TIERS, TIERS
from pcl.report.cells import CellsMap
from pcl.report.check_config import CHECK_TABLES, DEFAULT_DEVIATIONS, DEFAULT_TOLERANCES, load_deviations, load_tolerances
from pcl.report.check_images import check_distinct_images
from pcl.report.check_learning import check_learning
from pcl.report.check_perceptual import check_table3
from pcl.report.check_provenance import check_placed, check_sidecars
from pcl.report.check_released import check_released_logs, check_released_models, compare_with_log, normalise_image_name
from pcl.report.check_report import CheckItem, CheckReport, Ledger
from pcl.report.check_rules import check_finite, check_paper_rule
from pcl.report.check_study import check_rerun
from pcl.report.paper import read_paper_table
from pcl.report.results import empty_results, read_results
from pcl.resources import resource_path

__all__ = [
    "DEFAULT_DEVIATIONS",
    "DEFAULT_TOLERANCES",
    "CheckItem",
    "CheckReport",
    "check_files",
    "compare_with_log",
    "load_deviations",
    "load_tolerances",
    "normalise_image_name",
    "run_check",
]
"""The check's public interface, importable from this one module."""


def run_check(
    results: pd.DataFrame,
    *,
    tolerances_path: Path = DEFAULT_TOLERANCES,
    deviations_path: Path = DEFAULT_DEVIATIONS,
    paper_dir: Path | None = None,
    logs_dir: Path | None = None,
    cells: CellsMap | None = None,
) -> CheckReport:
    """Apply each configured tier's rule to ``results`` (rows as from ``read_results``), then check
    that every result file lands in a table, (rows read with ``source=True``) has its sidecar,
    and holds each image once.

    ``cells`` (``pcl.report.cells.read_cells``) places the trained tiers' results and lets rule
    ``finite`` check that every catalog cell has its results; without it neither is checked for
    the trained tiers (notes say so), only finiteness.
    """
    paper_dir = Path(paper_dir) if paper_dir else resource_path("reference", "paper")
    logs_dir = Path(logs_dir) if logs_dir else resource_path("reference", "released_logs")
    if results is None or "tier" not in results.columns:
        results = empty_results()
    rules = load_tolerances(tolerances_path)
    deviations = load_deviations(deviations_path, paper_dir)
    ledger = Ledger(deviations)
    report = CheckReport()
    present = list(dict.fromkeys(results["tier"])) if len(results) else []
    checked_tiers = set()
    for tier in TIERS:
        if tier not in rules:
            if tier in present:
                report.notes.append(
                    f"tier {tier}: {int((results['tier'] == tier).sum())} rows but no rule in {tolerances_path}; values not checked"
                )
            continue
        rule = rules[tier]
        rows = results[results["tier"] == tier]
        if rows.empty:
            report.notes.append(f"tier {tier}: no rows; no checks")
            continue
        checked_tiers.add(tier)
        if rule["rule"] == "paper":
            check_paper_rule(tier, rule, rows, read_paper_table(paper_dir / CHECK_TABLES[rule["table"]]), ledger, report)
        elif rule["rule"] == "released_logs":
            check_released_logs(tier, rule, rows, read_paper_table(paper_dir / CHECK_TABLES[rule["table"]]), logs_dir, ledger, report)
        elif rule["rule"] == "released_models":
            check_released_models(tier, rule, rows, logs_dir, report)
        elif rule["rule"] == "rerun":
            check_rerun(tier, rule, rows, results[results["tier"] == rule["reference_tier"]], report)
        elif rule["rule"] == "learns":
            check_finite(tier, rows, report, cells, present_only=True)
            check_learning(tier, rule, rows, results[results["tier"] == "bicubic"], report)
        else:
            # A study tier trains a grid of its own, not the catalog's cells: only its present experiments.
            check_finite(tier, rows, report, cells, present_only=tier in OWN_REPORT_TIERS)
        if "table3" in rule:
            check_table3(tier, rule["table3"], rows, paper_dir, report, cells)
    check_placed(results, report, paper_dir=paper_dir, cells=cells)
    check_sidecars(results, report)
    check_distinct_images(results, report)
    for dev in deviations:
        if dev.key in ledger.occurred or dev.key in ledger.within:
            continue
        why = "no such cell was checked" if dev.tier in checked_tiers else f"tier {dev.tier} not checked"
        report.notes.append(f"expected deviation {dev.table} {dev.row} {dev.dataset} {dev.metric} (tier {dev.tier}) not evaluated: {why}")
    return report


def check_files(
    result_files: list[Path],
    *,
    tolerances_path: Path | None = None,
    deviations_path: Path | None = None,
    paper_dir: Path | None = None,
    logs_dir: Path | None = None,
    cells: CellsMap | None = None,
) -> CheckReport:
    """CLI entry (``pcl check``): read the given result CSVs and run the check, sidecars included.

    Config paths default to the repository's ``config/``; paper tables and logs default to the
    shipped resources.  No files means every configured tier reports "no rows; no checks".
    """
    return run_check(
        read_results(result_files, source=True),
        tolerances_path=Path(tolerances_path) if tolerances_path else DEFAULT_TOLERANCES,
        deviations_path=Path(deviations_path) if deviations_path else DEFAULT_DEVIATIONS,
        paper_dir=paper_dir,
        logs_dir=logs_dir,
        cells=cells,
    )
