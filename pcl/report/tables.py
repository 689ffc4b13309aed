"""Paper tables regenerated from result rows, each paper line followed by ours, cell by cell.

Why this shape: a reader must see, for every printed cell, what the harness measured, under which
tier (how the numbers were obtained: released logs, bicubic, smoke, fine-tune...), experiment and
evaluation protocol, from which result files, and by how much it differs.  Nothing is typed in:
paper values come from the transcribed CSVs in ``resources/reference/paper`` (``pcl.report.paper``),
our values are means of per-image rows.

One generic builder serves Tables II-VII (``pcl.report.specs.TABLES``); where each result goes is
``pcl.report.placement``'s decision, so the tables and ``pcl check`` agree on it.  Rendering is in
``pcl.report.render``; ``pcl.report.reports.write_reports`` writes every table, the audit and the
figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pcl.atomic import atomic_write_text
from pcl.metrics.psnr_ssim import PROTOCOLS
from pcl.names import TIERS
from pcl.report.cells import CellsMap
from pcl.report.lines import Cell, Line, long_frame
from pcl.report.paper import METRICS, PaperTable, read_paper_table
from pcl.report.placement import row_labels
from pcl.report.render import Extras, to_latex, to_markdown
from pcl.report.results import OPTIONAL_COLUMNS, SOURCE_COLUMN, display_path, empty_results, result_path, summarise
from pcl.report.specs import TableSpec
from pcl.report.term_share import is_contrastive, recorded_shares
from pcl.resources import resource_path

_LineKey = tuple[str, str, str]
"""(tier, protocol, experiment): one line of ours."""


@dataclass(frozen=True)
class BuiltTable:
    """A paper table with our lines interleaved; ``to_markdown``/``to_latex``/``long_frame`` render it."""

    spec: TableSpec
    paper: PaperTable
    lines: tuple[Line, ...]
    tiers_run: tuple[str, ...]
    unplaced: tuple[str, ...] = field(default=())
    """Experiments whose results belong on this table but map to no row of it."""

    def long_frame(self) -> pd.DataFrame:
        """One row per (line, dataset, metric) (``pcl.report.lines.LONG_COLUMNS``)."""
        return long_frame(self.lines)

    def to_markdown(self) -> str:
        return to_markdown(self)

    def to_latex(self) -> str:
        return to_latex(self)


def _order_key(key: _LineKey) -> tuple:
    tier, protocol, experiment = key
    return (TIERS.index(tier) if tier in TIERS else len(TIERS), PROTOCOLS.index(protocol) if protocol in PROTOCOLS else 9, experiment)


def _files_by_set(rows: pd.DataFrame) -> dict[tuple[str, str, str, str], tuple[str, ...]]:
    """(tier, protocol, experiment, dataset) -> the files its rows came from, as reports name them."""
    if rows.empty:
        return {}
    names = result_files(rows)
    grouped = names.groupby([rows["tier"], rows["protocol"], rows["experiment"], rows["dataset"]], sort=False)
    return {key: tuple(sorted(set(files))) for key, files in grouped}


def _source_paths(rows: pd.DataFrame) -> dict[_LineKey, tuple[Path, ...]]:
    """(tier, protocol, experiment) -> the result files its rows were read from, as readable paths.

    Why not the names a line prints: ``display_path`` may shorten a file outside the working
    directory to ``results/...``, which does not open; sidecars are read beside the real file.
    Rows read without their file (no ``SOURCE_COLUMN``) give none, so their lines read 'not recorded'.
    """
    if rows.empty or SOURCE_COLUMN not in rows.columns:
        return {}
    grouped = rows[SOURCE_COLUMN].groupby([rows["tier"], rows["protocol"], rows["experiment"]], sort=False)
    return {key: tuple(Path(p) for p in sorted(set(paths))) for key, paths in grouped}


def _term_shares(spec: TableSpec, methods: set[str], paths: tuple[Path, ...]) -> tuple[float, ...] | None:
    """A line's measured shares when ``spec`` shows them and the line is +PCL (else None)."""
    if not spec.term_share or not any(is_contrastive(m) for m in methods):
        return None
    return recorded_shares(paths)


def result_files(rows: pd.DataFrame) -> pd.Series:
    """Each row's result file as reports name it (``display_path``), aligned with ``rows``.

    Rows read without their file (``read_results(..., source=False)``, a frame built in memory)
    are named by their canonical path ``results/<tier>/<experiment>/<protocol>/<dataset>.csv``.
    """
    if SOURCE_COLUMN in rows.columns:
        names = {p: display_path(Path(p)) for p in rows[SOURCE_COLUMN].unique()}
        return rows[SOURCE_COLUMN].map(names)
    return pd.Series(
        [result_path(Path("results"), t, e, p, d).as_posix()
         for t, e, p, d in zip(rows["tier"], rows["experiment"], rows["protocol"], rows["dataset"])],
        index=rows.index, dtype=object,
    )


