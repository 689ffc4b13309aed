"""Child process of one GPU-check part: ``python -m pcl.gpu_check.part PART CSV DEVICE TINY SECONDS``.

Why a process per part: a part that hangs (a kernel that never returns, a deadlocked collective)
or overruns is killed at its budget by the parent without losing what the other parts measured;
the rows this process wrote before the kill stay in the CSV (each row rewrites it atomically).
The part also watches a soft deadline (90 % of its budget) and skips what is left by itself.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch


def main(part: str, csv_path: str, device_name: str, tiny: bool, seconds: float) -> int:
    from pcl.device import resolve_device
    from pcl.gpu_check import ddp, metrics, precision, resume, steps
    from pcl.gpu_check.device_info import describe
    from pcl.gpu_check.report import RowSink

    deadline = time.monotonic() + 0.9 * seconds
    device = resolve_device(device_name)
    if device.type == "cpu" and tiny:
        torch.set_num_threads(1)  # tiny CPU work: a second thread only waits on the first
    sink = RowSink(Path(csv_path))
    if part == "steps":
        steps.run(sink, device, describe(device), tiny=tiny, deadline=deadline)
    else:
        module = {"metrics": metrics, "precision": precision, "resume": resume, "ddp": ddp}[part]
        module.run(sink, device, tiny=tiny, deadline=deadline)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1", float(sys.argv[5])))
