"""``pcl check`` on result files: each lands in a table, and each has a sidecar that names its code.

Why per file: a table cell is only trustworthy if it leads back, in three hops, to what made it --
the line's source names ``results/<tier>/<experiment>/<protocol>/<dataset>.csv``, that file's JSON
sidecar (``<dataset>.json``) records the run, and the sidecar's ``git`` and ``packages`` name the
code and library versions.  A result that the tables silently leave out, or one whose origin is
not recorded, must fail the check rather than go unnoticed.

Check ``placed``: the file stands behind a line of at least one of Tables II-VII, decided by the
same builder the tables use (``pcl.report.tables.build_table``), so the check and the tables
cannot disagree.  Trained tiers are placed by the catalog's cells: without a mapping their files
are not judged (a note says so).  Both checks add an item only for a file that fails (with what
to do); the files that pass are counted in a note, so the per-rule counts stay those of the cells.

Check ``sidecar``: every result file except tier ``reported`` (its rows are parsed from the
released logs, whose file and sha256 each row's ``run_id`` names) has a sidecar with a ``git``
mapping (``commit``, ``dirty``) and a non-empty ``packages`` mapping, as
``pcl.provenance.code_provenance`` writes them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from pcl.names import OWN_REPORT_TIERS, TRAINED_TIERS
from pcl.report.cells import CellsMap
from pcl.report.check_report import MISS, OK, CheckItem, CheckReport
from pcl.report.paper import PaperTable, read_paper_table
from pcl.report.placement import UNPLACED, row_labels, unplaced_reason
from pcl.report.results import REDO, SOURCE_COLUMN, summarise
from pcl.report.specs import TABLES, TableSpec
from pcl.report.tables import build_table, result_files

UNTRACKED_TIERS: frozenset[str] = frozenset({"reported"})
"""Tiers whose result files need no sidecar: their rows come from files that ship with the
harness (the released logs), named with their sha256 in every row's ``run_id``."""


def placements(results: pd.DataFrame, *, paper_dir: Path, cells: CellsMap | None) -> dict[str, list[str]]:
    """Result file (as reports name it) -> the table rows it lands on (``T2:RCAN+PCL``...), [] for none."""
    if results.empty:
        return {}
    tables = [build_table(results, spec, paper_dir / spec.paper_file, cells=cells) for spec in TABLES]
    landed: dict[str, list[str]] = {name: [] for name in result_files(results).unique()}
    for table in tables:
        for line in table.lines:
            for name in line.files:
                landed.setdefault(name, []).append(f"T{table.spec.number}:{line.row_label}")
    return {name: list(dict.fromkeys(rows)) for name, rows in landed.items()}


def check_placed(results: pd.DataFrame, report: CheckReport, *, paper_dir: Path, cells: CellsMap | None) -> None:
    """A ``placed`` miss for each result file that lands on no table row, saying why; a note counts the rest."""
    if results.empty:
        return
    own = results["tier"].isin(OWN_REPORT_TIERS)
    if own.any():
        tiers = ", ".join(sorted(set(results.loc[own, "tier"])))
        report.notes.append(f"{result_files(results[own]).nunique()} result file(s) of tiers {tiers}: their own report "
                            "(pcl study, reports/tables/study.md), not placed in Tables II-VII")
        results = results[~own]
        if results.empty:
            return
    landed = placements(results, paper_dir=paper_dir, cells=cells)
    papers = [(spec, read_paper_table(paper_dir / spec.paper_file, spec.label_columns, spec.name, named=spec.named_labels))
              for spec in TABLES]
    names = result_files(results)
    skipped, placed = set(), 0
    for name, rows in results.groupby(names, sort=True):
        first = rows.iloc[0]
        tier, experiment = str(first["tier"]), str(first["experiment"])
        if tier in TRAINED_TIERS and cells is None:
            skipped.add(tier)
            continue
        if landed.get(name):
            placed += 1
            continue
        datasets = ", ".join(dict.fromkeys(rows["dataset"]))
        detail = "lands in no table: " + _why_unplaced(rows, papers, cells, tier, experiment)
        report.items.append(CheckItem(tier, "placed", name, "", datasets, "", None, "", "on a table", MISS, detail))
    if placed:
        report.notes.append(f"{placed} result file(s) each on a row of Tables II-VII")
    for tier in sorted(skipped, key=TRAINED_TIERS.index):
        report.notes.append(f"tier {tier}: no cells mapping given (pcl check --cells); placement in the tables not checked")


