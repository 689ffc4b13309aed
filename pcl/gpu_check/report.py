"""The GPU check's outputs: one long-format CSV grown row by row, and a short markdown summary.

Why long format (part, case, quantity, value, ...): the parts measure different things (a metric
difference, an it/s, a cosine), and one schema lets every row be written the moment it exists.
Why rewrite the whole file atomically per row: a part killed at its time budget (SIGKILL) must
leave a CSV that parses, holding every row measured so far and nothing half-written.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pcl.atomic import atomic_write_text
from pcl.errors import PCLError

COLUMNS = ["part", "case", "quantity", "value", "unit", "tolerance", "ok", "note"]
PARTS: tuple[str, ...] = ("device", "metrics", "steps", "precision", "resume", "ddp")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


def read_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a check CSV (none when it does not exist); a foreign file is refused."""
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != COLUMNS:
            raise PCLError(f"{path}: not a GPU-check CSV (columns {reader.fieldnames}); move it away or pick another "
                           "--out-dir")
        return list(reader)


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _text(row.get(k)) for k in COLUMNS})
    atomic_write_text(path, buffer.getvalue())


@dataclass
class RowSink:
    """Appends rows to the CSV at ``path``: read, add, rewrite atomically (one writer at a time:
    the parts run one after another)."""

    path: Path

    def add(self, part: str, case: str, quantity: str, value: Any, unit: str = "", *, tolerance: Any = None,
            ok: bool | None = None, note: str = "") -> None:
        rows: list[dict[str, Any]] = list(read_rows(self.path))
        rows.append({"part": part, "case": case, "quantity": quantity, "value": value, "unit": unit,
                     "tolerance": tolerance, "ok": ok, "note": note})
        write_rows(self.path, rows)


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def summary_markdown(rows: list[dict[str, str]], *, title: str) -> str:
    """A short summary: the device facts, per part the rows checked / failed / its status, and the
    failing rows by name."""
    device = {r["quantity"]: r["value"] for r in rows if r["part"] == "device"}
    lines = [f"# {title}", ""]
    for key in ("name", "driver", "cuda", "torch", "peak", "peak_tflops", "mode"):
        if key in device:
            lines.append(f"- {key}: {device[key]}")
    lines += ["", "| part | rows | checked | failed | status |", "|---|---|---|---|---|"]
    for part in PARTS[1:]:
        mine = [r for r in rows if r["part"] == part]
        status = next((r["value"] for r in mine if r["quantity"] == "status"), "not run")
        checked = [r for r in mine if r["ok"] in ("true", "false") and r["quantity"] != "status"]
        failed = [r for r in checked if r["ok"] == "false"]
        lines.append(f"| {part} | {len(mine)} | {len(checked)} | {len(failed)} | {status} |")
    steps = [r for r in rows if r["part"] == "steps" and r["quantity"] in ("it_per_s", "mfu", "pcl_time_over_l1")
             and r["value"]]
    if steps:
        lines += ["", "Training steps (it/s, MFU against the named peak, +PCL time per step / L1):", ""]
        for r in steps:
            value = _float(r["value"])
            shown = f"{value:.4g}" if value is not None else r["value"]
            lines.append(f"- {r['case']}: {r['quantity']} = {shown} {r['unit']}".rstrip())
    bad = [r for r in rows if r["ok"] == "false"]
    if bad:
        lines += ["", "Failed checks:", ""]
        lines += [f"- {r['part']} / {r['case']} / {r['quantity']} = {r['value']} (tolerance {r['tolerance']}) "
                  f"{r['note']}".rstrip() for r in bad]
    return "\n".join(lines) + "\n"
