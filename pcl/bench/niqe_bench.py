"""Benchmark (`pcl bench niqe`): seconds per 512x512 RGB photo for NIQE, ours vs a plain transcription.

Why: NIQE is scored on every SR output of the perceptual tables (Urban100/Manga109 included), so a
per-image cost of 0.1 s (the common Python ports, measured on the project's 2-core machine) adds
minutes per table.  Goal: at most 0.05 s per 512x512 RGB image on 2 CPU cores.

Implementations, timed side by side in one process, in an order that rotates every repeat:

* ``pcl niqe`` (:func:`pcl.metrics.niqe.niqe`, one call per image) and ``pcl niqe_batch`` (all
  images in one call), convention ``niqe``, on ``device``;
* ``numpy transcription``: :func:`transcription_niqe` below, a line-by-line float64 numpy
  transcription of the MATLAB loop (``blkproc`` as a loop over blocks, the 9801-point grid
  search per fit, ``imfilter`` as MATLAB's separated ``conv2``) - what a user would otherwise
  write; its score is compared with ours (``max_abs_diff_vs_pcl``).  It separates the window
  with its exact rank-1 factor, as we do.  Taking the factor from numpy's SVD instead, as a
  literal reading of ``imfilter.m`` would, changes the last bits of the local means, so flat
  (saturated) regions get MSCN coefficients of +-1e-14 instead of 0; the scores that variant
  gives are reported as ``svd_factor_max_abs_diff`` (0.019 on these photos when measured);
* BasicSR's ``calculate_niqe`` and pyiqa's ``niqe`` when those packages are importable (Y
  convention: they are compared with our ``niqe-y``).

Images: the first photos (by file name) of ``resources/train_standin/SunHays80`` whose sides are
both >= 512, centre-cropped to 512x512 RGB uint8.  Timing: one untimed warm-up call per
implementation, then ``repeats`` rounds; the median of the per-image seconds is reported.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pcl.bench import save_bench_figure, write_bench_csv
from pcl.data.imresize import imresize
from pcl.device import bench_setup, device_description
from pcl.metrics.niqe import NIQE_MIN_SIZE, load_model, niqe, niqe_batch
from pcl.resources import resource_path

SIZE = 512
N_IMAGES = 4
GOAL_S = 0.05
CSV_COLUMNS = [
    "implementation", "device", "convention", "seconds_per_image_median", "seconds_per_image_min",
    "speedup_vs_transcription", "mean_score", "max_abs_diff_vs_pcl", "images", "repeats", "note",
    "device_description", "torch_threads", "torch_version", "numpy_version",
]


def bench_images(n: int = N_IMAGES, size: int = SIZE) -> tuple[list[np.ndarray], list[str]]:
    """``n`` centre crops (size x size x 3 uint8) of the stand-in photos and their file names."""
    from PIL import Image

    images, names = [], []
    for path in sorted(resource_path("train_standin", "SunHays80").glob("*.jpg")):
        with Image.open(path) as im:
            if min(im.size) < size:
                continue
            rgb = np.asarray(im.convert("RGB"))
        top, left = (rgb.shape[0] - size) // 2, (rgb.shape[1] - size) // 2
        images.append(np.ascontiguousarray(rgb[top:top + size, left:left + size]))
        names.append(path.name)
        if len(images) == n:
            break
    return images, names


# ----------------------------------------------------------------------------- transcription


def _aggd_grid(vec: np.ndarray) -> tuple[float, float, float]:
    """``estimateaggdparam.m`` line by line (grid as ``np.arange``, full argmin)."""
    from scipy.special import gamma

    gam = np.arange(0.2, 10.001, 0.001)
    r_gam = gamma(2.0 / gam) ** 2 / (gamma(1.0 / gam) * gamma(3.0 / gam))
    with np.errstate(divide="ignore", invalid="ignore"):
        leftstd = np.sqrt(np.mean(vec[vec < 0] ** 2)) if np.any(vec < 0) else np.nan
        rightstd = np.sqrt(np.mean(vec[vec > 0] ** 2)) if np.any(vec > 0) else np.nan
        gammahat = leftstd / rightstd
        rhat = np.mean(np.abs(vec)) ** 2 / np.mean(vec ** 2)
        rhatnorm = rhat * (gammahat ** 3 + 1) * (gammahat + 1) / ((gammahat ** 2 + 1) ** 2)
    diff = (r_gam - rhatnorm) ** 2
    alpha = gam[0] if np.all(np.isnan(diff)) else gam[int(np.nanargmin(diff))]
    factor = np.sqrt(gamma(1.0 / alpha) / gamma(3.0 / alpha))
    return float(alpha), float(leftstd * factor), float(rightstd * factor)


def _computefeature(block: np.ndarray) -> list[float]:
    from scipy.special import gamma

    alpha, betal, betar = _aggd_grid(block.ravel(order="F"))
    feat = [alpha, (betal + betar) / 2]
    for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):
        pair = block.ravel(order="F") * np.roll(block, shift, axis=(0, 1)).ravel(order="F")
        alpha, betal, betar = _aggd_grid(pair)
        feat += [alpha, (betar - betal) * (gamma(2 / alpha) / gamma(1 / alpha)), betal, betar]
    return feat


def _imfilter_replicate(im: np.ndarray, window: np.ndarray, factor: str) -> np.ndarray:
    """MATLAB's separable path ``conv2(hcol, hrow, padded, 'valid')``, ``hcol``/``hrow`` from
    ``factor``: ``"exact"`` (``w[:, 3] / sqrt(w[3, 3])``) or ``"svd"`` (``[u,s,v] = svd(w)``)."""
    if factor == "svd":
        u, s, vt = np.linalg.svd(window)
        hcol, hrow = u[:, 0] * np.sqrt(s[0]), vt[0] * np.sqrt(s[0])
    else:
        hcol = hrow = window[:, 3] / np.sqrt(window[3, 3])
    p = np.pad(im, 3, mode="edge")
    h, w = im.shape
    cols = hcol[0] * p[0:h, :]
    for i in range(1, 7):
        cols = cols + hcol[i] * p[i:i + h, :]
    out = hrow[0] * cols[:, 0:w]
    for j in range(1, 7):
        out = out + hrow[j] * cols[:, j:j + w]
    return out


def transcription_niqe(rgb: np.ndarray, mu_pris: np.ndarray, cov_pris: np.ndarray, window: np.ndarray,
                       factor: str = "exact") -> float:
    """``computequality.m`` (96x96 blocks, no overlap) transcribed to float64 numpy with loops."""
    coef = np.array([0.298936021293775, 0.587043074451121, 0.114020904255103])
    im = np.floor(rgb.astype(np.float64) @ coef + 0.5) if rgb.ndim == 3 else rgb.astype(np.float64)
    rows, cols = im.shape[0] // 96, im.shape[1] // 96
    im = im[:rows * 96, :cols * 96]
    feat = []
    for scale in (1, 2):
        mu = _imfilter_replicate(im, window, factor)
        sigma = np.sqrt(np.abs(_imfilter_replicate(im * im, window, factor) - mu * mu))
        structdis = (im - mu) / (sigma + 1)
        size = 96 // scale
        feat.append(np.array([_computefeature(structdis[r * size:(r + 1) * size, c * size:(c + 1) * size])
                              for c in range(cols) for r in range(rows)]))
        im = imresize(im, 0.5)
    distparam = np.concatenate(feat, axis=1)
    mu_dist = np.nanmean(distparam, axis=0)
    complete = distparam[~np.isnan(distparam).any(axis=1)]
    cov_dist = np.cov(complete, rowvar=False) if complete.shape[0] > 1 else np.zeros((36, 36))
    d = mu_pris - mu_dist
    return float(np.sqrt(d @ np.linalg.pinv((cov_pris + cov_dist) / 2) @ d))


# ----------------------------------------------------------------------------- third-party ports


def _optional_ports(device: torch.device) -> dict[str, Callable[[np.ndarray], float] | str]:
    """BasicSR / pyiqa NIQE callables (Y convention) where importable, else the reason they are not."""
    ports: dict[str, Callable[[np.ndarray], float] | str] = {}
    try:
        from basicsr.metrics.niqe import calculate_niqe

        ports["basicsr"] = lambda rgb: float(calculate_niqe(rgb[:, :, ::-1], 0, input_order="HWC", convert_to="y"))
    except Exception as exc:  # noqa: BLE001 - any failure only means "not measured"
        ports["basicsr"] = f"not measured: {type(exc).__name__}: {exc}"[:160]
    try:
        import pyiqa

        metric = pyiqa.create_metric("niqe", device=device)

        def run_pyiqa(rgb: np.ndarray) -> float:
            t = torch.from_numpy(rgb).permute(2, 0, 1)[None].to(device=device, dtype=torch.float32) / 255.0
            return float(metric(t))

        ports["pyiqa"] = run_pyiqa
    except Exception as exc:  # noqa: BLE001
        ports["pyiqa"] = f"not measured: {type(exc).__name__}: {exc}"[:160]
    return ports


# ----------------------------------------------------------------------------- entry point


def _plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    values = [r["seconds_per_image_median"] for r in rows]
    bars = ax.bar([r["implementation"] for r in rows], values,
                  color=["#3b75af" if r["implementation"].startswith("pcl") else "#888888" for r in rows])
    for bar, value in zip(bars, values):
        ax.annotate(f"{value * 1000:.0f} ms", (bar.get_x() + bar.get_width() / 2, value), ha="center",
                    va="bottom", fontsize=8)
    ax.axhline(GOAL_S, color="#c44e52", linestyle="--", linewidth=1)
    ax.annotate(f"goal {GOAL_S * 1000:.0f} ms", (len(rows) - 0.5, GOAL_S), ha="right", va="bottom",
                fontsize=7, color="#c44e52")
    ax.set_ylabel(f"seconds per {SIZE}x{SIZE} RGB image (median)")
    ax.set_title(title, fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    fig.tight_layout()
    save_bench_figure(fig, path)


def run(out_dir: Path, *, repeats: int = 3, device: str = "cpu") -> dict:
    """Time every implementation on the same photos; write niqe.csv and niqe.png; return the figures."""
    out_dir = Path(out_dir)
    dev = bench_setup("niqe", device, repeats, out_dir)
    images, names = bench_images()
    if not images or min(images[0].shape[:2]) < NIQE_MIN_SIZE:
        raise RuntimeError("niqe benchmark: no stand-in photo of at least 512x512 in resources/train_standin")
    model = np.load(resource_path("niqe", "niqe_pris_params.npz"))
    load_model()  # verifies the SHA-256 before anything is timed
    mu_p, cov_p, window = model["mu_pris_param"][0], model["cov_pris_param"], model["gaussian_window"]
    batch = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def per_image(fn: Callable[[np.ndarray], float]) -> Callable[[], list[float]]:
        return lambda: [fn(img) for img in images]

    impls: dict[str, tuple[str, Callable[[], list[float]]]] = {
        "pcl niqe": ("niqe", per_image(lambda img: niqe(torch.from_numpy(img).permute(2, 0, 1).to(dev)))),
        "pcl niqe_batch": ("niqe", lambda: niqe_batch(batch.to(dev)).tolist()),
        "numpy transcription": ("niqe", per_image(lambda img: transcription_niqe(img, mu_p, cov_p, window))),
    }
    notes: dict[str, str] = {}
    ports = _optional_ports(dev)
    if any(callable(p) for p in ports.values()):
        impls["pcl niqe (niqe-y)"] = ("niqe-y", per_image(
            lambda img: niqe(torch.from_numpy(img).permute(2, 0, 1).to(dev), convention="niqe-y")))
    for name, port in ports.items():
        if callable(port):
            impls[name] = ("niqe-y (port)", per_image(port))
        else:
            notes[name] = port

    scores = {name: fn() for name, (_, fn) in impls.items()}  # warm-up, and the values compared
    times: dict[str, list[float]] = {name: [] for name in impls}
    order = list(impls)
    for r in range(repeats):
        for name in order[r % len(order):] + order[:r % len(order)]:
            sync()
            start = time.perf_counter()
            impls[name][1]()
            sync()
            times[name].append((time.perf_counter() - start) / len(images))

    reference = {"niqe": np.array(scores["pcl niqe"])}
    svd_scores = np.array([transcription_niqe(img, mu_p, cov_p, window, factor="svd") for img in images])
    svd_diff = float(np.max(np.abs(svd_scores - reference["niqe"])))
    if "pcl niqe (niqe-y)" in scores:
        reference["niqe-y"] = np.array(scores["pcl niqe (niqe-y)"])
    description = device_description(dev)
    transcription_s = statistics.median(times["numpy transcription"])
    rows = []
    for name, (convention, _) in impls.items():
        ref = reference["niqe-y" if convention.startswith("niqe-y") else "niqe"]
        rows.append({
            "implementation": name, "device": "cpu" if name in ("numpy transcription", "basicsr") else str(dev),
            "convention": convention, "seconds_per_image_median": statistics.median(times[name]),
            "seconds_per_image_min": min(times[name]),
            "speedup_vs_transcription": transcription_s / statistics.median(times[name]),
            "mean_score": float(np.mean(scores[name])),
            "max_abs_diff_vs_pcl": float(np.max(np.abs(np.array(scores[name]) - ref))),
            "images": len(images), "repeats": repeats,
            "note": f"svd_factor_max_abs_diff={svd_diff:.6g}" if name == "numpy transcription" else "",
        })
    rows += [{"implementation": name, "note": note} for name, note in notes.items()]
    common = {"device_description": description, "torch_threads": torch.get_num_threads(),
              "torch_version": torch.__version__, "numpy_version": np.__version__}
    formatted = [{**{k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}, **common}
                 for row in rows]
    write_bench_csv(out_dir / "niqe.csv", CSV_COLUMNS, formatted)
    timed = [r for r in rows if "seconds_per_image_median" in r]
    _plot(timed, out_dir / "niqe.png", f"NIQE, {len(images)} photos {SIZE}x{SIZE} RGB - {description}")
    ours = statistics.median(times["pcl niqe"])
    return {
        "device": description,
        "images": names,
        "seconds_per_image": {r["implementation"]: r["seconds_per_image_median"] for r in timed},
        "max_abs_diff_vs_pcl": {r["implementation"]: r["max_abs_diff_vs_pcl"] for r in timed},
        "speedup_vs_transcription": transcription_s / ours,
        "svd_factor_max_abs_diff": svd_diff,
        "goal_le_0.05s_per_image": bool(ours <= GOAL_S),
        "not_measured": notes,
        "files": [str(out_dir / "niqe.csv"), str(out_dir / "niqe.png")],
        **common,
    }


if __name__ == "__main__":  # python -m pcl.bench.niqe_bench [out_dir] [device] [repeats]
    import json
    import sys

    result = run(Path(sys.argv[1] if len(sys.argv) > 1 else "results/bench"),
                 device=sys.argv[2] if len(sys.argv) > 2 else "cpu",
                 repeats=int(sys.argv[3]) if len(sys.argv) > 3 else 3)
    print(json.dumps(result, indent=2))
