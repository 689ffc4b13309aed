"""What a run reports while it trains: ``log.csv``, TensorBoard scalars under ``tb/``, the progress bar.

Why the logs are rewritten on resume: rows past the resumed iteration are dropped (the run repeats
those iterations) and TensorBoard events after it are purged, so both logs read as one
uninterrupted run.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

LOG_COLUMNS = ["iteration", "epoch", "lr", "loss", "l1", "contrastive", "embedding_loss", "it_per_s",
               "elapsed_s", "val_psnr", "val_ssim"]
#: log.csv column -> TensorBoard tag of the training rows.
_SCALARS = (("loss", "loss/total"), ("l1", "loss/l1"), ("contrastive", "loss/contrastive"),
            ("embedding_loss", "loss/embedding"), ("lr", "lr"), ("it_per_s", "speed/it_per_s"))


def progress_bar(total: int, initial: int, name: str, *, enabled: bool) -> Any:
    """A tqdm bar over the run's iterations (disabled: every call is a no-op)."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=name, unit="it", disable=not enabled, dynamic_ncols=True,
                mininterval=0.5, smoothing=0.1)


class RunLog:
    """log.csv (one row per log step and per validation) and TensorBoard scalars under tb/.

    ``enabled=False`` (ranks other than 0 under DDP) makes every method a no-op.
    """

    def __init__(self, run_dir: Path, start: int, *, enabled: bool, tensorboard: bool) -> None:
        self.enabled = enabled
        self.path = run_dir / "log.csv"
        self.writer = None
        if not enabled:
            return
        rows = []
        if self.path.is_file():
            with self.path.open(newline="", encoding="utf-8") as handle:
                rows = [r for r in csv.DictReader(handle) if r.get("iteration") and int(r["iteration"]) <= start]
        with self.path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS)
            writer.writeheader()
            writer.writerows({k: r.get(k, "") for k in LOG_COLUMNS} for r in rows)
        self.handle = self.path.open("a", newline="", encoding="utf-8")
        self.csv = csv.DictWriter(self.handle, fieldnames=LOG_COLUMNS)
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(run_dir / "tb"), purge_step=start + 1 if start else None)
            except ImportError:  # tensorboard missing: the CSV log still has everything
                self.writer = None

    def write(self, row: dict[str, Any]) -> None:
        """One training row (the mean loss terms since the previous row)."""
        if not self.enabled:
            return
        self.csv.writerow({k: _fmt(row.get(k)) for k in LOG_COLUMNS})
        self.handle.flush()
        if self.writer is not None:
            for key, tag in _SCALARS:
                self.writer.add_scalar(tag, row[key], row["iteration"])

    def write_validation(self, done: int, result: dict[str, Any], *, elapsed: float, lr: float, epoch: int) -> None:
        """One validation row (PSNR/SSIM columns only)."""
        if not self.enabled:
            return
        self.csv.writerow({k: _fmt(v) for k, v in {"iteration": done, "epoch": epoch, "lr": lr, "elapsed_s": elapsed,
                                                   "val_psnr": result["psnr"], "val_ssim": result["ssim"]}.items()})
        self.handle.flush()
        if self.writer is not None:
            self.writer.add_scalar(f"val/{result['dataset']}_psnr", result["psnr"], done)
            self.writer.add_scalar(f"val/{result['dataset']}_ssim", result["ssim"], done)

    def close(self) -> None:
        if not self.enabled:
            return
        self.handle.close()
        if self.writer is not None:
            self.writer.close()


def _fmt(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value
