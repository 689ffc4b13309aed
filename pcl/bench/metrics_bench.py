"""Benchmark: torch PSNR/SSIM path vs the float64 numpy/scipy reference on an Urban100-size image.

Why: every result row of the harness is scored by :func:`pcl.metrics.evaluate_pair`; Urban100
and Manga109 are the largest test sets (about 1024x768 per image), so the scorer must be fast
there and must agree with the straightforward reference (:mod:`pcl.metrics.reference`) to far
below the 0.01 dB / 0.0001 SSIM that the tables print.  Goals: speed-up >= 5x, max |difference|
<= 1e-6 dB.

Test image (deterministic, synthetic, no data download): HR is 768x1024 (HxW) RGB uint8, each
channel ``128 + 50 sin(x/9 + c) cos(y/13) + 30 * checkerboard(32 px)`` plus N(0, 10) noise
(numpy ``default_rng(0)``), clipped and rounded; SR is HR plus N(0, 5) noise, clipped and
rounded.  Scale 4, protocol ``matlab`` for the timings (the protocols cost the same on RGB).
The agreement check also scores the green channel alone as a gray GT/SR pair, under both
protocols.

Timing: one untimed warm-up call each, then ``repeats`` timed calls of the whole per-image path
(numpy arrays in, floats out; for CUDA this includes the host-to-device copy and the final
synchronising ``float()``).  The median is reported.
"""

from __future__ import annotations

import argparse
import csv
import os
import pathlib
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import scipy
import torch

from pcl.metrics import PROTOCOLS, evaluate_pair
from pcl.metrics.reference import reference_psnr_ssim

HEIGHT, WIDTH, SCALE = 768, 1024, 4
IMAGE_DESCRIPTION = (
    f"synthetic {WIDTH}x{HEIGHT} RGB uint8: 128 + 50 sin(x/9+c) cos(y/13) + 30*checker(32px) "
    "+ N(0,10), default_rng(0); SR = HR + N(0,5)"
)
CSV_COLUMNS = [
    "implementation", "device", "repeats", "median_s", "min_s", "psnr_db", "ssim",
    "speedup_vs_reference", "max_abs_diff_psnr_db", "max_abs_diff_ssim", "image", "scale",
    "platform", "cpu_count", "torch_threads", "torch_version", "numpy_version", "scipy_version",
    "cuda_device",
]


