"""Speed benchmarks (`pcl bench`): measured figures go to results/bench/ with the device.

Why here and not in the tests: timings on shared 2-core machines are noisy, so they are
recorded as benchmark artefacts (CSV + PNG naming the device) and never asserted in unit tests.
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import io
import os
from pathlib import Path

from pcl.atomic import atomic_write, atomic_write_text
from pcl.errors import PCLError

#: benchmark name -> module that defines ``run(out_dir, *, repeats, device) -> dict``
BENCHMARKS = {
    "imresize": "pcl.bench.imresize_bench",
    "imresize-load": "pcl.bench.imresize_load_bench",
    "metrics": "pcl.bench.metrics_bench",
    "metrics-load": "pcl.bench.metrics_load_bench",
    "niqe": "pcl.bench.niqe_bench",
    "lpips": "pcl.bench.lpips_bench",
    "eval": "pcl.bench.eval_bench",
    "nlsn-seed": "pcl.bench.nlsn_seed_bench",
    "method": "pcl.bench.method_bench",
    "train": "pcl.bench.train_bench",
}


def available_benchmarks() -> list[str]:
    """Registered benchmarks whose module is present in this checkout (``all`` runs these)."""
    return [name for name, module in BENCHMARKS.items() if importlib.util.find_spec(module) is not None]


def run_benchmarks(what: str, out_dir: Path, *, device: str = "cpu", repeats: int = 3) -> dict:
    """Run one benchmark (or ``all``) and return its figures keyed by name."""
    names = available_benchmarks() if what == "all" else [what]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise PCLError(f"unknown benchmark {unknown[0]!r}; use one of {', '.join(BENCHMARKS)} or all")
    missing = [n for n in names if n not in available_benchmarks()]
    if missing:
        raise PCLError(f"benchmark {missing[0]!r}: module {BENCHMARKS[missing[0]]} is not in this checkout")
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in names:
        module = importlib.import_module(BENCHMARKS[name])
        _LOAD_BEFORE["value"] = os.getloadavg()[0]
        try:
            results[name] = module.run(out_dir, repeats=repeats, device=device)
        finally:
            _LOAD_BEFORE.pop("value", None)
    return results


#: The 1-minute load average when the running benchmark started (set by :func:`run_benchmarks`).
_LOAD_BEFORE: dict[str, float] = {}
_MACHINE_COLUMNS = ("cpu_model", "processor", "device_description", "cuda_device", "gpu_name")


def context_columns(columns: list[str]) -> dict[str, object]:
    """Context a benchmark's own columns lack: the machine, the load and the versions.

    Why: a timing means little without them, and the Speed page (pcl.report.speed) shows each
    file with its machine, load and versions; benchmarks that record them themselves (with a load
    taken right before their timed loop) keep theirs.  The load added here is the 1-minute average
    when the benchmark started (under ``pcl bench``) and when its file was written.
    """
    import platform

    import numpy as np
    import torch

    from pcl.device import cpu_model

    extra: dict[str, object] = {}
    if not any(c in _MACHINE_COLUMNS for c in columns):
        extra["cpu_model"] = f"{cpu_model() or platform.processor()}, {os.cpu_count()} cores"
    if not any(c.startswith("load_avg") for c in columns):
        extra["load_avg_1min_at_start"] = _LOAD_BEFORE.get("value", "")
        extra["load_avg_1min_at_write"] = round(os.getloadavg()[0], 2)
    for name, version in (("torch_version", torch.__version__), ("numpy_version", np.__version__)):
        if name not in columns:
            extra[name] = version
    return extra


def write_bench_csv(path: Path, columns: list[str], rows: list[dict]) -> Path:
    """Whole or not at all: an interrupted run leaves the previous measurement in place.

    Columns of :func:`context_columns` are appended when the benchmark did not record them.
    """
    extra = context_columns(list(columns))
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=[*columns, *extra])
    writer.writeheader()
    writer.writerows({**row, **extra} for row in rows)
    return atomic_write_text(Path(path), buffer.getvalue())


def save_bench_figure(fig, path: Path, *, dpi: int = 120) -> Path:
    """A figure is written whole or not at all, like the CSV beside it (format from the suffix)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    return atomic_write(path, lambda handle: fig.savefig(handle, format=fmt, dpi=dpi))
