"""What a run reports while it trains: ``log.csv``, TensorBoard scalars under ``tb/``, the progress bar.

Why the logs are rewritten on resume: rows past the resumed iteration are dropped (the run repeats
those iterations) and TensorBoard events after it are purged, so both logs read as one
uninterrupted run.

What a damaged ``log.csv`` does (``read_log``).  Rows after the resumed checkpoint are dropped
unread, and so is an unterminated last line (a row cut off by a kill): the run repeats those
iterations and writes them again.  The rows up to the checkpoint cannot be rebuilt, so damage
there is refused with the line and what to do, and the file is left as it is: unreadable bytes,
a header that does not start with ``iteration`` or names a column the trainer does not write (a
log with fewer columns, from an earlier version, is read; its rows get the new columns empty), an iteration that is not an integer,
iterations going backwards, a value that is not a number.  The kept rows are rewritten atomically before new rows are
appended, so a crash during the rewrite cannot lose them.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from pcl.atomic import atomic_write_text
from pcl.errors import PCLError

LOG_COLUMNS = ["iteration", "epoch", "lr", "loss", "l1", "contrastive", "embedding_loss", "it_per_s",
               "elapsed_s", "val_psnr", "val_ssim", "grad_share", "grad_cosine", "embedding_chance"]
#: log.csv column -> TensorBoard tag of the training rows.
_SCALARS = (("loss", "loss/total"), ("l1", "loss/l1"), ("contrastive", "loss/contrastive"),
            ("embedding_loss", "loss/embedding"), ("lr", "lr"), ("it_per_s", "speed/it_per_s"),
            ("grad_share", "pcl/grad_share"), ("grad_cosine", "pcl/grad_cosine"),
            ("embedding_chance", "loss/embedding_chance"))


def progress_bar(total: int, initial: int, name: str, *, enabled: bool) -> Any:
    """A tqdm bar over the run's iterations (disabled: every call is a no-op)."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=name, unit="it", disable=not enabled, dynamic_ncols=True,
                mininterval=0.5, smoothing=0.1)


def _damaged(path: Path, line: int, what: str, start: int, resume_from: str) -> PCLError:
    return PCLError(
        f"{path} line {line}: {what}; its rows up to iteration {start} cannot be rebuilt: repair that line, or move "
        f"the file aside (mv {path} {path}.damaged) to resume from {resume_from} with a log that starts at iteration {start}"
    )


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def read_log(path: Path, start: int, *, resume_from: str = "the last checkpoint") -> list[dict[str, str]]:
    """The rows of ``path`` up to iteration ``start`` (see the module for what damage does)."""
    if start <= 0 or not path.is_file():
        return []
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise _damaged(path, line, f"byte {exc.start} is not UTF-8 text", start, resume_from) from None
    text = text[: text.rfind("\n") + 1]  # an unterminated last line is a row cut off by a kill
    rows: list[dict[str, str]] = []
    try:
        records = list(csv.reader(io.StringIO(text)))
    except csv.Error as exc:
        raise _damaged(path, 0, f"not CSV ({exc})", start, resume_from) from None
    if not records:
        return rows
    header = records[0]
    if not header or header[0] != "iteration" or len(set(header)) != len(header) or not set(header) <= set(LOG_COLUMNS):
        raise _damaged(path, 1, f"the header is {','.join(header)[:80]!r}, not the trainer's columns", start,
                       resume_from)
    previous = 0
    for number, record in enumerate(records[1:], start=2):
        if not record:
            continue
        try:
            iteration = int(record[0])
        except ValueError:
            raise _damaged(path, number, f"iteration {record[0][:20]!r} is not an integer", start, resume_from) from None
        if iteration > start:
            continue
        if len(record) != len(header):
            raise _damaged(path, number, f"{len(record)} fields, not {len(header)}", start, resume_from)
        if iteration < previous:
            raise _damaged(path, number, f"iteration {iteration} after iteration {previous}", start, resume_from)
        bad = [(k, v) for k, v in zip(header, record) if v and not _is_number(v)]
        if bad:
            raise _damaged(path, number, f"{bad[0][0]} {bad[0][1][:20]!r} is not a number", start, resume_from)
        previous = iteration
        rows.append(dict(zip(header, record)))
    return rows


class RunLog:
    """log.csv (one row per log step and per validation) and TensorBoard scalars under tb/.

    ``enabled=False`` (ranks other than 0 under DDP) makes every method a no-op.  ``rows`` are
    the kept rows when the caller has read them already (``read_log``).
    """

    def __init__(self, run_dir: Path, start: int, *, enabled: bool, tensorboard: bool,
                 rows: list[dict[str, str]] | None = None) -> None:
        self.enabled = enabled
        self.path = run_dir / "log.csv"
        self.writer = None
        if not enabled:
            return
        if rows is None:
            rows = read_log(self.path, start)
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=LOG_COLUMNS)
        writer.writeheader()
        writer.writerows({k: r.get(k, "") for k in LOG_COLUMNS} for r in rows)
        atomic_write_text(self.path, buffer.getvalue())
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
                if row.get(key) is not None:  # the PCL columns are empty for L1-only runs
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
