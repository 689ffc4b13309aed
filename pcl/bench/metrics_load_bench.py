"""Y-PSNR + SSIM of the 19 Set5/Set14 images beside skimage and the authors' script, on an idle
machine, with a core busy elsewhere, and interleaved with numpy's BLAS (`pcl bench metrics-load`).

Why: ``pcl bench metrics`` times a quiet machine. An image this small is scored in the caller's
thread with torch's OpenMP team when the cores are free and on one single-threaded worker when they
are not (:func:`pcl.metrics.ssim_strips._team_would_wait`); this benchmark shows both sides of that
choice against what users would otherwise run, in one process, alternating order, with the load
average recorded per condition.

Inputs and per-image work are :mod:`pcl.bench.metrics_bench`'s (RGB uint8 in, two floats out; the
authors' side gets BGR, as ``cv2.imread`` returns it); one timed call scores all 19 images once.
"""

from __future__ import annotations

import os
import statistics
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pcl.bench import write_bench_csv
from pcl.bench.conditions import CONDITIONS, under_condition
from pcl.device import cpu_model

COLUMNS = ["condition", "implementation", "median_ms_per_image", "best_ms_per_image", "repeats", "speedup_vs_skimage",
           "speedup_vs_authors", "n_images", "load_avg_1min", "caller_torch_threads", "cpu_model", "cpus",
           "torch_version", "numpy_version", "opencv_version"]


#: Row labels of the implementations :func:`pcl.bench.metrics_bench.implementations` returns.
LABELS = {"ours": "pcl evaluate_pair (torch float64)", "skimage": "numpy Y + skimage SSIM",
          "authors": "authors' script (cv2 BGR + numpy PSNR + cv2.filter2D SSIM)"}


def _set_scorers() -> tuple[dict[str, Callable[[], Any]], int, str]:
    """({key: score all images once}, number of images, OpenCV version or why it is absent)."""
    from pcl.bench.metrics_bench import implementations, shipped_benchmark_pairs

    named = shipped_benchmark_pairs()
    impls, inputs = implementations("cpu", named)

    def whole_set(fn: Callable[..., Any], pairs: list) -> Callable[[], None]:
        return lambda: [fn(sr, hr) for sr, hr in pairs]

    fns = {key: whole_set(fn, inputs[key]) for key, fn in impls.items()}
    try:
        import cv2

        opencv = str(cv2.__version__)
    except ImportError:
        opencv = "not installed (pip install .[bench])"
    return fns, len(named), opencv


def run(out_dir: Path, *, repeats: int = 3, device: str = "cpu") -> dict:
    """Write ``metrics_load.csv``; return {condition: {implementation: median ms per image}}.

    CPU only (``device`` is accepted for ``pcl bench all``): the conditions are about CPU cores."""
    import torch

    repeats = max(repeats, 7)
    fns, n_images, opencv = _set_scorers()
    for fn in fns.values():  # warm-up: pools started, buffers grown
        fn()
    rows, figures = [], {}
    for condition in CONDITIONS:
        times, load = under_condition(condition, fns, repeats)
        medians = {name: statistics.median(ts) * 1e3 / n_images for name, ts in times.items()}
        figures[condition] = {LABELS[key]: value for key, value in medians.items()}
        sk, au = medians.get("skimage"), medians.get("authors")
        for key, ts in times.items():
            median = medians[key]
            rows.append({
                "condition": condition, "implementation": LABELS[key], "median_ms_per_image": f"{median:.3f}",
                "best_ms_per_image": f"{min(ts) * 1e3 / n_images:.3f}", "repeats": len(ts),
                "speedup_vs_skimage": "" if sk is None else f"{sk / median:.2f}",
                "speedup_vs_authors": "" if au is None else f"{au / median:.2f}", "n_images": n_images,
                "load_avg_1min": f"{load:.2f}", "caller_torch_threads": torch.get_num_threads(),
                "cpu_model": cpu_model(), "cpus": os.cpu_count(), "torch_version": torch.__version__,
                "numpy_version": np.__version__, "opencv_version": opencv,
            })
    write_bench_csv(Path(out_dir) / "metrics_load.csv", COLUMNS, rows)
    return figures
