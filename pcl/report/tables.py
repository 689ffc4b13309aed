"""Paper tables regenerated from result rows, each paper line followed by ours, cell by cell.

Why this shape: a reader must see, for every printed cell, what the harness measured, under which
tier (how the numbers were obtained: released logs, bicubic, smoke, fine-tune...) and which
evaluation protocol, and by how much it differs.  Nothing is typed in: paper values come from the
transcribed CSVs in ``resources/reference/paper`` (kept as printed strings, so trailing zeros and
typos survive), our values are means of per-image rows.

The builder is generic: a ``TableSpec`` names a paper CSV, the column(s) that label its rows, the
catalog row key of each paper row and a function mapping (backbone, method, experiment) to a row
label.  Rows of the trained tiers (smoke, finetune, scratch) are placed by the experiment
catalog's ``cells`` (passed in as a ``pcl.report.cells.CellsMap``, never imported from
``pcl.train``); other tiers, and trained experiments that feed no cell (the L1-only controls), are
placed by name (``table2_label``).  Specs: Tables II-VII (``TABLES``).  CLI entry point: ``write_reports``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pcl.errors import PCLError
from pcl.atomic import atomic_write_text
from pcl.report.cells import CellsMap
from pcl.report.results import (
    DATASET_SIZES,
    DATASETS,
    OPTIONAL_COLUMNS,
    PROTOCOLS,
    TIERS,
    empty_results,
    read_results,
    summarise,
    table2_label,
)
from pcl.resources import resource_path

METRICS: tuple[str, ...] = ("psnr", "ssim", "lpips", "niqe")
DATASET_KEYS: dict[str, str] = {d.lower(): d for d in DATASETS}
NON_COMPARABLE_TIERS: frozenset[str] = frozenset({"smoke"})
"""Tiers whose numbers are shown without a delta: a smoke run is a plumbing test, not a result."""
TRAINED_TIERS: frozenset[str] = frozenset({"smoke", "finetune", "scratch"})
"""Tiers of runs trained from the experiment catalog: their rows are placed by the catalog's cells
(other tiers share experiment names such as ``rcan-pcl`` with different meanings, e.g. the
released logs, so the catalog must not place them)."""

TIER_MEANINGS: dict[str, str] = {
    "reported": "the authors' released per-image logs, parsed (no model run by us)",
    "bicubic": "bicubic upsampling evaluated by the harness",
    "smoke": "tiny plumbing run; numbers are not comparable with the paper",
    "released": "the authors' released weights evaluated by the harness",
    "finetune": "fine-tuning run by the harness",
    "scratch": "training from scratch by the harness",
}


# --- paper tables -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PaperTable:
    """A transcribed paper table: printed strings per (row label, dataset, metric)."""

    name: str
    path: Path
    frame: pd.DataFrame
    """The CSV as strings, plus a ``row_label`` column."""
    columns: tuple[tuple[str, str, str], ...]
    """(csv column, dataset, metric) for every value column, in file order."""

    @property
    def labels(self) -> list[str]:
        return list(self.frame["row_label"])

    def row(self, label: str) -> pd.Series:
        hit = self.frame[self.frame["row_label"] == label]
        if hit.empty:
            raise PCLError(f"{self.path}: no row labelled {label!r}; rows are {', '.join(self.labels)}")
        return hit.iloc[0]

    def printed(self, label: str, dataset: str, metric: str) -> str:
        """The value exactly as printed ('' when the paper has no such cell)."""
        col = self.column(dataset, metric)
        return "" if col is None else str(self.row(label)[col]).strip()

    def column(self, dataset: str, metric: str) -> str | None:
        for col, ds, met in self.columns:
            if (ds, met) == (dataset, metric):
                return col
        return None

    def digits(self, dataset: str, metric: str) -> int:
        """Decimals printed in that column (the most any of its cells shows)."""
        col = self.column(dataset, metric)
        return max((decimals(v) for v in self.frame[col] if str(v).strip()), default=2)

    def note(self, label: str) -> str:
        if "note" not in self.frame.columns:
            return ""
        return str(self.row(label)["note"]).strip()


def decimals(printed: str) -> int:
    """Number of decimals in a printed number ('26.00' -> 2, '28.4' -> 1, '5' -> 0)."""
    text = str(printed).strip()
    return len(text.split(".", 1)[1]) if "." in text else 0


def read_paper_table(
    path: Path, label_columns: tuple[str, ...] = ("method",), name: str | None = None, *, named: bool = False
) -> PaperTable:
    """Read a transcribed paper CSV, keeping printed strings; columns ``<dataset>_<metric>``.

    Several ``label_columns`` (or one with ``named=True``) are joined as ``col=value`` pairs
    (e.g. Table VI ``pos=1, neg=0``, Table VII ``alpha=0.1``).
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise PCLError(f"paper table {path} not found; it ships in resources/reference/paper") from None
    missing = [c for c in label_columns if c not in frame.columns]
    if missing:
        raise PCLError(f"paper table {path} lacks label column(s) {', '.join(missing)}")
    columns = []
    for col in frame.columns:
        key, _, metric = col.rpartition("_")
        if key in DATASET_KEYS and metric in METRICS:
            columns.append((col, DATASET_KEYS[key], metric))
    if not columns:
        raise PCLError(f"paper table {path} has no <dataset>_<metric> columns")
    for col, _, _ in columns:
        for i, value in enumerate(frame[col]):
            text = value.strip()
            if text:
                try:
                    float(text)
                except ValueError:
                    raise PCLError(f"{path}: line {i + 2}, column {col!r} holds {value!r}, not a number") from None
    frame = frame.copy()
    if len(label_columns) == 1 and not named:
        frame["row_label"] = frame[label_columns[0]].str.strip()
    else:
        frame["row_label"] = [", ".join(f"{c}={r[c].strip()}" for c in label_columns) for _, r in frame.iterrows()]
    if frame["row_label"].duplicated().any():
        dup = frame["row_label"][frame["row_label"].duplicated()].iloc[0]
        raise PCLError(f"{path}: row label {dup!r} appears twice; labels must be unique")
    return PaperTable(name or path.stem, path, frame, tuple(columns))


