"""Figures drawn from result rows (matplotlib, Agg canvas, no display needed).

Why ``plot_released_gains``: a mean gain of a few hundredths of a dB hides whether PCL helps
most images a little or a few images a lot; the per-image distribution from the released logs
shows it (e.g. HAN Manga109: mean +0.005 dB with only 44/109 images improved, docs/method.md §8.2).
Called by ``pcl.report.reports.write_reports`` (``pcl tables``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pcl.atomic import atomic_write
from pcl.errors import PCLError
from pcl.names import DATASETS
from pcl.report.labels import BACKBONE_LABELS

GAINS_TITLE = "Per-image PSNR gain of +PCL over the official model (released logs, authors protocol)"


def released_gains(rows_df: pd.DataFrame) -> pd.DataFrame:
    """Per-image PSNR gains (pcl minus official) from tier ``reported`` rows, paired by image name.

    Columns: backbone, dataset, image, gain.  PCLError when no backbone has both methods.
    """
    rows = rows_df[(rows_df["tier"] == "reported") & (rows_df["protocol"] == "authors")]
    base = rows[rows["method"] == "official"]
    pcl = rows[rows["method"] == "pcl"]
    keys = ["backbone", "dataset", "image"]
    merged = base[[*keys, "psnr"]].merge(pcl[[*keys, "psnr"]], on=keys, suffixes=("_official", "_pcl"), validate="one_to_one")
    if merged.empty:
        raise PCLError("no released-log rows with both an official and a +PCL model; run `pcl ingest-logs` first")
    merged["gain"] = merged["psnr_pcl"] - merged["psnr_official"]
    return merged[[*keys, "gain"]]


def plot_released_gains(rows_df: pd.DataFrame, out_path: Path) -> Path:
    """Box plot with the individual images overlaid, one panel per dataset, one box per backbone.

    Tick labels carry 'improved/total' so the count of images helped is read off directly.
    """
    gains = released_gains(rows_df)
    backbones = [b for b in BACKBONE_LABELS if b in set(gains["backbone"])]
    datasets = [d for d in DATASETS if d in set(gains["dataset"])]
    fig = Figure(figsize=(3.2 * len(datasets), 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(datasets), squeeze=False)[0]
    rng = np.random.default_rng(0)  # fixed jitter: the same data gives the same picture
    for ax, dataset in zip(axes, datasets):
        data, labels = [], []
        for backbone in backbones:
            g = gains[(gains["backbone"] == backbone) & (gains["dataset"] == dataset)]["gain"].to_numpy()
            data.append(g)
            labels.append(f"{BACKBONE_LABELS[backbone]}\n{int((g > 0).sum())}/{len(g)}")
        positions = np.arange(1, len(data) + 1)
        ax.boxplot(data, positions=positions, widths=0.6, showfliers=False)
        for pos, g in zip(positions, data):
            ax.scatter(pos + rng.uniform(-0.18, 0.18, len(g)), g, s=6, alpha=0.5, color="tab:blue", linewidths=0)
        ax.axhline(0.0, color="tab:red", linewidth=0.8, linestyle="--")
        ax.set_xticks(positions, labels, fontsize=8)
        ax.set_title(dataset)
        ax.set_xlabel("backbone (images improved / total)", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("PSNR gain (dB), +PCL minus official")
    fig.suptitle(GAINS_TITLE, fontsize=10)
    out_path = Path(out_path)
    return atomic_write(out_path, lambda handle: fig.savefig(handle, format="png", dpi=120))
