"""The gain lines of Table II: our +PCL gains with their intervals beside the gains the paper prints.

Why in the table: the paper prints its gains as rows of Table II, so a reader compares our gains
with those rows where they stand.  Why read from ``gains.csv``: the intervals are computed once,
by ``pcl gains`` (``pcl.report.gains``), and the table only shows them -- the data flows one way,
result rows -> gains.csv -> tables, so the table and gains.md can never disagree.

The printed gain is the paper's ``X+PCL`` value minus its ``X`` value, in ``Decimal`` on the
printed strings (``32.46 - 32.39`` is ``+0.07``; in binary floats it is 0.07000000000000028).

A gain line of a tier that is not comparable with the paper (``mini``: a small model on stand-in
photos) is marked so in its label and cells, and carries no printed gain beside it: its size says
nothing about the paper's, only its sign and interval about the contrastive term in miniature.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pandas as pd

from pcl.errors import PCLError
from pcl.metrics.psnr_ssim import PROTOCOLS
from pcl.names import NON_COMPARABLE_TIERS, TIERS
from pcl.report.gains import COMPARISONS
from pcl.report.gains_report import cell_text
from pcl.report.labels import BACKBONE_LABELS
from pcl.report.lines import LONG_COLUMNS, comparable_text
from pcl.report.paper import PaperTable, decimals, to_decimal
from pcl.report.render import ExtraLine, Extras, latex_escape

REQUIRED_COLUMNS: tuple[str, ...] = (
    "tier", "protocol", "comparison", "backbone", "dataset", "metric", "mean_gain", "ci_low", "ci_high",
)
"""Columns of gains.csv the gain lines read (``pcl.report.gains.GAIN_COLUMNS`` has them all)."""
_NUMERIC = ("mean_gain", "ci_low", "ci_high")
_SIGN = re.compile(r"([+-])(?=\d)")
_KEY = ["tier", "protocol", "comparison", "dataset", "metric"]
GAIN_LABEL = "gain"
"""Label column of a gain line."""
NOT_COMPARABLE_LABEL = "not comparable with the paper"
"""Appended to the source of a gain line whose tier is in ``NON_COMPARABLE_TIERS``."""
_NON_COMPARABLE = ", ".join(f"`{t}`" for t in sorted(NON_COMPARABLE_TIERS))
_OFFICIAL_TIERS = ", ".join(f"`{t}`" for t in sorted(next(t for t, _, _, k in COMPARISONS if k == "vs official")))


def read_gains(path: Path) -> pd.DataFrame:
    """gains.csv as written by ``pcl gains``; a one-line ``PCLError`` naming the file when it cannot serve."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype={c: str for c in ("tier", "protocol", "comparison", "backbone", "dataset", "metric")},
                            keep_default_na=False, na_values={c: ["", "nan", "NaN"] for c in _NUMERIC})
    except (OSError, ValueError) as exc:
        raise PCLError(f"{path}: cannot read the gains ({exc.__class__.__name__}); write it with `pcl gains`") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise PCLError(f"{path}: gains file lacks column(s) {', '.join(missing)}; write it with `pcl gains`")
    for col in _NUMERIC:
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = frame[col][values.isna() & frame[col].notna()]
        if len(bad):
            raise PCLError(f"{path}: column {col!r} holds {bad.iloc[0]!r}, not a number")
        frame[col] = values.astype(float)
    dup = frame[frame.duplicated(_KEY)]
    if len(dup):
        raise PCLError(f"{path}: gain {'/'.join(map(str, dup.iloc[0][_KEY]))} appears twice; each cell must be unique")
    return frame


def printed_gain(paper: PaperTable, label: str, dataset: str, metric: str) -> str:
    """``+0.07``: the paper's ``label+PCL`` minus ``label``, to the printed decimals ('' unless both are printed)."""
    if label not in paper.labels or f"{label}+PCL" not in paper.labels:
        return ""
    base, pcl = paper.printed(label, dataset, metric), paper.printed(f"{label}+PCL", dataset, metric)
    if not base or not pcl:
        return ""
    digits = max(decimals(base), decimals(pcl))
    gain = (to_decimal(pcl) - to_decimal(base)).quantize(Decimal(1).scaleb(-digits))
    return f"{gain:+f}"


def _order(key: tuple[str, str, str]) -> tuple:
    """Tier in pipeline order, then protocol, then comparison: the order of our result lines."""
    tier, protocol, comparison = key
    return (TIERS.index(tier) if tier in TIERS else len(TIERS), PROTOCOLS.index(protocol) if protocol in PROTOCOLS else 9,
            tier, protocol, comparison)


