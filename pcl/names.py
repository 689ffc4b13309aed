"""The harness's vocabulary: benchmark data sets and result tiers, each listed once.

Why one module: result rows, file paths, table columns, the CLI's defaults and the check all name
the same five benchmarks and the same tiers; a second copy of either list drifts (a new tier that
the reader refuses, a data set alias that the CLI knows and the tables do not).  Evaluation
protocols are listed once too, beside their definitions in ``pcl.metrics.psnr_ssim``.  This module
imports only ``pcl.errors`` (and reads the catalog's tier names with PyYAML), so that every layer
may import it.
"""

from __future__ import annotations

from pcl.errors import PCLError

DATASET_SIZES: dict[str, int] = {"Set5": 5, "Set14": 14, "B100": 100, "Urban100": 100, "Manga109": 109}
"""Images per benchmark, in the paper's column order (the released logs hold exactly these counts,
docs/protocols.md §8)."""

DATASETS: tuple[str, ...] = tuple(DATASET_SIZES)
"""Canonical benchmark names, in the paper's column order."""

DATASET_ALIASES: dict[str, tuple[str, ...]] = {
    "Set5": ("set5",),
    "Set14": ("set14",),
    "B100": ("b100", "bsd100", "bsds100"),
    "Urban100": ("urban100",),
    "Manga109": ("manga109",),
}
"""Lower-case spellings that mirrors and users give each benchmark."""

_BUILTIN_MEANINGS: dict[str, str] = {
    "reported": "the authors' released per-image logs, parsed (no model run by us)",
    "bicubic": "bicubic upsampling evaluated by the harness",
    "smoke": "tiny plumbing run; numbers are not comparable with the paper",
    "mini": "small real training run on CPU (stand-in photos); compared with bicubic and within the tier, "
    "not with the paper",
    "released": "the authors' released weights evaluated by the harness",
    "finetune": "fine-tuning run by the harness",
    "scratch": "training from scratch by the harness",
}


def _catalog_tiers() -> dict[str, dict]:
    """The training tiers of the experiment catalog ($PCL_CATALOG, else config/experiments.yaml):
    a tier added there is a tier everywhere (rows, tables, check) without a code change."""
    import os
    from pathlib import Path

    import yaml

    path = Path(os.environ.get("PCL_CATALOG") or Path(__file__).resolve().parents[1] / "config" / "experiments.yaml")
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return {}
    tiers = data.get("tiers") if isinstance(data, dict) else None
    return {str(k): v for k, v in tiers.items() if isinstance(v, dict)} if isinstance(tiers, dict) else {}


_CATALOG_TIERS = _catalog_tiers()

TIER_MEANINGS: dict[str, str] = {
    **_BUILTIN_MEANINGS,
    **{name: " ".join(str(t.get("description", "training tier of the catalog")).split())[:160]
       for name, t in _CATALOG_TIERS.items() if name not in _BUILTIN_MEANINGS},
}
"""How the numbers of each tier were obtained, in display order (cheapest first; tiers that only
the catalog knows come last); a table legend prints these lines."""

TIERS: tuple[str, ...] = tuple(TIER_MEANINGS)
"""Every tier a result row may name, in display order."""

UNTRAINED_TIERS: tuple[str, ...] = ("reported", "bicubic", "released")
"""Tiers that train nothing: parsed logs, bicubic, the authors' weights.  They reuse experiment
names such as ``rcan-pcl`` for models that are not the catalog's, so they are placed by name."""

TRAINED_TIERS: tuple[str, ...] = tuple(t for t in TIERS if t not in UNTRAINED_TIERS)
"""Tiers whose runs the harness trains from the experiment catalog (``config/experiments.yaml``,
whose ``tiers`` are exactly these); their results are placed in the tables by the catalog's cells."""

NON_COMPARABLE_TIERS: frozenset[str] = frozenset(
    {"smoke", "mini"} | {n for n, t in _CATALOG_TIERS.items() if t.get("compare_with_paper") is False}
)
"""Tiers whose numbers are shown without a delta to the paper: a smoke run is a plumbing test, a
mini run a miniature of the protocol on other data, neither a reproduction of a printed cell."""

OWN_REPORT_TIERS: frozenset[str] = frozenset(n for n, t in _CATALOG_TIERS.items() if t.get("own_report") is True)
"""Tiers whose rows answer a question of their own (the study of the contrastive term's weight,
docs/study.md, and its re-run): they feed ``pcl study`` and their own check only.  Their grid of
experiments has no place in Tables II-VII, and their +PCL/control pairs are not the paper's, so
the tables, the gains and the paper's verdict leave them out rather than list them as unplaced."""


def canonical_dataset(name: str) -> str:
    """Map a user-given dataset name to its canonical spelling, or fail naming the valid ones."""
    key = name.strip().lower()
    for canonical, aliases in DATASET_ALIASES.items():
        if key == canonical.lower() or key in aliases:
            return canonical
    raise PCLError(f"unknown dataset {name!r}; use one of {', '.join(DATASETS)}")


#: Separator between an experiment's name and the seed of one of its extra runs: ``rcan-pcl@seed2``.
SEED_MARK = "@seed"


def run_name(experiment: str, seed: int, first_seed: int) -> str:
    """The run (folder) name of one seed of an experiment.

    Why the first seed keeps the bare name: a catalog that asks for one seed (every paper tier by
    default) keeps the run and result paths it always had; extra seeds get ``<name>@seed<N>``
    folders beside it (``@`` cannot occur in a catalog name, so the split is unambiguous).
    """
    return experiment if int(seed) == int(first_seed) else f"{experiment}{SEED_MARK}{int(seed)}"


def split_run_name(name: str) -> tuple[str, int | None]:
    """(experiment, seed) of a run name; seed None for the bare name (the experiment's first seed)."""
    experiment, mark, seed = name.partition(SEED_MARK)
    if not mark:
        return name, None
    if not seed.isdigit():
        raise ValueError(f"run name {name!r}: expected <experiment>{SEED_MARK}<integer>")
    return experiment, int(seed)
