"""Benchmark (`pcl bench metrics`): our PSNR/SSIM scorer beside what SR users would otherwise run.

Why: every result row of the harness is scored by :func:`pcl.metrics.evaluate_pair`; Urban100
and Manga109 are the largest test sets (about 1024x768 per image).  Two yardsticks, both timed in
the same process as ours, alternating order:

* the paper authors' offline script, the functions that produced the released logs: cv2 BGR
  input, their luma, a numpy PSNR and an SSIM whose local statistics are ``cv2.filter2D``
  (:mod:`pcl.bench.authors_metrics`; needs OpenCV, the ``bench`` extra, else the row is left out);
* the numpy Y conversion plus ``skimage.metrics.structural_similarity(y_sr, y_hr,
  gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)`` and a numpy
  PSNR, what most SR code does.

Both are independent code, so the max |difference| columns are a real cross-check, not a
self-comparison.  Goals: >= 5x faster than each, max |difference| <= 1e-6 dB PSNR and <= 1e-6
SSIM.  The float64 numpy/scipy reference of this package (:mod:`pcl.metrics.reference`) is a
secondary row: its agreement, and one timed call per image.

Images: real photos of urban scenes shipped in ``resources/train_standin/SunHays80`` (see
:data:`PHOTOS`), brought to exactly 1024x768 (W x H, the Urban100 size): a photo is resized with
PIL bicubic only if it does not cover 1024x768 (uniform scale, so that it just covers it), then
centre-cropped.  HR = that uint8 RGB image; SR = the x4 bicubic round trip
``bicubic_upscale(bicubic_degrade(hr, 4), 4)`` (MATLAB ``imresize``, :mod:`pcl.data.imresize`),
i.e. a realistic SR error.  Scale 4, protocol ``matlab`` (the protocols cost the same on RGB).

The same per-image work on every side, numpy (H, W, 3) uint8 arrays in and two floats out:
mod-crop the HR to the scale, shave 4 px per side, Y = 16 + (65.481 R + 128.553 G + 24.966 B) /
255 in float64, PSNR and SSIM.  The skimage side shaves before converting and converts with one
``astype(float64) @ coefficients`` (the cheapest numpy spelling we found; converting first and
shaving after, as most scripts do, only adds work).  The authors' side gets the images in BGR
order, as ``cv2.imread`` returns them (reordered before timing), and does what their script does.
Ours is ``evaluate_pair`` exactly as the harness calls it.

Timing: one untimed warm-up call of each, then ``repeats`` rounds; in each round each
implementation scores all images twice, the implementations in alternating order (reversed from
one round to the next) so that none always runs on a state left by another.
Reported: median (and min) over rounds of the mean seconds per image of the second pass, the
steady state of scoring a whole test set; the first pass, which follows another
implementation, is reported too (see :func:`alternating_times` for why they differ here).  Two
image sets are timed and checked this way: the photos above, and the 19 real benchmark images
shipped with the harness (Set5 and Set14 HR at their own sizes, gray ones read as RGB, as cv2 reads
them).  The agreement check also scores the green channel of the first image as a gray GT/SR pair under
both protocols against the reference.

The machine is shared, so the 1-minute load average before and after the timing and the
process CPU seconds per image are written with the numbers.  Our scorer splits each image
between worker threads (one per torch intra-op thread, 2 here) while skimage runs on one core
(OpenCV's filter uses its own threads): when other processes hold cores ours gets less than two
and the ratio shrinks; a load well above 0 means the ratio understates the code.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import scipy
import skimage
import torch
from PIL import Image
from skimage.metrics import structural_similarity

from pcl.bench import authors_metrics, save_bench_figure, write_bench_csv
from pcl.data.imresize import bicubic_degrade, bicubic_upscale
from pcl.device import cpu_model
from pcl.metrics import PROTOCOLS, evaluate_pair
from pcl.metrics.reference import reference_psnr_ssim
from pcl.resources import resource_path

WIDTH, HEIGHT, SCALE = 1024, 768, 4
#: Urban scenes among the shipped stand-in photos (file-name prefixes in SunHays80).
PHOTOS = ("street", "canal_urban", "lift_bridge", "subway_platform", "building_facade")
IMAGE_DESCRIPTION = (
    f"SunHays80 photos {', '.join(PHOTOS)} at {WIDTH}x{HEIGHT} (bicubic cover-resize if needed, "
    f"centre crop); SR = MATLAB-bicubic x{SCALE} down+up"
)
#: MATLAB rgb2ycbcr luma coefficients (the skimage side spells the conversion itself).
Y_COEFFS = np.array([65.481, 128.553, 24.966])

Pair = tuple[np.ndarray, np.ndarray]
CSV_COLUMNS = [
    "implementation", "device", "n_images", "repeats", "median_s_per_image", "min_s_per_image",
    "median_first_pass_s_per_image", "median_cpu_s_per_image", "ours_speedup",
    "ours_speedup_first_pass", "max_abs_diff_psnr_db", "max_abs_diff_ssim", "compared_with", "image",
    "scale", "load_avg_before", "load_avg_after", "platform", "cpu_model", "cpu_count", "torch_threads",
    "scorer_workers", "torch_version", "numpy_version", "scipy_version", "skimage_version",
    "opencv_version", "cuda_device",
]
IMAGE_COLUMNS = [
    "image", "psnr_ours", "psnr_skimage", "psnr_authors", "psnr_reference", "ssim_ours", "ssim_skimage",
    "ssim_authors", "ssim_reference",
]


def load_photo(prefix: str, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """The first SunHays80 photo named ``prefix_*`` as a (height, width, 3) uint8 array."""
    matches = sorted(resource_path("train_standin", "SunHays80").glob(f"{prefix}_sun_*.jpg"))
    if not matches:
        raise FileNotFoundError(
            f"metrics benchmark: no photo {prefix}_sun_*.jpg in resources/train_standin/SunHays80"
        )
    img = Image.open(matches[0]).convert("RGB")
    w, h = img.size
    if w < width or h < height:
        s = max(width / w, height / h)
        img = img.resize((max(width, round(w * s)), max(height, round(h * s))), Image.Resampling.BICUBIC)
        w, h = img.size
    left, top = (w - width) // 2, (h - height) // 2
    # np.array, as pcl.data.images.read_image: a writable array like the harness scores.
    return np.array(img.crop((left, top, left + width, top + height)))


def benchmark_pairs(photos: tuple[str, ...] = PHOTOS) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, SR, HR) for each photo: HR as :func:`load_photo`, SR its x4 bicubic round trip."""
    out = []
    for name in photos:
        hr = load_photo(name)
        out.append((name, bicubic_upscale(bicubic_degrade(hr, SCALE), SCALE), hr))
    return out


