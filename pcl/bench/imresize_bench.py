"""Speed and agreement of our torch imresize against a plain numpy port of MATLAB's imresize.

Why this benchmark: preparing LR data (DIV2K 800 x 2040x1356, every benchmark set) and the
bicubic baseline resize thousands of large images; the common Python ports of MATLAB's
``imresize`` gather taps per dimension in numpy and are slow.  The figure that matters is the
speed-up of ``pcl.data.imresize`` (torch, matrix products) over such a port *while agreeing with
it numerically*, on a DIV2K-sized image, x1/4 followed by x4.

The reference port below is deliberately written independently of ``pcl.data.imresize`` (its own
weights, its own gather) so that the max-abs-difference column is a real cross-check.

Image: 2040 x 1356 x 3, float64, uniform random in [0, 1) from ``numpy.random.default_rng(0)``
(the timings do not depend on content; random data is the hardest case for float32 agreement).
"""

from __future__ import annotations

import math
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from pcl.bench import save_bench_figure, write_bench_csv
from pcl.device import bench_setup, cpu_model

IMAGE_SHAPE = (2040, 1356, 3)
IMAGE_DESCRIPTION = "2040x1356x3 float64 uniform random [0,1), numpy default_rng(0)"
SCALE = 4


# ----------------------------------------------------------------------------- reference port


def _port_cubic(x: np.ndarray) -> np.ndarray:
    a = np.abs(x)
    return ((1.5 * a**3 - 2.5 * a**2 + 1) * (a <= 1)
            + (-0.5 * a**3 + 2.5 * a**2 - 4 * a + 2) * ((a > 1) & (a <= 2)))