def _cell(rec: dict | None, printed: str, *, latex: bool, comparable: bool = True) -> str:
    """``+0.031 [+0.012, +0.050] (printed +0.07)``; in LaTeX the signs in math (``$+$0.031``) as the
    table's other cells print them, and ``--`` where gains.csv has no such cell.  A tier that is not
    comparable gets ``(n/c)`` instead of the printed gain."""
    text = ("--" if latex else "–") if rec is None else cell_text(rec)
    if not comparable:
        text += " (n/c)" if rec is not None else ""
    elif printed:
        text += f" (printed {printed})"
    # The text holds only numbers, signs, brackets and words: the signs are its only LaTeX specials.
    return _SIGN.sub(r"$\1$", text.replace("–", "--")) if latex else text


def gain_lines(gains: pd.DataFrame, paper: PaperTable) -> dict[str, tuple[ExtraLine, ...]]:
    """``X+PCL`` row label -> one line per (tier, protocol, comparison) of ``X``'s gains.

    Cells follow the paper's (dataset, metric) columns; gains of other metrics (LPIPS, NIQE) have no
    column here, and a comparison with none of the table's metrics gets no line.
    """
    columns = [(ds, met) for _, ds, met in paper.columns]
    wanted = set(columns)
    shown = gains[[(ds, met) in wanted for ds, met in zip(gains["dataset"], gains["metric"])]]
    out: dict[str, tuple[ExtraLine, ...]] = {}
    for backbone, label in BACKBONE_LABELS.items():
        row = f"{label}+PCL"
        mine = shown[shown["backbone"] == backbone]
        if row not in paper.labels or mine.empty:
            continue
        printed = {(ds, met): printed_gain(paper, label, ds, met) for ds, met in columns}
        lines = []
        for key, sub in sorted(mine.groupby(["tier", "protocol", "comparison"], sort=False), key=lambda kv: _order(kv[0])):
            tier, protocol, comparison = key
            ok = tier not in NON_COMPARABLE_TIERS
            mark = "" if ok else f" ({NOT_COMPARABLE_LABEL})"
            recs = {(r["dataset"], r["metric"]): r for r in sub.to_dict("records")}
            lines.append(ExtraLine(
                GAIN_LABEL,
                f"{tier} / `{comparison}` / {protocol}{mark}",
                latex_escape(f"{tier}/{comparison}/{protocol}{mark}"),
                tuple(_cell(recs.get(c), printed[c], latex=False, comparable=ok) for c in columns),
                tuple(_cell(recs.get(c), printed[c], latex=True, comparable=ok) for c in columns),
                tuple(_record(row, recs[c], printed[c] if ok else "") for c in columns if c in recs),
            ))
        out[row] = tuple(lines)
    return out


def _record(row: str, rec: dict, printed: str) -> dict:
    """One CSV row of a gain line (``LONG_COLUMNS``): the mean gain as ``our_value``, the printed gain
    as ``paper_value`` (empty for a tier that is not comparable), and the ``comparable`` mark."""
    out: dict = dict.fromkeys(LONG_COLUMNS)
    out.update(row_label=row, source=rec["tier"], protocol=rec["protocol"], experiment=rec["comparison"],
               dataset=rec["dataset"], metric=f"{rec['metric']}_gain", paper_value=printed,
               our_value=rec["mean_gain"], n_images=rec.get("n"), line=GAIN_LABEL,
               comparable=comparable_text(rec["tier"]))
    return out


def gain_extras(gains: pd.DataFrame, paper: PaperTable) -> Extras:
    """The gain lines of a Table II and the legend sentence that says what they are."""
    legend = (
        f"Each `{GAIN_LABEL}` line under a `+PCL` row is one (tier, comparison, protocol) of gains.csv (`pcl gains`): "
        "our mean per-image gain of +PCL over the model it is compared with, its paired bootstrap 95% interval in "
        "`[ ]`, and `(printed ...)` the gain the paper prints (its `+PCL` row minus the plain row, to the printed "
        f"decimals); a line of a tier that is not comparable with the paper ({_NON_COMPARABLE}) says so, its cells "
        "carry `(n/c)` and no printed gain (its size is not the paper's, only its sign and interval mean something); "
        "`–` is a cell gains.csv has no gain for; the gains "
        f"over the official weights in tiers {_OFFICIAL_TIERS} measure the authors' released fine-tuning, not the "
        "contrastive term (reports/tables/gains.md)."
    )
    return Extras(gain_lines(gains, paper), legend)
