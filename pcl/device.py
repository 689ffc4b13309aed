"""One-line description of the device a measurement ran on (benchmarks, run provenance).

Why shared: every figure the harness writes (bench CSVs, training provenance) must name its
device the same way, so timings from different tools can be compared or told apart.
"""

from __future__ import annotations

import platform
from pathlib import Path

import torch


def device_description(device: torch.device) -> str:
    """``'NVIDIA H100 ... (CUDA 12.x)'`` or ``'CPU <model>, <n> torch threads'``."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {model or platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads"


def bench_setup(what: str, device: str, repeats: int, out_dir: Path) -> torch.device:
    """Validate a benchmark's arguments and create its output folder; return the device.

    Why: every ``pcl bench`` module must refuse the same bad inputs with the same one-line
    message (a repeat count below 1, an unknown device, CUDA asked for where there is none).
    """
    from pcl.errors import PCLError

    if repeats < 1:
        raise PCLError(f"{what} benchmark: repeats must be >= 1, got {repeats}")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise PCLError(f"{what} benchmark: unknown device {device!r} ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise PCLError(f"{what} benchmark: device {device!r} requested but CUDA is not available; use --device cpu")
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return dev
