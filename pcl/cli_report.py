"""``pcl ingest-logs``, ``catalog``, ``tables``, ``check`` and ``bench``: from result files to reports
(parsing only; the logic is in ``pcl.report`` and ``pcl.bench``)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from pcl.atomic import atomic_write_text
from pcl.errors import PCLError
from pcl.report.cells import CellsMap
from pcl.report.timing import add_timing_command


def cmd_ingest_logs(args: argparse.Namespace) -> int:
    """Turn the authors' released per-image logs into result rows (tier `reported`)."""
    from pcl.report.released_logs import ingest

    paths = ingest(Path(args.logs_dir), Path(args.out_dir))
    print(f"wrote {len(paths)} result files under {args.out_dir}")
    return 0


def _result_files(items: Sequence[str]) -> list[Path]:
    """Expand ``--results`` arguments: CSV files, or folders searched recursively."""
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            files.extend(sorted(q for q in p.rglob("*.csv") if "bench" not in q.parts))
        elif p.is_file():
            files.append(p)
        else:
            raise PCLError(f"--results {item}: no such file or folder; run the pipeline first")
    return files


def catalog_cells(catalog: str | Path | None = None) -> CellsMap:
    """The catalog's cells as a ``pcl.report.cells.CellsMap``.

    Why here: ``pcl.report`` must not import ``pcl.train`` (docs/architecture.md), so the CLI, which may
    import both, converts the catalog into the plain mapping the report layer reads.
    """
    from pcl.report.cells import cells_map
    from pcl.train.catalog import load_catalog

    loaded = load_catalog(catalog)
    return cells_map(
        {name: [(c.table, c.row) for c in e.cells] for name, e in loaded.experiments.items()},
        backbones={name: e.backbone for name, e in loaded.experiments.items()},
        methods={name: e.method for name, e in loaded.experiments.items()},
        source=str(loaded.path),
    )


def _cells(args: argparse.Namespace) -> CellsMap:
    """``--cells FILE`` when given, else the mapping of ``--catalog`` (default config/experiments.yaml)."""
    from pcl.report.cells import read_cells

    return read_cells(Path(args.cells)) if args.cells else catalog_cells(args.catalog)


def cmd_catalog(args: argparse.Namespace) -> int:
    """Write the experiment -> table cells mapping that `pcl tables` and `pcl check` read."""
    from pcl.report.cells import write_cells

    mapping = catalog_cells(args.catalog)
    if args.out:
        write_cells(Path(args.out), mapping)
    n_cells = sum(len(c) for c in mapping.cells.values())
    print(f"{len(mapping.cells)} experiments, {n_cells} table cells from {mapping.source}"
          + (f" -> {args.out}" if args.out else ""))
    if not args.out:
        print(json.dumps(mapping.to_json(), indent=1))
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    """Write the paper's tables with our values beside them, the audit and the figures."""
    from pcl.report.reports import write_reports

    written = write_reports(_result_files(args.results), Path(args.out_dir), figures_dir=Path(args.figures_dir),
                            cells=_cells(args), runs_root=Path(args.runs_root) if args.runs_root else None,
                            gains=Path(args.gains) if args.gains else None)
    for path in written:
        print(path)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Compare produced values with the paper under the configured tolerances (CI gate)."""
    from pcl.report.check import check_files

    files = _result_files(args.results)
    report = check_files(
        files,
        tolerances_path=Path(args.tolerances),
        deviations_path=Path(args.deviations),
        cells=_cells(args),
    )
    if args.gains or args.verdict:
        from pcl.report.check_findings import check_gains_file, check_verdict_file
        from pcl.report.results import paper_side, read_results
        from pcl.report.verdict import load_claims

        rows = paper_side(read_results(files, source=True))
        if args.gains:
            check_gains_file(rows, Path(args.gains), report)
        if args.verdict:
            check_verdict_file(Path(args.verdict), load_claims(Path(args.claims)), report, results=rows,
                               gains_csv=Path(args.gains) if args.gains else None, cells=_cells(args))
    text = report.render()
    print(text)
    if args.out:
        atomic_write_text(Path(args.out), text + "\n")
    return report.exit_code


def cmd_bench(args: argparse.Namespace) -> int:
    """Run speed benchmarks and write CSV + figures under results/bench/."""
    from pcl.bench import run_benchmarks

    results = run_benchmarks(args.what, Path(args.out_dir), device=args.device, repeats=args.repeats)
    print(json.dumps(results, indent=2, default=str))
    return 0


def add_report_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``ingest-logs``, ``catalog``, ``tables``, ``check`` and ``bench`` on the ``pcl`` parser."""
    p = sub.add_parser("ingest-logs", help="parse the authors' released logs into result rows")
    p.add_argument("--logs-dir", required=True)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_ingest_logs)

    p = sub.add_parser("catalog", help="experiment catalog: write the experiment -> table cells mapping")
    p.add_argument("action", choices=["cells"])
    p.add_argument("--catalog", help="the experiment catalog (default config/experiments.yaml)")
    p.add_argument("--out", help="JSON file for `pcl tables --cells` / `pcl check --cells` (default: print it)")
    p.set_defaults(func=cmd_catalog)

    cells_help = "cells mapping from `pcl catalog cells` (default: read --catalog)"
    p = sub.add_parser("tables", help="write Tables II-VII (md, tex, csv), audit and figures")
    p.add_argument("--results", nargs="*", required=True, help="result CSVs or folders (none: paper values only)")
    p.add_argument("--out-dir", default="reports/tables")
    p.add_argument("--figures-dir", default="reports/figures")
    p.add_argument("--cells", help=cells_help)
    p.add_argument("--catalog", help="experiment catalog used when --cells is not given (default config/experiments.yaml)")
    p.add_argument("--runs-root", help="training runs (runs/<tier>/<experiment>): their speeds go into the tier tables")
    p.add_argument("--gains", help="gains.csv from `pcl gains`: adds our gains with intervals under Table II's +PCL rows")
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("check", help="compare results with the paper under per-tier tolerances; every file must land in a table with its sidecar")
    p.add_argument("--results", nargs="*", default=["results"], help="result CSVs or folders")
    p.add_argument("--tolerances", default="config/tolerances.yaml")
    p.add_argument("--deviations", default="config/expected_deviations.yaml")
    p.add_argument("--cells", help=cells_help)
    p.add_argument("--catalog", help="experiment catalog used when --cells is not given (default config/experiments.yaml)")
    p.add_argument("--out", help="also write the report to this file")
    p.add_argument("--gains", help="also check that this gains.csv follows from the result rows")
    p.add_argument("--verdict", help="also check that this verdict lists every claim of --claims")
    p.add_argument("--claims", default="config/claims.yaml", help="the claims catalog (with --verdict)")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("bench", help="speed benchmarks (figures under results/bench/)")
    p.add_argument("what", nargs="?", default="all", help="imresize, metrics, niqe, lpips, eval, nlsn-seed, method, train or all")
    p.add_argument("--out-dir", default="results/bench")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.set_defaults(func=cmd_bench)
    add_timing_command(sub)