def _why_unplaced(
    rows: pd.DataFrame, papers: list[tuple[TableSpec, PaperTable]], cells: CellsMap | None, tier: str, experiment: str
) -> str:
    scales = sorted(int(s) for s in set(rows["scale"].dropna()))
    table_scales = sorted({spec.scale for spec, _ in papers})
    if not set(scales) & set(table_scales):
        return f"scale x{', x'.join(map(str, scales))}; the tables are x{', x'.join(map(str, table_scales))}"
    mapped = []
    for rec in summarise(rows).to_dict("records"):
        for spec, paper in papers:
            labels = [lb for lb in row_labels(spec, paper, rec, cells) if not lb.startswith(UNPLACED)]
            mapped += [f"T{spec.number}:{lb}" for lb in labels if lb in paper.labels]
    if mapped:
        return f"maps to {', '.join(dict.fromkeys(mapped))} but holds none of those tables' metrics"
    return unplaced_reason(tier, experiment, cells)


def check_sidecars(results: pd.DataFrame, report: CheckReport) -> None:
    """A ``sidecar`` miss for each result file outside ``UNTRACKED_TIERS`` whose sidecar is missing,
    unreadable or lacks git/packages; a note counts the rest."""
    if results.empty:
        return
    if SOURCE_COLUMN not in results.columns:
        report.notes.append("result rows given without their files; sidecars not checked")
        return
    names = result_files(results)
    complete = 0
    for path, rows in results.groupby(SOURCE_COLUMN, sort=True):
        tier = str(rows["tier"].iloc[0])
        if tier in UNTRACKED_TIERS:
            continue
        status, detail = sidecar_status(Path(path))
        if status == OK:
            complete += 1
            continue
        datasets = ", ".join(dict.fromkeys(rows["dataset"]))
        report.items.append(
            CheckItem(tier, "sidecar", str(names[rows.index[0]]), "", datasets, "", None, "", "git, packages", status, detail)
        )
    if complete:
        report.notes.append(f"{complete} result file(s) with a sidecar recording git and packages")
    if set(results["tier"]) & UNTRACKED_TIERS:
        tiers = ", ".join(sorted(set(results["tier"]) & UNTRACKED_TIERS))
        report.notes.append(f"tier {tiers}: rows parsed from the released logs (run_id names the log and its sha256); no sidecar expected")


def sidecar_status(csv_path: Path) -> tuple[str, str]:
    """(status, detail) of the JSON sidecar beside one result CSV."""
    sidecar = Path(csv_path).with_suffix(".json")
    try:
        data = json.loads(sidecar.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return MISS, f"no sidecar {sidecar.name}: re-run the evaluation that wrote the file (`pcl evaluate` writes both)"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return MISS, f"sidecar {sidecar.name} is not readable JSON ({exc}); {REDO}"
    if not isinstance(data, dict):
        return MISS, f"sidecar {sidecar.name} holds no JSON object; {REDO}"
    git, packages = data.get("git"), data.get("packages")
    problems = []
    if not isinstance(git, dict) or "commit" not in git:
        problems.append("no 'git' with a 'commit'")
    if not isinstance(packages, dict) or not packages:
        problems.append("no 'packages' versions")
    if problems:
        return MISS, f"sidecar {sidecar.name}: {' and '.join(problems)}; re-run the evaluation with the current harness"
    commit = git.get("commit") or "outside git"
    dirty = " (uncommitted changes)" if git.get("dirty") else ""
    return OK, f"git {str(commit)[:12]}{dirty}, {len(packages)} package versions"
