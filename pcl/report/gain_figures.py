"""Figures of the gains: a forest plot (mean PSNR gain and its 95% interval per backbone x data set)
and the per-image gain distributions behind it, from the same data as gains.csv.

The forest plot's markers show the verdict's status of each cell (filled where the cell is decided),
through ``marker_status`` alone, so the figure and reports/verdict.md cannot disagree on a cell.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from pcl.atomic import atomic_write
from pcl.names import DATASETS
from pcl.report.gains import find_pairings, per_image_gains
from pcl.report.verdict_rules import CONTRADICTED, NOT_SIGNIFICANT, NOT_TESTABLE, SUPPORTED, TOO_FEW, cell_status

#: Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
DATASET_ORDER = DATASETS
DPI = 130
"""Resolution of every saved figure: 7 pt labels come out 12.6 px high, legible at 100% zoom."""
#: Smallest gain that counts when no claims file gives one: config/claims.yaml's ``min_effect``
#: (PSNR and SSIM at the paper's printing precision, LPIPS and NIQE one digit coarser).
DEFAULT_MIN_EFFECT: dict[str, float] = {"psnr": 0.01, "ssim": 0.0001, "lpips": 0.001, "niqe": 0.01, "niqe_y": 0.01}
#: Verdict status of a cell -> (matplotlib marker, filled): filled where the cell is decided.
MARKERS: dict[str, tuple[str, bool]] = {
    SUPPORTED: ("o", True), CONTRADICTED: ("s", True), NOT_SIGNIFICANT: ("o", False), TOO_FEW: ("D", False),
    NOT_TESTABLE: ("x", False),
}


def _save(fig, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    atomic_write(Path(path), lambda fh: fig.savefig(fh, format="png", dpi=DPI, bbox_inches="tight"))
    return Path(path)


def _empty(path: Path, text: str) -> Path:
    """A figure that says why there is nothing to plot (the pipeline always gets its file)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 1.6))
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, wrap=True)
    return _save(fig, path)


def _order(frame: pd.DataFrame) -> pd.DataFrame:
    rank = {d: i for i, d in enumerate(DATASET_ORDER)}
    return frame.assign(_d=frame["dataset"].map(rank)).sort_values(["comparison", "_d"]).drop(columns="_d")


def marker_status(rec: Mapping, min_effects: Mapping[str, float] | None = None) -> str:
    """The status a gains row's marker shows: the verdict's cell rule (``verdict_rules.cell_status``).

    Why one function: the figure must never call a cell decided that the verdict calls undecided, so
    the marker asks the same rule, on the same gains row (mean, 95% interval, MDE), with the same
    minimum effect; ``min_effects`` (metric -> smallest gain that counts) overrides
    ``DEFAULT_MIN_EFFECT``.  The gain in question is the row's own mean (the figure has no printed gain).
    """
    effects = {**DEFAULT_MIN_EFFECT, **(min_effects or {})}
    mde = rec.get("mde", math.nan)
    return cell_status(float(rec["mean_gain"]), float(rec["ci_low"]), float(rec["ci_high"]),
                       min_effect=effects.get(str(rec["metric"]), 0.0),
                       mde=math.nan if mde is None or pd.isna(mde) else float(mde))


def _legend_handles(metric: str, min_effects: Mapping[str, float] | None) -> list:
    from matplotlib.lines import Line2D

    effect = {**DEFAULT_MIN_EFFECT, **(min_effects or {})}.get(metric, 0.0)
    unit = " dB" if metric == "psnr" else ""
    texts = {
        SUPPORTED: f"supported: interval above 0 and gain >= {effect:g}{unit}",
        CONTRADICTED: f"contradicted: interval below 0 and loss >= {effect:g}{unit}",
        NOT_SIGNIFICANT: f"not significant: interval spans 0 (MDE <= gain), or gain < {effect:g}{unit}",
        TOO_FEW: "too few images to decide: interval spans 0, MDE > gain",
    }
    return [Line2D([], [], ls="none", color="0.2", marker=MARKERS[s][0], mfc="0.2" if MARKERS[s][1] else "white",
                   ms=6, label=text) for s, text in texts.items()]


def forest_plot(gains: pd.DataFrame, path: Path, *, metric: str = "psnr",
                min_effects: Mapping[str, float] | None = None) -> Path:
    """One panel per (tier, protocol, kind): a point and 95% interval per comparison x data set, its
    marker the verdict's status of that cell (``marker_status``), explained in a legend on top."""
    sub = gains[gains["metric"] == metric] if len(gains) else gains
    if sub.empty:
        return _empty(path, f"No pair of results to compare on {metric.upper()} yet (tiers reported, released, mini, finetune, scratch).")
    return _save(forest_figure(sub, metric=metric, min_effects=min_effects), path)


