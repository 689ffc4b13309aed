"""Process-wide pools of threads whose torch runs single-threaded, for CPU work split by hand.

Why not torch's intra-op threads: the CPU paths that use these pools (the SSIM strip scorer,
:mod:`pcl.metrics.ssim_strips`, and the MATLAB bicubic blocks, :mod:`pcl.data.imresize`) run many
small operations per call. With torch's OpenMP team each one is a fork/join; on a quiet machine that
costs little, but when another process (or numpy's BLAS pool) holds a core every join waits for a
descheduled thread, about a scheduler tick per step. Measured on a 2-core VM: an SSIM image took
1.47 s that way under a load of 3 against 0.028 s with these workers, and an x1/4 bicubic of a
2040x1356 image 0.32 s at two torch threads with a training run on the cores against 0.014 s at one.
Workers that each run a whole share of the work single-threaded never wait on each other until the
end of the call, and a busy core slows only its own share.

``torch.set_num_threads(1)`` inside a worker only changes that thread's OpenMP and MKL settings, but
ATen also stores the value as the default for threads created later, so the caller's value is put
back once every worker has started. Pools are forgotten in a forked child (threads do not survive a
fork).
"""

from __future__ import annotations

import concurrent.futures
import os
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch

T = TypeVar("T")

_LOCK = threading.Lock()
_POOLS: dict[tuple[str, int], concurrent.futures.ThreadPoolExecutor] = {}


def _single_threaded_worker() -> None:
    torch.get_num_threads()  # let ATen initialise this thread's OpenMP/MKL settings first
    torch.set_num_threads(1)


def torch_pool(name: str, n: int) -> concurrent.futures.ThreadPoolExecutor:
    """The pool ``name`` of ``n`` single-threaded torch workers (made on first use).

    Each user has its own name, so work running in one pool can call a user of another pool
    without waiting for a worker of its own.
    """
    with _LOCK:
        pool = _POOLS.get((name, n))
        if pool is None:
            before = torch.get_num_threads()
            pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=n, thread_name_prefix=f"pcl-{name}", initializer=_single_threaded_worker
            )
            barrier = threading.Barrier(n)  # start every worker now (each runs the initializer)
            for job in [pool.submit(barrier.wait) for _ in range(n)]:
                job.result()
            torch.set_num_threads(before)
            _POOLS[(name, n)] = pool
        return pool


def split_run(name: str, n: int, work: Callable[[Sequence[T]], object], items: Sequence[T]) -> list[object]:
    """``work`` on ``n`` contiguous shares of ``items`` in pool ``name``; the results in order."""
    n = max(1, min(n, len(items)))
    cuts = [len(items) * k // n for k in range(n + 1)]
    pool = torch_pool(name, n)
    jobs = [pool.submit(work, items[cuts[k]:cuts[k + 1]]) for k in range(n)]
    return [job.result() for job in jobs]


def _forget_pools() -> None:
    global _LOCK
    _LOCK = threading.Lock()
    _POOLS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)
