"""Cost of the PCL extras relative to one plain L1 training step.

Why: PCL adds, per SR step, sample generation (sharpening, blurring), one embedding-network
update and the embedding passes of SR, positives and negatives.  The released code runs every
set in its own forward call and measured 2.74x its L1 step for EDSR-S on 2 CPU cores.  The
harness batches all sets in one call (per-set BatchNorm statistics, ``pcl.method.losses``), so
the figure that matters is how close the *time* ratio (PCL step / L1 step) comes to the *FLOP*
ratio of the same work; goal: time ratio <= 1.1 x FLOP ratio.

Workloads (inputs uniform random, torch seed 0; the cost does not depend on content):
* L1 step = SR forward + L1 loss + backward + Adam step, LR patch 48 (HR 192), x4.
* ``paper``    = the same plus ``PCLObjective(MethodConfig())``: GT + 4 sharpened / 4 blurred,
  Haar embedding, layers 0-3, gradient through the term, embedding update on HR vs SR.
* ``released`` = ``MethodConfig.preset('released')`` through the same batched code: GT + 3
  sharpened / LR + 3 blurred, layer 4, term without gradient, contrastive D training.
* ``released-unbatched`` = the released algorithm written the way the authors' code runs it:
  kornia per sample index, one embedding forward per set, full network (head included) for the
  feature passes.  It is the baseline of the batching claim.
Components of ``paper`` and ``released``: sampling, embedding update, feature passes (forward,
plus the backward to the SR image in paper semantics) - each timed alone.

Backbones: EDSR-S and RCAN.  On CPU the batch is 4 (not 16) and RCAN is reduced to 2 residual
groups x 5 blocks (not 10 x 20) so that the run stays under about 3 minutes; on CUDA the batch is
16 and RCAN is full.  On CUDA the embedding passes are also timed in bf16 autocast, batched (one
grouped call for all sets) vs one call per set (the released granularity).

CPU memory: ``keep_cpu_allocations()`` turns glibc's mmap for large blocks off first (see there);
the device description in the outputs says so.

FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matrix products, forward
and backward); element-wise work is not counted, which is part of what the time/FLOP comparison
exposes.

Timing: the FLOP-counting call of each workload doubles as its warm-up, then ``repeats`` rounds
in which every workload runs once (interleaved, so that load from other processes hits all of
them alike); ratios use the best time.  On CPU ``released-unbatched`` runs for EDSR-S only (the
backbone of the released reference figure).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F

from pcl.bench import save_bench_figure, write_bench_csv
from pcl.device import bench_setup, device_description, synchronize

LR_PATCH = 48
SCALE = 4
CPU_BATCH = 4
GPU_BATCH = 16
#: backbone -> (model name, keyword overrides on CPU, keyword overrides on CUDA)
BACKBONES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "EDSR-S": ("edsr-s", {}, {}),
    "RCAN": ("rcan", {"n_resgroups": 2, "n_resblocks": 5}, {}),
}
CSV_COLUMNS = [
    "backbone", "backbone_config", "variant", "component", "dtype", "batch", "lr_patch", "hr_patch",
    "repeats", "best_s", "median_s", "gflop", "time_ratio_vs_l1", "flop_ratio_vs_l1",
    "time_over_flop_ratio", "device", "torch_threads", "torch_version",
]
RELEASED_REFERENCE = "released code: PCL step 2.74x its L1 step, EDSR-S, 2 CPU cores (measured on the development machine)"


# ---------------------------------------------------------------------------- helpers


def keep_cpu_allocations() -> bool:
    """Ask glibc malloc to keep freed memory instead of returning it to the system.

    Why: PyTorch's CPU allocator has no cache; glibc serves every block above its mmap threshold
    (32 MB at most) with a fresh ``mmap`` and unmaps it on free, so each large activation of a
    batched pass (e.g. 36 x 64 x 96 x 96 float32 = 85 MB) is page-faulted in anew.  Measured on
    the 2-core VM: the grouped no-grad embedding pass of 9 sets took 0.45 s with the default and
    0.25 s with mmap disabled (the same as 9 separate calls, whose 9 MB blocks are reused from the
    heap).  Process-wide; returns False where glibc's ``mallopt`` is unavailable.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_max = -1, -4
        return bool(libc.mallopt(m_mmap_max, 0)) and bool(libc.mallopt(m_trim_threshold, 2**31 - 1))
    except (OSError, AttributeError):
        return False





