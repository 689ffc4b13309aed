"""Training speed: iterations per second of the real training step, L1 vs PCL, per backbone.

Why: the cost of PCL is what decides whether the fine-tune and scratch tiers are affordable, and
the figure that matters is the whole step of the trainer (data already on the device, SR
forward/backward, sample generation, embedding update, embedding passes, Adam), not its parts.
The benchmark therefore sets up ``pcl.train.loop.Trainer`` objects for ``<backbone>-baseline``
and ``<backbone>-pcl`` (paper semantics) from the catalog and times their training step
(``pcl.train.step.TrainStep``, the one the loop runs) on batches from the shipped stand-in photos.

Workloads: on CUDA the paper configurations, batch 16, LR patch 48 (HR 192), bf16 autocast and
channels_last (the trainer's defaults there).  On CPU (2 shared cores in the harness' CI) the
backbones are *reduced* (``CPU_MODELS``: a few blocks of 32-64 channels; HAN keeps its 10
groups), batch 4, LR patch 24 (HR 96), fp32; the embedding network keeps its full width, so the
CPU ratio PCL/L1 is far larger than on a GPU with the full backbones and says little about the
paper-size ratio.

Timing: one warm-up round of ``WARMUP`` steps per workload, then ``repeats`` rounds in which
every workload runs ``steps`` consecutive iterations (interleaved, so load from other processes
hits all alike); the loss is read once per round (the trainer's inner loop never synchronises);
the best round gives it/s.
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from pcl.bench import save_bench_figure, write_bench_csv
from pcl.device import bench_setup, device_description, synchronize


#: Reduced backbones on CPU (stated in the CSV and the figure); a backbone without an entry runs at
#: its paper configuration.
CPU_MODELS: dict[str, dict[str, Any]] = {
    "edsr-s": {"n_resblocks": 4, "n_feats": 32},
    "edsr-l": {"n_resblocks": 4, "n_feats": 64},
    "rcan": {"n_resgroups": 2, "n_resblocks": 4, "n_feats": 32, "reduction": 8},
    "han": {"n_resgroups": 10, "n_resblocks": 1, "n_feats": 16, "reduction": 8},
    "nlsn": {"n_resblocks": 4, "n_feats": 32, "chunk_size": 144},
}
CPU_BUDGET = {"batch": 4, "lr_patch": 24, "precision": "fp32", "channels_last": False}
GPU_BUDGET = {"batch": 16, "lr_patch": 48, "precision": "auto", "channels_last": "auto"}
CPU_STEPS, GPU_STEPS = 4, 20
WARMUP = 2
CSV_COLUMNS = [
    "backbone", "backbone_config", "method", "batch", "lr_patch", "hr_patch", "precision", "channels_last", "steps",
    "repeats", "best_s_per_it", "median_s_per_it", "it_per_s", "pcl_over_l1", "device", "torch_threads", "torch_version",
]


def _trainer(name: str, device: str, work: Path, *, model_kwargs: dict | None, budget: dict):
    from pcl.train.catalog import load_catalog
    from pcl.train.config import TrainOptions, resolve_config
    from pcl.train.loop import Trainer

    config = resolve_config(load_catalog().get(name), "smoke", budget=budget)
    if model_kwargs is not None:
        config["model_kwargs"] = dict(model_kwargs)
    else:
        config["model_kwargs"] = {}
    config["vgg_pretrained"] = False
    options = TrainOptions(device=device, progress=False, tensorboard=False, data_cache=work / "cache")
    trainer = Trainer(config, work / name, options)
    data, _ = trainer.setup(resume=False)
    return trainer, trainer.batches(data)


def _run_steps(trainer, dataset, first: int, steps: int) -> float:
    """Seconds per iteration of ``steps`` consecutive training steps from iteration ``first``."""
    batches = [dataset[first + i] for i in range(steps)]  # data preparation is not timed
    device = trainer.runtime.device
    synchronize(device)
    t0 = time.perf_counter()
    acc = None
    for i, (lr, hr) in enumerate(batches):
        losses = trainer.step(lr, hr, first + i)
        acc = losses if acc is None else acc + losses
    float(acc[0])  # one read per round, as the trainer's log step
    synchronize(device)
    return (time.perf_counter() - t0) / steps


def _plot(rows: list[dict], path: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    backbones = list(dict.fromkeys(r["backbone"] for r in rows))
    width = 0.38
    for offset, method, color in ((-width / 2, "baseline", "#bbbbbb"), (width / 2, "pcl", "#3b75af")):
        values = [next(r["it_per_s"] for r in rows if r["backbone"] == b and r["method"] == method) for b in backbones]
        ax.bar([i + offset for i in range(len(backbones))], values, width, color=color,
               label="L1 (baseline)" if method == "baseline" else "L1 + PCL (paper)")
    for i, b in enumerate(backbones):
        pcl = next(r for r in rows if r["backbone"] == b and r["method"] == "pcl")
        ax.annotate(f"{pcl['pcl_over_l1']:.2f}x", (i + width / 2, pcl["it_per_s"]), ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(backbones)))
    ax.set_xticklabels(backbones)
    ax.set_ylabel("training iterations / s")
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_bench_figure(fig, path)


def run(out_dir: Path, *, repeats: int = 3, device: str = "cpu") -> dict:
    """Time the L1 and PCL training steps of every backbone; write train.csv and train.png."""
    out_dir = Path(out_dir)
    dev = bench_setup("train", device, repeats, out_dir)
    on_gpu = dev.type == "cuda"
    budget = dict(GPU_BUDGET if on_gpu else CPU_BUDGET)
    steps = GPU_STEPS if on_gpu else CPU_STEPS
    rows: list[dict] = []
    summary: dict[str, Any] = {"device": None, "batch": budget["batch"], "lr_patch": budget["lr_patch"],
                               "reduced_backbones_on_cpu": not on_gpu}
    with tempfile.TemporaryDirectory(prefix="pcl-train-bench-") as tmp:
        work = Path(tmp)
        from pcl.models.registry import backbone_names

        for backbone in backbone_names():
            kwargs = None if on_gpu else CPU_MODELS.get(backbone, {})
            workloads = {m: _trainer(f"{backbone}-{m}", device, work, model_kwargs=kwargs, budget=budget)
                         for m in ("baseline", "pcl")}
            first = {m: 0 for m in workloads}
            for method, (trainer, dataset) in workloads.items():
                _run_steps(trainer, dataset, first[method], WARMUP)
                first[method] += WARMUP
            times: dict[str, list[float]] = {m: [] for m in workloads}
            for _ in range(repeats):
                for method, (trainer, dataset) in workloads.items():
                    times[method].append(_run_steps(trainer, dataset, first[method], steps))
                    first[method] += steps
            trainer = workloads["baseline"][0]
            summary["device"] = device_description(trainer.runtime.device)
            best = {m: min(t) for m, t in times.items()}
            for method in workloads:
                t = workloads[method][0]
                rows.append({
                    "backbone": backbone,
                    "backbone_config": "paper" if kwargs is None else " ".join(f"{k}={v}" for k, v in kwargs.items()),
                    "method": method,
                    "batch": budget["batch"],
                    "lr_patch": budget["lr_patch"],
                    "hr_patch": budget["lr_patch"] * 4,
                    "precision": t.runtime.precision,
                    "channels_last": t.runtime.channels_last,
                    "steps": steps,
                    "repeats": repeats,
                    "best_s_per_it": best[method],
                    "median_s_per_it": statistics.median(times[method]),
                    "it_per_s": 1.0 / best[method],
                    "pcl_over_l1": best[method] / best["baseline"],
                })
            summary[backbone] = {"l1_it_per_s": round(1 / best["baseline"], 3), "pcl_it_per_s": round(1 / best["pcl"], 3),
                                 "pcl_over_l1": round(best["pcl"] / best["baseline"], 2)}
            del workloads
    for r in rows:
        r.update(device=summary["device"], torch_threads=torch.get_num_threads(), torch_version=torch.__version__)
    write_bench_csv(out_dir / "train.csv", CSV_COLUMNS, rows)
    title = (f"Training step speed, L1 vs L1+PCL (paper), PCL/L1 step-time ratio on the bars\n{summary['device']}; "
             f"batch {budget['batch']}, LR patch {budget['lr_patch']}"
             + ("; paper backbones" if on_gpu else "; backbones reduced on CPU (see train.csv), embedding full width"))
    _plot(rows, out_dir / "train.png", title)
    summary["files"] = [str(out_dir / "train.csv"), str(out_dir / "train.png")]
    summary["python"] = platform.python_version()
    return summary


if __name__ == "__main__":  # python -m pcl.bench.train_bench [out_dir] [device]
    import json
    import sys

    result = run(Path(sys.argv[1] if len(sys.argv) > 1 else "results/bench"),
                 device=sys.argv[2] if len(sys.argv) > 2 else "cpu")
    print(json.dumps(result, indent=2))