def synthetic_pair(height: int = HEIGHT, width: int = WIDTH, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(SR, HR) uint8 (H, W, 3) arrays as described in the module docstring."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    checker = ((xx // 32 + yy // 32) % 2) * 30.0
    chans = [
        128 + 50 * np.sin(xx / 9 + c) * np.cos(yy / 13) + checker + rng.normal(0, 10, (height, width))
        for c in range(3)
    ]
    hr = np.clip(np.stack(chans, axis=2), 0, 255).round().astype(np.uint8)
    sr = np.clip(hr + rng.normal(0, 5, hr.shape), 0, 255).round().astype(np.uint8)
    return sr, hr


def describe_device(device: str) -> dict[str, object]:
    """Where the numbers were taken: they mean little without it."""
    cuda = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else ""
    return {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "scipy_version": scipy.__version__,
        "cuda_device": cuda,
    }


def _time(fn: Callable[[], tuple[float, float]], repeats: int) -> tuple[list[float], tuple[float, float]]:
    result = fn()  # warm-up: first-call allocations, lazy imports, CUDA context
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return times, result


def _max_differences(sr: np.ndarray, hr: np.ndarray, device: str) -> tuple[float, float]:
    """Largest |torch - reference| over RGB and gray (green channel) pairs, both protocols."""
    d_psnr = d_ssim = 0.0
    for s, h in ((sr, hr), (sr[:, :, 1], hr[:, :, 1])):
        for protocol in PROTOCOLS:
            ours = evaluate_pair(s, h, scale=SCALE, protocol=protocol, device=device)
            ref = reference_psnr_ssim(s, h, scale=SCALE, protocol=protocol)
            d_psnr = max(d_psnr, abs(ours[0] - ref[0]))
            d_ssim = max(d_ssim, abs(ours[1] - ref[1]))
    return d_psnr, d_ssim


def _plot(rows: list[dict[str, object]], info: dict[str, object], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [str(r["implementation"]) for r in rows]
    medians = [float(r["median_s"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    bars = ax.bar(names, medians, color=["tab:blue", "tab:gray"])
    for bar, value in zip(bars, medians):
        ax.annotate(f"{value * 1000:.0f} ms", (bar.get_x() + bar.get_width() / 2, value),
                    ha="center", va="bottom")
    ax.set_ylabel(f"seconds per {WIDTH}x{HEIGHT} RGB image (median)")
    ax.set_title(
        f"PSNR+SSIM, x{SCALE}: speed-up {rows[0]['speedup_vs_reference']:.1f}x, "
        f"max |diff| {rows[0]['max_abs_diff_psnr_db']:.1e} dB / {rows[0]['max_abs_diff_ssim']:.1e}",
        fontsize=9,
    )
    where = info["cuda_device"] or f"CPU, torch threads: {info['torch_threads']}"
    fig.text(0.01, 0.01, f"{where}; torch {info['torch_version']}; {info['platform']}", fontsize=6)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(
    out_dir: pathlib.Path, *, repeats: int = 3, device: str = "cpu", threads: int | None = None
) -> dict:
    """Time both paths, check agreement, write ``metrics.csv`` and ``metrics.png``; return the numbers.

    ``threads`` sets torch's intra-op threads for the run (restored afterwards).  Why: on a
    small shared machine, torch's default of one thread per core is oversubscribed by other
    processes and its timings swing several-fold; a single thread compares like with like
    against the single-threaded scipy reference.
    """
    if threads is None:
        return _run(pathlib.Path(out_dir), repeats, device)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run(pathlib.Path(out_dir), repeats, device)
    finally:
        torch.set_num_threads(before)


def _run(out_dir: pathlib.Path, repeats: int, device: str) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    sr, hr = synthetic_pair()
    ours_times, ours = _time(
        lambda: evaluate_pair(sr, hr, scale=SCALE, protocol="matlab", device=device), repeats
    )
    ref_times, ref = _time(
        lambda: reference_psnr_ssim(sr, hr, scale=SCALE, protocol="matlab"), repeats
    )
    d_psnr, d_ssim = _max_differences(sr, hr, device)
    ours_s, ref_s = statistics.median(ours_times), statistics.median(ref_times)
    info = describe_device(device)
    common = {
        "repeats": repeats, "speedup_vs_reference": ref_s / ours_s,
        "max_abs_diff_psnr_db": d_psnr, "max_abs_diff_ssim": d_ssim,
        "image": IMAGE_DESCRIPTION, "scale": SCALE, **info,
    }
    rows = [
        {"implementation": "torch", "device": device, "median_s": ours_s, "min_s": min(ours_times),
         "psnr_db": ours[0], "ssim": ours[1], **common},
        {"implementation": "reference (numpy/scipy float64)", "device": "cpu", "median_s": ref_s,
         "min_s": min(ref_times), "psnr_db": ref[0], "ssim": ref[1], **common},
    ]
    with open(out_dir / "metrics.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    _plot(rows, info, out_dir / "metrics.png")
    return {
        "torch_s_per_image": ours_s,
        "reference_s_per_image": ref_s,
        "speedup": ref_s / ours_s,
        "max_abs_diff_psnr_db": d_psnr,
        "max_abs_diff_ssim": d_ssim,
        "psnr_db": ours[0],
        "ssim": ours[1],
        "device": device,
        "image": IMAGE_DESCRIPTION,
        **info,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=pathlib.Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args(argv)
    result = run(args.out_dir, repeats=args.repeats, device=args.device, threads=args.threads)
    for key, value in result.items():
        print(f"{key}: {value}")


if __name__ == "__main__":
    main()
