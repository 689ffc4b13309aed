"""The pins are consistent everywhere they are written, and the workflow files are where
Snakemake and the README say they are."""

from __future__ import annotations

import re
import tomllib
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
    # No conda on the development machines, so the cluster env must carry exactly the pip pins.
    assert _environment_pins() == _requirement_pins()


def test_pyproject_ranges_admit_the_pins() -> None:
    # pip must be able to install the package into the pinned environment without swapping anything.
    from packaging.requirements import Requirement

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = _requirement_pins()
    for text in project["dependencies"]:
        req = Requirement(text)
        pin = pins.get(req.name.lower())
        assert pin is not None, f"{req.name} is a dependency but not pinned in requirements/base.txt"
        version = pin.split("==", 1)[1] if "==" in pin else None
        if version:
            assert req.specifier.contains(version), (text, pin)


def test_installed_versions_equal_the_pins() -> None:
    # The venv the tests run in was built from requirements/*.txt: what runs is what is pinned.
    import importlib.metadata as md

    for name, pin in _requirement_pins().items():
        if "==" in pin:
            assert md.version(name) == pin.split("==", 1)[1], name


def test_torchvision_imports_beside_torch() -> None:
    # torchvision fails at import ("operator torchvision::nms does not exist") beside a torch it was
    # not built for; the pinned pair must import and run an op together.
    import torch
    import torchvision

    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    assert torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8]), 0.5).tolist() == [0]


def test_rule_env_lives_in_workflow() -> None:
    env = REPO / "workflow" / "envs" / "pcl.yaml"
    assert env.is_file() and not env.is_symlink()
    assert (REPO / "environment.yml").resolve() == env.resolve()


def test_no_conda_in_auto_loaded_profile() -> None:
    # Snakemake auto-loads workflow/profiles/default; local runs and CI must use the venv.
    assert not (REPO / "workflow" / "profiles" / "default").exists()
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