def shipped_benchmark_pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, SR, HR) for the 19 images of the shipped Set5 and Set14, at their own sizes: HR as
    RGB uint8 (a gray image replicated, as cv2 reads it), SR the x4 bicubic round trip of the
    mod-cropped HR."""
    out = []
    for dataset in ("Set5", "Set14"):
        for path in sorted(resource_path("benchmarks", dataset, "HR").glob("*.png")):
            hr = np.array(Image.open(path).convert("RGB"))
            out.append((f"{dataset}/{path.stem}", bicubic_upscale(bicubic_degrade(hr, SCALE), SCALE), hr))
    return out


#: The image sets timed: (loader, description written into each row's ``image`` column).
IMAGE_SETS = {
    "photos": (benchmark_pairs, IMAGE_DESCRIPTION),
    "Set5+Set14": (shipped_benchmark_pairs, f"the 19 shipped Set5 and Set14 HR images at their own sizes "
                                           f"(gray ones as RGB); SR = MATLAB-bicubic x{SCALE} down+up"),
}


def skimage_psnr_ssim(sr: np.ndarray, hr: np.ndarray, scale: int = SCALE) -> tuple[float, float]:
    """Y PSNR + SSIM the way SR users compute them with numpy and skimage (RGB uint8 in)."""
    h, w = hr.shape[:2]
    hr = hr[: h - h % scale, : w - w % scale]
    y_sr = (sr[scale:-scale, scale:-scale].astype(np.float64) @ Y_COEFFS) / 255.0 + 16.0
    y_hr = (hr[scale:-scale, scale:-scale].astype(np.float64) @ Y_COEFFS) / 255.0 + 16.0
    mse = np.mean((y_sr - y_hr) ** 2)
    psnr = float("inf") if mse == 0 else float(10.0 * np.log10(255.0**2 / mse))
    ssim = structural_similarity(
        y_sr, y_hr, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255
    )
    return psnr, float(ssim)


def describe_device(device: str) -> dict[str, object]:
    """Where the numbers were taken: they mean little without it."""
    cuda = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else ""
    from pcl.metrics.ssim_strips import n_workers

    return {
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "scorer_workers": n_workers(1 << 20) if not device.startswith("cuda") else 1,
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "scipy_version": scipy.__version__,
        "skimage_version": skimage.__version__,
        "opencv_version": getattr(authors_metrics.load_cv2(), "__version__", ""),
        "cuda_device": cuda,
    }


def alternating_times(
    impls: dict[str, Callable[[np.ndarray, np.ndarray], object]],
    pairs: list[Pair] | dict[str, list[Pair]],
    repeats: int,
) -> dict[str, dict[str, list[float]]]:
    """Per implementation and round: mean wall seconds per image of a first and a second pass.

    Every round runs each implementation twice over all images, the order of the
    implementations reversed from one round to the next (A A B B, B B A A, ...).  The second
    pass is the steady state of a long evaluation; the first pass starts right after the other
    implementation (or the previous round).  Why both: on the 2-core VM a core left idle for a
    few hundred ms comes back slowly -- after 0.4 s of sleep the first ~50 ms of work ran at
    about 60% speed (18 ms instead of 10.5 ms per image for ours) -- and the single-threaded
    skimage pipeline leaves our second core idle for its whole pass.  Also the process CPU
    seconds per image of the second pass (all threads): a hint of how much of a wall time was
    waiting for a core.  ``pairs`` may differ per implementation (the same images in the layout
    each one is fed in practice, e.g. BGR for the cv2 script).
    """
    names = list(impls)
    inputs = pairs if isinstance(pairs, dict) else {name: pairs for name in names}
    for name in names:
        impls[name](*inputs[name][0])
    out = {name: {"first": [], "second": [], "cpu": []} for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            fn, images = impls[name], inputs[name]
            for key in ("first", "second"):
                start, start_cpu = time.perf_counter(), time.process_time()
                for sr, hr in images:
                    fn(sr, hr)
                out[name][key].append((time.perf_counter() - start) / len(images))
            out[name]["cpu"].append((time.process_time() - start_cpu) / len(images))
    return out


def _gray_differences(sr: np.ndarray, hr: np.ndarray, device: str) -> tuple[float, float]:
    """Largest |ours - reference| on the green channel as a gray pair, under both protocols."""
    d_psnr = d_ssim = 0.0
    for protocol in PROTOCOLS:
        ours = evaluate_pair(sr[:, :, 1], hr[:, :, 1], scale=SCALE, protocol=protocol, device=device)
        ref = reference_psnr_ssim(sr[:, :, 1], hr[:, :, 1], scale=SCALE, protocol=protocol)
        d_psnr = max(d_psnr, abs(ours[0] - ref[0]))
        d_ssim = max(d_ssim, abs(ours[1] - ref[1]))
    return d_psnr, d_ssim


def _plot(rows: list[dict[str, object]], info: dict[str, object], path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if not str(r["implementation"]).startswith("reference")]  # off the scale
    names = [str(r["implementation"]).split(" (")[0] for r in rows]
    medians = [float(r["median_s_per_image"]) for r in rows]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    bars = ax.bar(names, medians, color=["tab:blue", "tab:gray", "tab:orange"][: len(rows)])
    for bar, value in zip(bars, medians):
        ax.annotate(f"{value * 1000:.1f} ms", (bar.get_x() + bar.get_width() / 2, value),
                    ha="center", va="bottom")
    ax.set_ylabel(f"seconds per {WIDTH}x{HEIGHT} RGB image (median of rounds)")
    ours = rows[0]
    faster = ", ".join(f"{r['ours_speedup']:.1f}x {n} (first pass {r['ours_speedup_first_pass']:.1f}x)"
                       for n, r in zip(names[1:], rows[1:]))
    ax.set_title(
        f"Y PSNR+SSIM, x{SCALE}, {ours['n_images']} photos: ours faster than {faster};\n"
        f"max |diff| {ours['max_abs_diff_psnr_db']:.1e} dB / {ours['max_abs_diff_ssim']:.1e} SSIM",
        fontsize=9,
    )
    where = info["cuda_device"] or f"{info['cpu_model'] or 'CPU'}, {info['scorer_workers']} scoring threads"
    load = f"load {ours['load_avg_before']:.2f} -> {ours['load_avg_after']:.2f}"
    fig.text(0.01, 0.01, f"{where}; {load}; torch {info['torch_version']}; {info['platform']}", fontsize=6)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    save_bench_figure(fig, path)
    plt.close(fig)


def run(
    out_dir: pathlib.Path, *, repeats: int = 3, device: str = "cpu", threads: int | None = None
) -> dict:
    """Time both pipelines, check agreement, write ``metrics.csv``, ``metrics_images.csv`` and
    ``metrics.png``; return the numbers.

    ``threads`` sets torch's intra-op threads for the run (restored afterwards); the default
    keeps torch's own setting (one per core), which is what the harness runs with.
    """
    from pcl.device import bench_setup

    bench_setup("metrics", device, repeats, pathlib.Path(out_dir))
    if threads is None:
        return _run(pathlib.Path(out_dir), repeats, device)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run(pathlib.Path(out_dir), repeats, device)
    finally:
        torch.set_num_threads(before)


def implementations(device: str, named: list) -> tuple[dict, dict]:
    """The timed functions and the inputs each is fed: ours and skimage take RGB, the authors'
    script BGR (what ``cv2.imread`` returns), prepared before timing."""
    rgb = [(sr, hr) for _, sr, hr in named]

    def ours(sr: np.ndarray, hr: np.ndarray) -> tuple[float, float]:
        return evaluate_pair(sr, hr, scale=SCALE, protocol="matlab", device=device)

    impls = {"ours": ours, "skimage": skimage_psnr_ssim}
    inputs = {"ours": rgb, "skimage": rgb}
    cv2 = authors_metrics.load_cv2()
    if cv2 is not None:
        impls["authors"] = lambda sr, hr: authors_metrics.psnr_ssim(cv2, sr, hr, SCALE)
        inputs["authors"] = [(np.ascontiguousarray(sr[..., ::-1]), np.ascontiguousarray(hr[..., ::-1]))
                             for sr, hr in rgb]
    return impls, inputs


def _agreement(named: list, impls: dict, inputs: dict) -> tuple[list[dict], list[float]]:
    """Per-image values of every implementation and the reference (one timed call of it each)."""
    per_image, ref_times = [], []
    for i, (name, sr, hr) in enumerate(named):
        row: dict[str, object] = {"image": name}
        for impl, fn in impls.items():
            row[f"psnr_{impl}"], row[f"ssim_{impl}"] = fn(*inputs[impl][i])
        start = time.perf_counter()
        row["psnr_reference"], row["ssim_reference"] = reference_psnr_ssim(sr, hr, scale=SCALE, protocol="matlab")
        ref_times.append(time.perf_counter() - start)
        per_image.append(row)
    return per_image, ref_times


LABELS = {"ours": "pcl evaluate_pair (torch float64)", "skimage": "numpy Y + skimage SSIM",
          "authors": "authors' script (cv2 BGR + numpy PSNR + cv2.filter2D SSIM)"}


def _run(out_dir: pathlib.Path, repeats: int, device: str) -> dict:
    info = describe_device(device)
    rows, per_image, measured_all = [], [], {}
    for set_name, (loader, description) in IMAGE_SETS.items():
        set_rows, set_images, measured = _run_set(loader(), description, repeats, device, info)
        rows += set_rows
        per_image += set_images
        measured_all.update({f"{set_name} {k}": v for k, v in measured.items()})
    write_bench_csv(out_dir / "metrics.csv", CSV_COLUMNS, rows)
    write_bench_csv(out_dir / "metrics_images.csv", IMAGE_COLUMNS, per_image)
    _plot([r for r in rows if r["image"] == IMAGE_DESCRIPTION], info, out_dir / "metrics.png")
    return _summary(rows, measured_all, info)


def _run_set(named: list, description: str, repeats: int, device: str, info: dict) -> tuple[list, list, dict]:
    """Rows of one image set: each implementation's timing and its agreement with ours."""
    impls, inputs = implementations(device, named)
    load_before = os.getloadavg()[0]
    measured = alternating_times(impls, inputs, repeats)
    load_after = os.getloadavg()[0]
    per_image, ref_times = _agreement(named, impls, inputs)

    def max_diff(metric: str, other: str) -> float:
        return max(abs(row[f"{metric}_ours"] - row[f"{metric}_{other}"]) for row in per_image)

    gray_psnr, gray_ssim = _gray_differences(*inputs["ours"][0], device)
    common = {"n_images": len(named), "image": description, "scale": SCALE,
              "load_avg_before": load_before, "load_avg_after": load_after, **info}
    med = {name: statistics.median(m["second"]) for name, m in measured.items()}
    first = {name: statistics.median(m["first"]) for name, m in measured.items()}
    rows = []
    for name, m in measured.items():
        other = "skimage" if name == "ours" else name
        rows.append({
            "implementation": LABELS[name], "device": device if name == "ours" else "cpu", "repeats": repeats,
            "median_s_per_image": med[name], "min_s_per_image": min(m["second"]),
            "median_first_pass_s_per_image": first[name], "median_cpu_s_per_image": statistics.median(m["cpu"]),
            "ours_speedup": med[name] / med["ours"], "ours_speedup_first_pass": first[name] / first["ours"],
            "max_abs_diff_psnr_db": max_diff("psnr", other), "max_abs_diff_ssim": max_diff("ssim", other),
            "compared_with": "skimage" if name == "ours" else "ours", **common})
    ref_s = statistics.median(ref_times)
    rows.append({
        "implementation": "reference (numpy/scipy float64)", "device": "cpu", "repeats": 1,
        "median_s_per_image": ref_s, "min_s_per_image": min(ref_times), "median_first_pass_s_per_image": "",
        "median_cpu_s_per_image": "", "ours_speedup": ref_s / med["ours"], "ours_speedup_first_pass": "",
        "max_abs_diff_psnr_db": max(max_diff("psnr", "reference"), gray_psnr),
        "max_abs_diff_ssim": max(max_diff("ssim", "reference"), gray_ssim),
        "compared_with": "ours (also green channel as gray, both protocols)", **common})
    return rows, per_image, measured


def _summary(rows: list[dict], measured: dict, info: dict) -> dict:
    """What ``main`` prints: each row's median, speed-up and agreement, then the rounds."""
    out: dict[str, object] = {}
    for row in rows:
        label = f"{row['implementation']} [{row['image'][:20]}]"
        out[f"{label}: s per image"] = row["median_s_per_image"]
        out[f"{label}: ours x faster"] = row["ours_speedup"]
        out[f"{label}: max |diff| dB / SSIM"] = (row["max_abs_diff_psnr_db"], row["max_abs_diff_ssim"])
    for name, m in measured.items():
        out[f"rounds {name} s"] = m["second"]
    out["load_avg_before"], out["load_avg_after"] = rows[0]["load_avg_before"], rows[0]["load_avg_after"]
    return {**out, **info}


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
