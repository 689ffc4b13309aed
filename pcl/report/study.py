"""The study tier's grid: each +PCL cell against the L1-only control of its L1 range (docs/study.md).

Why a report of its own: the study asks whether the contrastive term improves PSNR or NIQE in some
setting of its weight (L1 range, embedding warm-up, alpha).  Its experiments are not the
``<backbone>-pcl`` / ``<backbone>-control`` pairs that ``pcl gains`` finds by name, so each cell is
paired here explicitly, then handed to the same machinery (``pcl.report.gains``: images paired by
name, seeds paired seed by seed, hierarchical bootstrap over seeds then images, MDE) and the
verdict's cell rule (``pcl.report.verdict_rules.cell_status``).  Beside each gain it shows what
the term was: its measured share of the gradient and the embedding's loss against chance, both
read from the result sidecars (``training.*``, written by ``pcl evaluate`` from the run).

This module does not import ``pcl.train`` (docs/architecture.md): the CLI resolves the catalog
into :class:`StudyCell` records.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from pcl.errors import PCLError
from pcl.report.gains import find_pairings, per_image_gains, per_seed_gains
from pcl.report.results import SOURCE_COLUMN, sidecar_field
from pcl.report.stats import (BOOTSTRAP_DRAWS, BOOTSTRAP_SEED, CONFIDENCE, bootstrap_interval, gain_stats,
                              hierarchical_interval)
from pcl.report.verdict_rules import cell_status

#: Metrics the study reports (sign: positive = +PCL better; NIQE is lower-is-better in gains.py).
STUDY_METRICS: tuple[str, ...] = ("psnr", "niqe")
STUDY_COLUMNS: tuple[str, ...] = (
    "comparison", "first", "second", "loss_scale", "warmup", "alpha", "protocol", "dataset", "metric", "n",
    "n_seeds", "mean_gain", "ci_low", "ci_high", "mde", "seed_sd_gain", "status", "family_size", "fw_ci_low",
    "fw_ci_high", "fw_status", "share_median", "share_runs", "embedding_loss", "embedding_chance",
)
"""``comparison``: ``vs control`` (the term's effect) or ``alpha`` (smaller alpha minus larger, both +PCL);
``seed_sd_gain``: sd over seeds of the per-seed mean gain; ``share_median``: median over the first
arm's runs of their ``training.term_grad_share``; ``share_runs``: how many runs recorded one;
``status``: the cell's own 95 % interval; ``fw_*``: the same cell in its family (every row of its
``comparison``, ``family_size`` of them), its interval at 1 - 0.05 / family_size (Bonferroni), so that
a verdict over many cells is not carried by the one in twenty that a 95 % interval misses."""
#: The pairing names handed to ``pcl.report.gains`` (its comparisons pair ``X-pcl`` with ``X-control``).
_FIRST, _SECOND = "study-pcl", "study-control"


@dataclass(frozen=True)
class StudyCell:
    """One +PCL experiment of the grid, its control and the settings that place it."""

    pcl: str
    control: str
    loss_scale: str
    warmup: int
    alpha: float


@dataclass(frozen=True)
class Diagnostics:
    """What one run recorded about its term (None where it recorded nothing)."""

    share: float | None
    embedding_loss: float | None
    embedding_chance: float | None


def _number(value: object) -> float | None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(float(value))
    return float(value) if ok else None


def run_diagnostics(results: pd.DataFrame, tier: str, experiment: str) -> dict[str, Diagnostics]:
    """{seed key: Diagnostics} of one experiment's runs, from the sidecars of its result files.

    Every result file of a run carries the same ``training`` block; the first one found per seed is
    used.  Rows must have been read with ``read_results(..., source=True)``.
    """
    if SOURCE_COLUMN not in results.columns:
        raise PCLError("study: result rows were read without their file names; read them with source=True")
    rows = results[(results["tier"] == tier) & (results["experiment"] == experiment)]
    out: dict[str, Diagnostics] = {}
    for (seed, path), _ in rows.groupby([rows["seed"].astype("string").fillna(""), SOURCE_COLUMN], sort=True):
        if seed in out:
            continue
        field = lambda key: _number(sidecar_field(Path(path), "training", key))  # noqa: E731
        out[seed] = Diagnostics(field("term_grad_share"), field("embedding_loss"), field("embedding_chance"))
    return out


def _median(values: list[float | None]) -> float:
    kept = [v for v in values if v is not None]
    return float(np.median(kept)) if kept else math.nan


def _pairings(results: pd.DataFrame, tier: str, first: str, second: str):
    """gains.py pairings of ``first`` against ``second`` (renamed so that its comparison pairs them)."""
    sub = results[(results["tier"] == tier) & results["experiment"].isin([first, second])]
    if not (sub["experiment"] == first).any() or not (sub["experiment"] == second).any():
        return []
    sub = sub.assign(experiment=sub["experiment"].map({first: _FIRST, second: _SECOND}))
    return [p for p in find_pairings(sub) if p.kind == "vs control" and p.metric in STUDY_METRICS]


def _seed_sd_gain(pairing) -> float:
    per_seed = per_seed_gains(pairing)
    if per_seed is None or per_seed.shape[0] < 2:
        return math.nan
    return float(per_seed.mean(axis=1).std(ddof=1))


def _compare(results: pd.DataFrame, tier: str, comparison: str, first: str, second: str, cell: StudyCell,
             diagnostics: dict[str, Diagnostics], min_effects: dict[str, float], draws: int,
             seed: int) -> list[tuple[dict, object]]:
    """(record, pairing) per metric and data set of one comparison; the family-wise columns are
    filled by :func:`_family_wise` once every row of the family is known."""
    records = []
    for p in _pairings(results, tier, first, second):
        s = gain_stats(per_image_gains(p).to_numpy(), draws=draws, seed=seed, per_seed=per_seed_gains(p))
        status = cell_status(s.mean_gain, s.ci_low, s.ci_high, min_effect=min_effects[p.metric], mde=s.mde,
                             in_question=min_effects[p.metric])
        shares = [d.share for d in diagnostics.values()]
        records.append(({
            "comparison": comparison, "first": first, "second": second, "loss_scale": cell.loss_scale,
            "warmup": cell.warmup, "alpha": cell.alpha, "protocol": p.protocol, "dataset": p.dataset,
            "metric": p.metric, "n": s.n, "n_seeds": p.n_seeds, "mean_gain": s.mean_gain, "ci_low": s.ci_low,
            "ci_high": s.ci_high, "mde": s.mde, "seed_sd_gain": _seed_sd_gain(p), "status": status,
            "share_median": _median(shares), "share_runs": sum(v is not None for v in shares),
            "embedding_loss": _median([d.embedding_loss for d in diagnostics.values()]),
            "embedding_chance": _median([d.embedding_chance for d in diagnostics.values()]),
        }, p))
    return records


def _family_wise(rows: list[tuple[dict, object]], min_effects: dict[str, float], draws: int, seed: int) -> None:
    """Bonferroni over each comparison's rows: every interval again at 1 - (1 - 0.95) / m, its status."""
    sizes: dict[str, int] = {}
    for rec, _ in rows:
        sizes[rec["comparison"]] = sizes.get(rec["comparison"], 0) + 1
    for rec, p in rows:
        m = sizes[rec["comparison"]]
        level = 1.0 - (1.0 - CONFIDENCE) / m
        per_seed = per_seed_gains(p)
        if per_seed is not None and per_seed.shape[0] > 1:
            low, high = hierarchical_interval(per_seed, draws=draws, seed=seed, confidence=level)
        else:
            low, high = bootstrap_interval(per_image_gains(p).to_numpy(), draws=draws, seed=seed, confidence=level)
        rec.update(family_size=m, fw_ci_low=low, fw_ci_high=high,
                   fw_status=cell_status(rec["mean_gain"], low, high, min_effect=min_effects[rec["metric"]], mde=rec["mde"],
                                         in_question=min_effects[rec["metric"]]))