# --- table specs ------------------------------------------------------------------------------


RowMapper = Callable[[str, str, str], "str | None"]


def _no_row(backbone: str, method: str, experiment: str) -> None:
    """Row mapper of tables that only trained runs (placed by the catalog) feed."""
    return None


def _method_key(row: pd.Series) -> str:
    return str(row["method"]).strip()


@dataclass(frozen=True)
class TableSpec:
    """What a generic table needs: the paper CSV, its row labels and where result rows go."""

    name: str
    """File stem of the outputs, e.g. ``table2``."""
    title: str
    paper_file: str
    """File name under ``resources/reference/paper``."""
    row_for: RowMapper
    """(backbone, method, experiment) -> paper row label, or None when not on this table; used for
    untrained tiers and for trained experiments that feed no catalog cell."""
    label_columns: tuple[str, ...] = ("method",)
    is_target: Callable[[pd.Series], bool] = lambda row: True
    """Rows the harness aims to reproduce: they get a 'no result' line when nothing maps to them;
    other rows (literature) stay paper-only."""
    scale: int = 4
    number: int = 0
    """The paper's table number, as the catalog's cells name it (2, 4, 5, 6, 7)."""
    row_key: Callable[[pd.Series], str] = _method_key
    """Paper CSV row -> the catalog's row key (``config3``, ``pos1-neg0``, ``alpha0.1``, ``EDSR-S``)."""
    named_labels: bool = False
    """Show row labels as ``column=value`` even with one label column (Table VII ``alpha=0.1``)."""
    label_header: str = "Method"
    notes: tuple[str, ...] = ()
    """Table-specific legend lines (how its metrics were computed)."""


def _table2_target(row: pd.Series) -> bool:
    return row.get("group", "") != "literature" or row["row_label"] == "Bicubic"


TABLE2 = TableSpec(
    name="table2",
    title="Table II: x4 PSNR (dB) / SSIM on the Y channel (P-J Table II)",
    paper_file="table2.csv",
    row_for=table2_label,
    label_columns=("method",),
    is_target=_table2_target,
    number=2,
)

PERCEPTUAL_NOTES: tuple[str, ...] = (
    "NIQE: the official MATLAB NIQE (Mittal et al. 2013, shipped pristine model, 96x96 blocks), computed by the "
    "harness on the SR image converted with MATLAB's rgb2gray, after removing `scale` (4) pixels on every side as "
    "SR papers do (rows also hold `niqe_y`, the same on MATLAB's Y channel). LPIPS: the `lpips` package v0.1, "
    "AlexNet, RGB in [0, 1], on the region PSNR/SSIM score (GT mod-cropped, 4 px shaved); its cells read `–` "
    "until the AlexNet weights are in place (`pcl weights fetch alexnet`, see reports/released_status.md). The "
    "paper states neither setting. Lower is better for both.",
    "The authors released no per-image LPIPS/NIQE, so the `reported` tier has no line here: the paper's values "
    "are the only reference.",
)


