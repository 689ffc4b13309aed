"""Training curves of runs of one backbone (from each run's ``log.csv``) and Table VII's alpha curve.

Why these two: the curves show what a +PCL run did that its baseline and control did not (the
contrastive term's size, the L1 loss, validation PSNR over iterations), and the alpha curve is
the only paper figure-like table whose shape (a peak at 0.1) is itself a claim.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pcl.errors import PCLError
from pcl.report.gain_figures import OKABE_ITO, _save

LOG_COLUMNS = ("iteration", "loss", "l1", "contrastive", "val_psnr")


def read_log(path: Path) -> pd.DataFrame:
    """A run's log.csv with numeric columns; PCLError naming the file when it is not one."""
    try:
        frame = pd.read_csv(path)
    except (FileNotFoundError, pd.errors.EmptyDataError, pd.errors.ParserError) as exc:
        raise PCLError(f"{path}: not a training log ({exc.__class__.__name__}); re-run `pcl train` for that run") from None
    missing = [c for c in LOG_COLUMNS if c not in frame.columns]
    if missing:
        raise PCLError(f"{path}: training log lacks column(s) {', '.join(missing)}")
    return frame.apply(pd.to_numeric, errors="coerce")


def _smooth(y: pd.Series, window: int) -> pd.Series:
    return y.rolling(window, min_periods=1).mean() if window > 1 else y


def training_curves(runs: dict[str, Path], path: Path, *, title: str) -> Path:
    """Three panels (L1 loss, contrastive term, validation PSNR) for runs {label: run_dir}."""
    from matplotlib.figure import Figure

    if not runs:
        raise PCLError("training curves need at least one run directory")
    logs = {label: read_log(Path(d) / "log.csv") for label, d in runs.items()}
    fig = Figure(figsize=(11, 3.4))
    axes = fig.subplots(1, 3)
    for i, (label, log) in enumerate(logs.items()):
        c = OKABE_ITO[i % len(OKABE_ITO)]
        steps = log.dropna(subset=["l1"])
        window = max(1, len(steps) // 25)
        axes[0].plot(steps["iteration"], _smooth(steps["l1"], window), color=c, label=label, lw=1.3)
        contrast = log.dropna(subset=["contrastive"])
        if (contrast["contrastive"] != 0).any():
            axes[1].plot(contrast["iteration"], _smooth(contrast["contrastive"], window), color=c, label=label, lw=1.3)
        val = log.dropna(subset=["val_psnr"])
        axes[2].plot(val["iteration"], val["val_psnr"], "o-", color=c, label=label, ms=3, lw=1.2)
    axes[0].set_title("L1 loss (running mean)", fontsize=9)
    axes[1].set_title("contrastive term (running mean)", fontsize=9)
    axes[2].set_title("validation PSNR (dB)", fontsize=9)
    if not axes[1].lines:
        axes[1].text(0.5, 0.5, "no run with a contrastive term", ha="center", va="center", transform=axes[1].transAxes)
    for ax in axes:
        ax.set_xlabel("iteration", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[2].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def alpha_curve(paper_csv: Path, ours: dict[str, dict[float, float]], path: Path) -> Path:
    """Set14 PSNR against alpha: the paper's Table VII and each (tier/protocol) line of ours."""
    from matplotlib.figure import Figure

    paper = pd.read_csv(paper_csv, dtype={"alpha": float, "set14_psnr": float})
    fig = Figure(figsize=(5.5, 3.6))
    ax = fig.subplots()
    ax.plot(paper["alpha"], paper["set14_psnr"], "s-", color="black", label="paper (Table VII, RCAN)")
    twin = None
    for i, (label, points) in enumerate(ours.items()):
        if not points:
            continue
        alphas = np.array(sorted(points))
        values = np.array([points[a] for a in alphas])
        twin = twin or ax.twinx()
        twin.plot(alphas, values, "o--", color=OKABE_ITO[i % len(OKABE_ITO)], label=f"ours: {label}")
    ax.set_xscale("log")
    ax.set_xlabel("alpha (weight of the contrastive term)", fontsize=8)
    ax.set_ylabel("paper Set14 PSNR (dB)", fontsize=8)
    if twin is not None:
        twin.set_ylabel("our Set14 PSNR (dB), own axis", fontsize=8)
        twin.legend(loc="lower left", fontsize=7)
    else:
        ax.text(0.5, 0.12, "no run of ours yet (alpha runs are catalog experiments rcan-pcl-alpha*)",
                ha="center", transform=ax.transAxes, fontsize=7)
    ax.legend(loc="upper right", fontsize=7)
    ax.set_title("Table VII: weight of the contrastive term", fontsize=10)
    return _save(fig, path)
