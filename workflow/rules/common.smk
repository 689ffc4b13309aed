# Shared definitions: how rules call `pcl`, which datasets exist, where things go.

import json
import re
import shlex
import sys
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


# Tier `released`: the checkpoint registry is read at parse time (like DIV2K above); every
# checkpoint whose file is present is evaluated, absent ones are listed in the status report.
RELEASED_CFG = {
    "checkpoints": "config/checkpoints.yaml",
    "protocols": ["authors"],
    "device": "cpu",
    "precision": "fp32",
    "seed": 0,
    "chop": False,
    "self_ensemble": False,
    **config.get("released", {}),
}
RELEASED_STATUS = "reports/released_status.md"


def released_registry():
    """The parsed checkpoint registry (pcl.released imports only the standard library and yaml)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from pcl.released import load_registry

    return load_registry(Path(RELEASED_CFG["checkpoints"]))


def released_present():
    """{experiment: entry} of the checkpoints present now ({} unless tier `released` is on)."""
    if "released" not in TIERS:
        return {}
    from pcl.released import present_checkpoints

    return {e.experiment: e for e in present_checkpoints(released_registry())}


def released_snapshot():
    """Presence, size and mtime of every registered file: a param of the status rule, so that
    placing or removing a checkpoint by hand re-writes the status report."""
    if "released" not in TIERS:
        return ""
    out = []
    for e in released_registry().entries:
        st = e.path.stat() if e.path.is_file() else None
        out.append(f"{e.name}:{st.st_size}:{int(st.st_mtime)}" if st else f"{e.name}:absent")
    return " ".join(out)


RELEASED = released_present()
RELEASED_OPTIONS = " ".join(
    [
        f"--device {shlex.quote(str(RELEASED_CFG['device']))}",
        f"--precision {shlex.quote(str(RELEASED_CFG['precision']))}",
        f"--seed {int(RELEASED_CFG['seed'])}",
    ]
    + (["--chop"] if RELEASED_CFG["chop"] else [])
    + (["--self-ensemble"] if RELEASED_CFG["self_ensemble"] else [])
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
    if RELEASED:
        files += expand(
            "results/released/{experiment}/{protocol}/{dataset}.csv",
            experiment=list(RELEASED),
            protocol=RELEASED_CFG["protocols"],
            dataset=list(available_benchmarks()),
        )
    return files
