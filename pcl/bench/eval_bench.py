"""Benchmark (`pcl bench eval`): seconds per Urban100-size image for each paper model, and GPU throughput.

Why: evaluating the released checkpoints on B100/Urban100/Manga109 is the expensive part of the
``released`` tier; the numbers say what a CPU-only machine can do and when a GPU is needed.

CPU measurement (random weights, fp32, batch 1, ``torch.inference_mode``): an LR input of
256 x 192 (W x H) gives a 1024 x 768 output, the typical Urban100 size.  EDSR-S (paper config) is
timed as a whole model.  The four large models are too slow to run whole within the ~3-minute
budget of this benchmark on 2 cores, so each is timed as **the sum of its parts**: every distinct
module of the paper configuration is timed on its real input size (the features of the
256 x 192 image) and multiplied by how often it occurs; the forward of these networks is a plain
sequence of those modules, so the sum is the model's compute time (memory effects aside).
Modules shared between models are timed once:

* EDSR-L  = head(3->256) + 32 x ResBlock(256) + conv(256) + tail(256, x4)
* NLSN    = EDSR-L's modules (same shapes) + 5 x NLSA(256 ch, 4 hashes, chunk 144), i.e. full width
  and all 32 blocks, but each block type measured once
* RCAN    = head(3->64) + 10 x ResidualGroup(64 ch, 20 RCAB, r 16) + conv(64) + tail(64, x4)
* HAN     = RCAN's modules + LAM on the 11-layer stack + last_conv(11*64->64) + CSAM + last(128->64)

(MeanShift 1x1 convolutions are included in every sum.)  As a check of additivity, EDSR-S is
also timed as the sum of its modules; both numbers are written.  A module is run once more after
a warm-up when its first run is shorter than 3 s, and the minimum is kept (the machine is shared,
so the minimum is the least disturbed run).

GPU (``--device cuda``; code path only where no GPU is present): the full evaluation of RCAN on
every benchmark present (shipped Set5/Set14 and whatever is under ``data/benchmarks``), in fp32
and bf16 autocast, with images/s and the mean PSNR difference between the two precisions.  The
weights are the released RCAN x4 if present, else random (seeded) weights.
"""

from __future__ import annotations

import os
import pathlib
import platform
import time
from collections.abc import Callable

import torch
from torch import Tensor, nn

from pcl.bench import save_bench_figure, write_bench_csv
from pcl.models import build_model
from pcl.models.common import MeanShift, ResBlock, default_conv, make_tail
from pcl.models.han import CSAM, LAM
from pcl.models.nlsn import NonLocalSparseAttention
from pcl.models.rcan import ResidualGroup

LR_W, LR_H, SCALE = 256, 192, 4
CSV_COLUMNS = [
    "model", "method", "measured_config", "seconds_per_image", "images_per_hour", "components",
    "lr_size", "hr_size", "device", "torch_threads", "cpu_count", "platform", "torch_version",
]


def _time(fn: Callable[[], object], repeats: int) -> float:
    """Minimum wall time of ``fn`` (one run if it takes >= 3 s, else ``repeats`` runs after a warm-up)."""
    with torch.inference_mode():
        t0 = time.perf_counter()
        fn()
        first = time.perf_counter() - t0
        if first >= 3.0:
            return first
        times = []
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return min(times)


