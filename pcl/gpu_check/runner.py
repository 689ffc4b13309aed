"""``pcl gpu-check``: every GPU path of the harness in one command, each part under a time budget.

Parts (see their modules): ``metrics`` (CUDA metrics = CPU metrics), ``steps`` (it/s, memory,
MFU of every backbone x method x precision x memory format), ``precision`` (bf16 vs fp32, PCL
samples in fp32), ``resume`` (SIGKILL after a checkpoint, resume, same weights), ``ddp`` (torchrun
and the process group).  Each runs in its own process, killed at its budget; the CSV
``gpu_<device>.csv`` is rewritten atomically after every row, so whatever stops the check leaves
a valid file with every row measured so far, and the parent adds a ``status`` row per part.
The budgets add up to 7.25 minutes on a GPU (the check must fit in 8 on one H100/H200).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import torch

from pcl.errors import PCLError
from pcl.gpu_check.device_info import DeviceInfo, describe
from pcl.gpu_check.report import PARTS, RowSink, read_rows, summary_markdown, write_rows

#: Seconds per part on a GPU (paper sizes) and with ``--tiny``.
BUDGETS: dict[str, float] = {"metrics": 45, "steps": 240, "precision": 30, "resume": 60, "ddp": 60}
TINY_BUDGETS: dict[str, float] = {"metrics": 40, "steps": 90, "precision": 40, "resume": 90, "ddp": 60}
#: Seconds the parent waits past a part's budget before SIGKILL (the part stops itself at 90 %).
GRACE_S = 3.0


def parse_budgets(items: list[str] | None) -> dict[str, float]:
    """``PART=SECONDS`` options as a mapping; a bad one is a one-line error naming it."""
    out: dict[str, float] = {}
    for item in items or []:
        name, _, value = item.partition("=")
        try:
            seconds = float(value)
        except ValueError:
            seconds = -1.0
        if name not in PARTS[1:] or seconds <= 0:
            raise PCLError(f"--budget {item!r}: expected PART=SECONDS with PART one of {', '.join(PARTS[1:])} and "
                           "SECONDS > 0, e.g. --budget steps=120")
        out[name] = seconds
    return out


def _device_rows(sink: RowSink, info: DeviceInfo, tiny: bool) -> None:
    sink.add("device", "", "name", info.name)
    sink.add("device", "", "driver", info.driver)
    sink.add("device", "", "cuda", info.cuda)
    sink.add("device", "", "torch", info.torch)
    sink.add("device", "", "peak", info.peak_name)
    sink.add("device", "", "peak_tflops", info.peak_flops / 1e12 if info.peak_flops else "", "TFLOP/s")
    sink.add("device", "", "mode", "tiny" if tiny else "paper", "",
             note="tiny: smoke-size networks, small batches; only paper-mode files feed pcl plan")


def _run_part(part: str, csv_path: Path, device: torch.device, tiny: bool, seconds: float,
              grace_s: float) -> tuple[str, bool, str]:
    """Run one part in a child process; (status, ok, note)."""
    cmd = [sys.executable, "-m", "pcl.gpu_check.part", part, str(csv_path), str(device), "1" if tiny else "0", str(seconds)]
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + grace_s, check=False)
    except subprocess.TimeoutExpired:
        return "timeout", False, f"killed at its budget of {seconds:g} s; the rows above are what it measured"
    took = time.monotonic() - start
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        return "failed", False, f"exit {proc.returncode} after {took:.1f} s: {lines[-1] if lines else 'no output'}"[:400]
    return "completed", True, f"{took:.1f} s of a {seconds:g} s budget"


def run_gpu_check(*, device: str = "auto", tiny: bool = False, out_dir: Path = Path("results/bench"),
                  parts: list[str] | None = None, budgets: dict[str, float] | None = None,
                  grace_s: float = GRACE_S) -> dict:
    """Run the chosen parts (all by default); returns the CSV and summary paths and the failures."""
    from pcl.device import resolve_device

    chosen = list(parts or PARTS[1:])
    unknown = [p for p in chosen if p not in PARTS[1:]]
    if unknown:
        raise PCLError(f"--parts: unknown part {unknown[0]!r}; choose from {', '.join(PARTS[1:])}")
    dev = resolve_device(device)
    info = describe(dev)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out_dir / f"gpu_{info.slug}.csv", out_dir / f"gpu_{info.slug}.md"
    write_rows(csv_path, [])
    sink = RowSink(csv_path)
    _device_rows(sink, info, tiny)
    table = {**(TINY_BUDGETS if tiny else BUDGETS), **(budgets or {})}
    for part in chosen:
        status, ok, note = _run_part(part, csv_path, dev, tiny, table[part], grace_s)
        sink.add(part, "part", "status", status, "", ok=ok, note=note)
    rows = read_rows(csv_path)
    title = f"GPU check on {info.name} ({'tiny sizes' if tiny else 'paper sizes'})"
    from pcl.atomic import atomic_write_text

    atomic_write_text(md_path, summary_markdown(rows, title=title))
    failed = [f"{r['part']}/{r['case']}/{r['quantity']}" for r in rows if r["ok"] == "false"]
    return {"csv": str(csv_path), "summary": str(md_path), "rows": len(rows), "failed": failed}
