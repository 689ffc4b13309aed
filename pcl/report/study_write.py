"""The study tier's outputs: its table (md, csv, tex), the verdict lines at miniature scale, and
the figure of PSNR change against the measured gradient share (docs/study.md).

Why separate from ``pcl.report.study``: that module computes, this one only formats, so that the
numbers can be tested on hand-built rows without drawing anything.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from pcl.atomic import atomic_write, atomic_write_text
from pcl.report.verdict_rules import SUPPORTED, combine

#: Labels of the two verdict lines: kept apart from the paper's claims (config/claims.yaml).
ATTRIBUTION = "attribution at miniature scale"
ALPHA_CLAIM = "Table VII alpha claim at miniature scale"
_UNITS = {"psnr": " dB", "niqe": ""}


def _fmt(value: float, digits: int = 3, signed: bool = True) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _share(value: float) -> str:
    return "–" if value is None or math.isnan(value) else f"{100 * value:.3g} %"


def _setting(rec: dict) -> str:
    scale = "x255" if rec["loss_scale"] == "backbone" else f"x{rec['loss_scale']}"
    return f"L1 {scale}, warm-up {int(rec['warmup'])}, alpha {rec['alpha']:g}"


def _gain_cell(rec: dict) -> str:
    return (f"{_fmt(rec['mean_gain'])} [{_fmt(rec['ci_low'])}, {_fmt(rec['ci_high'])}]"
            f"{_UNITS.get(rec['metric'], '')}")


def markdown(table: pd.DataFrame, verdicts: list[str]) -> str:
    """The study page: one line per cell and metric, then the two verdict lines."""
    lines = [
        "# Study tier: the contrastive term against its control at miniature scale",
        "",
        "Gain = +PCL minus its L1-only control (same L1 range, schedule, initial weights, seeds); positive = +PCL",
        "better (NIQE: control minus +PCL). Interval: paired bootstrap 95 %, seeds then images. MDE: minimum",
        "detectable effect at 80 % power. Share: median over the +PCL runs of the term's gradient share",
        "(‖∇ α·L_CL‖ / ‖∇ L1‖). Embedding loss: median after the warm-up, against its chance level. Status: the",
        "cell's own 95 % interval / family-wise (the interval again at 1 - 0.05/m over the m rows of its table,",
        "Bonferroni; the verdict lines use these). The effect in question is the minimum effect of config/claims.yaml",
        "(min_effect): \"too few images to decide\" means the cell's MDE exceeds it, so its null says little;",
        "\"not significant\" with a smaller MDE is a resolved null. These are miniature-scale numbers (EDSR-S 8x32, stand-in photos);",
        "they are never compared with the paper's.",
        "",
        "| setting | protocol | data set | metric | gain [95 % interval] | MDE | seed sd | seeds | status (cell / family-wise) | share | embedding loss / chance |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rec in table[table["comparison"] == "vs control"].to_dict("records"):
        lines.append(f"| {_setting(rec)} | {rec['protocol']} | {rec['dataset']} | {rec['metric']} | {_gain_cell(rec)} | "
                     f"{_fmt(rec['mde'], signed=False)} | {_fmt(rec['seed_sd_gain'], signed=False)} | {rec['n_seeds']} | "
                     f"{rec['status']} / {rec['fw_status']} | {_share(rec['share_median'])} | "
                     f"{_fmt(rec['embedding_loss'], 2, False)} / {_fmt(rec['embedding_chance'], 2, False)} |")
    alpha = table[table["comparison"] == "alpha"]
    if len(alpha):
        lines += ["", "Smaller alpha minus larger alpha (both +PCL, same L1 range and warm-up, paired seed by seed):", "",
                  "| setting of the smaller alpha | versus | data set | metric | gain [95 % interval] | MDE | status (cell / family-wise) |",
                  "|---|---|---|---|---|---|---|"]
        for rec in alpha.to_dict("records"):
            lines.append(f"| {_setting(rec)} | {rec['second']} | {rec['dataset']} | {rec['metric']} | {_gain_cell(rec)} | "
                         f"{_fmt(rec['mde'], signed=False)} | {rec['status']} / {rec['fw_status']} |")
    lines += ["", "## Verdicts at miniature scale (not the paper's claims)", "", *[f"- {v}" for v in verdicts], ""]
    return "\n".join(lines)


def latex(table: pd.DataFrame) -> str:
    """The ``vs control`` rows as a LaTeX tabular (booktabs)."""
    rows = [r"\begin{tabular}{lllrrl}", r"\toprule",
            r"setting & data set & metric & gain [95\% CI] & share & status (cell / family-wise) \\", r"\midrule"]
    for rec in table[table["comparison"] == "vs control"].to_dict("records"):
        share = "--" if math.isnan(rec["share_median"]) else f"{100 * rec['share_median']:.3g}\\%"
        rows.append(f"{_setting(rec)} & {rec['dataset']} & {rec['metric']} & {_fmt(rec['mean_gain'])} "
                    f"[{_fmt(rec['ci_low'])}, {_fmt(rec['ci_high'])}] & {share} & {rec['status']} / {rec['fw_status']} \\\\")
    rows += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(rows)


def _family(rows: pd.DataFrame) -> str:
    m = int(rows["family_size"].iloc[0])
    return f"{m} comparisons, family-wise intervals at {100 * (1 - 0.05 / m):.4g} % (Bonferroni)"


def _per_cell_hits(rows: pd.DataFrame) -> str:
    """How many per-cell 95 % intervals said ``supported``, beside what chance alone gives."""
    hits = rows[rows["status"] == SUPPORTED]
    listed = "; ".join(f"{_setting(r)} {r['dataset']} {r['metric']} {_fmt(r['mean_gain'])}" for r in hits.to_dict("records"))
    chance = 0.025 * len(rows)
    return (f"per-cell 95 % intervals: {len(hits)} of {len(rows)} supported" + (f" ({listed})" if listed else "")
            + f", where chance alone gives about {chance:.1f}")


def verdict_lines(table: pd.DataFrame) -> list[str]:
    """The two miniature-scale verdicts, on the family-wise statuses.

    Attribution: does the term improve PSNR or NIQE over its control in any cell?  A cell counts only
    when its family-wise interval (Bonferroni over every +PCL-vs-control row) says so: with dozens
    of cells, one per-cell 95 % interval in twenty excludes zero by chance, and the line also says
    how many did.  Table VII: is the smaller alpha's +PCL run better than the larger's on PSNR, in
    every (L1 range, warm-up)?
    """
    out = []
    ctrl = table[table["comparison"] == "vs control"]
    if ctrl.empty:
        out.append(f"{ATTRIBUTION}: not testable here (no +PCL cell with its control evaluated)")
    else:
        won = ctrl[ctrl["fw_status"] == SUPPORTED]
        where = "; ".join(f"{_setting(r)} {r['dataset']} {r['metric']} {_fmt(r['mean_gain'])}"
                          for r in won.to_dict("records"))
        status = ("term improves on its control in " + where if where else
                  f"no cell improves on its control; all cells combined: {combine(list(ctrl['fw_status']))}")
        out.append(f"{ATTRIBUTION}: {status} ({_family(ctrl)}; {_per_cell_hits(ctrl)})")
    alpha = table[(table["comparison"] == "alpha") & (table["metric"] == "psnr")]
    if alpha.empty:
        out.append(f"{ALPHA_CLAIM}: not testable here (no pair of alphas evaluated)")
    else:
        parts = "; ".join(f"{_setting(r)} vs {r['second']} on {r['dataset']}: {r['fw_status']}"
                          for r in alpha.to_dict("records"))
        out.append(f"{ALPHA_CLAIM} (smaller alpha gives higher PSNR): {combine(list(alpha['fw_status']))} "
                   f"({_family(table[table['comparison'] == 'alpha'])}; {parts})")
    return out


STUDY_SECTION = "## At miniature scale: the study tier (not the paper's claims)"
"""Heading of the study's part of reports/verdict.md (``pcl verdict --study``), which
``pcl check --verdict`` finds and re-derives."""


def read_study_table(path: Path) -> pd.DataFrame:
    """A study table written by ``pcl study`` (its CSV), or one line saying what to run."""
    from pcl.errors import PCLError
    from pcl.report.study import STUDY_COLUMNS

    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise PCLError(f"{path}: cannot read the study table ({exc.__class__.__name__}); run `pcl study` first") from None
    missing = [c for c in STUDY_COLUMNS if c not in table.columns]
    if missing:
        raise PCLError(f"{path}: not a study table (no column {missing[0]!r}); write it with `pcl study`")
    return table


def verdict_section(table_csv: Path) -> list[str]:
    """The study's part of the verdict page: its two lines, labelled as miniature-scale findings and
    kept under their own heading, apart from the paper's claims."""
    lines = verdict_lines(read_study_table(table_csv))
    return [STUDY_SECTION, "",
            f"From `{table_csv}` (`pcl study`, docs/study.md): EDSR-S 8x32 fine-tuned from one L1-trained baseline on 80 "
            "stand-in photos, on CPU. These lines answer whether the contrastive term can help at some setting of its "
            "constants; they are compared within the study only, never with the paper's numbers.", "",
            *[f"- {v}" for v in lines], ""]