class _Modules:
    """Times each distinct module once (cached), on the feature size of the benchmark image."""

    def __init__(self, repeats: int) -> None:
        self.repeats = repeats
        self.cache: dict[str, float] = {}
        torch.manual_seed(0)
        self.lr = torch.rand(1, 3, LR_H, LR_W)

    def feats(self, channels: int) -> Tensor:
        return torch.randn(1, channels, LR_H, LR_W) * 0.1

    def timed(self, key: str, module: nn.Module, x: Tensor) -> float:
        if key not in self.cache:
            module.eval()
            self.cache[key] = _time(lambda: module(x), self.repeats)
        return self.cache[key]

    def common(self, c: int) -> dict[str, float]:
        """head, body conv, tail and the two MeanShifts of a width-``c`` network."""
        f = self.feats(c)
        out = {
            f"head(3->{c})": self.timed(f"head{c}", nn.Sequential(default_conv(3, c, 3)), self.lr),
            f"conv({c})": self.timed(f"conv{c}", default_conv(c, c, 3), f),
            f"tail({c},x4)": self.timed(f"tail{c}", make_tail(SCALE, c, 3), f),
            "sub_mean": self.timed("sub_mean", MeanShift(255.0), self.lr),
            "add_mean": self.timed("add_mean", MeanShift(255.0, sign=1), torch.rand(1, 3, LR_H * SCALE, LR_W * SCALE)),
        }
        return out

    def resblock(self, c: int) -> float:
        return self.timed(f"resblock{c}", ResBlock(c, 3, res_scale=0.1), self.feats(c))

    def nlsa(self, c: int) -> float:
        torch.manual_seed(0)
        return self.timed(f"nlsa{c}", NonLocalSparseAttention(c, n_hashes=4, chunk_size=144, res_scale=0.1), self.feats(c))

    def group(self, c: int) -> float:
        return self.timed(f"group{c}", ResidualGroup(c, 16, 20), self.feats(c))

    def han_extras(self, c: int) -> dict[str, float]:
        stack = torch.randn(1, 11, c, LR_H, LR_W) * 0.1
        return {
            "LAM(11 layers)": self.timed("lam", LAM(), stack),
            f"last_conv({11 * c}->{c})": self.timed("last_conv", nn.Conv2d(11 * c, c, 3, 1, 1), torch.randn(1, 11 * c, LR_H, LR_W)),
            "CSAM": self.timed("csam", CSAM(), self.feats(c)),
            f"last({2 * c}->{c})": self.timed("last", nn.Conv2d(2 * c, c, 3, 1, 1), self.feats(2 * c)),
        }


def _sum(parts: list[tuple[str, int, float]]) -> tuple[float, str]:
    total = sum(n * t for _, n, t in parts)
    text = "; ".join(f"{name} x{n} @ {t:.3f} s" for name, n, t in parts)
    return total, text


def cpu_model_times(repeats: int = 2) -> list[dict]:
    """Seconds per Urban100-size image for the five paper models (see the module docstring)."""
    m = _Modules(repeats)
    rows = []

    edsr_s = build_model("edsr-s").eval()
    whole = _time(lambda: edsr_s(m.lr), repeats)
    rows.append({"model": "EDSR-S", "method": "whole model", "measured_config": "paper (16 blocks, 64 ch)",
                 "seconds_per_image": whole, "components": ""})
    c64, c256 = m.common(64), m.common(256)
    parts = [(k, 1, v) for k, v in c64.items()] + [("ResBlock(64)", 16, m.resblock(64))]
    total, text = _sum(parts)
    rows.append({"model": "EDSR-S", "method": "sum of modules (additivity check)", "measured_config": "paper",
                 "seconds_per_image": total, "components": text})

    base256 = [(k, 1, v) for k, v in c256.items()] + [("ResBlock(256)", 32, m.resblock(256))]
    total, text = _sum(base256)
    rows.append({"model": "EDSR-L", "method": "sum of modules", "measured_config": "paper (32 blocks, 256 ch), each module once",
                 "seconds_per_image": total, "components": text})

    rcan_parts = [(k, 1, v) for k, v in c64.items()] + [("ResidualGroup(64, 20 RCAB)", 10, m.group(64))]
    total, text = _sum(rcan_parts)
    rows.append({"model": "RCAN", "method": "sum of modules", "measured_config": "paper (10 groups x 20 RCAB, 64 ch), one group timed",
                 "seconds_per_image": total, "components": text})

    han_parts = rcan_parts + [(k, 1, v) for k, v in m.han_extras(64).items()]
    total, text = _sum(han_parts)
    rows.append({"model": "HAN", "method": "sum of modules", "measured_config": "paper (RCAN trunk + LAM/CSAM), each module once",
                 "seconds_per_image": total, "components": text})

    nlsn_parts = base256 + [("NLSA(256, 4 hashes, chunk 144)", 5, m.nlsa(256))]
    total, text = _sum(nlsn_parts)
    rows.append({"model": "NLSN", "method": "sum of modules", "measured_config": "paper width and depth (32 blocks, 5 NLSA, 256 ch), each module once",
                 "seconds_per_image": total, "components": text})
    return rows


