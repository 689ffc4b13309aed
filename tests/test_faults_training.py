"""Broken models, concurrent and crashed trainers, damaged run files: what the user sees and what is left.

Every case asserts the exit code, the one line the user reads (naming the file, checkpoint or
trainer) and that nothing else in the folders involved changed.  The trainings are the tiny smoke
setting of tests/test_trainer.py (three 96x96 crops, batch 2, 12x12 LR patches); trainers that
must be stopped or held at a known point run as subprocesses through a small wrapper that pauses
them (``hold``) or cuts a checkpoint write in half (``cut``).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pcl.cli import main
from pcl.cli_train import add_train_parser
from pcl.errors import PCLError
from pcl.train.lock import LOCK_NAME, RunLock
from pcl.train.state import load_training_state
from pcl.train.step import TrainStep

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[1]
CATALOG = REPO / "config" / "experiments.yaml"
ENV = {**os.environ, "PYTHONPATH": str(REPO)}

#: Runs ``pcl`` with one fault added: ``hold`` pauses before iteration 2 until the file ``go``
#: exists (after writing its pid into ``marker``); ``cut`` writes half of the second checkpoint
#: into its temporary file, writes its pid into ``marker`` and sleeps, so that the test can kill
#: it mid-write.
WRAPPER = """
import io, os, sys, time
from pathlib import Path
mode, marker, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
def announce():
    staged = marker.with_name(marker.name + ".part")
    staged.write_text(str(os.getpid()))
    os.replace(staged, marker)
if mode == "hold":
    import pcl.train.step as step
    original = step.TrainStep.__call__
    def held(self, lr, hr, iteration, **options):
        if iteration == 1:
            announce()
            deadline = time.monotonic() + 120
            while not go.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        return original(self, lr, hr, iteration, **options)
    step.TrainStep.__call__ = held
elif mode == "cut":
    import torch
    import pcl.train.loop as loop
    from pcl.atomic import atomic_write
    saves = []
    def cut(obj, path):
        saves.append(path)
        if len(saves) < 2:
            return atomic_write(path, lambda handle: torch.save(obj, handle))
        def half(handle):
            buffer = io.BytesIO()
            torch.save(obj, buffer)
            handle.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
            handle.flush()
            os.fsync(handle.fileno())
            announce()
            time.sleep(120)
        return atomic_write(path, half)
    loop.atomic_torch_save = cut
from pcl.cli import main
sys.exit(main(sys.argv[4:]))
"""


def _argv(run_dir: Path, train_dir: Path, cache: Path, *extra: str, experiment: str = "edsr-s-baseline") -> list[str]:
    return ["train", "--experiment", experiment, "--tier", "smoke", "--run-dir", str(run_dir), "--catalog", str(CATALOG),
            "--train-dir", str(train_dir), "--data-cache", str(cache), "--validation-images", "1", "--no-progress",
            "--batch", "2", "--lr-patch", "12", "--no-tensorboard", "--threads", "1", *extra]


def _train(*argv: str) -> int:
    """The train command in this process, as the CLI runs it (PCLError propagates)."""
    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers())
    args = parser.parse_args(list(argv))
    return args.func(args)


def _cli(capsys, *argv: str) -> tuple[int, list[str]]:
    """``pcl ARGV`` in this process: exit code and every non-empty line it wrote to stderr."""
    code = main(["--log-level", "WARNING", *argv])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def _tree(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` by relative path: 'nothing else changed' is equality."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _log_iterations(run: Path) -> list[tuple[int, bool]]:
    """(iteration, is a validation row) of every row of log.csv, in file order."""
    with (run / "log.csv").open(newline="") as handle:
        return [(int(r["iteration"]), bool(r["val_psnr"])) for r in csv.DictReader(handle)]


def _pcl(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pcl", "--log-level", "WARNING", *argv], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=300, **kwargs)


def _wait_for(path: Path, proc: subprocess.Popen | None = None, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc is None or proc.poll() is None, proc.stderr.read() if proc.stderr else proc.returncode
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def _wait_gone(pid: int, seconds: float = 30) -> None:
    """Until ``pid`` has exited (gone, or a zombie nobody reaps)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if "State:\tZ" in Path(f"/proc/{pid}/status").read_text():
                return
        except (FileNotFoundError, ProcessLookupError):
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} still runs")


