"""A built table as Markdown (for people) and LaTeX (for a paper): the paper's lines, ours, and a legend.

Why the legend and labels look as they do: a reader must see, for every printed cell, how the
number was obtained (the tier), which run it is (the experiment) and under which evaluation
protocol -- in that order, the order of the result file's path
``results/<tier>/<experiment>/<protocol>/<dataset>.csv`` -- and by how much it differs from the
paper, to the decimals the paper prints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from pcl.names import DATASET_SIZES, TIER_MEANINGS, TRAINED_TIERS
from pcl.report.lines import Cell, Line
from pcl.report.paper import PaperTable
from pcl.report.specs import TableSpec
from pcl.report.term_share import share_legend


class RenderableTable(Protocol):
    """What rendering needs of a built table (``pcl.report.tables.BuiltTable``)."""

    spec: TableSpec
    paper: PaperTable
    lines: tuple[Line, ...]
    tiers_run: tuple[str, ...]
    unplaced: tuple[str, ...]


@dataclass(frozen=True)
class ExtraLine:
    """A line printed after a row's group that is not one of our result lines (e.g. the +PCL gains).

    Why pre-formatted text: what the line says is decided by the module that builds it
    (``pcl.report.table_gains``); the renderer only places it, so it stays one generic layout.
    """

    label: str
    """Plain text of the label column (escaped here for LaTeX)."""
    source: str
    """Markdown text of the source column."""
    source_latex: str
    cells: tuple[str, ...]
    """Markdown text of each value column, in the table's column order."""
    cells_latex: tuple[str, ...]
    records: tuple[dict, ...] = ()
    """Rows this line adds to the table's CSV (columns of ``pcl.report.lines.LONG_COLUMNS``)."""


NOT_EVALUATED = "–"
"""Cell of our line for a set the line has no rows of (that set was not evaluated)."""
NOT_COMPUTED = "∅"
"""Cell of our line for a metric not computed on a set that was evaluated (e.g. LPIPS before its
AlexNet weights are in place): a different symbol, so a missing set and a missing metric never read
alike."""
NOT_PRINTED = "n/p"
"""Cell of a paper line where the paper prints no value."""
_LATEX_SYMBOLS = {NOT_EVALUATED: "--", NOT_COMPUTED: r"$\emptyset$", NOT_PRINTED: "n/p"}


@dataclass(frozen=True)
class Extras:
    """Extra lines of a table and the legend sentence that explains them."""

    after: Mapping[str, tuple[ExtraLine, ...]] = field(default_factory=dict)
    """Row label -> lines printed right after that row's group (its paper line and ours)."""
    legend: str = ""


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


def source_label(line: Line, *, latex: bool = False) -> str:
    """``tier / `experiment` / protocol`` (Markdown) or ``tier/experiment/protocol`` (LaTeX, escaped)."""
    if latex:
        return latex_escape(f"{line.source}/{line.experiment}/{line.protocol}")
    return f"{line.source} / `{line.experiment}` / {line.protocol}"


def _format_number(value: float | None, digits: int) -> str:
    if value is None:
        return "–"
    if math.isnan(value):
        return "nan"
    return f"{value:.{digits}f}"


def format_cell(cell: Cell, comparable: bool, latex: bool = False) -> str:
    """``ours (ours - paper)`` to the paper's decimals, with ``(n/c)`` and ``[n=k/N]`` marks;
    ``NOT_EVALUATED`` for a set the line has no rows of, ``NOT_COMPUTED`` for a metric missing on
    an evaluated set."""
    if cell.our_value is None:
        symbol = NOT_COMPUTED if cell.evaluated else NOT_EVALUATED
        return _LATEX_SYMBOLS[symbol] if latex else symbol
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
    if cell.seed_sd is not None and cell.n_seeds and cell.n_seeds > 1:
        pm = "$\\pm$" if latex else "±"
        text += f" {pm}{cell.seed_sd:.{cell.digits}f} [{cell.n_seeds} seeds]"
    if cell.partial:
        text += f" [n={cell.n_images}/{DATASET_SIZES[cell.dataset]}]"
    return text


def _legend(table: RenderableTable, extras: Extras | None = None) -> list[str]:
    tiers = ", ".join(table.tiers_run) or "none"
    placed = f"Runs trained by the harness ({', '.join(TRAINED_TIERS)}) are placed by the `cells` of config/experiments.yaml (reports/cells.json)"
    if table.spec.backbone_rows:
        placed += "; those that feed no cell (the L1-only controls, the authors' scripts as released) on their backbone's row"
    lines = [
        "Legend: each **paper** line (values as printed) is followed by one line per (tier, experiment, "
        "protocol) the harness has results for; a cell reads `ours (ours - paper)` to the decimals the paper prints, "
        "`[n=k/N]` marks a set with only k of its N images, `±sd [k seeds]` the spread of the means of k training "
        f"seeds (the cell is their mean), `{NOT_EVALUATED}` a set the line has no result for (not evaluated), "
        f"`{NOT_COMPUTED}` a metric not computed on a set that was evaluated, `{NOT_PRINTED}` a value the paper does "
        "not print, `(n/c)` a tier that is not comparable with the paper; a signed zero such as `(-0.00)` is a difference "
        f"smaller than half the last digit. Literature rows are paper-only. {placed}. A line's numbers come from "
        "`results/<tier>/<experiment>/<protocol>/<dataset>.csv` (column `source_files` of the CSV), whose JSON "
        "sidecar records the code and packages that produced it.",
        "",
        f"Tiers with results: {tiers}. Protocols: `matlab` = classic Evaluate_PSNR_SSIM.m (gray images "
        "evaluated directly); `authors` = the authors' cv2 script (gray images converted to Y), docs/protocols.md §1.",
        "",
    ]
    for tier in table.tiers_run:
        lines.append(f"- `{tier}`: {TIER_MEANINGS.get(tier, '')}")
    if extras is not None and extras.legend:
        lines += ["", extras.legend]
    share = _share_sentence(table, markdown=True)
    if share:
        lines += ["", share]
    for note in table.spec.notes:
        lines += ["", note]
    return lines