def _port_weights(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB ``contributions`` (bicubic, antialiased), 0-based mirrored indices."""
    width = 4.0 / scale if scale < 1 else 4.0
    stretch = scale if scale < 1 else 1.0
    u = np.arange(1, out_len + 1) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2).astype(np.int64)
    idx = left[:, None] + np.arange(int(math.ceil(width)) + 2)[None, :]
    w = stretch * _port_cubic(stretch * (u[:, None] - idx))
    w /= w.sum(axis=1, keepdims=True)
    mirror = np.r_[np.arange(in_len), np.arange(in_len)[::-1]]
    idx = mirror[(idx - 1) % (2 * in_len)]
    used = np.any(w != 0, axis=0)
    return w[:, used], idx[:, used]


def numpy_port_imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """Straightforward float64 port: per dimension, gather all taps and sum (rows first)."""
    h, w = img.shape[:2]
    out_h, out_w = math.ceil(h * scale), math.ceil(w * scale)
    wh, ih = _port_weights(h, out_h, scale)
    rows = np.sum(wh[:, :, None, None] * img[ih], axis=1)     # gather (out_h, P, W, C), sum taps
    ww, iw = _port_weights(w, out_w, scale)
    return np.sum(ww[None, :, :, None] * rows[:, iw], axis=2)  # gather (out_h, out_w, P, C), sum taps


# ----------------------------------------------------------------------------- timing helpers


def _device_info(device: str) -> dict[str, Any]:
    import torch

    return {
        "processor": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "cuda_device": torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "",
    }


def _time(fn: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> tuple[list[float], Any]:
    times, result = [], None
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        result = fn()
        sync()
        times.append(time.perf_counter() - start)
    return times, result


def _plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    labels = [f"{r['implementation']}\n{r['dtype']}" for r in rows]
    values = [r["best_s"] for r in rows]
    bars = ax.bar(labels, values, color=["#888888"] + ["#3b75af"] * (len(rows) - 1))
    for bar, r in zip(bars, rows):
        ax.annotate(f"{r['best_s']:.3f} s\n{r['speedup_vs_numpy_port']:.1f}x", (bar.get_x() + bar.get_width() / 2,
                    bar.get_height()), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("best time, x1/4 then x4 (s)")
    ax.set_title(title, fontsize=9)
    ax.set_ylim(0, max(values) * 1.25)
    fig.tight_layout()
    save_bench_figure(fig, path)


# ----------------------------------------------------------------------------- entry point


def run(out_dir: Path, *, repeats: int = 3, device: str = "cpu") -> dict:
    """Time x1/4 then x4 on a 2040x1356x3 image; write imresize.csv and imresize.png.

    Rows: the numpy reference port (float64), our numpy path (float64), our torch path in
    float32 and float64 on ``device``.  ``best_s``/``median_s`` are over ``repeats`` calls after
    one warm-up call (``first_call_s``, which also builds the cached weight matrices).
    """
    import torch

    from pcl.data import imresize as ours
    from pcl.data import imresize_torch

    out_dir = Path(out_dir)
    dev = bench_setup("imresize", device, repeats, out_dir)
    info = _device_info(device)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def no_sync() -> None:
        return None

    def to_np(t: Any) -> np.ndarray:
        return t[0].permute(1, 2, 0).double().cpu().numpy()

    img = np.random.default_rng(0).random(IMAGE_SHAPE)

    def port() -> tuple[np.ndarray, np.ndarray]:
        lr = numpy_port_imresize(img, 1 / SCALE)
        return lr, numpy_port_imresize(lr, float(SCALE))

    start = time.perf_counter()
    ref_lr, ref_sr = port()
    port_first = time.perf_counter() - start
    port_times, _ = _time(port, repeats, no_sync)

    def ours_numpy() -> tuple[np.ndarray, np.ndarray]:
        lr = ours.imresize(img, 1 / SCALE)
        return lr, ours.imresize(lr, float(SCALE))

    measured: list[tuple[str, str, float, list[float], np.ndarray, np.ndarray]] = []
    ours.contributions.cache_clear()
    start = time.perf_counter()
    ours_numpy()
    np_first = time.perf_counter() - start
    np_times, (np_lr, np_sr) = _time(ours_numpy, repeats, no_sync)
    measured.append(("pcl numpy", "float64", np_first, np_times, np_lr, np_sr))

    batch = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
    for dtype in (torch.float32, torch.float64):
        x = batch.to(device=dev, dtype=dtype)

        def ours_torch() -> tuple[Any, Any]:
            lr = ours.imresize(x, 1 / SCALE)
            return lr, ours.imresize(lr, float(SCALE))

        ours.contributions.cache_clear()
        imresize_torch._torch_blocks.cache_clear()
        sync()
        start = time.perf_counter()
        ours_torch()
        sync()
        first = time.perf_counter() - start
        times, (lr_t, sr_t) = _time(ours_torch, repeats, sync)
        measured.append((f"pcl torch ({dev.type})", str(dtype).replace("torch.", ""), first, times,
                         to_np(lr_t), to_np(sr_t)))

    port_best = min(port_times)
    rows: list[dict[str, Any]] = [{
        "implementation": "numpy port", "dtype": "float64", "device": "cpu",
        "first_call_s": port_first, "best_s": port_best, "median_s": statistics.median(port_times),
        "speedup_vs_numpy_port": 1.0, "max_abs_diff_lr": 0.0, "max_abs_diff_roundtrip": 0.0,
    }]
    for name, dtype_name, first, times, lr, sr in measured:
        rows.append({
            "implementation": name, "dtype": dtype_name, "device": "cpu" if name == "pcl numpy" else device,
            "first_call_s": first, "best_s": min(times), "median_s": statistics.median(times),
            "speedup_vs_numpy_port": port_best / min(times),
            "max_abs_diff_lr": float(np.abs(lr - ref_lr).max()),
            "max_abs_diff_roundtrip": float(np.abs(sr - ref_sr).max()),
        })
    common = {"image": IMAGE_DESCRIPTION, "operation": "x1/4 then x4", "repeats": repeats, **info}
    fields = list(rows[0]) + list(common)
    csv_path = out_dir / "imresize.csv"
    formatted = [{**{k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}, **common}
                 for row in rows]
    write_bench_csv(csv_path, fields, formatted)
    png_path = out_dir / "imresize.png"
    where = info["cuda_device"] or f"{info['cpu_model'] or info['processor']}, {info['torch_threads']} threads"
    _plot(rows, png_path, f"imresize 2040x1356x3 x1/4 then x4 ({where}, torch {info['torch_version']})")

    by = {(r["implementation"].split(" (")[0], r["dtype"]): r for r in rows}
    figures: dict[str, Any] = {
        "image": IMAGE_DESCRIPTION,
        "device": device,
        **info,
        "numpy_port_s": port_best,
        "pcl_numpy_s": by[("pcl numpy", "float64")]["best_s"],
        "csv": str(csv_path),
        "png": str(png_path),
    }
    for dtype_name in ("float32", "float64"):
        r = by[("pcl torch", dtype_name)]
        figures[f"torch_{dtype_name}_s"] = r["best_s"]
        figures[f"torch_{dtype_name}_first_call_s"] = r["first_call_s"]
        figures[f"speedup_{dtype_name}"] = r["speedup_vs_numpy_port"]
        figures[f"max_abs_diff_{dtype_name}"] = r["max_abs_diff_roundtrip"]
        figures[f"max_abs_diff_lr_{dtype_name}"] = r["max_abs_diff_lr"]
    figures["pcl_numpy_max_abs_diff"] = by[("pcl numpy", "float64")]["max_abs_diff_roundtrip"]
    return figures