# --- non-finite models ------------------------------------------------------------------------


def _nan_checkpoint(folder: Path) -> Path:
    from pcl.models import build_model
    from pcl.models.checkpoints import save_checkpoint

    model = build_model("edsr-s", n_resblocks=2, n_feats=8)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(float("nan"))
    path = folder / "diverged.safetensors"
    save_checkpoint(model, path, arch="edsr-s", config={"n_resblocks": 2, "n_feats": 8}, provenance={})
    return path


def test_a_nan_model_is_refused_by_evaluate_and_writes_nothing(tmp_path: Path, set5_dir: Path, capsys) -> None:
    """All-NaN weights give NaN outputs, which quantise to black images scored as ~7.6 dB unless
    refused: exit 2, one line naming the checkpoint and the first image, no rows, no SR images."""
    ckpt = _nan_checkpoint(tmp_path / "ckpt")
    before = _tree(tmp_path)
    out, sr = tmp_path / "out" / "Set5.csv", tmp_path / "sr"
    code, lines = _cli(capsys, "evaluate", "--model", "auto", "--checkpoint", str(ckpt), "--hr-dir", str(set5_dir),
                       "--dataset", "Set5", "--out", str(out), "--save-sr", str(sr))
    assert code == 2 and len(lines) == 1, lines
    assert str(ckpt) in lines[0] and "image #1" in lines[0] and "NaN or inf" in lines[0]
    assert not out.exists() and not out.with_suffix(".json").exists()
    assert not sr.exists() or not any(sr.iterdir())
    assert _tree(tmp_path) == before


def test_the_predictor_names_the_weights_and_the_image_of_a_nan_output() -> None:
    """A network finite on one image and NaN on the next: the first output is returned, the second
    refused with its position; ``named`` adds the caller's image name (numbers: 3 channels x 8 x 8
    outputs of a x1 identity on an 8x8 image, all NaN)."""
    from pcl.inference import InferenceSettings, ModelPredictor, NonFiniteOutput

    class Breaks(torch.nn.Module):
        scale = 1

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * float("nan") if float(x.mean()) > 0.5 else x

    predictor = ModelPredictor(Breaks(), InferenceSettings(), name="toy", source="weights of a toy")
    dark, bright = np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 200, np.uint8)
    assert np.array_equal(predictor(dark), dark)
    with pytest.raises(NonFiniteOutput) as caught:
        predictor(bright)
    message = str(caught.value)
    assert message.startswith("weights of a toy: ") and "image #2 (LR 8x8)" in message and "192 of 192" in message
    assert "image butterfly (image #2" in str(caught.value.named("butterfly"))
    assert predictor.images == 1


def _nan_from(iteration: int, monkeypatch) -> None:
    """The loss of ``iteration`` (1-based) is NaN: its gradient turns every weight NaN."""
    losses = TrainStep.losses

    def poisoned(self, lr, hr, i):
        total, *terms = losses(self, lr, hr, i)
        return (total * float("nan") if i + 1 == iteration else total, *terms)

    monkeypatch.setattr(TrainStep, "losses", poisoned)


def test_nan_before_a_validation_writes_no_best_and_says_so(tmp_path: Path, train_dir: Path, cache: Path,
                                                             monkeypatch, capsys) -> None:
    """NaN at iteration 1, validation due at 2, the loss read only every 100: the weights check
    before validating stops the run (exit 1, the failed-run code); no best.safetensors of NaN
    weights, and the message says nothing was written."""
    _nan_from(1, monkeypatch)
    run = tmp_path / "nan-early"
    assert _train(*_argv(run, train_dir, cache, "--iterations", "6", "--validate-every", "2", "--log-every", "100",
                         "--checkpoint-every", "0")) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("pcl train")]
    assert len(err) == 1 and "NaN or inf" in err[0] and "iteration 2" in err[0], err
    assert "no checkpoint had been written yet" in err[0]
    assert not (run / "checkpoints" / "best.safetensors").exists() and not (run / "checkpoints" / "last.pt").exists()
    assert not (run / "result.json").exists() and not (run / "model.safetensors").exists()


