"""A workflow manager killed while its training job runs, and the documented recovery.

The cluster case: Snakemake dies (kill -9, a lost login node) and its training job keeps running
(on SLURM the job is not cancelled).  The recovery is ``snakemake --unlock`` (what Snakemake's
lock message says) and then ``snakemake --rerun-incomplete`` (docs/cluster.md); that launches a
second trainer on the same run directory.  The second trainer must stop before it touches anything, in one line
naming the orphan (host, pid), while the orphan goes on and finishes its run with a clean log;
once it is gone, ``--rerun-incomplete`` succeeds.

When the orphan has already finished before the recovery, ``--rerun-incomplete`` re-runs the job:
Snakemake deletes its outputs and the trainer resumes from the orphan's last checkpoint, at the
end of the budget, so it only validates and writes the outputs again.

Everything is the real thing: Snakemake on the checkout's workflow in a fresh folder (fixture
``workdir``), the ``train`` rule of workflow/rules/train.smk, the trainer's lock
(pcl/train/lock.py), processes killed with signals.  The one change is the smoke budget in the
folder's copy of the catalog: longer where the orphan must still be training while the
recovery's two Snakemake commands start (about 30 s on a loaded 2-core machine; the orphan then
has about as long again to go).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import pytest
import yaml

from pcl.train.lock import LOCK_NAME

pytestmark = [pytest.mark.faults, pytest.mark.slow]

TIER, EXPERIMENT = "smoke", "edsr-s-baseline"  # the smallest smoke network of the catalog
RUN = Path("runs") / TIER / EXPERIMENT  # the train rule's run_dir (training.run_root of config.yaml)
TARGET = str(RUN / "result.json")
TRAIN_LOG = Path("logs") / "train" / TIER / f"{EXPERIMENT}.log"  # the train rule's log
#: Smoke budget (iterations, log_every, checkpoint_every) written into the folder's catalog, at
#: about 21 iterations/s on one loaded core: an orphan that outlives the recovery, and a short one.
LONG, SHORT = (1400, 50, 350), (40, 10, 20)
#: Parts of the folder that the orphan or Snakemake write; everything else must stay as it is.
WRITTEN = {"runs", "logs", ".snakemake", "benchmarks"}


def _env(workdir: Path) -> dict[str, str]:
    """The environment tests/test_workflow.py gives Snakemake: this venv first on PATH (the rule
    runs ``python -m pcl``), HOME in the folder, no SLURM job id."""
    return {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(workdir), "LANG": "C.UTF-8"}


def _argv(*options: str) -> list[str]:
    """Snakemake on the one training target, with the tier's one-job-per-run rules (config/per_run.yaml
    of the workflow folder, written by ``_per_run``; ``--config`` takes every word up to ``--``)."""
    return [sys.executable, "-m", "snakemake", "--cores", "1", "--configfile", PER_RUN, "--config", f"tiers=[{TIER}]",
            *options, "--", TARGET]


PER_RUN = "config/per_run.yaml"


def _per_run(workdir: Path) -> None:
    """``group: 0`` for the tier: rule ``train`` trains the target alone, as on the cluster tiers."""
    (workdir / PER_RUN).write_text(f"training:\n  tiers:\n    {TIER}:\n      group: 0\n")


def _snakemake(workdir: Path, *options: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """One Snakemake command to its end, in its own process group, which is killed on a timeout
    (the jobs it started included)."""
    _per_run(workdir)
    proc = subprocess.Popen(_argv(*options), cwd=workdir, env=_env(workdir), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _smoke_budget(workdir: Path, budget: tuple[int, int, int]) -> None:
    """Set the smoke budget in the folder's copy of the catalog (the rule passes
    ``--catalog config/experiments.yaml``, training.catalog of config.yaml)."""
    path = workdir / "config" / "experiments.yaml"
    catalog = yaml.safe_load(path.read_text())
    iterations, log_every, checkpoint_every = budget
    catalog["tiers"][TIER]["budget"].update(iterations=iterations, log_every=log_every,
                                            checkpoint_every=checkpoint_every)
    path.write_text(yaml.safe_dump(catalog, sort_keys=False))


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie nobody reaps counts as ended)."""
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False