def _flops(fn: Callable[[], Any]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _time_interleaved(fns: dict[str, Callable[[], Any]], repeats: int, device: torch.device) -> dict[str, list[float]]:
    """``repeats`` rounds running each workload once (interleaved); the caller warms them up."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            synchronize(device)
            start = time.perf_counter()
            fn()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return times


class _ReleasedEmulation:
    """The released algorithm (docs/method.md §0-4) with the released call structure: kornia per
    sample index, one embedding forward per set, full network for the feature passes."""

    def __init__(self, device: torch.device) -> None:
        from pcl.method import MethodConfig, build_embedding

        self.cfg = MethodConfig.preset("released")
        self.embedding = build_embedding("haar").to(device).train()
        self.optimizer = torch.optim.Adam(self.embedding.parameters(), lr=5e-5)
        self.generator = torch.Generator().manual_seed(0)  # python `random` / CPU RNG in the original

    def step(self, sr: torch.Tensor, hr: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        import kornia

        from pcl.method import contrastive_discriminator_loss, draw_sample_params, infonce, quantize_8bit, upsample_lr

        cfg, emb, r = self.cfg, self.embedding, self.cfg.rgb_range
        params = draw_sample_params(cfg, hr.shape[0], generator=self.generator)
        factors = params.sharpen_factor.to(hr.device)
        pos = [hr] + [quantize_8bit(kornia.enhance.sharpness(hr, factors[:, j])) for j in range(cfg.num_positives)]
        neg = [upsample_lr(lr, tuple(hr.shape[-2:]))]
        for k in range(cfg.num_negatives):
            size = tuple(int(v) for v in params.blur_size[0, k])
            neg.append(quantize_8bit(kornia.filters.gaussian_blur2d(hr, size, params.blur_sigma[0, k : k + 1].to(hr.device))))
        real = [emb(x * r) for x in pos]  # HR + sharpened (contrastive D training)
        fake = [emb(sr.detach() * r)] + [emb(x * r) for x in neg[1:]]
        d_loss = contrastive_discriminator_loss(torch.cat([t.flatten() for t in real]), torch.cat([t.flatten() for t in fake]))
        self.optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            f_sr = emb.forward_features(sr * r)[0]
            f_pos = [emb.forward_features(x * r)[0] for x in pos]
            f_neg = [emb.forward_features(x * r)[0] for x in neg]
            terms = [infonce(f_sr[layer], torch.stack([f[layer] for f in f_pos], 1),
                             torch.stack([f[layer] for f in f_neg], 1)) for layer in cfg.layers]
        return torch.stack(terms).mean()


# ---------------------------------------------------------------------------- one backbone


def _bench_backbone(label: str, device: torch.device, batch: int, repeats: int) -> tuple[list[dict], dict]:
    from pcl.method import MethodConfig, PCLObjective, contrastive_term, embedding_update_step, make_samples
    from pcl.models import build_model

    name, cpu_kw, gpu_kw = BACKBONES[label]
    kwargs = gpu_kw if device.type == "cuda" else cpu_kw
    config_note = " ".join(f"{k}={v}" for k, v in kwargs.items()) or "paper config"
    torch.manual_seed(0)
    model = build_model(name, **kwargs).to(device).train()
    sr_opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    gen = torch.Generator(device=device).manual_seed(0)
    lr = torch.rand(batch, 3, LR_PATCH, LR_PATCH, device=device, generator=gen)
    hr = torch.rand(batch, 3, LR_PATCH * SCALE, LR_PATCH * SCALE, device=device, generator=gen)

    def l1_step() -> None:
        sr = model(lr)
        loss = F.l1_loss(sr, hr)
        sr_opt.zero_grad(set_to_none=True)
        loss.backward()
        sr_opt.step()

    objectives = {
        "paper": PCLObjective(MethodConfig(), device=device, sr_lr=1e-4,
                              generator=torch.Generator(device=device).manual_seed(1)),
        "released": PCLObjective(MethodConfig.preset("released"), device=device, sr_lr=5e-5,
                                 generator=torch.Generator(device=device).manual_seed(1)),
    }
    emulation = _ReleasedEmulation(device)

    def pcl_step(obj: PCLObjective) -> Callable[[], None]:
        def step() -> None:
            sr = model(lr)
            out = obj.step(sr, hr, lr)
            loss = F.l1_loss(sr, hr) + out.weighted
            sr_opt.zero_grad(set_to_none=True)
            loss.backward()
            sr_opt.step()
        return step

    def unbatched_step() -> None:
        sr = model(lr)
        loss = F.l1_loss(sr, hr) + 5.0 * emulation.step(sr, hr, lr)
        sr_opt.zero_grad(set_to_none=True)
        loss.backward()
        sr_opt.step()

    workloads: dict[str, tuple[str, str, Callable[[], None]]] = {
        "l1": ("l1", "step", l1_step),
        "paper": ("paper", "step", pcl_step(objectives["paper"])),
        "released": ("released", "step", pcl_step(objectives["released"])),
        "released-unbatched": ("released-unbatched", "step", unbatched_step),
    }
    sr_fixed = torch.rand(batch, 3, LR_PATCH * SCALE, LR_PATCH * SCALE, device=device, generator=gen)
    for variant, obj in objectives.items():
        c = obj.config
        samples = make_samples(hr, lr, c, generator=obj.generator)

        def sampling(c=c, obj=obj) -> None:
            make_samples(hr, lr, c, generator=obj.generator)

        def update(obj=obj, samples=samples) -> None:
            embedding_update_step(obj.embedding, obj.optimizer, hr, sr_fixed, samples,
                                  contrastive_d=obj.config.contrastive_d, input_kind=obj.input_kind,
                                  input_scale=obj.config.rgb_range)

        def features(obj=obj, samples=samples, c=c) -> None:
            sr = sr_fixed.clone().requires_grad_(c.semantics == "paper")
            term = contrastive_term(obj.embedding, sr, samples.positives, samples.negatives, layers=c.layers,
                                    tau=c.tau, semantics=c.semantics, loss_type=c.loss_type,
                                    input_kind=obj.input_kind, input_scale=c.rgb_range, fuse_sr=c.fuse_sr)
            if term.requires_grad:
                torch.autograd.grad(term, sr)

        workloads[f"{variant}:sampling"] = (variant, "sampling", sampling)
        workloads[f"{variant}:embedding_update"] = (variant, "embedding_update", update)
        workloads[f"{variant}:feature_passes"] = (variant, "feature_passes", features)

    if device.type == "cpu" and label != "EDSR-S":
        del workloads["released-unbatched"]  # the released reference figure is for EDSR-S; saves CPU time
    # The FLOP-counting run doubles as the warm-up (it executes every operation once).
    flops = {k: _flops(v[2]) for k, v in workloads.items()}
    synchronize(device)
    times = _time_interleaved({k: v[2] for k, v in workloads.items()}, repeats, device)
    l1_best = min(times["l1"])
    rows = []
    for key, (variant, component, _) in workloads.items():
        best = min(times[key])
        time_ratio = best / l1_best
        flop_ratio = flops[key] / flops["l1"]
        rows.append({
            "backbone": label, "backbone_config": config_note, "variant": variant, "component": component,
            "dtype": "float32", "batch": batch, "lr_patch": LR_PATCH, "hr_patch": LR_PATCH * SCALE,
            "repeats": repeats, "best_s": round(best, 4), "median_s": round(statistics.median(times[key]), 4),
            "gflop": round(flops[key] / 1e9, 2), "time_ratio_vs_l1": round(time_ratio, 3),
            "flop_ratio_vs_l1": round(flop_ratio, 3),
            "time_over_flop_ratio": round(time_ratio / flop_ratio, 3) if component == "step" else "",
        })
    summary = {
        r["variant"]: {k: r[k] for k in ("best_s", "gflop", "time_ratio_vs_l1", "flop_ratio_vs_l1", "time_over_flop_ratio")}
        for r in rows if r["component"] == "step"
    }
    if device.type == "cuda":
        rows.extend(_bf16_embedding_rows(label, config_note, objectives["paper"], hr, lr, sr_fixed, repeats, device))
    return rows, summary


def _bf16_embedding_rows(label, config_note, obj, hr, lr, sr, repeats, device) -> list[dict]:
    """bf16 autocast: no-grad embedding passes of SR + P + N, one grouped call vs one call per set."""
    from pcl.method import embed_groups, make_samples

    c = obj.config
    samples = make_samples(hr, lr, c, generator=obj.generator)
    sets = torch.cat((sr.unsqueeze(1), samples.stacked), dim=1)
    emb = obj.embedding

    def batched() -> None:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
            embed_groups(emb, sets, layers=c.layers, input_kind=obj.input_kind)

    def per_set() -> None:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
            for g in range(sets.shape[1]):  # the same work, one call per set (released granularity)
                embed_groups(emb, sets[:, g : g + 1], layers=c.layers, input_kind=obj.input_kind)

    batched()
    per_set()
    times = _time_interleaved({"batched": batched, "per_set": per_set}, max(repeats, 5), device)
    out = []
    for key, fn in (("batched", batched), ("per_set", per_set)):
        best = min(times[key])
        out.append({
            "backbone": label, "backbone_config": config_note, "variant": "paper",
            "component": f"embedding_passes_{key}", "dtype": "bfloat16", "batch": hr.shape[0], "lr_patch": LR_PATCH,
            "hr_patch": LR_PATCH * SCALE, "repeats": max(repeats, 5), "best_s": round(best, 5),
            "median_s": round(statistics.median(times[key]), 5), "gflop": round(_flops(fn) / 1e9, 2),
            "time_ratio_vs_l1": "", "flop_ratio_vs_l1": "", "time_over_flop_ratio": "",
        })
    return out


# ---------------------------------------------------------------------------- figure and entry point


def _plot(rows: list[dict], path: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    steps = [r for r in rows if r["component"] == "step" and r["variant"] != "l1"]
    labels = [f"{r['backbone']}\n{r['variant']}\ntime/FLOP {r['time_over_flop_ratio']:.2f}" for r in steps]
    fig = Figure(figsize=(9, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    xs = range(len(steps))
    width = 0.38
    ax.bar([x - width / 2 for x in xs], [r["time_ratio_vs_l1"] for r in steps], width, label="time ratio", color="#3b75af")
    ax.bar([x + width / 2 for x in xs], [r["flop_ratio_vs_l1"] for r in steps], width, label="FLOP ratio", color="#bbbbbb")
    for x, r in zip(xs, steps):
        ax.annotate(f"{r['time_ratio_vs_l1']:.2f}x", (x - width / 2, r["time_ratio_vs_l1"]), ha="center", va="bottom", fontsize=7)
        ax.annotate(f"{r['flop_ratio_vs_l1']:.2f}x", (x + width / 2, r["flop_ratio_vs_l1"]), ha="center", va="bottom", fontsize=7)
    ax.axhline(2.74, color="#c44e52", linestyle="--", linewidth=1)
    ax.annotate("released code, EDSR-S,\n2 CPU cores: 2.74x", (0, 2.76), ha="center", va="bottom",
                fontsize=7, color="#c44e52")
    ax.set_xticks(list(xs))
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel("PCL step / L1 step")
    ax.set_ylim(0, max(max(r["time_ratio_vs_l1"], r["flop_ratio_vs_l1"]) for r in steps) * 1.15)
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    save_bench_figure(fig, path)


def run(out_dir: Path, *, repeats: int = 3, device: str = "cpu") -> dict:
    """Time and count the PCL extras vs one L1 step for EDSR-S and RCAN; write method.csv/.png."""
    out_dir = Path(out_dir)
    dev = bench_setup("method", device, repeats, out_dir)
    batch = GPU_BATCH if dev.type == "cuda" else CPU_BATCH
    allocator = "default"
    if dev.type == "cpu" and keep_cpu_allocations():
        allocator = "glibc mmap off"
    description = device_description(dev) + (f", malloc: {allocator}" if dev.type == "cpu" else "")
    rows: list[dict] = []
    summary: dict[str, Any] = {"device": description, "batch": batch, "reference": RELEASED_REFERENCE}
    for label in BACKBONES:
        backbone_rows, backbone_summary = _bench_backbone(label, dev, batch, repeats)
        rows.extend(backbone_rows)
        summary[label] = backbone_summary
    for r in rows:
        r.update(device=description, torch_threads=torch.get_num_threads(), torch_version=torch.__version__)
    write_bench_csv(out_dir / "method.csv", CSV_COLUMNS, rows)
    worst = max(summary[b][v]["time_over_flop_ratio"] for b in BACKBONES for v in ("paper", "released"))
    summary["worst_time_over_flop_ratio"] = worst
    summary["goal_time_ratio_le_1.1x_flop_ratio"] = bool(worst <= 1.1)
    title = (f"PCL step cost relative to an L1 step - {description}; batch {batch}, LR patch {LR_PATCH}"
             + ("; RCAN reduced to 2x5 on CPU" if dev.type != "cuda" else ""))
    _plot(rows, out_dir / "method.png", title)
    summary["files"] = [str(out_dir / "method.csv"), str(out_dir / "method.png")]
    return summary


if __name__ == "__main__":  # python -m pcl.bench.method_bench [out_dir] [device]
    import json
    import sys

    result = run(Path(sys.argv[1] if len(sys.argv) > 1 else "results/bench"),
                 device=sys.argv[2] if len(sys.argv) > 2 else "cpu")
    print(json.dumps(result, indent=2))
