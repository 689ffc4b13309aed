"""``pcl batch`` runs several pcl command lines in one process, stops at the first failure, and
refuses malformed input in one line; grouped smoke jobs write the files per-run jobs write.

Expected values: the commands' own outputs (a catalog listing, a cells mapping) and, for the
grouped workflow, the result files of the same two smoke experiments trained and evaluated by the
per-run rules in another folder: training is deterministic on CPU, so they must be byte-identical.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pcl.cli import main

REPO = Path(__file__).resolve().parents[1]


def _batch(commands, capsys) -> tuple[int, str, str]:
    code = main(["batch", "--commands", commands if isinstance(commands, str) else json.dumps(commands)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_commands_run_in_order_in_one_process(tmp_path, capsys) -> None:
    cells = tmp_path / "cells.json"
    code, out, err = _batch([["train", "--list", "--tier", "mini"], ["catalog", "cells", "--out", str(cells)]], capsys)
    assert code == 0
    assert "edsr-s-baseline" in out and json.loads(cells.read_text())  # both ran
    assert err.index("batch 1/2") < err.index("batch 2/2") and "2 commands in" in err


def test_the_first_failure_stops_the_batch_with_its_code(tmp_path, capsys) -> None:
    cells = tmp_path / "cells.json"
    code, _, err = _batch([["train", "--list", "--tier", "no-such-tier"], ["catalog", "cells", "--out", str(cells)]],
                          capsys)
    assert code == 2 and not cells.exists()  # the second command never ran
    last = err.strip().splitlines()[-1]
    assert last.startswith("pcl: error: batch command 1/2 failed with exit 2") and "1 command(s) after it did not run" in last


@pytest.mark.parametrize("commands, message", [
    ("not json", "not JSON"),
    ("[]", "non-empty list"),
    ('[["train"], "x"]', "non-empty list"),
    ('[["batch", "--commands", "[]"]]', "cannot run `pcl batch`"),
])
def test_malformed_commands_are_one_line_and_exit_2(commands, message, capsys) -> None:
    code, _, err = _batch(commands, capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err


def test_a_missing_commands_file_is_named(tmp_path, capsys) -> None:
    code = main(["batch", "--commands-file", str(tmp_path / "none.json")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "none.json" in err and len(err.splitlines()) == 1


def _run_smoke(workdir: Path, group: int) -> None:
    (workdir / "config" / "two.yaml").write_text(
        "tiers: [smoke]\ntraining:\n  experiments: [edsr-s-baseline, edsr-s-pcl]\n  tiers:\n    smoke:\n"
        f"      datasets: [Set5]\n      group: {group}\nstudy: {{committed: false, protocols: [matlab], datasets: [Set5]}}\n")
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(workdir)}
    targets = [f"results/smoke/{e}/matlab/Set5.csv" for e in ("edsr-s-baseline", "edsr-s-pcl")]
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", *targets, "--configfile", "config/two.yaml"],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rules = "group_smoke_1" if group else "rule train"
    assert rules in proc.stdout + proc.stderr


@pytest.mark.slow  # two smoke trainings and evaluations twice: about 40 s on 2 CPU cores
def test_grouped_jobs_write_what_per_run_jobs_write(tmp_path, make_workdir) -> None:
    grouped, per_run = make_workdir(tmp_path / "grouped"), make_workdir(tmp_path / "per_run")
    _run_smoke(grouped, 2)
    _run_smoke(per_run, 0)
    for experiment in ("edsr-s-baseline", "edsr-s-pcl"):
        name = Path("results/smoke") / experiment / "matlab" / "Set5.csv"
        assert (grouped / name).read_bytes() == (per_run / name).read_bytes(), name
        assert (grouped / "runs/smoke" / experiment / "model.safetensors").read_bytes() == \
            (per_run / "runs/smoke" / experiment / "model.safetensors").read_bytes()
