# Shared definitions: how rules call `pcl`, which datasets exist, where things go.

import json
import shlex
from pathlib import Path

ROOT = Path(workflow.basedir)
# `python -m pcl` with the checkout on PYTHONPATH works both in the active venv (where the
# package is installed editable) and in the conda env of a cluster run (dependencies only).
PCL = f"PYTHONPATH={shlex.quote(str(ROOT))}${{PYTHONPATH:+:$PYTHONPATH}} python -m pcl"
ENV = str(ROOT / "workflow" / "envs" / "pcl.yaml")

SCALE = config["scale"]
DATA = config["data_root"]
TIERS = config["tiers"]
PROTOCOLS = config["protocols"]
TABLE_FILES = expand("reports/tables/table2.{ext}", ext=["md", "tex", "csv"])
DIV2K_HR = Path(DATA, "DIV2K", "DIV2K_train_HR")
DIV2K_LR = Path(DATA, "DIV2K", "DIV2K_train_LR_bicubic", f"X{SCALE}")
# Reported only when the DIV2K training set is present (downloaded or placed by hand).
DIV2K_CHECK = (
    [f"{DATA}/prepared/DIV2K/x{SCALE}/lr_comparison.json"]
    if DIV2K_HR.is_dir() and DIV2K_LR.is_dir()
    else []
)


def present_benchmarks_at_parse():
    """Benchmark folders present now (shipped or under data/): part of the discovery params,
    so placing a new set by hand re-runs discovery."""
    found = []
    for name in config["benchmarks"]:
        shipped = config["shipped_benchmarks"].get(name)
        if (shipped and Path(shipped).is_dir()) or Path(DATA, "benchmarks", name, "HR").is_dir():
            found.append(name)
    return found


def available_benchmarks():
    """{name: hr_dir} of the benchmarks the discovery checkpoint found (after any download)."""
    path = checkpoints.discover_benchmarks.get().output[0]
    with open(path) as fh:
        return {name: info["hr_dir"] for name, info in json.load(fh).items()}


def hr_images(wildcards):
    """The HR files of one benchmark: inputs of `prepare`, so an edited image re-runs it."""
    folder = Path(available_benchmarks()[wildcards.dataset])
    return sorted(str(p) for p in folder.iterdir() if p.is_file())


def result_inputs(wildcards):
    """Every result file of the tiers in the config (datasets known after discovery)."""
    files = []
    if "reported" in TIERS:
        files.append("results/reported")
    if "bicubic" in TIERS:
        files += expand(
            "results/bicubic/bicubic/{protocol}/{dataset}.csv",
            protocol=PROTOCOLS,
            dataset=list(available_benchmarks()),
        )
    return files
