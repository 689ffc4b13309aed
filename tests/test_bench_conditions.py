"""The conditions the exact-path benchmarks run under: alternating order, a real busy process for
``loaded``, and a clear error for an unknown condition (hand-derived expectations)."""

from __future__ import annotations

import os

import pytest

from pcl.bench.conditions import CONDITIONS, timed, under_condition


def test_timed_alternates_which_goes_first() -> None:
    calls: list[str] = []
    fns = {name: (lambda name=name: calls.append(name)) for name in ("a", "b", "c")}
    times = timed(fns, 3, None)
    assert calls == ["a", "b", "c", "c", "b", "a", "a", "b", "c"]
    assert {name: len(ts) for name, ts in times.items()} == {"a": 3, "b": 3, "c": 3}


def test_between_runs_before_every_call() -> None:
    calls: list[str] = []
    timed({"x": lambda: calls.append("x"), "y": lambda: calls.append("y")}, 2, lambda: calls.append("-"))
    assert calls == ["-", "x", "-", "y", "-", "y", "-", "x"]


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="needs Linux's CPU-set call")
def test_loaded_holds_a_core_while_timing() -> None:
    # The busy process is a separate, spinning process: while the functions run, the kernel counts
    # one more runnable task than this process's own threads.
    from pcl.workers import free_cores

    seen: list[int | None] = []
    times, load = under_condition("loaded", {"probe": lambda: seen.append(free_cores(64))}, 1)
    if seen[0] is None:
        pytest.skip("this kernel has no /proc/loadavg")
    assert seen[0] < len(os.sched_getaffinity(0)) and len(times["probe"]) == 1 and load >= 0.0


def test_unknown_condition_is_named() -> None:
    assert CONDITIONS == ("idle", "loaded", "interleaved")
    with pytest.raises(ValueError, match="'busy'"):
        under_condition("busy", {"f": lambda: None}, 1)
