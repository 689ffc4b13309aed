"""Part ``steps``: it/s, peak memory and model FLOP utilisation of every backbone's training step.

For each backbone at paper size (batch 16, LR patch 48; ``--tiny``: the smoke tier's networks,
batch 2, LR patch 8, one untimed FLOP-counting step and one timed step, no warm-up) and each method (L1, +PCL paper semantics, +PCL released semantics) the real
training step runs in fp32 and bf16 autocast, with and without channels_last.  FLOPs per step
come from ``torch.utils.flop_counter.FlopCounterMode`` around the first (warm-up) step;
MFU = FLOPs x it/s / the device's dense bf16 peak (named in the CSV; fp32 rows use the same
denominator, so their MFU says how far fp32 stays from the tensor cores).  The +PCL overhead is
reported per backbone and precision as time per step and time per FLOP relative to L1.

The trainer's defaults on a GPU (bf16, channels_last) run first for every workload, so that a
part cut by its budget still holds the numbers ``pcl plan`` reads.
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path

import torch

from pcl.device import synchronize
from pcl.gpu_check.device_info import DeviceInfo
from pcl.gpu_check.report import RowSink
from pcl.gpu_check.workloads import (METHODS, PAPER_BATCH, PAPER_LR_PATCH, TINY_BATCH, TINY_LR_PATCH,
                                     build_trainer, experiment_config, random_batches, step_variant)

#: (precision, channels_last), the trainer's GPU default first.
VARIANTS: tuple[tuple[str, bool], ...] = (("bf16", True), ("bf16", False), ("fp32", False), ("fp32", True))
GPU_TIMED, TINY_TIMED = 6, 1


def case_name(backbone: str, method: str, precision: str, channels_last: bool) -> str:
    """The ``case`` of a step row, e.g. ``rcan/pcl-paper/bf16/channels_last``: ``pcl plan`` parses it."""
    return f"{backbone}/{method}/{precision}/{'channels_last' if channels_last else 'contiguous'}"


def _count_flops(step, batch: tuple[torch.Tensor, torch.Tensor]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step(batch[0], batch[1], 0)
    return int(counter.get_total_flops())


def _time_steps(step, batches, device: torch.device, *, warm_up: bool) -> float:
    """Seconds per step over ``batches`` (after one warm-up step unless ``--tiny``), reading the
    loss once."""
    if warm_up:
        step(batches[0][0], batches[0][1], 1)
    synchronize(device)
    start = time.perf_counter()
    acc = None
    for i, (lr, hr) in enumerate(batches):
        out = step(lr, hr, 2 + i)
        acc = out if acc is None else acc + out
    float(acc[0])
    synchronize(device)
    return (time.perf_counter() - start) / len(batches)


def _peak_mb(device: torch.device) -> float | None:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return None


def _host_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _workload(sink: RowSink, trainer, backbone: str, method: str, info: DeviceInfo, *, timed: int,
              batch: int, lr_patch: int, deadline: float, seconds: dict) -> None:
    device = trainer.runtime.device
    batches = random_batches(timed, batch, lr_patch)
    flops = None
    for precision, cl in VARIANTS:
        case = case_name(backbone, method, precision, cl)
        if time.monotonic() > deadline:
            sink.add("steps", case, "skipped", 1, "", note="part time budget spent")
            continue
        step = step_variant(trainer, precision=precision, channels_last=cl)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        try:
            if flops is None:
                flops = _count_flops(step, batches[0])
            s = _time_steps(step, batches, device, warm_up=timed > 1)
        except Exception as exc:  # noqa: BLE001 - a workload that cannot run is the finding; the rest go on
            if device.type == "cuda":
                torch.cuda.empty_cache()
            sink.add("steps", case, "ran", False, "", ok=False, note=f"{type(exc).__name__}: {exc}"[:300])
            continue
        seconds[(backbone, method, precision, cl)] = (s, flops)
        note = f"batch {batch}, LR patch {lr_patch}, {timed} timed steps"
        sink.add("steps", case, "it_per_s", 1 / s, "it/s", note=note)
        sink.add("steps", case, "tflop_per_it", flops / 1e12, "TFLOP", note="FlopCounterMode, forward+backward")
        peak = _peak_mb(device)
        sink.add("steps", case, "peak_mem_mb", peak if peak is not None else "", "MiB",
                 note="torch.cuda.max_memory_allocated" if peak is not None else "not measured on the CPU")
        mfu = flops / s / info.peak_flops if info.peak_flops else ""
        sink.add("steps", case, "mfu", mfu, "fraction", note=f"peak: {info.peak_name}")
    sink.add("steps", f"{backbone}/{method}", "host_peak_rss_mb", _host_rss_mb(), "MiB",
             note="ru_maxrss of the process so far (an upper bound of this workload)")


def _overheads(sink: RowSink, backbone: str, seconds: dict) -> None:
    for method in ("pcl-paper", "pcl-released"):
        for precision, cl in VARIANTS:
            base, pcl = seconds.get((backbone, "l1", precision, cl)), seconds.get((backbone, method, precision, cl))
            if base is None or pcl is None:
                continue
            case = case_name(backbone, method, precision, cl)
            time_ratio, flop_ratio = pcl[0] / base[0], pcl[1] / base[1]
            sink.add("steps", case, "pcl_time_over_l1", time_ratio, "x", note="seconds per step, +PCL / L1")
            sink.add("steps", case, "pcl_flop_over_l1", flop_ratio, "x", note="FLOPs per step, +PCL / L1")
            sink.add("steps", case, "pcl_time_per_flop_over_l1", time_ratio / flop_ratio, "x",
                     note="(s/FLOP of +PCL) / (s/FLOP of L1): 1 = the extras run as efficiently as the backbone")


def _trainer_layout_check(sink: RowSink, config: dict, device: torch.device, work: Path) -> None:
    """Set up the trainer the way a GPU run does (channels_last on): a model the trainer cannot lay
    out in channels_last fails here, by name, instead of at the start of a cluster job."""
    trial = {**config, "budget": {**config["budget"], "channels_last": True}, "experiment": config["experiment"] + "-cl"}
    try:
        build_trainer(trial, str(device), work)
    except Exception as exc:  # noqa: BLE001 - any failure of the setup is the finding
        sink.add("steps", config["backbone"], "trainer_setup_channels_last", 0, "", ok=False,
                 note=f"{type(exc).__name__}: {exc}"[:300])
        return
    sink.add("steps", config["backbone"], "trainer_setup_channels_last", 1, "", ok=True,
             note="pcl.train.loop.Trainer.setup with channels_last on")


def run(sink: RowSink, device: torch.device, info: DeviceInfo, *, tiny: bool, deadline: float) -> None:
    """Time every backbone x method x precision x memory format."""
    from pcl.models.registry import backbone_names

    batch, lr_patch = (TINY_BATCH, TINY_LR_PATCH) if tiny else (PAPER_BATCH, PAPER_LR_PATCH)
    timed = TINY_TIMED if tiny else GPU_TIMED
    seconds: dict = {}
    with tempfile.TemporaryDirectory(prefix="pcl-gpu-check-steps-") as tmp:
        for backbone in backbone_names():
            for method in METHODS:
                if time.monotonic() > deadline:
                    sink.add("steps", f"{backbone}/{method}", "skipped", 1, "", note="part time budget spent")
                    continue
                config = experiment_config(backbone, method, tiny=tiny, batch=batch, lr_patch=lr_patch)
                if method == "l1":
                    _trainer_layout_check(sink, config, device, Path(tmp))
                trainer = build_trainer(config, str(device), Path(tmp))
                _workload(sink, trainer, backbone, method, info, timed=timed, batch=batch, lr_patch=lr_patch,
                          deadline=deadline, seconds=seconds)
                del trainer
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            _overheads(sink, backbone, seconds)
