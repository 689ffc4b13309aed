"""Which device a computation runs on, and how that device is named in the outputs.

Why shared: ``pcl train`` and every ``pcl bench`` must accept and refuse the same ``--device``
values with the same messages, and every figure the harness writes (bench CSVs, training
provenance) must name its device the same way, so that timings from different tools can be
compared or told apart.  The training runtime (``pcl.train.runtime``) builds on these.
"""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from pcl.errors import PCLError


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` as a torch device.

    ``auto`` and a bare ``cuda`` mean the GPU of this process (``local_rank`` under torchrun);
    PCLError for an unknown name or CUDA asked for where there is none.
    """
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise PCLError(f"unknown device {name!r} ({exc}); use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise PCLError(f"device {name!r} requested but CUDA is not available; use --device cpu")
        if device.index is None:
            device = torch.device(f"cuda:{local_rank}")
    return device


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_description(device: torch.device) -> str:
    """``'NVIDIA H100 ... (CUDA 12.x)'`` or ``'CPU <model>, <n> torch threads'``."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"CPU {cpu_model()}, {torch.get_num_threads()} torch threads"


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU), so that a timer reads finished work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_setup(what: str, device: str, repeats: int, out_dir: Path) -> torch.device:
    """Validate a benchmark's arguments and create its output folder; return the device.

    Why: every ``pcl bench`` module must refuse the same bad inputs with the same one-line
    message (a repeat count below 1, an unknown device, CUDA asked for where there is none).
    """
    if repeats < 1:
        raise PCLError(f"{what} benchmark: repeats must be >= 1, got {repeats}")
    try:
        dev = resolve_device(device)
    except PCLError as exc:
        raise PCLError(f"{what} benchmark: {exc}") from None
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return dev