def build_table(
    results: pd.DataFrame | None, spec: TableSpec, paper_csv: Path | None = None, *, cells: CellsMap | None = None
) -> BuiltTable:
    """Interleave the paper's lines with ours for one table (results: rows as from ``read_results``).

    ``cells`` (from ``pcl.report.cells.read_cells``) places the trained tiers' results; without
    it they land on no row and are listed as unplaced (``pcl.report.placement``).
    """
    paper = read_paper_table(
        paper_csv or resource_path("reference", "paper", spec.paper_file), spec.label_columns, spec.name, named=spec.named_labels
    )
    if results is None or results.empty:
        results = empty_results()
    tiers_run = tuple(t for t in TIERS if t in set(results["tier"])) + tuple(sorted(set(results["tier"]) - set(TIERS)))
    scaled = results[results["scale"] == spec.scale] if len(results) else results
    summary = summarise(scaled)
    files = _files_by_set(scaled)
    sources = _source_paths(scaled) if spec.term_share else {}
    methods: dict[_LineKey, set[str]] = {}
    by_label: dict[str, dict[_LineKey, dict[tuple[str, str], tuple[float, int, int, float | None]]]] = {}
    computed: dict[_LineKey, set[str]] = {}
    """Metrics each (tier, protocol, experiment) holds on any set: a line whose rows hold none of the
    table's metrics (the released logs on Table III) is left out; one evaluated only on other sets
    is kept, showing `–`."""
    table_metrics = {met for _, _, met in paper.columns}
    unplaced = set()
    for rec in summary.to_dict("records"):
        for label in row_labels(spec, paper, rec, cells):
            if label not in paper.labels:
                unplaced.add(rec["experiment"])
                continue
            key = (rec["tier"], rec["protocol"], rec["experiment"])
            methods.setdefault(key, set()).add(str(rec["method"]))
            values = by_label.setdefault(label, {}).setdefault(key, {})
            for metric in METRICS:
                # An optional metric (LPIPS, NIQE) that is NaN was not computed for this set.
                if metric in rec and not (metric in OPTIONAL_COLUMNS and pd.isna(rec[metric])):
                    sd = rec.get(f"{metric}_seed_sd")
                    values[(rec["dataset"], metric)] = (float(rec[metric]), int(rec["n_images"]), int(rec["n_seeds"]),
                                                        None if sd is None or pd.isna(sd) else float(sd))
                    computed.setdefault(key, set()).add(metric)
    lines: list[Line] = []
    for _, prow in paper.frame.iterrows():
        label = prow["row_label"]
        paper_cells = tuple(
            Cell(ds, met, paper.digits(ds, met), str(prow[col]).strip()) for col, ds, met in paper.columns
        )
        lines.append(Line(label, "paper", "", "", paper_cells))
        ours = by_label.get(label, {})
        shown = 0
        for key in sorted(ours, key=_order_key):
            if not computed.get(key, set()) & table_metrics:
                continue
            tier, protocol, experiment = key
            values = ours[key]
            row_cells = []
            for c in paper_cells:
                hit = values.get((c.dataset, c.metric))
                row_cells.append(Cell(c.dataset, c.metric, c.digits, c.paper_printed, *(hit if hit else (None, None, None, None)),
                                      files=files.get((*key, c.dataset), ())))
            line_files = tuple(sorted(f for k, fs in files.items() if k[:3] == key for f in fs))
            lines.append(Line(label, tier, protocol, experiment, tuple(row_cells), files=line_files,
                              method="/".join(sorted(methods[key])),
                              term_shares=_term_shares(spec, methods[key], sources.get(key, ()))))
            shown += 1
        if not shown and spec.is_target(prow):
            message = f"no result (tiers run: {', '.join(tiers_run) or 'none'})"
            lines.append(Line(label, "none", "", "", (), message))
    return BuiltTable(spec, paper, tuple(lines), tiers_run, tuple(sorted(unplaced)))


def write_table(table: BuiltTable, out_dir: Path, extras: Extras | None = None) -> list[Path]:
    """Write ``<name>.md``, ``<name>.tex`` and ``<name>.csv`` into ``out_dir`` (e.g. reports/tables).

    ``extras`` (Table II's gain lines, ``pcl.report.table_gains``) go into all three: the CSV gets
    their mean gains as rows with ``line`` = ``gain`` and the same ``comparable`` mark as the
    Markdown (gains.csv stays the home of their intervals and tests).
    """
    out_dir = Path(out_dir)
    stem = table.spec.name
    return [
        atomic_write_text(out_dir / f"{stem}.md", to_markdown(table, extras)),
        atomic_write_text(out_dir / f"{stem}.tex", to_latex(table, extras)),
        atomic_write_text(out_dir / f"{stem}.csv", csv_frame(table, extras).to_csv(index=False)),
    ]


def csv_frame(table: BuiltTable, extras: Extras | None = None) -> pd.DataFrame:
    """The table's CSV: ``long_frame`` and, after it, the rows of ``extras``' lines (if any)."""
    frame = table.long_frame()
    rows = [r for lines in (extras.after.values() if extras else ()) for x in lines for r in x.records]
    if not rows:
        return frame
    extra = pd.DataFrame.from_records(rows, columns=list(frame.columns)).astype({"n_images": "Int64", "n_seeds": "Int64"})
    return pd.concat([frame, extra], ignore_index=True)
