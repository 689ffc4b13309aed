"""The trainer: run layout and file modes, resume (kill -9 and bitwise comparison), NaN stop, OOM
message, the released-semantics control identity (docs/method.md §5) and the PCL-F frozen embedding."""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pcl.cli_train import add_train_parser
from pcl.errors import PCLError
from pcl.train.state import load_training_state
from pcl.train.step import TrainStep

REPO = Path(__file__).resolve().parents[1]
CATALOG = REPO / "config" / "experiments.yaml"


def _argv(experiment: str, run_dir: Path, train_dir: Path, cache: Path, *extra: str) -> list[str]:
    return ["train", "--experiment", experiment, "--tier", "smoke", "--run-dir", str(run_dir), "--catalog", str(CATALOG),
            "--train-dir", str(train_dir), "--data-cache", str(cache), "--validation-images", "1", "--no-progress",
            "--batch", "2", "--lr-patch", "12", *extra]


def _train(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers())
    args = parser.parse_args(list(argv))
    return args.func(args)


def _same_weights(a: Path, b: Path) -> bool:
    x, y = load_file(str(a)), load_file(str(b))
    return x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)


@pytest.fixture(scope="module")
def pcl_run(tmp_path_factory, train_dir: Path, cache: Path) -> Path:
    run = tmp_path_factory.mktemp("runs") / "rcan-pcl"
    assert _train(*_argv("rcan-pcl", run, train_dir, cache, "--iterations", "4", "--checkpoint-every", "2",
                         "--log-every", "2")) == 0
    return run


