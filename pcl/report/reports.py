"""``pcl tables``: every report file from one read of the results -- Tables II-VII, the audit, the figure.

Why one orchestrator: the tables, the released-log audit and the figure must describe the same
result files, read once; and the modules that build each of them stay free of one another (the
audit needs no table, a table needs no audit).
"""

from __future__ import annotations

from pathlib import Path

from pcl.report.audit import write_audit
from pcl.report.cells import CellsMap
from pcl.report.figures import plot_released_gains
from pcl.report.gains import GAIN_TIERS
from pcl.report.mini import write_tier_table
from pcl.report.results import paper_side, read_results
from pcl.report.specs import TABLE2, TABLES, TableSpec
from pcl.report.table_gains import gain_extras, read_gains
from pcl.report.tables import build_table, write_table
from pcl.resources import resource_path


def write_reports(
    result_files: list[Path],
    out_dir: Path,
    *,
    figures_dir: Path | None = None,
    paper_dir: Path | None = None,
    logs_dir: Path | None = None,
    cells: CellsMap | None = None,
    tables: tuple[TableSpec, ...] = TABLES,
    runs_root: Path | None = None,
    gains: Path | None = None,
) -> list[Path]:
    """CLI entry (``pcl tables``): Tables II-VII and the released-log audit into ``out_dir``, and the
    released-gains figure into ``figures_dir`` when the results hold the ingested logs.

    ``result_files`` are result CSVs (an empty list gives the paper with 'no result' lines);
    ``cells`` places the trained tiers' results (``pcl catalog cells``); ``paper_dir`` and
    ``logs_dir`` default to the shipped ``resources/reference`` copies; ``gains`` (a gains.csv of
    ``pcl gains``) adds the gain lines under Table II's ``+PCL`` rows.  Returns every written path.
    """
    paper_root = Path(paper_dir) if paper_dir else resource_path("reference", "paper")
    gain_rows = read_gains(Path(gains)) if gains is not None else None  # a bad file fails before any write
    results = paper_side(read_results(result_files, source=True))
    written: list[Path] = []
    for spec in tables:
        built = build_table(results, spec, paper_root / spec.paper_file, cells=cells)
        extras = gain_extras(gain_rows, built.paper) if gain_rows is not None and spec.name == TABLE2.name else None
        written += write_table(built, out_dir, extras)
    written += write_audit(out_dir, logs_dir=logs_dir, paper_csv=paper_root / TABLE2.paper_file)
    for tier in sorted(GAIN_TIERS & set(results["tier"])):
        runs = _run_results(runs_root, tier, results)
        written += write_tier_table(results, out_dir, tier=tier, speeds=_speeds(runs), diagnostics=_term_diagnostics(runs))
    reported = results[results["tier"] == "reported"]
    if figures_dir is not None and set(reported["method"]) >= {"official", "pcl"}:
        written.append(plot_released_gains(reported, Path(figures_dir) / "released_gains.png"))
    return written


def _run_results(runs_root: Path | None, tier: str, results) -> dict[str, dict]:
    """The ``result.json`` of each run of ``tier`` that has rows (read once; unreadable ones skipped):
    its speed and the contrastive term's measured weight go beside the run's numbers."""
    import json

    if runs_root is None:
        return {}
    out = {}
    for experiment in sorted(set(results.loc[results["tier"] == tier, "experiment"])):
        path = Path(runs_root) / tier / experiment / "result.json"
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            out[experiment] = data
    return out


def _speeds(runs: dict[str, dict]) -> dict[str, float]:
    """Iterations per second of each run (its ``it_per_s``), for the tier's table."""
    return {e: float(r["it_per_s"]) for e, r in runs.items()
            if isinstance(r.get("it_per_s"), (int, float)) and not isinstance(r.get("it_per_s"), bool)}


def _term_diagnostics(runs: dict[str, dict]) -> dict[str, dict]:
    """``pcl_diagnostics`` of each +PCL run: the contrastive term's measured share of the L1 gradient."""
    return {e: r["pcl_diagnostics"] for e, r in runs.items() if isinstance(r.get("pcl_diagnostics"), dict)}
