"""Several training seeds of one experiment: the runs they make and what each run starts from.

Why a module of its own: the catalog names experiments, the workflow and ``pcl train`` handle runs.
A tier (or one experiment at a tier) may ask for several seeds; each seed is one run, the first
under the experiment's own name and the others as ``<name>@seed<N>`` (``pcl.names.run_name``).
A seeded run that starts from another experiment (``init: {experiment: ...}``, ``embedding_from``)
starts from that experiment's run of the same seed when it has one, else from its first seed's:
a fine-tune repeated over seeds then either follows each baseline seed or shares one baseline.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pcl.errors import PCLError
from pcl.names import run_name, split_run_name
from pcl.train.catalog import Catalog, Experiment


def run_names(catalog: Catalog, tier: str, name: str) -> list[str]:
    """The run names of experiment ``name`` at ``tier``, one per seed, the first seed's first."""
    seeds = catalog.get(name).seeds(tier)
    return [run_name(name, seed, seeds[0]) for seed in seeds]


def run_of(catalog: Catalog, tier: str, run: str) -> tuple[Experiment, int]:
    """(experiment, training seed) of a run name at ``tier``; an unknown seed names the valid ones."""
    name, seed = split_run_name(run)
    experiment = catalog.get(name)
    seeds = experiment.seeds(tier)
    if seed is None:
        return experiment, seeds[0]
    if seed not in seeds[1:]:
        valid = ", ".join(run_names(catalog, tier, name))
        raise PCLError(f"run {run!r}: seed {seed} is not an extra seed of {name} at tier {tier}; its runs: {valid}")
    return experiment, seed


def dependency_runs(catalog: Catalog, tier: str, run: str) -> dict[str, str]:
    """{experiment it starts from: the run of it that ``run`` starts from} (same seed when there is one)."""
    experiment, seed = run_of(catalog, tier, run)
    out = {}
    for dep in experiment.depends_on(tier):
        seeds = catalog.get(dep).seeds(tier)
        out[dep] = run_name(dep, seed if seed in seeds else seeds[0], seeds[0])
    return out


def seeded_starts(catalog: Catalog, tier: str, run: str, runs_root: Path) -> tuple[Path | None, Path | None]:
    """(--init, --embedding-from) run directories for a run whose starting runs are not the plain
    siblings the trainer looks for by default; (None, None) for every first-seed run."""
    experiment, _ = run_of(catalog, tier, run)
    deps = dependency_runs(catalog, tier, run)
    init = experiment.init(tier)
    init_from = init.get("experiment") if isinstance(init, Mapping) else None
    init_dir = Path(runs_root) / deps[init_from] if init_from and deps[init_from] != init_from else None
    emb = experiment.embedding_from
    emb_dir = Path(runs_root) / deps[emb] if emb and deps[emb] != emb else None
    return init_dir, emb_dir
