"""Installing the study's committed baseline (pcl.train.pinned, `pcl install-run`).

References: the sha256 recorded in resources/study_baseline/PINNED.json and model.json was taken
when the weights were trained (they are the checkpoint every committed study sidecar names), and
the run identity is recomputed here from the catalog's study recipe.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pcl.cli import main
from pcl.hashing import sha256_file
from pcl.train.catalog import load_catalog
from pcl.train.config import resolve_config, run_identity
from pcl.train.pinned import install_run, read_pin

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "resources" / "study_baseline"


def test_committed_weights_match_their_pin_and_the_study_rows() -> None:
    pin = read_pin(SRC)
    assert sha256_file(SRC / "model.safetensors") == pin["sha256"]
    sidecar = json.loads((REPO / "results" / "study" / "edsr-s-baseline" / "matlab" / "Set5.json").read_text())
    assert sidecar["checkpoint"]["sha256"] == pin["sha256"]


def test_pin_identity_is_the_study_recipe() -> None:
    catalog = load_catalog(REPO / "config" / "experiments.yaml")
    for tier in ("study", "study-check"):
        config = {**resolve_config(catalog.get("edsr-s-baseline"), tier), "tier": ""}
        assert run_identity(config, with_cadence=True) == read_pin(SRC)["identity"], tier


def test_install_copies_every_file(tmp_path: Path) -> None:
    dst = install_run(SRC, tmp_path / "runs" / "study" / "edsr-s-baseline", read_pin(SRC)["sha256"])
    for name in ("model.safetensors", "model.json", "result.json"):
        assert (dst / name).read_bytes() == (SRC / name).read_bytes()
    assert not list(dst.glob(".*installing"))


@pytest.mark.faults
def test_tampered_weights_exit_2_and_write_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "pinned"
    shutil.copytree(SRC, src)
    data = bytearray((src / "model.safetensors").read_bytes())
    data[-1] ^= 1
    (src / "model.safetensors").write_bytes(bytes(data))
    dst = tmp_path / "run"
    assert main(["install-run", str(src), str(dst)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.safetensors" in err[0] and "git checkout" in err[0]
    assert not dst.exists()


@pytest.mark.faults
def test_missing_pin_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "pinned"
    shutil.copytree(SRC, src)
    (src / "PINNED.json").unlink()
    assert main(["install-run", str(src), str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "PINNED.json" in err[0]


@pytest.mark.faults
def test_damaged_model_json_is_one_line_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "pinned"
    shutil.copytree(SRC, src)
    (src / "model.json").write_text("{not json")
    dst = tmp_path / "run"
    assert main(["install-run", str(src), str(dst)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.json" in err[0] and "git checkout" in err[0]
    assert not dst.exists()
