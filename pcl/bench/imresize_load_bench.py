"""MATLAB bicubic x1/4 beside BasicSR's ``imresize``, on an idle machine, with a core busy
elsewhere, and interleaved with numpy's BLAS: the speed a user sees depends on where it runs.

Why three conditions: a torch CPU path that splits small products over an OpenMP team is fast
alone and collapses when another process holds a core or when numpy's BLAS pool is still spinning
from the previous call (each block then waits on a stalled worker).  ``pcl.data.imresize`` shares
the blocks of a pass between worker threads that each run torch single-threaded
(:mod:`pcl.workers`) for that reason; this benchmark shows what that buys against the function SR
users run (BasicSR's ``basicsr.utils.matlab_functions.imresize``, torch ``mv`` per output row),
side by side in one process, alternating which goes first, with the load average
recorded per condition.

Both sides take the same numpy image (2040x1356x3 float32, uniform random, ``default_rng(0)``) and
return a numpy image, so the conversions count for both.  Ours views the HWC array as a
channels-last NCHW tensor (``torch.from_numpy(img).permute(2, 0, 1)[None]``, no copy), which the
torch path resizes without a layout copy; BasicSR transposes to CHW itself.  BasicSR is read
from an installed ``basicsr`` (``pip install --no-deps basicsr==1.4.2``: its ``matlab_functions``
module needs only numpy and torch, and is loaded without the package's ``__init__``, which imports
OpenCV); without it the rows say so and only our own timings are written.
"""

from __future__ import annotations

import importlib.util
import os
import statistics
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pcl.bench import write_bench_csv
from pcl.bench.conditions import CONDITIONS, under_condition
from pcl.device import cpu_model

IMAGE_SHAPE = (1356, 2040, 3)
SCALE = 0.25
COLUMNS = ["condition", "implementation", "median_s", "best_s", "repeats", "speedup_vs_basicsr", "max_abs_diff",
           "load_avg_1min", "caller_torch_threads", "cpu_model", "cpus", "torch_version", "numpy_version",
           "basicsr_version"]


def load_basicsr_imresize() -> tuple[Callable[..., Any] | None, str]:
    """(BasicSR's imresize, its version) from an installed ``basicsr``, or (None, why not)."""
    spec = importlib.util.find_spec("basicsr")
    if spec is None or not spec.submodule_search_locations:
        return None, "not installed (pip install --no-deps basicsr==1.4.2)"
    root = Path(list(spec.submodule_search_locations)[0])
    path = root / "utils" / "matlab_functions.py"
    if not path.is_file():
        return None, f"no {path}"
    module_spec = importlib.util.spec_from_file_location("basicsr_matlab_functions", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    version_file = root / "version.py"
    version = "unknown"
    if version_file.is_file():
        scope: dict[str, Any] = {}
        exec(compile(version_file.read_text(), str(version_file), "exec"), scope)  # noqa: S102 (the package's own version file)
        version = str(scope.get("__version__", "unknown"))
    return module.imresize, version


def _ours(img: np.ndarray) -> np.ndarray:
    import torch

    from pcl.data.imresize import imresize

    t = torch.from_numpy(img).permute(2, 0, 1)[None]  # channels-last view of the HWC array
    return imresize(t, SCALE)[0].permute(1, 2, 0).numpy()


def run(out_dir: Path, *, repeats: int = 3, device: str = "cpu") -> dict:
    """Write ``imresize_load.csv``; return {condition: {implementation: median seconds}}."""
    import torch

    repeats = max(repeats, 7)
    img = np.random.default_rng(0).random(IMAGE_SHAPE, dtype=np.float32)
    basicsr, version = load_basicsr_imresize()
    fns: dict[str, Callable[[], Any]] = {"pcl torch (cpu)": lambda: _ours(img)}
    diff = float("nan")
    if basicsr is not None:
        fns["basicsr"] = lambda: basicsr(img, SCALE)
        diff = float(np.abs(_ours(img) - basicsr(img, SCALE)).max())
    for fn in fns.values():  # warm-up: weights cached, pools started
        fn()
    rows, figures = [], {}
    for condition in CONDITIONS:
        times, load = under_condition(condition, fns, repeats)
        ref = statistics.median(times["basicsr"]) if "basicsr" in times else None
        figures[condition] = {}
        for name, ts in times.items():
            median = statistics.median(ts)
            figures[condition][name] = median
            rows.append({
                "condition": condition, "implementation": name, "median_s": f"{median:.5f}", "best_s": f"{min(ts):.5f}",
                "repeats": len(ts), "speedup_vs_basicsr": "" if ref is None else f"{ref / median:.2f}",
                "max_abs_diff": "" if name == "basicsr" or basicsr is None else f"{diff:.3g}",
                "load_avg_1min": f"{load:.2f}", "caller_torch_threads": torch.get_num_threads(), "cpu_model": cpu_model(),
                "cpus": os.cpu_count(), "torch_version": torch.__version__, "numpy_version": np.__version__,
                "basicsr_version": version,
            })
    write_bench_csv(Path(out_dir) / "imresize_load.csv", COLUMNS, rows)
    return figures