def _table3_label(backbone: str, method: str, experiment: str) -> str | None:
    """Table III names its EDSR rows without the variant: the harness feeds them from EDSR-L."""
    label = table2_label(backbone, method, experiment)
    if label is None or label.startswith(("EDSR-S", "HAN", "Bicubic")):
        return None
    return label.replace("EDSR-L", "EDSR")


TABLE3 = TableSpec(
    name="table3",
    title="Table III: x4 NIQE / LPIPS (lower is better) of EDSR, RCAN and NLSN with and without PCL (P-J Table III)",
    paper_file="table3.csv",
    row_for=_table3_label,
    label_columns=("method",),
    number=3,
    notes=PERCEPTUAL_NOTES,
)

TABLE4 = TableSpec(
    name="table4",
    title="Table IV: embedding network and generated samples, RCAN x4 PSNR (dB) / SSIM (P-J Table IV)",
    paper_file="table4.csv",
    row_for=_no_row,
    label_columns=("config", "embedding", "aug"),
    number=4,
    row_key=lambda row: f"config{str(row['config']).strip()}",
    label_header="Configuration",
)


def _table5_label(backbone: str, method: str, experiment: str) -> str | None:
    """Table V's first two rows are Table II's EDSR-S rows (e.g. the released EDSR-S weights)."""
    label = table2_label(backbone, method, experiment)
    return label if label in ("EDSR-S", "EDSR-S+PCL") else None


TABLE5 = TableSpec(
    name="table5",
    title="Table V: EDSR-S with a fixed embedding trained alongside EDSR-L (PCL-F), x4 PSNR (dB) / SSIM (P-J Table V)",
    paper_file="table5.csv",
    row_for=_table5_label,
    label_columns=("method",),
    number=5,
)

TABLE6 = TableSpec(
    name="table6",
    title="Table VI: generated positives / negatives, RCAN x4 PSNR (dB) / SSIM / LPIPS (P-J Table VI)",
    paper_file="table6.csv",
    row_for=_no_row,
    label_columns=("pos", "neg"),
    number=6,
    row_key=lambda row: f"pos{str(row['pos']).strip()}-neg{str(row['neg']).strip()}",
    label_header="Samples",
    notes=PERCEPTUAL_NOTES[:1],
)

TABLE7 = TableSpec(
    name="table7",
    title="Table VII: weight alpha of the contrastive term, RCAN x4 Set14 PSNR (dB) (P-J Table VII)",
    paper_file="table7.csv",
    row_for=_no_row,
    label_columns=("alpha",),
    number=7,
    row_key=lambda row: f"alpha{str(row['alpha']).strip()}",
    named_labels=True,
    label_header="Weight",
)

TABLES: tuple[TableSpec, ...] = (TABLE2, TABLE3, TABLE4, TABLE5, TABLE6, TABLE7)
"""Every table ``pcl tables`` writes, in paper order."""


# --- built tables -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    """One (dataset, metric) cell of a line."""

    dataset: str
    metric: str
    digits: int
    paper_printed: str
    our_value: float | None = None
    n_images: int | None = None

    @property
    def paper_value(self) -> float | None:
        return float(self.paper_printed) if self.paper_printed else None

    @property
    def delta(self) -> float | None:
        if self.our_value is None or self.paper_value is None:
            return None
        return self.our_value - self.paper_value

    @property
    def partial(self) -> bool:
        return self.n_images is not None and self.n_images < DATASET_SIZES[self.dataset]


@dataclass(frozen=True)
class Line:
    """A printed line: the paper's (source 'paper') or one of ours (source = tier)."""

    row_label: str
    source: str
    protocol: str
    experiment: str
    cells: tuple[Cell, ...]
    message: str = ""
    """Set instead of cells for a 'no result' line."""

    @property
    def is_paper(self) -> bool:
        return self.source == "paper"

    @property
    def comparable(self) -> bool:
        return self.source not in NON_COMPARABLE_TIERS


