"""The free-core count that decides whether a small image's SSIM runs on the caller's torch team or
on one single-threaded worker, and the promise that the choice never changes a score.

Expected values: the free-core cases are hand-derived from fake /proc files (cores in the CPU set
minus runnable tasks that are not this process's threads); the scores come from
:mod:`pcl.metrics.reference` (numpy/scipy, written independently of the strip scorer)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import pcl.metrics.ssim_strips as scorer
import pcl.workers as workers
from pcl.metrics import PROTOCOLS, evaluate_pair
from pcl.metrics.reference import reference_psnr_ssim


def _fake_proc(tmp_path: Path, running: int, threads: dict[str, str]) -> tuple[Path, Path]:
    """A /proc/loadavg with ``running`` runnable tasks and a task folder of threads (name: state)."""
    loadavg = tmp_path / "loadavg"
    loadavg.write_text(f"0.52 0.58 0.59 {running}/431 12345\n")
    tasks = tmp_path / "task"
    for tid, (name, state) in enumerate(threads.items(), start=100):
        (tasks / str(tid)).mkdir(parents=True)
        (tasks / str(tid) / "stat").write_text(f"{tid} ({name}) {state} 1 {tid} {tid} 0 -1 4194560\n")
    return loadavg, tasks


@pytest.mark.parametrize("running,threads,team,expected", [
    # Only this process runs (its main thread and a spinning thread of its two-thread team): all
    # four cores free.
    (2, {"python": "R", "omp": "R", "pcl-ssim_0": "S"}, 2, 4),
    # The same two runnable threads, but the caller asks for itself alone: the second one (say
    # numpy's BLAS pool, still spinning) takes a core.
    (2, {"python": "R", "omp": "R", "pcl-ssim_0": "S"}, 1, 3),
    # A team of two, and a third runnable thread of this process (the BLAS pool): three free.
    (3, {"python": "R", "omp": "R", "blas": "R"}, 2, 3),
    # One runnable task elsewhere (a training run): three free.
    (2, {"python": "R", "pcl-ssim_0": "S"}, 2, 3),
    # A thread name holding ") R " must not be read as a state: the state follows the last ')'.
    (3, {"odd) R (name": "S", "python": "R"}, 2, 2),
    # More runnable tasks elsewhere than cores: none free, never negative.
    (9, {"python": "R"}, 2, 0),
])
def test_free_cores_from_the_kernel_counts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, running: int,
                                           threads: dict[str, str], team: int, expected: int) -> None:
    loadavg, tasks = _fake_proc(tmp_path, running, threads)
    monkeypatch.setattr(workers, "LOADAVG", str(loadavg))
    monkeypatch.setattr(workers, "TASKS", str(tasks))
    monkeypatch.setattr(workers.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert workers.free_cores(team) == expected


def test_free_cores_unknown_without_proc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No /proc (macOS, a locked-down container): unknown, and the scorer takes the safe path.
    monkeypatch.setattr(workers, "LOADAVG", str(tmp_path / "absent"))
    assert workers.free_cores() is None
    monkeypatch.setattr(scorer, "free_cores", lambda team: None)
    monkeypatch.setattr(scorer, "_TEAM_CHOICE", (-1e9, False))  # no earlier look kept
    assert scorer._team_would_wait()


def test_free_cores_on_this_machine_is_within_the_cpu_set() -> None:
    free = workers.free_cores()
    if free is None:
        pytest.skip("this kernel has no /proc/loadavg")
    assert 0 <= free <= len(workers.os.sched_getaffinity(0))


@pytest.mark.parametrize("free,where", [(64, "MainThread"), (0, "pcl-ssim")])
def test_small_image_scores_the_same_on_the_team_and_on_a_worker(
        monkeypatch: pytest.MonkeyPatch, free: int, where: str) -> None:
    # Below SPLIT_MIN_PIXELS the strips are not split; free cores send them to the caller's thread
    # (its OpenMP team), busy ones to one single-threaded worker. Both must give the reference's
    # numbers, and the test checks which thread did the work.
    monkeypatch.setattr(scorer, "free_cores", lambda team: free)
    monkeypatch.setattr(scorer, "_TEAM_CHOICE", (-1e9, free == 64))  # the opposite of what is due
    ran_on: list[str] = []
    score_strips = scorer._score_strips

    def recording(*args):  # type: ignore[no-untyped-def]
        ran_on.append(threading.current_thread().name)
        return score_strips(*args)

    monkeypatch.setattr(scorer, "_score_strips", recording)
    rng = np.random.default_rng(5)
    hr = rng.integers(0, 256, size=(140, 96, 3), dtype=np.uint8)
    sr = np.clip(hr + rng.normal(0.0, 9.0, size=hr.shape), 0, 255).astype(np.float32)
    for protocol in PROTOCOLS:
        got = evaluate_pair(sr, hr, scale=4, protocol=protocol)
        assert got == pytest.approx(reference_psnr_ssim(sr, hr, scale=4, protocol=protocol), abs=1e-9)
    assert ran_on and all(name.startswith(where) for name in ran_on)


def test_every_path_gives_the_same_bits(monkeypatch: pytest.MonkeyPatch) -> None:
    # Sums are taken per row, then over the rows, so the strips, the workers and torch's threads
    # (which the machine's load chooses between) cannot move a score by even one bit. Real images:
    # a Set14 photo and Set5 butterfly against their x4 bicubic round trips.
    from PIL import Image

    from pcl.data.imresize import bicubic_degrade, bicubic_upscale
    from pcl.resources import resource_path

    pairs = []
    for dataset, name in (("Set14", "barbara"), ("Set5", "butterfly")):
        hr = np.array(Image.open(resource_path("benchmarks", dataset, "HR", f"{name}.png")).convert("RGB"))
        hr = hr[: hr.shape[0] // 4 * 4, : hr.shape[1] // 4 * 4]
        pairs.append((bicubic_upscale(bicubic_degrade(hr, 4), 4), hr))

    def scores(free: int, **settings: object) -> list[tuple[float, float]]:
        with monkeypatch.context() as m:
            m.setattr(scorer, "free_cores", lambda team: free)
            m.setattr(scorer, "_TEAM_CHOICE", (-1e9, free == 0))
            for key, value in settings.items():
                m.setattr(scorer, key, value)
            return [evaluate_pair(sr, hr, scale=4) for sr, hr in pairs]

    team = scores(64)
    assert scores(0) == team  # one single-threaded worker
    assert scores(0, STRIP_WORKERS=3) == team
    assert scores(64, TEAM_STRIP_PIXELS=0, STRIP_ROWS=16) == team
    assert scores(0, SPLIT_MIN_PIXELS=0, STRIP_PIXELS=0, STRIP_ROWS=24) == team
