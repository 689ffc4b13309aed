"""The three conditions a CPU speed comparison runs under: idle, one core busy with another
process, and interleaved with numpy's BLAS, each function timed alternately in one process.

Why: a torch CPU path made of many short calls over an OpenMP team is fast alone and collapses
when another process holds a core, or when numpy's BLAS pool still spins from the previous call
(every join waits for a stalled thread).  The benchmarks of the exact paths (MATLAB bicubic,
Y-PSNR + SSIM) report all three, so a ratio measured on a quiet machine is not the only one.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from typing import Any, Callable

import numpy as np

CONDITIONS = ("idle", "loaded", "interleaved")


def _spin(stop: Any) -> None:
    """A busy core: pure Python, no threads of its own (the load of another user's job)."""
    while not stop.is_set():
        pass


def _numpy_work(a: np.ndarray) -> None:
    """What a numpy pipeline does between two calls: a BLAS product, which wakes numpy's pool."""
    a @ a


def timed(fns: dict[str, Callable[[], Any]], repeats: int, between: Callable[[], None] | None) -> dict[str, list[float]]:
    """Each function ``repeats`` times, alternating which goes first; ``between`` runs before each call."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            if between is not None:
                between()
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def under_condition(name: str, fns: dict[str, Callable[[], Any]], repeats: int) -> tuple[dict[str, list[float]], float]:
    """Timings under one of :data:`CONDITIONS` and the 1-minute load average at its end."""
    if name == "loaded":
        ctx = mp.get_context("spawn")
        stop = ctx.Event()
        busy = ctx.Process(target=_spin, args=(stop,), daemon=True)
        busy.start()
        time.sleep(1.0)  # let it take its core
        try:
            times = timed(fns, repeats, None)
            load = os.getloadavg()[0]
        finally:
            stop.set()
            busy.join(timeout=10)
        return times, load
    if name == "interleaved":
        a = np.random.default_rng(1).random((768, 768))
        return timed(fns, repeats, lambda: _numpy_work(a)), os.getloadavg()[0]
    if name != "idle":
        raise ValueError(f"unknown condition {name!r}; use one of {CONDITIONS}")
    return timed(fns, repeats, None), os.getloadavg()[0]
