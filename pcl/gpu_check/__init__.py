"""``pcl gpu-check``: one command that exercises every GPU path of the harness and writes
``results/bench/gpu_<device>.csv`` plus a markdown summary (see ``pcl.gpu_check.runner``).

Modules: ``runner`` (parts, budgets, child processes), ``part`` (the child's entry point),
``report`` (CSV rows, summary), ``device_info`` (slug, versions, dense bf16 peaks), ``workloads``
(trainers at paper or tiny size) and one module per part: ``metrics``, ``steps``, ``precision``,
``resume``, ``ddp`` (+ ``ddp_worker``, run under torchrun).
"""

from __future__ import annotations

from pcl.gpu_check.runner import run_gpu_check

__all__ = ["run_gpu_check"]
