"""Gains of +PCL models over their comparison models, per image, with their uncertainty.

For every pair the result rows allow -- the authors' +PCL model against the official one (tiers
``reported`` and ``released``), and in the trained tiers (``mini``, ``finetune``, ``scratch``) the
+PCL run against its baseline, its L1-only control and its as-released twin -- and for every
protocol, data set and metric: the mean per-image gain, a paired bootstrap 95% interval, the
Wilcoxon signed-rank p-value, the images improved, and Holm-adjusted p-values within each family
(one tier, protocol, kind of comparison and metric: the cells of one table).

Sign: a gain is always "better is positive": ``pcl - other`` for PSNR/SSIM, ``other - pcl`` for
LPIPS and NIQE, where lower is better.  Images are paired by normalised name (lower case, ``_``
removed: the released logs say ``img001``, the installed Urban100 ``img_001``).  Several seeds of
one experiment are averaged per image first (their spread is reported as ``seed_sd``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pcl.errors import PCLError
from pcl.names import TRAINED_TIERS
from pcl.report.check_released import normalise_image_name
from pcl.report.results import OPTIONAL_COLUMNS
from pcl.report.stats import BOOTSTRAP_DRAWS, BOOTSTRAP_SEED, gain_stats, holm

GAIN_COLUMNS: tuple[str, ...] = (
    "tier", "protocol", "comparison", "kind", "backbone", "dataset", "metric", "n", "mean_gain", "ci_low", "ci_high",
    "p_value", "p_holm", "improved", "mean_pcl", "mean_other", "n_seeds", "seed_sd", "draws", "bootstrap_seed",
)
LOWER_IS_BETTER: frozenset[str] = frozenset({"lpips", "niqe", "niqe_y"})
#: Trained tiers whose numbers mean something (smoke runs are plumbing: no gains from them).
GAIN_TIERS: frozenset[str] = frozenset(TRAINED_TIERS) - {"smoke"}
#: (tiers, the +PCL experiment's method suffix, the other's suffix, kind of comparison).
COMPARISONS: tuple[tuple[frozenset[str], str, str, str], ...] = (
    (frozenset({"reported", "released"}), "pcl", "official", "vs official"),
    (GAIN_TIERS, "pcl", "baseline", "vs baseline"),
    (GAIN_TIERS, "pcl", "control", "vs control"),
    (GAIN_TIERS, "pcl", "pcl-released", "vs as-released"),
)


@dataclass(frozen=True)
class Pairing:
    """Per-image values of two experiments on one (tier, protocol, dataset, metric)."""

    tier: str
    protocol: str
    dataset: str
    metric: str
    pcl: str
    other: str
    kind: str
    backbone: str
    values: pd.DataFrame
    """index: normalised image name; columns ``pcl``, ``other`` (seed-averaged)."""
    n_seeds: int
    seed_sd: float


def _per_image(rows: pd.DataFrame, metric: str) -> tuple[pd.Series, int, float]:
    """Seed-averaged value per normalised image name, the number of seeds and the sd of set means."""
    frame = rows.assign(key=rows["image"].map(normalise_image_name), seed_key=rows["seed"].astype("string").fillna(""))
    by_seed = frame.groupby(["seed_key", "key"])[metric].mean()
    seeds = frame["seed_key"].nunique()
    set_means = by_seed.groupby(level=0).mean()
    sd = float(set_means.std(ddof=1)) if seeds > 1 else 0.0
    return by_seed.groupby(level=1).mean(), int(seeds), sd


def _pair(a: pd.Series, b: pd.Series, what: str) -> pd.DataFrame:
    missing_b = sorted(set(a.index) - set(b.index))
    missing_a = sorted(set(b.index) - set(a.index))
    if missing_a or missing_b:
        parts = []
        if missing_b:
            parts.append(f"only in the +PCL rows: {', '.join(missing_b[:10])}")
        if missing_a:
            parts.append(f"only in the other rows: {', '.join(missing_a[:10])}")
        raise PCLError(f"{what}: the two image sets differ ({'; '.join(parts)}); evaluate both on the same images")
    return pd.DataFrame({"pcl": a, "other": b.reindex(a.index)})


def find_pairings(results: pd.DataFrame) -> list[Pairing]:
    """Every (tier, protocol, dataset, metric) pairing the rows allow, in a stable order."""
    if results.empty:
        return []
    metrics = ["psnr", "ssim", *[m for m in OPTIONAL_COLUMNS if m in results.columns]]
    out = []
    for (tier, protocol, dataset), sub in results.groupby(["tier", "protocol", "dataset"], sort=True):
        experiments = set(sub["experiment"])
        for tiers, pcl_suffix, other_suffix, kind in COMPARISONS:
            if tier not in tiers:
                continue
            for pcl_name in sorted(e for e in experiments if e.endswith(f"-{pcl_suffix}")):
                backbone = pcl_name[: -len(pcl_suffix) - 1]
                other = f"{backbone}-{other_suffix}"
                if other not in experiments:
                    continue
                a_rows, b_rows = sub[sub["experiment"] == pcl_name], sub[sub["experiment"] == other]
                for metric in metrics:
                    if a_rows[metric].isna().all() or b_rows[metric].isna().all():
                        continue
                    a, seeds_a, sd_a = _per_image(a_rows, metric)
                    b, _, _ = _per_image(b_rows, metric)
                    what = f"{tier}/{protocol}/{dataset} {metric}: {pcl_name} vs {other}"
                    out.append(Pairing(tier, protocol, dataset, metric, pcl_name, other, kind, backbone,
                                       _pair(a, b, what), seeds_a, sd_a))
    return out


def per_image_gains(p: Pairing) -> pd.Series:
    """Gains of one pairing, positive = +PCL better (sign flipped for lower-is-better metrics)."""
    diff = p.values["pcl"] - p.values["other"]
    return -diff if p.metric in LOWER_IS_BETTER else diff


def compute_gains(results: pd.DataFrame, *, draws: int = BOOTSTRAP_DRAWS, seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """One row per pairing with the columns of ``GAIN_COLUMNS`` (Holm within each family)."""
    records = []
    for p in find_pairings(results):
        gains = per_image_gains(p).to_numpy()
        if not np.all(np.isfinite(gains)):
            bad = list(p.values.index[~np.isfinite(gains)][:5])
            raise PCLError(f"{p.tier}/{p.protocol}/{p.dataset} {p.metric}: non-finite values for {', '.join(bad)}; "
                           "re-run the evaluation that produced them")
        s = gain_stats(gains, draws=draws, seed=seed)
        records.append({
            "tier": p.tier, "protocol": p.protocol, "comparison": f"{p.pcl} vs {p.other}", "kind": p.kind,
            "backbone": p.backbone, "dataset": p.dataset, "metric": p.metric, "n": s.n, "mean_gain": s.mean_gain,
            "ci_low": s.ci_low, "ci_high": s.ci_high, "p_value": s.p_value, "p_holm": math.nan, "improved": s.improved,
            "mean_pcl": float(p.values["pcl"].mean()), "mean_other": float(p.values["other"].mean()),
            "n_seeds": p.n_seeds, "seed_sd": p.seed_sd, "draws": draws, "bootstrap_seed": seed,
        })
    frame = pd.DataFrame.from_records(records, columns=list(GAIN_COLUMNS))
    if frame.empty:
        return frame
    for _, idx in frame.groupby(["tier", "protocol", "kind", "metric"], sort=False).groups.items():
        frame.loc[idx, "p_holm"] = holm(frame.loc[idx, "p_value"].to_numpy())
    return frame


def gains_for(frame: pd.DataFrame, **where: str) -> pd.DataFrame:
    """Rows of a gains frame matching every ``column=value`` given."""
    mask = np.ones(len(frame), dtype=bool)
    for key, value in where.items():
        mask &= (frame[key] == value).to_numpy()
    return frame[mask]


def pairings_by_key(results: pd.DataFrame) -> dict[tuple[str, str, str, str, str], Pairing]:
    """Pairings keyed by (tier, protocol, comparison, dataset, metric): the per-image data behind gains.csv."""
    return {(p.tier, p.protocol, f"{p.pcl} vs {p.other}", p.dataset, p.metric): p for p in find_pairings(results)}


def recompute_means(results: pd.DataFrame, gains: pd.DataFrame) -> list[str]:
    """Problems where gains.csv's mean_gain/n/improved differ from the result rows (empty = consistent)."""
    pairings = pairings_by_key(results)
    problems = []
    for rec in gains.to_dict("records"):
        key = (rec["tier"], rec["protocol"], rec["comparison"], rec["dataset"], rec["metric"])
        p = pairings.get(key)
        if p is None:
            problems.append(f"{'/'.join(map(str, key))}: no result rows behind this gain")
            continue
        g = per_image_gains(p)
        if len(g) != int(rec["n"]) or int((g > 0).sum()) != int(rec["improved"]) or abs(float(g.mean()) - float(rec["mean_gain"])) > 1e-9:
            problems.append(f"{'/'.join(map(str, key))}: gains.csv says mean {rec['mean_gain']} over {rec['n']}, "
                            f"the rows give {float(g.mean())} over {len(g)}")
    return problems
