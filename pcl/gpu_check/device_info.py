"""What machine a GPU check ran on: device slug, names and versions, and its dense bf16 peak.

Why a table of peaks: model FLOP utilisation (MFU) is only comparable between runs when the
denominator is named; the vendor's dense (no sparsity) bf16 tensor-core figure is the usual one.
An unknown device gets no peak (MFU left empty) rather than a guessed one.
"""

from __future__ import annotations

import platform
import re
import shutil
import subprocess
from dataclasses import dataclass

import torch

#: Dense bf16 tensor-core peaks (FLOP/s) from the vendors' data sheets, most specific name first.
DENSE_BF16_PEAKS: tuple[tuple[str, str, float], ...] = (
    ("h100 pcie", "H100 PCIe dense bf16", 756e12),
    ("h100 nvl", "H100 NVL dense bf16", 835e12),
    ("h100", "H100 SXM dense bf16", 989e12),
    ("h200", "H200 dense bf16", 989e12),
    ("a100", "A100 dense bf16", 312e12),
)


@dataclass(frozen=True)
class DeviceInfo:
    """The facts the CSV and the summary name: slug (file name), model, driver, CUDA, torch, peak."""

    slug: str
    name: str
    driver: str
    cuda: str
    torch: str
    peak_name: str
    peak_flops: float | None


def peak_for(name: str) -> tuple[str, float | None]:
    """The dense bf16 peak of a device named ``name`` (``torch.cuda.get_device_name``)."""
    low = name.lower()
    for key, label, flops in DENSE_BF16_PEAKS:
        if key in low:
            return label, flops
    return "none known for this device (MFU not computed)", None


def slug_for(name: str, device_type: str) -> str:
    """``h100``, ``h200``, ``a100`` ...: the first known model token, else a cleaned-up name; ``cpu``."""
    if device_type != "cuda":
        return "cpu"
    low = name.lower()
    for key in ("h200", "h100", "a100", "l40s", "l4", "a10"):
        if key in low:
            return key
    return re.sub(r"[^a-z0-9]+", "-", low).strip("-") or "cuda"


def _driver() -> str:
    """The NVIDIA driver version (``nvidia-smi``), or ``n/a`` where there is none."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return "n/a"
    try:
        out = subprocess.run([exe, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=False).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return "n/a"
    return out[0].strip() if out else "n/a"


def describe(device: torch.device) -> DeviceInfo:
    """Facts of ``device`` (``cpu`` or ``cuda:N``)."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak_name, peak = peak_for(name)
        return DeviceInfo(slug=slug_for(name, "cuda"), name=name, driver=_driver(), cuda=str(torch.version.cuda),
                          torch=torch.__version__, peak_name=peak_name, peak_flops=peak)
    from pcl.device import cpu_model

    return DeviceInfo(slug="cpu", name=f"CPU {cpu_model()} ({platform.machine()})", driver="n/a",
                      cuda=str(torch.version.cuda), torch=torch.__version__,
                      peak_name="none known for a CPU (MFU not computed)", peak_flops=None)