def parse_verdict_section(text: str) -> tuple[str, list[str]] | None:
    """(the study table's path, its bullet lines) of a verdict page's study section, None without one."""
    if STUDY_SECTION not in text:
        return None
    body = text.split(STUDY_SECTION, 1)[1].split("\n## ", 1)[0]
    source = body.split("`", 2)[1] if body.count("`") >= 2 else ""
    return source, [line[2:] for line in body.splitlines() if line.startswith("- ")]


def write_study(table: pd.DataFrame, out_dir: Path, stem: str = "study") -> list[Path]:
    """``<stem>.csv``, ``.md`` (with the verdict lines) and ``.tex`` in ``out_dir``."""
    out_dir = Path(out_dir)
    paths = [out_dir / f"{stem}.{ext}" for ext in ("csv", "md", "tex")]
    atomic_write_text(paths[0], table.to_csv(index=False, float_format="%.6g"))
    atomic_write_text(paths[1], markdown(table, verdict_lines(table)))
    atomic_write_text(paths[2], latex(table))
    return paths


def share_figure(points: pd.DataFrame, path: Path, *, dataset: str) -> Path:
    """PSNR change over the control against the measured gradient share, one point per +PCL run
    (log x axis, bootstrap intervals over images); runs without a positive share are left out and
    counted in the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = points[points["share"].map(lambda v: v is not None and not math.isnan(v) and v > 0)]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    markers = {0: "o", 1: "s"}
    for (scale, warmup, alpha), grp in shown.groupby(["loss_scale", "warmup", "alpha"], sort=True):
        label = f"L1 {'x255' if scale == 'backbone' else 'x' + str(scale)}, warm-up {warmup}, alpha {alpha:g}"
        yerr = [grp["gain"] - grp["ci_low"], grp["ci_high"] - grp["gain"]]
        ax.errorbar(grp["share"].astype(float), grp["gain"], yerr=yerr, fmt=markers[int(bool(warmup))],
                    capsize=3, label=label)
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("measured gradient share of the term (log scale)")
    ax.set_ylabel(f"PSNR change over control, {dataset} (dB)")
    left = len(points) - len(shown)
    ax.set_title(f"+PCL runs: {len(shown)} shown" + (f", {left} without a measured share" if left else ""))
    if len(shown):
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
    return Path(path)
