"""The Snakemake DAG: a dry run lists the full paper job set for `finetune`, and the embedded
default trains and evaluates every catalog experiment at smoke size.

Each dry run happens in a fresh folder (fixture `workdir` of conftest.py: links to the code, a
copy of config/) so that no pipeline output of the checkout is seen: "from clean".  Job counts
come from the catalog (one training run per experiment) and the config (datasets x protocols).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(workdir)}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=300)


def _job_counts(workdir: Path, *args: str) -> dict[str, int]:
    proc = _snakemake(workdir, "-n", *args)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = proc.stdout + proc.stderr
    block = text[text.index("Job stats:"):]
    counts = {}
    for line in block.splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        counts[m.group(1)] = int(m.group(2))
    return counts


def _n_experiments() -> int:
    data = yaml.safe_load((REPO / "config" / "experiments.yaml").read_text())
    # experiments limited by `only_tiers` (the study tier's grid) are trained only by those tiers
    return len([e for e in data["experiments"].values() if not e.get("only_tiers")])


@pytest.mark.slow  # 6 s on an idle 2-core machine, 12 s when it is shared
def test_finetune_dry_run_lists_the_paper_job_set(workdir):
    counts = _job_counts(workdir, "--configfile", "config/finetune.yaml")
    n = _n_experiments()
    assert counts["train"] == n  # every catalog experiment, once
    # config.yaml training.tiers.finetune: 5 benchmarks x 2 protocols (matlab, authors)
    assert counts["evaluate_trained"] == n * 5 * 2
    assert counts["prepare_benchmark"] == 5
    assert counts["download_div2k"] == 1  # DIV2K absent in a fresh folder
    assert counts["catalog_cells"] == counts["tables"] == counts["check"] == 1
    assert counts["total"] == sum(v for k, v in counts.items() if k != "total")


def test_embedded_default_trains_every_experiment_at_smoke_size_and_the_mini_tier(workdir):
    counts = _job_counts(workdir)
    n = _n_experiments()
    catalog = yaml.safe_load((REPO / "config" / "experiments.yaml").read_text())
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    mini = catalog["tiers"]["mini"]["experiments"]  # the tier's own list
    mini_sets = config["training"]["tiers"]["mini"]
    smoke_sets = config["training"]["tiers"]["smoke"]
    # smoke: `group` runs per job, each job training and evaluating them in one process (groups.smk)
    groups = {k: v for k, v in counts.items() if k.startswith("group_smoke_")}
    assert set(groups.values()) == {1} and len(groups) == -(-n // smoke_sets["group"])
    assert counts["train"] == len(mini)
    assert counts["evaluate_trained"] == len(mini) * len(mini_sets["datasets"]) * len(mini_sets["protocols"])
    (workdir / "config" / "per_run.yaml").write_text("training:\n  tiers:\n    smoke:\n      group: 0\n")
    per_run = _job_counts(workdir, "--configfile", "config/per_run.yaml")
    assert per_run["train"] == n + len(mini)  # without `group`: one job per run and per result file
    assert per_run["evaluate_trained"] == (n * len(smoke_sets["datasets"]) * len(smoke_sets["protocols"])
                                           + len(mini) * len(mini_sets["datasets"]) * len(mini_sets["protocols"]))
    assert "download_div2k" not in counts  # smoke and mini train on the shipped stand-in photos
    for rule in ("gains", "verdict", "figures", "pages", "tables", "check"):
        assert counts[rule] == 1, rule


def test_light_rules_stay_local():
    # On a cluster, downloads, status pages, tables, gains, verdict, figures, check and report pages
    # must not queue on a GPU partition: they are localrules; training and evaluation are not.
    text = "\n".join(p.read_text() for p in [REPO / "Snakefile", *(REPO / "workflow" / "rules").glob("*.smk")])
    local = set()
    for block in re.findall(r"^localrules:\n((?:    \w+,?\n)+)", text, flags=re.M):
        local |= set(re.findall(r"\w+", block))
    assert {"discover_benchmarks", "ingest_released_logs", "released_status", "weights_status", "download_div2k",
            "catalog_cells", "tables", "gains", "verdict", "figures", "check", "pages"} <= local
    assert not local & {"train", "evaluate_trained", "evaluate_bicubic", "evaluate_released"}


def test_experiment_selection_pulls_in_dependencies(workdir):
    # edsr-s-pcl-fixed freezes the embedding of edsr-l-pcl (catalog embedding_from): both are
    # trained, in dependency order, in one smoke group; one job per run with `group: 0`
    selection = ("--config", "tiers=[smoke]", "training={'experiments': ['edsr-s-pcl-fixed']}")
    grouped = _job_counts(workdir, *selection)
    assert grouped.get("group_smoke_1") == 1 and "train" not in grouped and "evaluate_trained" not in grouped
    (workdir / "config" / "per_run.yaml").write_text("training:\n  tiers:\n    smoke:\n      group: 0\n")
    counts = _job_counts(workdir, "--configfile", "config/per_run.yaml", *selection)
    assert counts["train"] == 2 and counts["evaluate_trained"] == 2


def test_lint_is_clean(workdir):
    proc = _snakemake(workdir, "--lint")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Congratulations, your workflow is in a good condition!" in proc.stdout + proc.stderr