def gpu_rcan_throughput(device: str, *, benchmarks: dict[str, pathlib.Path] | None = None,
                        checkpoint: pathlib.Path | None = None, model_kwargs: dict | None = None) -> list[dict]:
    """Images/s of RCAN over every present benchmark in fp32 and bf16, and the PSNR difference.

    ``model_kwargs`` shrinks the network (tests run this path on the CPU with a tiny RCAN).
    """
    from pcl.evaluate import evaluate_folder
    from pcl.inference import InferenceSettings, ModelPredictor
    from pcl.models.checkpoints import load_into

    benchmarks = benchmarks if benchmarks is not None else _present_benchmarks()
    torch.manual_seed(0)
    model = build_model("rcan", **(model_kwargs or {}))
    weights = "random (seed 0)"
    if checkpoint is not None and checkpoint.is_file():
        load_into(model, checkpoint, arch_name="rcan")
        weights = str(checkpoint)
    out = []
    for dataset, hr_dir in benchmarks.items():
        means = {}
        for precision in ("fp32", "bf16"):
            predictor = ModelPredictor(model, InferenceSettings(device=device, precision=precision), name="rcan")
            t0 = time.perf_counter()
            rows = evaluate_folder(predictor, hr_dir, dataset=dataset, scale=SCALE, protocol="authors")
            wall = time.perf_counter() - t0
            means[precision] = sum(r["psnr"] for r in rows) / len(rows)
            out.append({"dataset": dataset, "precision": precision, "images": len(rows), "wall_s": wall,
                        "model_s": predictor.seconds, "images_per_s": len(rows) / wall,
                        "mean_psnr_db": means[precision], "weights": weights, "device": device})
        out[-1]["psnr_bf16_minus_fp32_db"] = means["bf16"] - means["fp32"]
    return out


def _present_benchmarks() -> dict[str, pathlib.Path]:
    from pcl.resources import resource_path

    found = {}
    for name in ("Set5", "Set14", "B100", "Urban100", "Manga109"):
        for cand in (pathlib.Path("data") / "benchmarks" / name / "HR", resource_path("benchmarks", name, "HR")):
            if cand.is_dir():
                found[name] = cand
                break
    return found


def _plot(rows: list[dict], device_text: str, path: pathlib.Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = [r for r in rows if "additivity" not in r["method"]]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    names = [r["model"] for r in shown]
    values = [r["seconds_per_image"] for r in shown]
    bars = ax.bar(names, values, color=["#4c72b0" if r["method"] == "whole model" else "#dd8452" for r in shown])
    for bar, value in zip(bars, values):
        ax.text(bar.get_x() + bar.get_width() / 2, value, f"{value:.1f} s", ha="center", va="bottom", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("seconds per image (log)")
    ax.set_title(f"x4 SR of one {LR_W}x{LR_H} LR image (-> {LR_W * SCALE}x{LR_H * SCALE}), fp32, random weights\n{device_text}",
                 fontsize=9)
    ax.text(0.01, 0.97, "blue: whole model; orange: sum of timed modules x counts", transform=ax.transAxes,
            fontsize=7, va="top")
    fig.tight_layout()
    save_bench_figure(fig, path)
    plt.close(fig)


def run(out_dir: pathlib.Path, *, repeats: int = 2, device: str = "cpu") -> dict:
    """CPU model timings -> ``eval.csv`` + ``eval.png``; on CUDA also ``eval_gpu.csv`` (RCAN fp32 vs bf16)."""
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = cpu_model_times(repeats=min(repeats, 2))
    info = {
        "lr_size": f"{LR_W}x{LR_H}", "hr_size": f"{LR_W * SCALE}x{LR_H * SCALE}", "device": "cpu",
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "torch_version": torch.__version__,
    }
    for row in rows:
        row.update(info, images_per_hour=3600.0 / row["seconds_per_image"])
    write_bench_csv(out_dir / "eval.csv", CSV_COLUMNS, rows)
    device_text = f"CPU: {info['cpu_count']} cores, {info['torch_threads']} torch threads, torch {torch.__version__}"
    _plot(rows, device_text, out_dir / "eval.png")
    result: dict = {"seconds_per_image": {f"{r['model']} ({r['method']})": r["seconds_per_image"] for r in rows},
                    "benchmark_seconds": time.perf_counter() - t0, **info}
    if device.startswith("cuda"):
        from pcl.released import load_registry

        ckpt = None
        try:
            ckpt = load_registry(pathlib.Path("config/checkpoints.yaml")).get("rcan-official").path
        except Exception:  # registry absent or edited: fall back to random weights
            ckpt = None
        gpu_rows = gpu_rcan_throughput(device, checkpoint=ckpt)
        write_bench_csv(out_dir / "eval_gpu.csv", list(dict.fromkeys(k for r in gpu_rows for k in r)), gpu_rows)
        result["gpu_rcan"] = gpu_rows
    return result
