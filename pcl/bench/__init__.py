"""Speed benchmarks (`pcl bench`): measured figures go to results/bench/ with the device.

Why here and not in the tests: timings on shared 2-core machines are noisy, so they are
recorded as benchmark artefacts (CSV + PNG naming the device) and never asserted in unit tests.
"""

from __future__ import annotations

import csv
import importlib
import importlib.util
import io
from pathlib import Path

from pcl.atomic import atomic_write, atomic_write_text
from pcl.errors import PCLError

#: benchmark name -> module that defines ``run(out_dir, *, repeats, device) -> dict``
BENCHMARKS = {
    "imresize": "pcl.bench.imresize_bench",
    "imresize-load": "pcl.bench.imresize_load_bench",
    "metrics": "pcl.bench.metrics_bench",
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
        results[name] = module.run(out_dir, repeats=repeats, device=device)
    return results


def write_bench_csv(path: Path, columns: list[str], rows: list[dict]) -> Path:
    """Whole or not at all: an interrupted run leaves the previous measurement in place."""
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(Path(path), buffer.getvalue())


def save_bench_figure(fig, path: Path, *, dpi: int = 120) -> Path:
    """A figure is written whole or not at all, like the CSV beside it (format from the suffix)."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    return atomic_write(path, lambda handle: fig.savefig(handle, format=fmt, dpi=dpi))
