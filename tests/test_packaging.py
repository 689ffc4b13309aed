"""The pins are consistent everywhere they are written, and the workflow files are where
Snakemake and the README say they are."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements" / "base.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name = re.split(r"[<>=!~]", line, maxsplit=1)[0].strip().lower()
            pins[name] = line.replace(" ", "")
    return pins


def _environment_pins() -> dict[str, str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pins = {}
    for line in pip_section:
        if line.startswith("-"):
            continue  # index options
        name = re.split(r"[<>=!~]", line, maxsplit=1)[0].strip().lower()
        pins[name] = line.replace(" ", "")
    return pins


def test_environment_yml_matches_requirements() -> None:
    # DEVELOPERS.md: no conda here, so environment.yml must be kept equal to the pip pins.
    assert _environment_pins() == _requirement_pins()


def test_known_good_pins() -> None:
    # DEVELOPERS.md "Dependencies: facts measured on these machines".
    pins = _requirement_pins()
    for spec in ["torch==2.13.0", "snakemake==9.27.1", "numpy==2.4.6", "scipy==1.17.1",
                 "pandas==3.1.1", "scikit-image==0.26.0", "matplotlib==3.11.2", "kornia==0.9.0",
                 "setuptools<82", "packaging<26"]:
        name = re.split(r"[<>=]", spec)[0]
        assert pins[name] == spec
    assert "torchvision" not in pins  # PyPI torchvision does not import beside torch 2.13.0


def test_rule_env_is_environment_yml() -> None:
    env = REPO / "workflow" / "envs" / "pcl.yaml"
    assert env.resolve() == (REPO / "environment.yml").resolve()


def test_no_conda_in_auto_loaded_profile() -> None:
    # Snakemake auto-loads workflow/profiles/default; local runs and CI must use the venv.
    default = REPO / "workflow" / "profiles" / "default" / "config.yaml"
    if default.exists():
        assert "conda" not in default.read_text()
    slurm = yaml.safe_load((REPO / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    assert slurm["use-conda"] is True
    assert {"slurm_partition", "slurm_account"} <= set(slurm["default-resources"])


def test_every_rule_has_conda_and_log() -> None:
    text = "\n".join(p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk"))
    rules = re.findall(r"^(?:rule|checkpoint) (\w+):", text, flags=re.M)
    assert rules
    blocks = re.split(r"^(?:rule|checkpoint) \w+:", text, flags=re.M)[1:]
    for name, block in zip(rules, blocks):
        assert "\n    conda:" in block, name
        assert "\n    log:" in block, name
