"""``reports/tables/gains.{csv,md,tex}``: the gains frame of ``pcl.report.gains`` for people and LaTeX."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from pcl.atomic import atomic_write_text

#: Decimals per metric, as the paper prints them.
DIGITS: dict[str, int] = {"psnr": 3, "ssim": 4, "lpips": 4, "niqe": 3, "niqe_y": 3}
ATTRIBUTION_NOTE = (
    "Attribution: the authors' released training scripts compute the contrastive term without a gradient to the "
    "SR network (docs/method.md §5), so the gains of their released +PCL models over the official ones "
    "(tiers `reported` and `released`) measure further fine-tuning with L1, not the contrastive term. The test of "
    "the paper's claim is `+PCL vs control` in a trained tier (same schedule, same start, L1 only)."
)


def _num(value: float, digits: int, signed: bool = True) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _p(value: float) -> str:
    if value is None or math.isnan(value):
        return "–"
    return f"{value:.2g}" if value < 0.001 else f"{value:.3f}"


def _seeds(rec: dict) -> str:
    """``1;2;3 (seeds+images)``, or the single-seed caveat."""
    n = rec.get("n_seeds", 1)
    if not isinstance(n, (int, float)) or math.isnan(n) or int(n) <= 1:
        return "single seed: training variance unknown"
    seeds = rec.get("seeds", "")
    return f"{int(n)} ({seeds}), seeds and images resampled" if isinstance(seeds, str) and seeds else f"{int(n)}"


def cell_text(rec: dict) -> str:
    """``+0.031 [+0.012, +0.050]``: mean gain and its 95% interval."""
    d = DIGITS.get(rec["metric"], 4)
    return f"{_num(rec['mean_gain'], d)} [{_num(rec['ci_low'], d)}, {_num(rec['ci_high'], d)}]"


def to_markdown(frame: pd.DataFrame) -> str:
    lines = [
        "# Gains of +PCL with their uncertainty",
        "",
        "One line per (tier, protocol, comparison, data set, metric). Gain = +PCL minus the other model for PSNR/SSIM, "
        "the other minus +PCL for LPIPS/NIQE (positive is always better for +PCL). Interval: paired bootstrap 95% "
        f"(images resampled, {int(frame['draws'].iloc[0]) if len(frame) else 0} draws, seed "
        f"{int(frame['bootstrap_seed'].iloc[0]) if len(frame) else 0}). p: Wilcoxon signed-rank, two-sided; "
        "p (Holm): adjusted within the cells of one tier, protocol, kind of comparison and metric. Improved: images "
        "where +PCL is better, of N. MDE: the smallest mean gain these images would detect with 80% power at two-sided "
        "0.05, (z_0.975 + z_0.80) x sd(per-image gains) / sqrt(N) (with 5 images no exact Wilcoxon p is below 0.0625, "
        "so the verdict decides on the interval and the MDE, not on p). Seeds: the training seeds both models ran; "
        "with several, the interval resamples seeds and then images; with one, training variance is unknown and "
        "seed_sd is left empty. Per-image files: results/<tier>/<experiment>/<protocol>/<dataset>.csv.",
        "",
        ATTRIBUTION_NOTE,
        "",
    ]
    if frame.empty:
        return "\n".join(lines + ["No pair of results to compare yet."]) + "\n"
    for (tier, protocol, kind), sub in frame.groupby(["tier", "protocol", "kind"], sort=False):
        lines += [f"## {tier} / {protocol} / {kind}", "",
                  "| comparison | data set | metric | gain [95% CI] | MDE | p | p (Holm) | improved | seeds |",
                  "|---|---|---|---:|---:|---:|---:|---:|---|"]
        for rec in sub.to_dict("records"):
            d = DIGITS.get(rec["metric"], 4)
            lines.append(f"| `{rec['comparison']}` | {rec['dataset']} | {rec['metric'].upper()} | {cell_text(rec)} | "
                         f"{_num(rec.get('mde', math.nan), d, signed=False)} | {_p(rec['p_value'])} | "
                         f"{_p(rec['p_holm'])} | {rec['improved']}/{rec['n']} | {_seeds(rec)} |")
        lines.append("")
    return "\n".join(lines)


def to_latex(frame: pd.DataFrame) -> str:
    out = ["% Gains of +PCL (pcl.report.gains_report); needs \\usepackage{booktabs}.",
           "\\begin{tabular}{lllllrrr}", "\\toprule",
           "Tier & Protocol & Comparison & Set & Metric & Gain [95\\% CI] & $p_{\\mathrm{Holm}}$ & Improved \\\\",
           "\\midrule"]
    for rec in frame.to_dict("records"):
        comp = rec["comparison"].replace("_", "\\_")
        out.append(f"{rec['tier']} & {rec['protocol']} & {comp} & {rec['dataset']} & {rec['metric'].upper()} & "
                   f"{cell_text(rec)} & {_p(rec['p_holm'])} & {rec['improved']}/{rec['n']} \\\\")
    out += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(out) + "\n"


def write_gains(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """Write gains.csv (full precision), gains.md and gains.tex into ``out_dir``."""
    out_dir = Path(out_dir)
    return [
        atomic_write_text(out_dir / "gains.csv", frame.to_csv(index=False)),
        atomic_write_text(out_dir / "gains.md", to_markdown(frame)),
        atomic_write_text(out_dir / "gains.tex", to_latex(frame)),
    ]