def _wait(condition, what: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"{what}: not within {seconds} s"
        time.sleep(0.05)


def _lock_pid(run: Path) -> int | None:
    """The pid in the run's lock record; None while the file is absent or its record unwritten."""
    try:
        return int(json.loads((run / LOCK_NAME).read_text())["pid"])
    except (FileNotFoundError, ValueError, KeyError):
        return None


def _log_rows(run: Path) -> list[tuple[int, bool]]:
    """(iteration, is a validation row) of every row of log.csv, in file order."""
    with (run / "log.csv").open(newline="") as handle:
        return [(int(r["iteration"]), bool(r["val_psnr"])) for r in csv.DictReader(handle)]


def _logged(run: Path) -> bool:
    """True once log.csv holds its header and one whole row."""
    try:
        return (run / "log.csv").read_bytes().count(b"\n") >= 2
    except FileNotFoundError:
        return False


def _one_run_log(budget: tuple[int, int, int]) -> list[tuple[int, bool]]:
    """What one uninterrupted trainer writes (pcl/train/loop.py): a row every log_every
    iterations, then the validation row of the end (validate_every 0 in the smoke budget)."""
    iterations, log_every, _ = budget
    return [(i, False) for i in range(log_every, iterations + 1, log_every)] + [(iterations, True)]


def _check_outputs(run: Path, iterations: int, sessions: int) -> None:
    """A complete run with this many sessions whose model file is the one its records name."""
    result = json.loads((run / "result.json").read_text())
    assert (result["iterations"], result["complete"], result["sessions"]) == (iterations, True, sessions)
    model = json.loads((run / "model.json").read_text())
    assert model["sha256"] == result["model_sha256"]
    assert hashlib.sha256((run / "model.safetensors").read_bytes()).hexdigest() == model["sha256"]
    assert not (run / LOCK_NAME).exists()


def _tree(root: Path, skip: set[str] = frozenset()) -> dict[str, str]:
    """sha256 of every file (link target of every link) under ``root``, top-level names in
    ``skip`` left out, links not followed: equal before and after means nothing changed there."""
    out = {}
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        if here == root:
            dirs[:] = [d for d in dirs if d not in skip]
            files = [f for f in files if f not in skip]
        for name in dirs + files:
            path = here / name
            key = path.relative_to(root).as_posix()
            if path.is_symlink():
                out[key] = "-> " + os.readlink(path)
            elif path.is_file():
                out[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _start(workdir: Path, err: IO[str]) -> tuple[subprocess.Popen, int]:
    """Snakemake on the target in its own session, and the pid of its trainer once that holds the
    run's lock (read from the lock record, checked to be ``python -m pcl train``)."""
    _per_run(workdir)
    manager = subprocess.Popen(_argv(), cwd=workdir, env=_env(workdir), stdout=subprocess.DEVNULL, stderr=err,
                               text=True, start_new_session=True)
    try:
        _wait(lambda: _lock_pid(workdir / RUN) is not None or manager.poll() is not None, "the trainer's lock", 180)
        assert manager.poll() is None, err.seek(0) or err.read()[-3000:]
        trainer = _lock_pid(workdir / RUN)
        assert b"pcl\0train\0" in Path(f"/proc/{trainer}/cmdline").read_bytes()
    except BaseException:
        _stop(manager, None)
        raise
    return manager, trainer


def _orphan(manager: subprocess.Popen, trainer: int) -> None:
    """Kill Snakemake alone (not its process group): its training job is left running."""
    os.kill(manager.pid, signal.SIGKILL)
    manager.wait(timeout=30)
    assert _alive(trainer), "the trainer ended with Snakemake"


def _stop(manager: subprocess.Popen, orphan: int | None) -> None:
    """Kill what this test started and is still running: Snakemake's process group (Snakemake, its
    job shell, the trainer and tee); once Snakemake is gone, that group only while the orphan is
    still in it."""
    if manager.poll() is None:
        os.killpg(manager.pid, signal.SIGKILL)
        manager.wait(timeout=30)
    elif orphan is not None and _alive(orphan):
        try:
            if os.getpgid(orphan) == manager.pid:
                os.killpg(manager.pid, signal.SIGKILL)
            else:
                os.kill(orphan, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_a_rerun_after_snakemake_was_killed_is_refused_while_its_trainer_runs_and_succeeds_after(
        workdir: Path) -> None:
    _smoke_budget(workdir, LONG)
    run = workdir / RUN
    orphan = None
    with tempfile.TemporaryFile("w+") as manager_err:
        manager, orphan = _start(workdir, manager_err)
        try:
            # caught training: once it has logged its first row
            _wait(lambda: _logged(run) or not _alive(orphan), "the first log row", 180)
            _orphan(manager, orphan)

            unlock = _snakemake(workdir, "--unlock")
            assert unlock.returncode == 0, unlock.stderr[-3000:]
            outside, record = _tree(workdir, WRITTEN), (run / LOCK_NAME).read_bytes()
            rerun = _snakemake(workdir, "--rerun-incomplete")
            # What the user sees: Snakemake fails the job and points at its log, where the refused
            # trainer wrote one line (pcl/train/lock.py RunLock._busy) after the rule's header line.
            assert _alive(orphan), "the orphan ended before the second trainer asked for the lock"
            assert rerun.returncode == 1, rerun.stderr[-3000:]
            assert "Error in rule train" in rerun.stderr and str(TRAIN_LOG) in rerun.stderr
            host = socket.gethostname()
            header, *said = (workdir / TRAIN_LOG).read_text().splitlines()
            assert header.startswith(f"train on {host}:"), header
            assert len(said) == 1, said
            assert said[0].startswith(f"pcl: error: run directory {RUN} is in use by another trainer "
                                      f"(host {host}, pid {orphan}, SLURM job none, started "), said
            assert said[0].endswith(f"let it finish, or stop it first (`kill {orphan}` on {host}), "
                                    "then rerun this command"), said
            # ... and touched nothing: the orphan's lock record and everything outside the run as they were.
            assert (run / LOCK_NAME).read_bytes() == record
            assert _tree(workdir, WRITTEN) == outside

            # The orphan goes on undisturbed and finishes its run: one row per logged iteration.
            _wait(lambda: not _alive(orphan), "the orphan's end", 300)
            assert _log_rows(run) == _one_run_log(LONG)
            _check_outputs(run, LONG[0], sessions=1)
        finally:
            _stop(manager, orphan)

    # Now the recovery succeeds.  The refused job's failure made Snakemake drop the outputs'
    # incomplete marks (there was nothing to delete then), so it takes the orphan's complete outputs
    # as they are; only a holder that was stopped before its end leaves a job to resume.
    finished = _tree(run)
    final = _snakemake(workdir, "--rerun-incomplete")
    assert final.returncode == 0, final.stderr[-3000:]
    assert _tree(run) == finished


def test_a_rerun_after_the_orphan_finished_resumes_from_its_checkpoint_and_keeps_one_log(workdir: Path) -> None:
    _smoke_budget(workdir, SHORT)
    run = workdir / RUN
    orphan = None
    with tempfile.TemporaryFile("w+") as manager_err:
        manager, orphan = _start(workdir, manager_err)
        try:
            _orphan(manager, orphan)
            _wait(lambda: not _alive(orphan), "the orphan's end", 300)
        finally:
            _stop(manager, orphan)
    assert _log_rows(run) == _one_run_log(SHORT)
    _check_outputs(run, SHORT[0], sessions=1)
    outside = _tree(workdir, WRITTEN)

    unlock = _snakemake(workdir, "--unlock")
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    rerun = _snakemake(workdir, "--rerun-incomplete")
    # The outputs were still marked incomplete: Snakemake deleted and re-made them; the trainer
    # resumed at the orphan's last checkpoint (the end of the budget) and trained nothing more.
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    said = (workdir / TRAIN_LOG).read_text()
    assert f"iterations {SHORT[0]}->{SHORT[0]}" in said and f"resumed from {RUN}/checkpoints/last.pt" in said, said
    _check_outputs(run, SHORT[0], sessions=2)
    assert _tree(workdir, WRITTEN) == outside
    assert _log_rows(run) == _one_run_log(SHORT)  # the final validation once, though it ran twice