def _share_sentence(table: RenderableTable, *, markdown: bool) -> str:
    """The measured share of the contrastive term of each +PCL line, on the tables whose spec asks for it."""
    return share_legend(table.lines, markdown=markdown) if table.spec.term_share else ""


def _extra_rows(extras: Extras | None, label: str | None, *, latex: bool) -> list[str]:
    """The extra lines that close the group of row ``label`` (none when there are no extras)."""
    if extras is None or label is None:
        return []
    if latex:
        return [" & ".join([latex_escape(x.label), x.source_latex, *x.cells_latex]) + " \\\\"
                for x in extras.after.get(label, ())]
    return ["| " + " | ".join([x.label, x.source, *x.cells]) + " |" for x in extras.after.get(label, ())]


def to_markdown(table: RenderableTable, extras: Extras | None = None) -> str:
    """The table as Markdown: title, legend, one row per line, unplaced results, footnotes.

    ``extras`` adds lines after a row's group (the +PCL gains of Table II) and their legend sentence.
    """
    cols = table.paper.columns
    notes: list[str] = []
    out = [f"# {table.spec.title}", "", *_legend(table, extras), ""]
    header = [table.spec.label_header, "Source (tier / experiment / protocol)", *[f"{ds} {met.upper()}" for _, ds, met in cols]]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "|".join(["---", "---", *["---:"] * len(cols)]) + "|")
    group: str | None = None
    for line in table.lines:
        if line.is_paper:
            out += _extra_rows(extras, group, latex=False)
            group = line.row_label
            label = f"**{line.row_label}**"
            note = table.paper.note(line.row_label)
            if note:
                notes.append(note)
                label += f"[^{len(notes)}]"
            first = [label, "paper (as printed)"]
            values = [c.paper_printed or NOT_PRINTED for c in line.cells]
        elif line.message:
            first, values = ["", ""], []
        else:
            first = ["", source_label(line)]
            values = [format_cell(c, line.comparable) for c in line.cells]
        if line.message:
            out.append("| " + " | ".join([*first, line.message, *[""] * (len(cols) - 1)]) + " |")
        else:
            out.append("| " + " | ".join([*first, *values]) + " |")
    out += _extra_rows(extras, group, latex=False)
    if table.unplaced:
        out += ["", "Results with no row in this table: " + ", ".join(f"`{u}`" for u in table.unplaced) + "."]
    if notes:
        out.append("")
        out += [f"[^{i}]: {note}" for i, note in enumerate(notes, 1)]
    return "\n".join(out) + "\n"


def to_latex(table: RenderableTable, extras: Extras | None = None) -> str:
    """The table as a booktabs ``tabular``; footnotes become LaTeX comments after it.

    ``extras`` as in ``to_markdown``; its legend becomes a comment above the table.
    """
    cols = table.paper.columns
    datasets = list(dict.fromkeys(ds for _, ds, _ in cols))
    out = [
        f"% {table.spec.title}",
        "% Generated by pcl (pcl.report.render); needs \\usepackage{booktabs}.",
        "% Cells of our lines: ours (ours - paper); [n=k/N] marks a partial set; -- a set not evaluated,",
        "% $\\emptyset$ a metric not computed on an evaluated set, n/p a value the paper does not print,",
        "% (n/c) a tier not comparable with the paper.",
        *([f"% {extras.legend}"] if extras is not None and extras.legend else []),
        *([f"% {share}"] if (share := _share_sentence(table, markdown=False)) else []),
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
    out.append(" & ".join([latex_escape(table.spec.label_header), "Source", *[latex_escape(met.upper()) for _, _, met in cols]]) + " \\\\")
    out.append("\\midrule")
    notes: list[str] = []
    first_group = True
    group: str | None = None
    for line in table.lines:
        if line.is_paper:
            out += _extra_rows(extras, group, latex=True)
            group = line.row_label
            if not first_group:
                out.append("\\addlinespace")
            first_group = False
            label = latex_escape(line.row_label)
            note = table.paper.note(line.row_label)
            if note:
                notes.append(note)
                label += f"\\textsuperscript{{{len(notes)}}}"
            cells = [latex_escape(c.paper_printed or NOT_PRINTED) for c in line.cells]
            out.append(" & ".join([label, "paper", *cells]) + " \\\\")
            continue
        if line.message:
            out.append(f" & & \\multicolumn{{{len(cols)}}}{{l}}{{{latex_escape(line.message)}}} \\\\")
        else:
            cells = [format_cell(c, line.comparable, latex=True) for c in line.cells]
            out.append(" & ".join(["", source_label(line, latex=True), *cells]) + " \\\\")
    out += _extra_rows(extras, group, latex=True)
    out += ["\\bottomrule", "\\end{tabular}"]
    out += [f"% {i}: {note}" for i, note in enumerate(notes, 1)]
    return "\n".join(out) + "\n"