def test_a_run_writes_the_run_layout(pcl_run: Path, cache: Path) -> None:
    for name in ("config.yaml", "provenance.json", "log.csv", "model.safetensors", "model.json",
                 "embedding.safetensors", "embedding.json", "result.json", "checkpoints/last.pt",
                 "checkpoints/best.safetensors"):
        assert (pcl_run / name).is_file(), name
    assert any((pcl_run / "tb").glob("events.out.tfevents.*"))
    result = json.loads((pcl_run / "result.json").read_text())
    assert result["iterations"] == 4 and result["complete"] and result["method"] == "pcl"
    assert result["validation"]["images"] == 1 and result["validation"]["protocol"] == "matlab"
    assert np.isfinite(result["validation"]["psnr"]) and result["wall_seconds"] > 0
    prov = json.loads((pcl_run / "provenance.json").read_text())
    manifest = json.loads(Path(prov["data_manifest"]).read_text())
    assert prov["data_manifest_sha256"] == manifest["content_sha256"] == result["data_manifest_sha256"]
    assert {"torch", "numpy", "python"} <= set(prov["packages"]) and "commit" in prov["git"]
    with (pcl_run / "log.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [r["iteration"] for r in rows] == ["2", "4", "4"] and rows[-1]["val_psnr"]  # last row: validation
    # The final weights rebuild from their sidecar, as `pcl evaluate --model auto` does.
    from pcl.inference import load_model
    from pcl.models.checkpoints import load_checkpoint

    loaded = load_model("auto", pcl_run / "model.safetensors")
    assert loaded.backbone == "rcan" and loaded.config["n_feats"] == 16
    embedding, meta = load_checkpoint(pcl_run / "embedding.safetensors")
    assert meta["architecture"] == "embedding"
    # The resumable state: every part, readable with weights_only=True.
    state = load_training_state(pcl_run / "checkpoints" / "last.pt")
    assert state["iteration"] == 4 and state["sampler"] == {"seed": 1, "iteration": 4, "rank": 0, "world_size": 1}
    for key in ("model", "optimizer", "embedding", "embedding_optimizer", "schedule", "rng"):
        assert state[key] is not None, key
    assert set(state["rng"]) == {"torch", "cuda", "numpy", "python"}
    assert int(state["embedding_optimizer"]["state"][0]["step"]) == 4  # the embedding was updated every step


def test_a_complete_run_is_left_alone(pcl_run: Path, train_dir: Path, cache: Path, capsys) -> None:
    stamp = (pcl_run / "result.json").stat().st_mtime_ns
    assert _train(*_argv("rcan-pcl", pcl_run, train_dir, cache, "--iterations", "4", "--checkpoint-every", "2",
                         "--log-every", "2")) == 0
    assert "already complete" in capsys.readouterr().err
    assert (pcl_run / "result.json").stat().st_mtime_ns == stamp


def test_a_finished_run_is_readable_by_the_group_and_others(tmp_path: Path, train_dir: Path, cache: Path) -> None:
    """Under umask 022 every file of a run (weights and checkpoints included) is 0644, like every
    other output of the harness, so that other users of a shared cluster can read it."""
    run = tmp_path / "modes"
    argv = _argv("edsr-s-pcl", run, train_dir, cache, "--iterations", "2", "--checkpoint-every", "1", "--threads", "1")
    proc = subprocess.run([sys.executable, "-m", "pcl", "--log-level", "WARNING", *argv], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=lambda: os.umask(0o022),
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    files = {p.relative_to(run).as_posix(): p.stat().st_mode & 0o777 for p in run.rglob("*") if p.is_file()}
    assert {"model.safetensors", "model.json", "embedding.safetensors", "checkpoints/last.pt",
            "checkpoints/best.safetensors", "result.json"} <= set(files)
    assert {name: oct(mode) for name, mode in files.items() if mode != 0o644} == {}
    assert not [p for p in run.rglob(".*")]  # no staging leftovers


def test_a_different_configuration_is_not_resumed(pcl_run: Path, train_dir: Path, cache: Path) -> None:
    with pytest.raises(PCLError, match="different configuration"):
        _train(*_argv("rcan-pcl", pcl_run, train_dir, cache, "--iterations", "6", "--seed", "7"))


def test_kill_and_resume_is_bitwise_exact(tmp_path: Path, train_dir: Path, cache: Path) -> None:
    """SIGKILL after a checkpoint, restart (with another worker count), compare with an uninterrupted run."""
    common = ["--iterations", "24", "--checkpoint-every", "3", "--log-every", "3", "--deterministic", "--threads", "1",
              "--no-tensorboard"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    def command(run: Path, *extra: str) -> list[str]:
        return [sys.executable, "-m", "pcl", "--log-level", "WARNING",
                *_argv("edsr-s-pcl", run, train_dir, cache, *common, *extra)]

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    reference = subprocess.Popen(command(whole), env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    victim = subprocess.Popen(command(killed), env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = killed / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 60
    while not last.exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL and last.exists()
    interrupted_at = load_training_state(last)["iteration"]
    assert 3 <= interrupted_at < 24 and not (killed / "result.json").exists()
    resumed = subprocess.run(command(killed, "--workers", "2"), env=env, cwd=REPO, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from {last} (iteration {interrupted_at})" in resumed.stderr
    assert reference.wait() == 0, reference.stderr.read()
    assert _same_weights(whole / "model.safetensors", killed / "model.safetensors")
    assert _same_weights(whole / "embedding.safetensors", killed / "embedding.safetensors")
    assert json.loads((killed / "result.json").read_text())["sessions"] == 2


def test_extending_a_run_resumes_exactly_with_the_global_rng(tmp_path: Path, train_dir: Path, cache: Path) -> None:
    # NLSN draws its hash rotations from the global torch RNG in every forward: a run stopped at 2
    # iterations and extended to 4 must equal a 4-iteration run (RNG states restored, loader seed private).
    whole, extended = tmp_path / "whole", tmp_path / "extended"
    assert _train(*_argv("nlsn-control", whole, train_dir, cache, "--iterations", "4", "--no-tensorboard")) == 0
    assert _train(*_argv("nlsn-control", extended, train_dir, cache, "--iterations", "2", "--no-tensorboard")) == 0
    assert _train(*_argv("nlsn-control", extended, train_dir, cache, "--iterations", "4", "--no-tensorboard")) == 0
    assert json.loads((extended / "result.json").read_text())["sessions"] == 2
    assert _same_weights(whole / "model.safetensors", extended / "model.safetensors")
    with (extended / "log.csv").open() as handle:
        iterations = [int(r["iteration"]) for r in csv.DictReader(handle) if r["loss"]]
    assert iterations == [2, 4]  # one row per log step, none repeated across the two sessions


def test_channels_last_run_extended_equals_the_whole_run(tmp_path: Path, train_dir: Path, cache: Path) -> None:
    # The mini tier trains in the channels-last layout (docs/method_choices.md §10): with
    # --deterministic, a run stopped at 3 iterations and extended to 6 must end on the same weights
    # as a 6-iteration run, as in the default layout.
    common = ("--channels-last", "on", "--deterministic", "--threads", "1", "--no-tensorboard")
    whole, extended = tmp_path / "whole", tmp_path / "extended"
    assert _train(*_argv("edsr-s-baseline", whole, train_dir, cache, "--iterations", "6", *common)) == 0
    assert _train(*_argv("edsr-s-baseline", extended, train_dir, cache, "--iterations", "3", *common)) == 0
    assert _train(*_argv("edsr-s-baseline", extended, train_dir, cache, "--iterations", "6", *common)) == 0
    assert json.loads((extended / "result.json").read_text())["sessions"] == 2
    assert _same_weights(whole / "model.safetensors", extended / "model.safetensors")
    # The layout changes the arithmetic (another convolution algorithm), hence its own run identity.
    plain = tmp_path / "plain"
    assert _train(*_argv("edsr-s-baseline", plain, train_dir, cache, "--iterations", "6", "--channels-last", "off",
                         "--deterministic", "--threads", "1", "--no-tensorboard")) == 0
    assert not _same_weights(whole / "model.safetensors", plain / "model.safetensors")


def test_nan_loss_stops_with_exit_1_and_keeps_the_last_good_checkpoint(tmp_path: Path, train_dir: Path, cache: Path,
                                                                        monkeypatch, capsys) -> None:
    losses = TrainStep.losses

    def nan_at_iteration_5(self, lr, hr, iteration):
        total, *terms = losses(self, lr, hr, iteration)
        return (total * float("nan") if iteration + 1 == 5 else total, *terms)

    monkeypatch.setattr(TrainStep, "losses", nan_at_iteration_5)
    run = tmp_path / "nan"
    code = _train(*_argv("edsr-s-baseline", run, train_dir, cache, "--iterations", "10", "--checkpoint-every", "2",
                         "--log-every", "100", "--no-tensorboard"))
    assert code == 1
    err = capsys.readouterr().err
    assert "NaN or inf" in err and "iterations 5 and 6" in err and "last.pt" in err
    state = load_training_state(run / "checkpoints" / "last.pt")
    assert state["iteration"] == 4  # the checkpoint due at 6 was not written
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert not (run / "result.json").exists() and not (run / "model.safetensors").exists()


def test_out_of_memory_names_the_batch_and_patch(tmp_path: Path, train_dir: Path, cache: Path, monkeypatch, capsys) -> None:
    def explode(self, lr, hr, iteration):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(TrainStep, "__call__", explode)
    code = _train(*_argv("edsr-s-baseline", tmp_path / "oom", train_dir, cache, "--iterations", "3", "--no-tensorboard"))
    assert code == 1
    err = capsys.readouterr().err
    assert "out of memory at iteration 1" in err and "batch 2" in err and "LR patch 12x12 (HR 48x48)" in err


def test_released_semantics_trains_exactly_like_the_control(tmp_path: Path, train_dir: Path, cache: Path) -> None:
    # docs/method.md §5 (§5.1-§5.2): the released contrastive term carries no gradient, so with the same seed,
    # data and schedule the SR weights equal those of L1-only fine-tuning bit for bit; the paper
    # semantics (gradient through the term) does change them.
    runs = {}
    for name in ("rcan-control", "rcan-pcl-released", "rcan-pcl"):
        runs[name] = tmp_path / name
        assert _train(*_argv(name, runs[name], train_dir, cache, "--iterations", "3", "--checkpoint-every", "0",
                             "--no-tensorboard")) == 0
    assert _same_weights(runs["rcan-control"] / "model.safetensors", runs["rcan-pcl-released"] / "model.safetensors")
    assert not _same_weights(runs["rcan-control"] / "model.safetensors", runs["rcan-pcl"] / "model.safetensors")


def test_init_from_another_run_and_pcl_fixed_embedding(tmp_path: Path, train_dir: Path, cache: Path, pcl_run: Path) -> None:
    # Fine-tune start from another experiment's run dir; 0 iterations exports the weights unchanged.
    export = tmp_path / "export"
    assert _train(*_argv("rcan-control", export, train_dir, cache, "--iterations", "0", "--init", str(pcl_run),
                         "--no-tensorboard")) == 0
    assert _same_weights(export / "model.safetensors", pcl_run / "model.safetensors")
    with pytest.raises(PCLError, match="not found"):
        _train(*_argv("rcan-control", tmp_path / "missing", train_dir, cache, "--init", str(tmp_path / "nowhere.pt")))
    # PCL-F: the embedding of a PCL run, frozen while EDSR-S trains (parameters unchanged).
    source = tmp_path / "edsr-l-pcl"
    assert _train(*_argv("edsr-l-pcl", source, train_dir, cache, "--iterations", "2", "--no-tensorboard")) == 0
    fixed = tmp_path / "edsr-s-pcl-fixed"
    assert _train(*_argv("edsr-s-pcl-fixed", fixed, train_dir, cache, "--iterations", "2", "--no-tensorboard")) == 0
    before = load_file(str(source / "embedding.safetensors"))
    after = load_file(str(fixed / "embedding.safetensors"))
    params = [k for k in before if k.endswith("weight") or k.endswith("bias")]
    assert params and all(torch.equal(before[k], after[k]) for k in params)
    assert load_training_state(fixed / "checkpoints" / "last.pt")["embedding_optimizer"] is None
    assert json.loads((fixed / "provenance.json").read_text())["embedding_from"] == str(source / "embedding.safetensors")