def study_table(results: pd.DataFrame, cells: list[StudyCell], *, tier: str, min_effects: dict[str, float],
                draws: int = BOOTSTRAP_DRAWS, seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """One row per (comparison, cell, protocol, data set, metric), columns ``STUDY_COLUMNS``.

    ``vs control`` rows: +PCL minus its control.  ``alpha`` rows (Table VII's ordering at miniature
    scale): the smaller alpha's +PCL run minus the larger's at the same L1 range and warm-up.  Each
    row has its own 95 % status and its family-wise one (Bonferroni within its comparison).
    """
    records = []
    for cell in cells:
        diag = run_diagnostics(results, tier, cell.pcl)
        records += _compare(results, tier, "vs control", cell.pcl, cell.control, cell, diag, min_effects, draws, seed)
    for small, large in alpha_pairs(cells):
        diag = run_diagnostics(results, tier, small.pcl)
        records += _compare(results, tier, "alpha", small.pcl, large.pcl, small, diag, min_effects, draws, seed)
    _family_wise(records, min_effects, draws, seed)
    return pd.DataFrame.from_records([rec for rec, _ in records], columns=list(STUDY_COLUMNS))


def alpha_pairs(cells: list[StudyCell]) -> list[tuple[StudyCell, StudyCell]]:
    """(smaller alpha, larger alpha) cells that share L1 range and warm-up, smallest first."""
    groups: dict[tuple[str, int], list[StudyCell]] = {}
    for cell in cells:
        groups.setdefault((cell.loss_scale, cell.warmup), []).append(cell)
    pairs = []
    for group in groups.values():
        ordered = sorted(group, key=lambda c: c.alpha)
        pairs += [(a, b) for i, a in enumerate(ordered) for b in ordered[i + 1:] if a.alpha < b.alpha]
    return pairs


def per_run_points(results: pd.DataFrame, cells: list[StudyCell], *, tier: str, dataset: str, protocol: str,
                   draws: int = BOOTSTRAP_DRAWS, seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """One row per +PCL run: its PSNR change over the control run of the same seed on ``dataset``
    (mean over images, bootstrap interval over images) and its measured gradient share."""
    from pcl.report.stats import bootstrap_interval

    rows = []
    for cell in cells:
        diag = run_diagnostics(results, tier, cell.pcl)
        for p in _pairings(results, tier, cell.pcl, cell.control):
            if p.metric != "psnr" or p.dataset != dataset or p.protocol != protocol or p.by_seed is None:
                continue
            for seed_key, gains in p.by_seed.iterrows():
                g = gains.to_numpy(dtype=np.float64)
                low, high = bootstrap_interval(g, draws=draws, seed=seed)
                share = diag.get(str(seed_key), Diagnostics(None, None, None)).share
                rows.append({"experiment": cell.pcl, "seed": str(seed_key), "loss_scale": cell.loss_scale,
                             "warmup": cell.warmup, "alpha": cell.alpha, "share": share, "gain": float(g.mean()),
                             "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=["experiment", "seed", "loss_scale", "warmup", "alpha", "share", "gain",
                                       "ci_low", "ci_high"])
