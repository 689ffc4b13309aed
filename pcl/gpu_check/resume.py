"""Part ``resume``: a training run SIGKILLed after a checkpoint and resumed ends where an
uninterrupted run ends.

Three ``pcl train`` processes on the device (experiment ``edsr-s-pcl``, smoke tier networks):
an uninterrupted run and, beside it, a run killed with SIGKILL as soon as its first periodic
checkpoint exists (no handler runs, as on a node failure); then the killed run's command again,
which resumes from that checkpoint.  Checked: the kill came before the end, the resumed log continues at the checkpoint's
iteration with the uninterrupted run's losses, and the final weights agree.  On the CPU the runs
are ``--deterministic`` and must agree bitwise; on a GPU they run as production does (cuDNN
autotuning, TF32, non-deterministic atomics), so the weights are held to a relative L2
difference of 1e-3 and the logged losses to 1e-2 relative.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from pcl.gpu_check.report import RowSink

EXPERIMENT = "edsr-s-pcl"
GPU_WEIGHT_RTOL, GPU_LOSS_RTOL = 1e-3, 1e-2


def _command(run_dir: Path, cache: Path, device: torch.device, *, tiny: bool) -> list[str]:
    iterations, every = (12, 4) if tiny else (60, 20)
    cmd = [sys.executable, "-m", "pcl", "train", "--experiment", EXPERIMENT, "--tier", "smoke", "--run-dir", str(run_dir),
           "--device", str(device), "--iterations", str(iterations), "--checkpoint-every", str(every),
           "--log-every", str(every // 2), "--validate-every", "0", "--validation-images", "1", "--no-progress",
           "--no-tensorboard", "--data-cache", str(cache), "--workers", "0"]
    if device.type == "cpu":
        cmd += ["--deterministic", "--threads", "1"]
    return cmd


def _run(cmd: list[str], deadline: float) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=max(1.0, deadline - time.monotonic()), check=False)


def _prepare(cache: Path) -> None:
    """Prepare the smoke tier's training data into ``cache`` once, before the runs start together."""
    from pcl.gpu_check.workloads import experiment_config
    from pcl.train.data import DataSpec, prepare_training_data

    config = experiment_config("edsr-s", "pcl-paper", tiny=True, batch=2, lr_patch=8)
    prepare_training_data(DataSpec.from_dict(config["data"]), cache, workers=1)


def _run_and_kill(cmd: list[str], run_dir: Path, deadline: float) -> tuple[bool, int | None]:
    """Start ``cmd``; SIGKILL it once ``checkpoints/last.pt`` exists.  (killed before the end, iteration)."""
    from pcl.train.state import LAST, checkpoint_iteration

    last = run_dir / "checkpoints" / LAST
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while proc.poll() is None and not last.is_file() and time.monotonic() < deadline:
            time.sleep(0.005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    finished = (run_dir / "result.json").is_file()
    iteration = checkpoint_iteration(last if last.is_file() else None)
    return (not finished and isinstance(iteration, int)), iteration if isinstance(iteration, int) else None


def _log(run_dir: Path) -> dict[int, float]:
    with (run_dir / "log.csv").open(newline="", encoding="utf-8") as handle:
        return {int(r["iteration"]): float(r["loss"]) for r in csv.DictReader(handle) if r.get("loss")}


def _weights(run_dir: Path) -> torch.Tensor:
    from safetensors.torch import load_file

    tensors = load_file(str(run_dir / "model.safetensors"))
    return torch.cat([tensors[k].double().reshape(-1) for k in sorted(tensors)])


def _fail(sink: RowSink, quantity: str, proc: subprocess.CompletedProcess) -> None:
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    sink.add("resume", EXPERIMENT, quantity, proc.returncode, "exit code", ok=False, note=tail[:300])


def run(sink: RowSink, device: torch.device, *, tiny: bool, deadline: float) -> None:
    bitwise = device.type == "cpu"
    with tempfile.TemporaryDirectory(prefix="pcl-gpu-check-resume-") as tmp:
        root, cache = Path(tmp), Path(tmp) / "cache"
        straight, cut = root / "straight", root / "cut"
        _prepare(cache)
        # the uninterrupted run goes on beside the one that is killed (they share nothing but the
        # prepared data, which both only read)
        background = subprocess.Popen(_command(straight, cache, device, tiny=tiny), stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True)
        killed, at = _run_and_kill(_command(cut, cache, device, tiny=tiny), cut, deadline)
        try:
            _, err = background.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            background.kill()
            _, err = background.communicate()
        if background.returncode != 0:
            return _fail(sink, "uninterrupted_run", subprocess.CompletedProcess([], background.returncode, "", err))
        sink.add("resume", EXPERIMENT, "killed_after_checkpoint", at if at is not None else "", "iteration", ok=killed,
                 note="SIGKILL once checkpoints/last.pt existed, before the run's end")
        if not killed:
            return None
        proc = _run(_command(cut, cache, device, tiny=tiny), deadline)
        if proc.returncode != 0:
            return _fail(sink, "resumed_run", proc)
        _compare(sink, straight, cut, at, bitwise=bitwise)
    return None


def _compare(sink: RowSink, straight: Path, cut: Path, at: int, *, bitwise: bool) -> None:
    a_log, b_log = _log(straight), _log(cut)
    after = sorted(i for i in a_log if i > at)
    continues = bool(after) and all(i in b_log for i in after)
    sink.add("resume", EXPERIMENT, "log_continues", continues, "", ok=continues,
             note=f"resumed log holds every logged iteration after {at}: {after}")
    worst = max((abs(b_log[i] - a_log[i]) / max(abs(a_log[i]), 1e-12) for i in after if i in b_log), default=float("nan"))
    tol = 0.0 if bitwise else GPU_LOSS_RTOL
    sink.add("resume", EXPERIMENT, "loss_max_rel_diff", worst, "", tolerance=tol, ok=worst <= tol,
             note="logged losses after the checkpoint, resumed vs uninterrupted")
    wa, wb = _weights(straight), _weights(cut)
    if bitwise:
        same = bool(torch.equal(wa, wb))
        sink.add("resume", EXPERIMENT, "weights_bitwise_equal", same, "", tolerance="bitwise", ok=same,
                 note="--deterministic on the CPU")
    rel = float((wa - wb).norm() / wa.norm())
    tol = 0.0 if bitwise else GPU_WEIGHT_RTOL
    sink.add("resume", EXPERIMENT, "weights_rel_l2_diff", rel, "", tolerance=tol, ok=rel <= tol,
             note="||w_resumed - w_straight|| / ||w_straight||" + ("" if bitwise else "; cuDNN autotuning, not bitwise"))
