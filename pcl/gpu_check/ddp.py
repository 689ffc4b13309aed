"""Part ``ddp``: torchrun with one process (and, with several GPUs, one per GPU) initialises the
process group (NCCL; gloo on the CPU), steps in DDP and checkpoints (see ``ddp_worker``).

With N > 1 GPUs the same global batch (16) is split over the ranks, as the trainer does, and the
speed-up per iteration over one process is reported (efficiency = speed-up / N).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from pcl.gpu_check.report import RowSink


def _torchrun(n: int, device: torch.device, tiny: bool, work: Path, deadline: float) -> tuple[dict | None, str]:
    out = work / f"ddp{n}.json"
    env = {**os.environ, "PCL_GPU_CHECK_DDP_DIR": str(work / f"run{n}")}
    device_name = "cpu" if device.type == "cpu" else "cuda"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
           "-m", "pcl.gpu_check.ddp_worker", str(out), device_name, "1" if tiny else "0"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False,
                              timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        return None, "torchrun ran past the part's time budget"
    if proc.returncode != 0 or not out.is_file():
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        return None, f"exit {proc.returncode}: " + (lines[-1] if lines else "no output")
    return json.loads(out.read_text(encoding="utf-8")), ""


def run(sink: RowSink, device: torch.device, *, tiny: bool, deadline: float) -> None:
    gpus = torch.cuda.device_count() if device.type == "cuda" else 1
    sizes = [1] + ([gpus] if gpus > 1 else [])
    results = {}
    with tempfile.TemporaryDirectory(prefix="pcl-gpu-check-ddp-") as tmp:
        for n in sizes:
            result, why = _torchrun(n, device, tiny, Path(tmp), deadline)
            case = f"torchrun nproc={n}"
            if result is None:
                sink.add("ddp", case, "ran", False, "", ok=False, note=why[:300])
                continue
            results[n] = result
            sink.add("ddp", case, "initialised_and_stepped", True, "", ok=True,
                     note=f"backend {result['backend']}, model {result['ddp_wrapped']}, world {result['world_size']}")
            sink.add("ddp", case, "checkpoint_matches_all_ranks", result["all_ranks_match_checkpoint"], "",
                     ok=result["all_ranks_match_checkpoint"], note=f"iteration {result['iteration']}")
            sink.add("ddp", case, "it_per_s", 1 / result["s_per_it"], "it/s",
                     note=f"global batch {result['batch']}, LR patch {result['lr_patch']}")
    sink.add("ddp", "devices", "gpus_visible", gpus if device.type == "cuda" else 0, "", note="torch.cuda.device_count()")
    if gpus > 1 and 1 in results and gpus in results:
        speedup = results[1]["s_per_it"] / results[gpus]["s_per_it"]
        sink.add("ddp", f"torchrun nproc={gpus}", "speedup_over_1", speedup, "x", note="same global batch")
        sink.add("ddp", f"torchrun nproc={gpus}", "scaling_efficiency", speedup / gpus, "fraction")
