"""Figures of the gains: a forest plot (mean PSNR gain and its 95% interval per backbone x data set)
and the per-image gain distributions behind it, from the same data as gains.csv."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pcl.names import DATASETS
from pcl.atomic import atomic_write
from pcl.report.gains import find_pairings, per_image_gains

#: Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000")
DATASET_ORDER = DATASETS


def _save(fig, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    atomic_write(Path(path), lambda fh: fig.savefig(fh, format="png", dpi=130, bbox_inches="tight"))
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


def forest_plot(gains: pd.DataFrame, path: Path, *, metric: str = "psnr") -> Path:
    """One panel per (tier, protocol, kind): a point and 95% interval per comparison x data set."""
    from matplotlib.figure import Figure

    sub = gains[gains["metric"] == metric] if len(gains) else gains
    if sub.empty:
        return _empty(path, f"No pair of results to compare on {metric.upper()} yet (tiers reported, released, mini, finetune, scratch).")
    groups = list(sub.groupby(["tier", "protocol", "kind"], sort=False))
    heights = [max(2.0, 0.28 * len(g) + 1.0) for _, g in groups]
    fig = Figure(figsize=(7.5, sum(heights)))
    axes = fig.subplots(len(groups), 1, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    for ax, ((tier, protocol, kind), part) in zip(axes, groups):
        part = _order(part)
        y = np.arange(len(part))[::-1]
        colours = {c: OKABE_ITO[i % len(OKABE_ITO)] for i, c in enumerate(dict.fromkeys(part["comparison"]))}
        for yi, rec in zip(y, part.to_dict("records")):
            c = colours[rec["comparison"]]
            ax.plot([rec["ci_low"], rec["ci_high"]], [yi, yi], color=c, lw=2)
            marker = "o" if rec["ci_low"] > 0 or rec["ci_high"] < 0 else "D"
            ax.plot(rec["mean_gain"], yi, marker, color=c, mfc="white" if marker == "D" else c, ms=5)
        ax.axvline(0.0, color="0.4", lw=0.8, ls="--")
        ax.set_yticks(y)
        ax.set_yticklabels([f"{r['comparison'].split(' vs ')[0]}  {r['dataset']}  ({r['improved']}/{r['n']})"
                            for r in part.to_dict("records")], fontsize=7)
        ax.set_title(f"{tier} / {protocol}: +PCL {kind}", fontsize=9)
        ax.set_xlabel(f"{metric.upper()} gain{' (dB)' if metric == 'psnr' else ''}, mean and paired bootstrap 95% CI",
                      fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle("Gains of +PCL (filled: interval excludes 0; open: it does not)", fontsize=10)
    return _save(fig, path)


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
