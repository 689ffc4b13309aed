"""``pcl gpu-check``: the tiny CPU run exercises every part and writes a sane CSV; a check cut
short (a part killed at its budget, the whole command SIGKILLed) leaves a valid partial CSV.

Expected values: tolerances are the ones the parts state (pcl/gpu_check/*.py docstrings); on the
CPU the "device" of the metric comparison is the CPU itself, so every difference must be 0; the
dense bf16 peaks are the vendors' data-sheet figures (H100 SXM 989, H100 PCIe 756, H200 989
TFLOP/s).
"""

from __future__ import annotations

import csv
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pcl.gpu_check import run_gpu_check
from pcl.gpu_check.device_info import peak_for, slug_for
from pcl.gpu_check.report import COLUMNS, RowSink, read_rows

REPO = Path(__file__).resolve().parents[1]
BACKBONES = ("edsr-s", "edsr-l", "rcan", "han", "nlsn")
#: HAN cannot train in channels_last yet: pcl/models/han.py calls .view on the attention input and
#: Trainer.setup lays the model out with model.to(memory_format=...), which refuses HAN's 5-d
#: CSAM weight.  The check reports these rows as failed; every other row must pass.
KNOWN_FAILURES: set[str] = set()


def _pcl(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pcl", *args], cwd=REPO, capture_output=True, text=True, **kw)


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == COLUMNS
        return list(reader)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("gpu-check")
    proc = _pcl("gpu-check", "--device", "cpu", "--tiny", "--out-dir", str(out), timeout=900)
    return proc, out


def _value(rows, part, case, quantity) -> str:
    found = [r["value"] for r in rows if (r["part"], r["case"], r["quantity"]) == (part, case, quantity)]
    assert found, (part, case, quantity)
    return found[0]


@pytest.mark.slow  # about 1 minute on an idle 2-core machine, 2.5 minutes when it is shared
def test_tiny_cpu_run_writes_every_part_with_sane_values(tiny_run):
    proc, out = tiny_run
    rows = _csv_rows(out / "gpu_cpu.csv")
    statuses = {r["part"]: r["value"] for r in rows if r["quantity"] == "status"}
    assert statuses == dict.fromkeys(("metrics", "steps", "precision", "resume", "ddp"), "completed"), proc.stderr
    assert _value(rows, "device", "", "mode") == "tiny" and _value(rows, "device", "", "torch")
    # metrics: CPU against CPU, so every difference is exactly 0 (and within the stated 1e-6)
    diffs = [r for r in rows if r["part"] == "metrics" and r["quantity"].endswith("_abs_diff") and r["tolerance"]]
    assert len(diffs) >= 6 and all(float(r["value"]) == 0.0 and r["ok"] == "true" for r in diffs)
    # steps: every backbone x method has a positive speed and FLOP count in its default layout
    for backbone in BACKBONES:
        flops = {}
        for method in ("l1", "pcl-paper", "pcl-released"):
            case = f"{backbone}/{method}/fp32/contiguous"
            assert float(_value(rows, "steps", case, "it_per_s")) > 0
            flops[method] = float(_value(rows, "steps", case, "tflop_per_it"))
        assert 0 < flops["l1"] < flops["pcl-paper"] and flops["l1"] < flops["pcl-released"]
        ratio = float(_value(rows, "steps", f"{backbone}/pcl-paper/fp32/contiguous", "pcl_flop_over_l1"))
        assert ratio == pytest.approx(flops["pcl-paper"] / flops["l1"], rel=1e-6)
    # precision, resume (bitwise on the CPU with --deterministic) and ddp: every check passed
    for part in ("precision", "resume", "ddp"):
        checked = [r for r in rows if r["part"] == part and r["ok"]]
        assert checked and all(r["ok"] == "true" for r in checked), [r for r in checked if r["ok"] != "true"]
    assert _value(rows, "resume", "edsr-s-pcl", "weights_bitwise_equal") == "true"
    assert _value(rows, "ddp", "torchrun nproc=1", "initialised_and_stepped") == "true"
    failed = {f"{r['case']}/{r['quantity']}" for r in rows if r["ok"] == "false"}
    assert failed <= KNOWN_FAILURES, failed - KNOWN_FAILURES
    assert proc.returncode == (1 if failed else 0)
    summary = (out / "gpu_cpu.md").read_text()
    assert "torch" in summary and "| resume |" in summary


@pytest.mark.slow
def test_every_backbone_trains_in_channels_last(tiny_run):
    _, out = tiny_run
    rows = _csv_rows(out / "gpu_cpu.csv")
    assert not [r for r in rows if r["ok"] == "false"]


def test_a_part_killed_at_its_budget_leaves_a_valid_partial_csv(tmp_path):
    # budget 0.5 s and no grace: the steps process is killed while it still imports torch
    result = run_gpu_check(device="cpu", tiny=True, out_dir=tmp_path, parts=["steps"], budgets={"steps": 0.5},
                           grace_s=0.0)
    assert result["failed"] == ["steps/part/status"]
    rows = _csv_rows(tmp_path / "gpu_cpu.csv")
    assert [r["quantity"] for r in rows if r["part"] == "device"][:4] == ["name", "driver", "cuda", "torch"]
    status = [r for r in rows if r["quantity"] == "status"]
    assert [(r["part"], r["value"], r["ok"]) for r in status] == [("steps", "timeout", "false")]
    assert "| steps |" in (tmp_path / "gpu_cpu.md").read_text()


@pytest.mark.slow
def test_sigkill_of_the_whole_check_mid_run_leaves_a_valid_csv(tmp_path):
    csv_path = tmp_path / "gpu_cpu.csv"
    proc = subprocess.Popen([sys.executable, "-m", "pcl", "gpu-check", "--device", "cpu", "--tiny", "--parts",
                             "metrics,steps", "--out-dir", str(tmp_path)], cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and proc.poll() is None:
            if csv_path.is_file() and any(r["part"] == "metrics" for r in read_rows(csv_path)):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the check ended before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    rows = _csv_rows(csv_path)  # parses, with the header and whole rows only
    assert any(r["part"] == "metrics" for r in rows)
    assert all(len(r) == len(COLUMNS) and None not in r.values() for r in rows)
    assert not [r for r in rows if r["quantity"] == "status"]  # killed before any part finished


def test_row_sink_rewrites_the_file_whole_after_each_row(tmp_path):
    path = tmp_path / "gpu_x.csv"
    sink = RowSink(path)
    sink.add("steps", "a/b/c/d", "it_per_s", 2.5, "it/s", ok=True)
    sink.add("steps", "a/b/c/d", "mfu", None, "fraction", note="no peak")
    rows = read_rows(path)
    assert [(r["quantity"], r["value"], r["ok"]) for r in rows] == [("it_per_s", "2.5", "true"), ("mfu", "", "")]
    assert not [p for p in tmp_path.iterdir() if p.name != "gpu_x.csv"]  # no temp file left


def test_dense_bf16_peaks_and_slugs_name_the_device():
    # vendors' data sheets: H100 SXM 989, H100 PCIe 756, H200 989 TFLOP/s dense bf16
    assert peak_for("NVIDIA H100 80GB HBM3") == ("H100 SXM dense bf16", 989e12)
    assert peak_for("NVIDIA H100 PCIe")[1] == 756e12
    assert peak_for("NVIDIA H200")[1] == 989e12
    assert peak_for("Some Other GPU")[1] is None
    assert slug_for("NVIDIA H100 80GB HBM3", "cuda") == "h100" and slug_for("NVIDIA H200", "cuda") == "h200"
    assert slug_for("anything", "cpu") == "cpu"


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.mark.faults
@pytest.mark.parametrize("args, named", [(["--budget", "steps=abc"], "--budget"), (["--parts", "speed"], "--parts")])
def test_bad_options_are_one_line_errors_and_change_nothing(tmp_path, args, named):
    (tmp_path / "gpu_cpu.csv").write_text("kept\n")
    before = _digest(tmp_path)
    proc = _pcl("gpu-check", "--device", "cpu", "--tiny", "--out-dir", str(tmp_path), *args, timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert named in proc.stderr
    assert _digest(tmp_path) == before
