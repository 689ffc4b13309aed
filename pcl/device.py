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
