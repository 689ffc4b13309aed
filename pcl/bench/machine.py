"""What machine a benchmark ran on: the same code is 2x or 7x faster than its rival depending on the
CPU (MKL's float64 GEMM on AMD EPYC against Intel Xeon), so every bench row names the CPU."""

from __future__ import annotations

from pathlib import Path


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo ('' where there is none, e.g. macOS)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""