def test_nan_after_good_validations_keeps_the_finite_best_and_names_it(tmp_path: Path, train_dir: Path, cache: Path,
                                                                       monkeypatch, capsys) -> None:
    """Validations at 2 and 4, a checkpoint at 4, NaN at 5, validation due at 6: the run stops
    there; best.safetensors still holds finite weights of iteration 2 or 4, and the message names
    both files with the iterations their own files record."""
    _nan_from(5, monkeypatch)
    run = tmp_path / "nan-late"
    assert _train(*_argv(run, train_dir, cache, "--iterations", "8", "--validate-every", "2", "--log-every", "100",
                         "--checkpoint-every", "4")) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("pcl train")]
    assert len(err) == 1 and "by iteration 6" in err[0], err
    best = run / "checkpoints" / "best.safetensors"
    best_iteration = json.loads(best.with_suffix(".json").read_text())["provenance"]["iteration"]
    assert best_iteration in (2, 4)
    assert all(torch.isfinite(t).all() for t in load_file(str(best)).values())
    assert "last.pt (iteration 4)" in err[0] and f"{best} holds the best weights validated before " \
        f"(iteration {best_iteration})" in err[0]
    assert load_training_state(run / "checkpoints" / "last.pt")["iteration"] == 4


def test_a_nan_validation_output_of_finite_weights_stops_the_run_without_best(tmp_path: Path, train_dir: Path,
                                                                              cache: Path, monkeypatch, capsys) -> None:
    """Finite weights whose output overflows (here: every validation output turned NaN): the run
    stops at the first validation (exit 1) naming the image, and no best weights are written."""
    from pcl.inference import ModelPredictor

    run_model = ModelPredictor.run
    monkeypatch.setattr(ModelPredictor, "run", lambda self, x: run_model(self, x) * float("nan"))
    run = tmp_path / "overflow"
    assert _train(*_argv(run, train_dir, cache, "--iterations", "4", "--validate-every", "2",
                         "--checkpoint-every", "0")) == 1
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("pcl train")]
    assert len(err) == 1 and "the validation output of Set5 image baby" in err[0] and "by iteration 2" in err[0], err
    assert "no checkpoint had been written yet" in err[0]
    assert not (run / "checkpoints" / "best.safetensors").exists()


# --- one trainer per run directory -----------------------------------------------------------


def test_the_lock_refuses_a_second_holder_and_is_gone_after_release(tmp_path: Path) -> None:
    """flock is per open file: a second RunLock in this process is a second trainer.  The record
    names this process (pid from os.getpid, host from socket.gethostname)."""
    first = RunLock(tmp_path)
    first.acquire()
    record = json.loads((tmp_path / LOCK_NAME).read_text())
    assert record["pid"] == os.getpid() and record["host"] == socket.gethostname()
    with pytest.raises(PCLError) as caught:
        RunLock(tmp_path).acquire()
    assert f"pid {os.getpid()}" in str(caught.value) and "in use by another trainer" in str(caught.value)
    assert json.loads((tmp_path / LOCK_NAME).read_text()) == record
    first.release()
    assert not (tmp_path / LOCK_NAME).exists()
    with RunLock(tmp_path):
        assert (tmp_path / LOCK_NAME).exists()


def _record(folder: Path, **fields) -> Path:
    path = folder / LOCK_NAME
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": socket.gethostname(), "pid": 1, "started": "2026-01-01T00:00:00+00:00",
                                "slurm_job": None, **fields}))
    return path


def test_a_lock_of_another_host_is_refused_unless_it_is_our_requeued_job(tmp_path: Path, monkeypatch, caplog) -> None:
    """A record of another host cannot be checked from here: refused (file left as it is) unless
    its SLURM job id is ours, which is a requeue of this very job."""
    _fake_squeue(tmp_path.parent / f"{tmp_path.name}-bin", monkeypatch, stdout="RUNNING\n")
    path = _record(tmp_path, host="node-b", pid=4242, slurm_job="777")
    text = path.read_text()
    monkeypatch.setenv("SLURM_JOB_ID", "778")
    with pytest.raises(PCLError) as caught:
        RunLock(tmp_path).acquire()
    message = str(caught.value)
    assert "node-b" in message and "pid 4242" in message and "SLURM job 777" in message
    assert f"delete {path}" in message and "squeue -j 777" in message and "\n" not in message
    assert path.read_text() == text
    monkeypatch.setenv("SLURM_JOB_ID", "777")
    with caplog.at_level("WARNING", logger="pcl.train.lock"), RunLock(tmp_path):
        assert json.loads(path.read_text())["host"] == socket.gethostname()
    assert "the same SLURM job, requeued" in caplog.text and "node-b" in caplog.text