@dataclass(frozen=True)
class BuiltTable:
    """A paper table with our lines interleaved; render with ``to_markdown``/``to_latex``/``long_frame``."""

    spec: TableSpec
    paper: PaperTable
    lines: tuple[Line, ...]
    tiers_run: tuple[str, ...]
    unplaced: tuple[str, ...] = field(default=())
    """Experiments with rows that map to a label the paper table does not have."""

    # machine-readable -------------------------------------------------------------------------
    def long_frame(self) -> pd.DataFrame:
        """One row per (line, dataset, metric); paper lines have empty our_value/delta."""
        records = []
        for line in self.lines:
            for cell in line.cells:
                delta = cell.delta if line.comparable else None
                records.append(
                    {
                        "row_label": line.row_label,
                        "source": line.source,
                        "protocol": line.protocol,
                        "experiment": line.experiment,
                        "dataset": cell.dataset,
                        "metric": cell.metric,
                        "paper_value": cell.paper_printed,
                        "our_value": cell.our_value,
                        "delta": delta,
                        "n_images": cell.n_images,
                    }
                )
        frame = pd.DataFrame.from_records(records, columns=LONG_COLUMNS)
        frame["n_images"] = frame["n_images"].astype("Int64")
        return frame

    # Markdown --------------------------------------------------------------------------------
    def to_markdown(self) -> str:
        cols = self.paper.columns
        notes: list[str] = []
        out = [f"# {self.spec.title}", "", *_legend(self), ""]
        header = [self.spec.label_header, "Source (tier / protocol / experiment)", *[f"{ds} {met.upper()}" for _, ds, met in cols]]
        out.append("| " + " | ".join(header) + " |")
        out.append("|" + "|".join(["---", "---", *["---:"] * len(cols)]) + "|")
        for line in self.lines:
            if line.is_paper:
                label = f"**{line.row_label}**"
                note = self.paper.note(line.row_label)
                if note:
                    notes.append(note)
                    label += f"[^{len(notes)}]"
                first = [label, "paper (as printed)"]
                values = [c.paper_printed or "–" for c in line.cells]
            elif line.message:
                first, values = ["", ""], []
            else:
                first = ["", f"{line.source} / {line.protocol} / `{line.experiment}`"]
                values = [_format_cell(c, line.comparable) for c in line.cells]
            if line.message:
                out.append("| " + " | ".join([*first, line.message, *[""] * (len(cols) - 1)]) + " |")
            else:
                out.append("| " + " | ".join([*first, *values]) + " |")
        if self.unplaced:
            out += ["", "Results with no row in this table: " + ", ".join(f"`{u}`" for u in self.unplaced) + "."]
        if notes:
            out.append("")
            out += [f"[^{i}]: {note}" for i, note in enumerate(notes, 1)]
        return "\n".join(out) + "\n"

    # LaTeX -----------------------------------------------------------------------------------
    def to_latex(self) -> str:
        cols = self.paper.columns
        datasets = list(dict.fromkeys(ds for _, ds, _ in cols))
        out = [
            f"% {self.spec.title}",
            "% Generated by pcl (pcl.report.tables); needs \\usepackage{booktabs}.",
            "% Cells of our lines: ours (ours - paper); [n=k/N] marks a partial set.",
            "\\begin{tabular}{ll" + "r" * len(cols) + "}",
            "\\toprule",
        ]
        group_row, rules, start = ["", ""], [], 3
        for ds in datasets:
            span = sum(1 for _, d, _ in cols if d == ds)
            group_row.append(f"\\multicolumn{{{span}}}{{c}}{{{latex_escape(ds)}}}")
            rules.append(f"\\cmidrule(lr){{{start}-{start + span - 1}}}")
            start += span
        out.append(" & ".join(group_row) + " \\\\")
        out.append(" ".join(rules))
        out.append(" & ".join([latex_escape(self.spec.label_header), "Source", *[latex_escape(met.upper()) for _, _, met in cols]]) + " \\\\")
        out.append("\\midrule")
        notes: list[str] = []
        first_group = True
        for line in self.lines:
            if line.is_paper:
                if not first_group:
                    out.append("\\addlinespace")
                first_group = False
                label = latex_escape(line.row_label)
                note = self.paper.note(line.row_label)
                if note:
                    notes.append(note)
                    label += f"\\textsuperscript{{{len(notes)}}}"
                cells = [latex_escape(c.paper_printed or "--") for c in line.cells]
                out.append(" & ".join([label, "paper", *cells]) + " \\\\")
                continue
            if line.message:
                out.append(f" & & \\multicolumn{{{len(cols)}}}{{l}}{{{latex_escape(line.message)}}} \\\\")
            else:
                source = latex_escape(f"{line.source}/{line.protocol} {line.experiment}")
                cells = [_format_cell(c, line.comparable, latex=True) for c in line.cells]
                out.append(" & ".join(["", source, *cells]) + " \\\\")
        out += ["\\bottomrule", "\\end{tabular}"]
        out += [f"% {i}: {note}" for i, note in enumerate(notes, 1)]
        return "\n".join(out) + "\n"