def forest_figure(sub: pd.DataFrame, *, metric: str = "psnr", min_effects: Mapping[str, float] | None = None):
    """The forest plot's ``Figure`` (rows of one metric), laid out by matplotlib's constrained layout so
    that no title, tick label or axis label overlaps another at the saved size."""
    from matplotlib.figure import Figure

    groups = list(sub.groupby(["tier", "protocol", "kind"], sort=False))
    heights = [0.26 * len(g) + 0.9 for _, g in groups]
    fig = Figure(figsize=(8.0, sum(heights) + 1.3), layout="constrained")
    fig.get_layout_engine().set(h_pad=0.12, hspace=0.04)
    axes = fig.subplots(len(groups), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    unit = " (dB)" if metric == "psnr" else ""
    for ax, ((tier, protocol, kind), part) in zip(axes, groups):
        part = _order(part)
        y = np.arange(len(part))[::-1]
        colours = {c: OKABE_ITO[i % len(OKABE_ITO)] for i, c in enumerate(dict.fromkeys(part["comparison"]))}
        for yi, rec in zip(y, part.to_dict("records")):
            c = colours[rec["comparison"]]
            marker, filled = MARKERS[marker_status(rec, min_effects)]
            ax.plot([rec["ci_low"], rec["ci_high"]], [yi, yi], color=c, lw=2)
            ax.plot(rec["mean_gain"], yi, marker, color=c, mfc=c if filled else "white", ms=6, mew=1.4)
        ax.axvline(0.0, color="0.4", lw=0.8, ls="--")
        ax.set_yticks(y)
        ax.set_yticklabels([f"{r['comparison'].split(' vs ')[0]}  {r['dataset']}  ({r['improved']}/{r['n']})"
                            for r in part.to_dict("records")], fontsize=7)
        ax.set_ylim(-0.7, len(part) - 0.3)
        ax.set_title(f"{tier} / {protocol}: +PCL {kind}", fontsize=9, loc="left")
        ax.set_xlabel(f"{metric.upper()} gain{unit}", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    # The headline is the legend's title: a suptitle and an outside legend would share the top band.
    fig.legend(handles=_legend_handles(metric, min_effects), loc="outside upper center", ncols=2, fontsize=7.5,
               frameon=False, title_fontsize=10,
               title="Gains of +PCL: mean and paired bootstrap 95% interval, (k/n) images improved;\n"
                     "marker = the verdict's status of the cell")
    return fig


def gain_distributions(results: pd.DataFrame, path: Path, *, metric: str = "psnr") -> Path:
    """Per-image gains of every pairing as strip plots (one row per comparison x data set)."""
    from matplotlib.figure import Figure

    pairings = [p for p in find_pairings(results) if p.metric == metric]
    if not pairings:
        return _empty(path, f"No per-image {metric.upper()} gains to show yet.")
    rank = {d: i for i, d in enumerate(DATASET_ORDER)}
    pairings.sort(key=lambda p: (p.tier, p.protocol, p.kind, p.pcl, rank.get(p.dataset, 9)))
    fig = Figure(figsize=(7.5, max(2.5, 0.3 * len(pairings) + 1.2)))
    ax = fig.subplots()
    rng = np.random.default_rng(0)
    labels = []
    for i, p in enumerate(pairings[::-1]):
        g = per_image_gains(p).to_numpy()
        colour = OKABE_ITO[rank.get(p.dataset, 5) % len(OKABE_ITO)]  # one colour per data set
        ax.scatter(g, i + rng.uniform(-0.25, 0.25, g.size), s=6, alpha=0.6, color=colour, linewidths=0)
        ax.plot([g.mean()] * 2, [i - 0.35, i + 0.35], color="black", lw=1.5)
        labels.append(f"{p.tier}/{p.protocol} {p.pcl} vs {p.other.rsplit('-', 1)[-1]}  {p.dataset}")
    ax.axvline(0.0, color="0.4", lw=0.8, ls="--")
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=6)
    ax.set_xlabel(f"per-image {metric.upper()} gain of +PCL (black bar: mean)", fontsize=8)
    ax.set_title("Per-image gains behind reports/tables/gains.csv", fontsize=10)
    return _save(fig, path)
