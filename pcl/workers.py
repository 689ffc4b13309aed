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

#: Where the kernel says how many tasks are runnable, and which threads this process has.
LOADAVG = "/proc/loadavg"
TASKS = "/proc/self/task"
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


def _own_running_threads() -> int:
    """Threads of this process the kernel has running or ready to run (state ``R``): this thread,
    and torch's OpenMP team while it still spins after a parallel region."""
    count = 0
    for tid in os.listdir(TASKS):
        try:
            with open(os.path.join(TASKS, tid, "stat"), "rb") as fh:
                # The state is the field after the command name, which may itself hold ") ".
                count += fh.read().rsplit(b")", 1)[1][1:2] == b"R"
        except OSError:  # the thread ended meanwhile
            continue
    return count


def free_cores(team: int = 1) -> int | None:
    """Cores of this process's CPU set that nothing else wants right now, for a team of ``team``
    threads of this process (the caller's thread included), or ``None`` where the kernel does not
    say (no ``/proc``).

    Why: an OpenMP team is the fastest way to run many short torch calls on a quiet machine and the
    slowest on a busy one (every join waits for a descheduled thread), so the callers that can do
    either ask first. The count of runnable tasks in ``/proc/loadavg`` is a snapshot, not an average:
    it sees a training run on the other core at once. This process's runnable threads count as load
    only beyond ``team``: the team's own threads spin for a while after each parallel region and
    must not count themselves, but numpy's BLAS pool, still spinning after a product, competes for
    the cores like another process. A team thread that has fallen asleep and a BLAS thread that
    still spins look alike, so a BLAS pool can hide behind a sleeping team (see
    ``pcl bench metrics-load``, condition ``interleaved``). About 30 microseconds.
    """
    try:
        with open(LOADAVG, "rb") as fh:
            running = int(fh.read().split()[3].split(b"/")[0])
        own = _own_running_threads()
        load = max(0, running - own) + max(0, own - team)
        cores = len(os.sched_getaffinity(0))
    except (OSError, ValueError, IndexError, AttributeError):
        return None
    return max(0, cores - load)


def _forget_pools() -> None:
    global _LOCK
    _LOCK = threading.Lock()
    _POOLS.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools)