Table2 = BuiltTable
"""Table II is a ``BuiltTable`` built from ``TABLE2``."""

LONG_COLUMNS = ("row_label", "source", "protocol", "experiment", "dataset", "metric", "paper_value", "our_value", "delta", "n_images")

_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "+": r"{+}",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX specials (``_ & % $ # { } ~ ^ \\``) and brace ``+`` so it is never an operator."""
    return "".join(_LATEX_SPECIALS.get(ch, ch) for ch in str(text))


def _format_number(value: float | None, digits: int) -> str:
    if value is None:
        return "–"
    if math.isnan(value):
        return "nan"
    return f"{value:.{digits}f}"


def _format_cell(cell: Cell, comparable: bool, latex: bool = False) -> str:
    dash = "--" if latex else "–"
    if cell.our_value is None:
        return dash
    text = _format_number(cell.our_value, cell.digits)
    if not comparable:
        text += " (n/c)"
    elif cell.delta is None:
        text += " (no paper value)"
    elif math.isnan(cell.delta):
        text += " (n/a)"
    else:
        delta = f"{cell.delta:+.{cell.digits}f}"
        text += f" (${delta[0]}${delta[1:]})" if latex else f" ({delta})"
    if cell.partial:
        text += f" [n={cell.n_images}/{DATASET_SIZES[cell.dataset]}]"
    return text


def _legend(table: BuiltTable) -> list[str]:
    tiers = ", ".join(table.tiers_run) or "none"
    lines = [
        "Legend: each **paper** line (values as printed) is followed by one line per (tier, protocol, "
        "experiment) the harness has results for; a cell reads `ours (ours - paper)` to the decimals the paper prints, "
        "`[n=k/N]` marks a set with only k of its N images, `–` a set not evaluated, "
        "`(n/c)` a tier that is not comparable with the paper; a signed zero such as `(-0.00)` is a difference "
        "smaller than half the last digit. Literature rows are paper-only. Runs trained by the harness "
        "(smoke, finetune, scratch) are placed by the `cells` of config/experiments.yaml (reports/cells.json).",
        "",
        f"Tiers with results: {tiers}. Protocols: `matlab` = classic Evaluate_PSNR_SSIM.m (gray images "
        "evaluated directly); `authors` = the authors' cv2 script (gray images converted to Y), spec method.md 7.",
        "",
    ]
    for tier in table.tiers_run:
        lines.append(f"- `{tier}`: {TIER_MEANINGS.get(tier, '')}")
    for note in table.spec.notes:
        lines += ["", note]
    return lines


def _order_key(tier: str, protocol: str, experiment: str) -> tuple:
    return (TIERS.index(tier) if tier in TIERS else len(TIERS), PROTOCOLS.index(protocol) if protocol in PROTOCOLS else 9, experiment)


def row_labels(spec: TableSpec, paper: PaperTable, rec: dict, cells: CellsMap | None) -> list[str]:
    """Paper row labels of ``spec`` that one summary record (tier, experiment, backbone, method) feeds.

    A trained-tier experiment listed in ``cells`` goes where the catalog says (its row keys in this
    table, translated by ``spec.row_key``; a key the paper table lacks is returned as ``?<key>``
    so the caller can list it as unplaced).  Everything else -- untrained tiers, experiments that
    feed no cell at all, or any row when no mapping is given -- is placed by ``spec.row_for``.
    """
    experiment = rec["experiment"]
    if cells is not None and rec["tier"] in TRAINED_TIERS and experiment in cells and cells.feeds_any(experiment):
        keys = {spec.row_key(r): r["row_label"] for _, r in paper.frame.iterrows()}
        return [keys.get(key, f"?{key}") for key in cells.rows(experiment, spec.number)]
    label = spec.row_for(rec["backbone"], rec["method"], experiment)
    return [] if label is None else [label]


def build_table(
    results: pd.DataFrame, spec: TableSpec, paper_csv: Path | None = None, *, cells: CellsMap | None = None
) -> BuiltTable:
    """Interleave the paper's lines with ours for one table (results: rows as from ``read_results``).

    ``cells`` (from ``pcl.report.cells.read_cells``) places the trained tiers' experiments; without
    it they are placed by name like every other tier.
    """
    paper = read_paper_table(
        paper_csv or resource_path("reference", "paper", spec.paper_file), spec.label_columns, spec.name, named=spec.named_labels
    )
    if results is None or results.empty:
        results = empty_results()
    tiers_run = tuple(t for t in TIERS if t in set(results["tier"])) + tuple(sorted(set(results["tier"]) - set(TIERS)))
    scaled = results[results["scale"] == spec.scale] if len(results) else results
    summary = summarise(scaled)
    by_label: dict[str, dict[tuple[str, str, str], dict[tuple[str, str], tuple[float, int]]]] = {}
    computed: dict[tuple[str, str, str], set[str]] = {}
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
            values = by_label.setdefault(label, {}).setdefault(key, {})
            for metric in METRICS:
                # An optional metric (LPIPS, NIQE) that is NaN was not computed for this set.
                if metric in rec and not (metric in OPTIONAL_COLUMNS and pd.isna(rec[metric])):
                    values[(rec["dataset"], metric)] = (float(rec[metric]), int(rec["n_images"]))
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
        for tier, protocol, experiment in sorted(ours, key=lambda k: _order_key(*k)):
            values = ours[(tier, protocol, experiment)]
            if not computed.get((tier, protocol, experiment), set()) & table_metrics:
                continue
            row_cells = []
            for c in paper_cells:
                hit = values.get((c.dataset, c.metric))
                row_cells.append(Cell(c.dataset, c.metric, c.digits, c.paper_printed, *(hit if hit else (None, None))))
            lines.append(Line(label, tier, protocol, experiment, tuple(row_cells)))
            shown += 1
        if not shown and spec.is_target(prow):
            message = f"no result (tiers run: {', '.join(tiers_run) or 'none'})"
            lines.append(Line(label, "none", "", "", (), message))
    return BuiltTable(spec, paper, tuple(lines), tiers_run, tuple(sorted(unplaced)))


def build_table2(results: pd.DataFrame, paper_csv: Path | None = None) -> Table2:
    """Table II from result rows; ``paper_csv`` defaults to the shipped transcription."""
    return build_table(results, TABLE2, paper_csv)


def write_table(table: BuiltTable, out_dir: Path) -> list[Path]:
    """Write ``<name>.md``, ``<name>.tex`` and ``<name>.csv`` into ``out_dir`` (e.g. reports/tables)."""
    out_dir = Path(out_dir)
    stem = table.spec.name
    return [
        atomic_write_text(out_dir / f"{stem}.md", table.to_markdown()),
        atomic_write_text(out_dir / f"{stem}.tex", table.to_latex()),
        atomic_write_text(out_dir / f"{stem}.csv", table.long_frame().to_csv(index=False)),
    ]


def write_table2(table: Table2, out_dir: Path) -> list[Path]:
    """Write ``table2.{md,tex,csv}`` into ``out_dir`` (normally ``reports/tables``)."""
    return write_table(table, out_dir)


def write_reports(
    result_files: list[Path],
    out_dir: Path,
    *,
    figures_dir: Path | None = None,
    paper_dir: Path | None = None,
    logs_dir: Path | None = None,
    cells: CellsMap | None = None,
    tables: tuple[TableSpec, ...] = TABLES,
) -> list[Path]:
    """CLI entry (``pcl tables``): Tables II, IV, V, VI and VII and the released-log audit into
    ``out_dir``, and the released-gains figure into ``figures_dir`` when the results hold the
    ingested logs.

    ``result_files`` are result CSVs (an empty list gives the paper with 'no result' lines);
    ``cells`` places the trained tiers' experiments (``pcl catalog cells``); ``paper_dir`` and
    ``logs_dir`` default to the shipped ``resources/reference`` copies.  Returns every written path.
    """
    from pcl.report.audit import write_audit
    from pcl.report.figures import plot_released_gains

    paper_root = Path(paper_dir) if paper_dir else resource_path("reference", "paper")
    results = read_results(result_files)
    written: list[Path] = []
    for spec in tables:
        written += write_table(build_table(results, spec, paper_root / spec.paper_file, cells=cells), out_dir)
    written += write_audit(out_dir, logs_dir=logs_dir, paper_csv=paper_root / TABLE2.paper_file)
    reported = results[results["tier"] == "reported"]
    if figures_dir is not None and set(reported["method"]) >= {"official", "pcl"}:
        written.append(plot_released_gains(reported, Path(figures_dir) / "released_gains.png"))
    return written