def _fake_squeue(folder: Path, monkeypatch, *, stdout: str = "", stderr: str = "", code: int = 0) -> None:
    """A ``squeue`` on PATH that answers as SLURM would for one job (its real output format, ``-o %T``)."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "squeue"
    script.write_text(f"#!/bin/sh\nprintf '%s' '{stdout}'\nprintf '%s' '{stderr}' >&2\nexit {code}\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")


@pytest.mark.parametrize(
    ("answer", "taken"),
    [
        (dict(stdout=""), True),  # squeue lists nothing: the job has left the queue
        (dict(stdout="COMPLETED\n"), True),
        (dict(stderr="slurm_load_jobs error: Invalid job id specified", code=1), True),
        (dict(stdout="RUNNING\n"), False),
        (dict(stderr="Unable to contact slurm controller", code=1), False),  # doubt: still running
    ],
)
def test_a_lock_of_another_host_is_taken_over_only_when_slurm_says_its_job_ended(
        tmp_path: Path, monkeypatch, caplog, answer: dict, taken: bool) -> None:
    """A retry of a hard-killed job runs as a new job on another node: its lock's SLURM job is
    asked about, and only a positive "ended" (squeue's empty list, an end state, or "Invalid job
    id", as SLURM 22.05 answers) lets the new trainer take over."""
    _fake_squeue(tmp_path / "bin", monkeypatch, **answer)
    monkeypatch.setenv("SLURM_JOB_ID", "778")
    run = tmp_path / "run"
    path = _record(run, host="node-b", pid=4242, slurm_job="777")
    text = path.read_text()
    if taken:
        with caplog.at_level("WARNING", logger="pcl.train.lock"), RunLock(run):
            assert json.loads(path.read_text())["slurm_job"] == "778"
        assert "SLURM says that job has ended" in caplog.text and "node-b" in caplog.text
    else:
        with pytest.raises(PCLError, match="locked by a trainer on another host"):
            RunLock(run).acquire()
        assert path.read_text() == text


def test_a_stale_lock_of_a_dead_trainer_is_taken_over_with_a_log_line(tmp_path: Path, train_dir: Path, cache: Path,
                                                                       caplog) -> None:
    """The record of a process of this host that has exited (its pid from a finished child) and no
    flock: the run goes ahead and the log names the previous holder."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = tmp_path / "stale"
    _record(run, pid=dead.pid, slurm_job="31")
    with caplog.at_level("WARNING", logger="pcl.train.lock"):
        assert _train(*_argv(run, train_dir, cache, "--iterations", "1")) == 0
    err = caplog.text
    assert f"taking over {run / LOCK_NAME}" in err and f"pid {dead.pid}" in err and "no longer running" in err
    assert json.loads((run / "result.json").read_text())["iterations"] == 1
    assert not (run / LOCK_NAME).exists()


@pytest.mark.slow
def test_a_second_trainer_is_refused_and_the_first_finishes_with_a_clean_log(tmp_path: Path, train_dir: Path,
                                                                             cache: Path) -> None:
    """Trainer A is held before iteration 2; B on the same run dir exits 2 naming A (pid, host);
    A then finishes: log.csv has rows 1..6 (log every 1) and the final validation row, once each."""
    run, marker, go = tmp_path / "run", tmp_path / "held", tmp_path / "go"
    argv = _argv(run, train_dir, cache, "--iterations", "6", "--log-every", "1", "--checkpoint-every", "3")
    first = subprocess.Popen([sys.executable, "-c", WRAPPER, "hold", str(marker), str(go), "--log-level", "WARNING",
                              *argv], cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(marker, first)
        assert int(marker.read_text()) == first.pid
        before = _tree(run)
        second = _pcl(*argv)
        assert second.returncode == 2, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "in use by another trainer" in lines[0], lines
        assert f"pid {first.pid}" in lines[0] and f"host {socket.gethostname()}" in lines[0]
        assert f"kill {first.pid}" in lines[0]
        assert _tree(run) == before
    finally:
        go.touch()
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert _log_iterations(run) == [(i, False) for i in range(1, 7)] + [(6, True)]
    assert json.loads((run / "result.json").read_text())["sessions"] == 1
    assert not (run / LOCK_NAME).exists()


@pytest.mark.slow
def test_an_orphaned_trainer_blocks_a_rerun_until_it_is_gone(tmp_path: Path, train_dir: Path, cache: Path) -> None:
    """The workflow manager dies and leaves its trainer running (started here from a shell that
    exits at once, so the trainer is nobody's child); the rerun it would launch, the same CLI,
    exits 2 naming the orphan; once the orphan is killed the rerun takes the lock over and finishes."""
    run, marker, go = tmp_path / "run", tmp_path / "held", tmp_path / "never"
    argv = _argv(run, train_dir, cache, "--iterations", "4", "--log-every", "1")
    launcher = " ".join(f"'{a}'" for a in [sys.executable, "-c", WRAPPER, "hold", str(marker), str(go),
                                           "--log-level", "WARNING", *argv])
    subprocess.run(["sh", "-c", f"{launcher} >/dev/null 2>&1 &"], cwd=REPO, env=ENV, check=True)
    _wait_for(marker)
    pid = int(marker.read_text())
    try:
        assert json.loads((run / LOCK_NAME).read_text())["pid"] == pid
        rerun = _pcl(*argv)
        assert rerun.returncode == 2 and len(rerun.stderr.strip().splitlines()) == 1, rerun.stderr
        assert f"pid {pid}" in rerun.stderr and f"host {socket.gethostname()}" in rerun.stderr
    finally:
        os.kill(pid, signal.SIGKILL)
    _wait_gone(pid)
    after = _pcl(*argv)
    assert after.returncode == 0, after.stderr
    assert f"pid {pid}" in after.stderr and "no longer running" in after.stderr
    assert _log_iterations(run) == [(i, False) for i in range(1, 5)] + [(4, True)]


# --- a checkpoint write cut by kill -9 --------------------------------------------------------


@pytest.mark.slow
def test_kill_during_a_checkpoint_write_keeps_the_previous_one_and_resumes(tmp_path: Path, train_dir: Path,
                                                                          cache: Path) -> None:
    """Checkpoints every 2 iterations; the write at 4 is killed half-way: last.pt is still the one
    of iteration 2, the half file is a staging file only, and the rerun resumes from 2, removes it
    and finishes (log rows 1..6 once each)."""
    run, marker = tmp_path / "run", tmp_path / "cut"
    argv = _argv(run, train_dir, cache, "--iterations", "6", "--log-every", "1", "--checkpoint-every", "2")
    victim = subprocess.Popen([sys.executable, "-c", WRAPPER, "cut", str(marker), str(tmp_path / "unused"),
                               "--log-level", "WARNING", *argv], cwd=REPO, env=ENV, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(marker, victim)
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=60)
    last = run / "checkpoints" / "last.pt"
    staging = list((run / "checkpoints").glob(".last.pt.*.tmp"))
    assert len(staging) == 1 and staging[0].stat().st_size > 0
    assert load_training_state(last)["iteration"] == 2
    resumed = _pcl(*argv)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {last} (iteration 2)" in resumed.stderr and f"removed {staging[0]}" in resumed.stderr
    assert not list(run.rglob(".*"))
    assert json.loads((run / "result.json").read_text())["sessions"] == 2
    assert _log_iterations(run) == [(i, False) for i in range(1, 7)] + [(6, True)]


# --- damaged run files ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory, train_dir: Path, cache: Path) -> Path:
    """A run stopped at its checkpoint of iteration 2 (asked for 2 of the 4 iterations the tests ask)."""
    run = tmp_path_factory.mktemp("stopped") / "run"
    assert _train(*_argv(run, train_dir, cache, "--iterations", "2", "--log-every", "1", "--checkpoint-every", "1")) == 0
    return run


def _damaged_copy(stopped_run: Path, tmp_path: Path, name: str, damage) -> Path:
    run = tmp_path / "run"
    shutil.copytree(stopped_run, run)
    path = run / name
    path.write_bytes(damage(path.read_bytes()))
    return run


@pytest.mark.parametrize(("name", "damage", "said"), [
    ("result.json", lambda b: b[: len(b) // 2], "is damaged (not JSON"),
    ("result.json", lambda b: b"[1, 2]\n", "is damaged (a JSON list, not an object)"),
    ("config.yaml", lambda b: b + b"\nmodel_config: [unclosed\n", "is damaged (not YAML at line"),
    ("provenance.json", lambda b: b"\x00" * 16, "is damaged (not JSON"),
    ("log.csv", lambda b: b.replace(b"\r\n1,", b"\r\nx1,", 1), "line 2: iteration 'x1' is not an integer"),
    ("log.csv", lambda b: b.replace(b"\r\n2,", b"\r\n0,", 1), "line 3: iteration 0 after iteration 1"),
    ("log.csv", lambda b: b"iteration;loss\n" + b, "line 1: the header is"),
])
def test_a_damaged_run_file_is_refused_in_one_line_and_left_alone(stopped_run: Path, tmp_path: Path, train_dir: Path,
                                                                   cache: Path, capsys, name, damage, said) -> None:
    """Resuming over a damaged file: exit 2, one line naming the file, what is wrong and what to
    do; every file of the run directory as before (the damaged one included)."""
    run = _damaged_copy(stopped_run, tmp_path, name, damage)
    before = _tree(run)
    code, lines = _cli(capsys, *_argv(run, train_dir, cache, "--iterations", "4", "--log-every", "1"))
    assert code == 2 and len(lines) == 1, lines
    assert f"{run / name}" in lines[0] and said in lines[0], lines[0]
    assert ("delete it" in lines[0] or "move the file aside" in lines[0]) and str(run / "checkpoints" / "last.pt") in lines[0]
    assert _tree(run) == before


def test_log_rows_past_the_checkpoint_and_a_cut_last_row_are_rebuilt(stopped_run: Path, tmp_path: Path,
                                                                     train_dir: Path, cache: Path) -> None:
    """Rows after the checkpoint (iteration 2) and an unterminated last row are what a killed run
    leaves; they are dropped and written again, so the log reads 1..4 once each."""
    run = _damaged_copy(stopped_run, tmp_path, "log.csv", lambda b: b + b"3,0,1e-4,garbage\r\n9")
    assert _train(*_argv(run, train_dir, cache, "--iterations", "4", "--log-every", "1")) == 0
    assert _log_iterations(run) == [(1, False), (2, False), (2, True), (3, False), (4, False), (4, True)]


@pytest.mark.parametrize(("name", "advice"), [("result.json", "delete"), ("config.yaml", "delete"),
                                              ("log.csv", "move aside")])
def test_following_the_advice_resumes_the_run(stopped_run: Path, tmp_path: Path, train_dir: Path, cache: Path,
                                              name: str, advice: str) -> None:
    """What the refusal says to do works: with the damaged file deleted (or moved aside, for the
    log) the run resumes from its checkpoint of iteration 2 and completes 4 iterations."""
    run = _damaged_copy(stopped_run, tmp_path, name, lambda b: b"\x00garbage\n" + b)
    argv = _argv(run, train_dir, cache, "--iterations", "4", "--log-every", "1")
    with pytest.raises(PCLError, match=name):
        _train(*argv)
    if advice == "delete":
        (run / name).unlink()
    else:
        (run / name).rename(run / f"{name}.damaged")
    assert _train(*argv) == 0
    result = json.loads((run / "result.json").read_text())
    assert result["iterations"] == 4 and result["sessions"] == 2
    rows = _log_iterations(run)
    assert rows[-3:] == [(3, False), (4, False), (4, True)] and rows == sorted(rows)


def test_a_finished_run_whose_outputs_were_removed_validates_once_in_its_log(tmp_path: Path, train_dir: Path,
                                                                          cache: Path) -> None:
    """What `--rerun-incomplete` does after an orphan finished: the outputs go, the trainer resumes
    from its final checkpoint and validates again; log.csv must still hold that validation once."""
    run = tmp_path / "run"
    argv = _argv(run, train_dir, cache, "--iterations", "2", "--log-every", "1")
    assert _train(*argv) == 0
    first = _log_iterations(run)
    assert first == [(1, False), (2, False), (2, True)]
    (run / "result.json").unlink()
    (run / "model.safetensors").unlink()
    assert _train(*argv) == 0
    assert _log_iterations(run) == first
    assert json.loads((run / "result.json").read_text())["iterations"] == 2
