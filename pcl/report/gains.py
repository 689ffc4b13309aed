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
one experiment are averaged per image for the mean, the Wilcoxon test and the MDE; the interval
resamples seeds and then images (``pcl.report.stats.hierarchical_interval``) so that training
variance enters it.  Both arms must have run the same seeds, paired seed by seed; an arm with no
training seed (weights evaluated as given, e.g. the official ones) is a fixed reference for every
seed of the other.  With one seed the training variance is unknown: ``seed_sd`` is left empty.
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
    "mde", "sd_diff", "seeds", "resampled",
)
"""``mde``: minimum detectable effect at 80% power (``pcl.report.stats.mde``); ``sd_diff``: sd of the
per-image gains; ``seeds``: the training seeds both arms ran (``;``-joined, empty when none was
recorded); ``resampled``: ``images`` or ``seeds+images`` (what the interval resamples)."""
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
    """sd over seeds of the +PCL arm's set means; NaN with one seed (training variance unknown)."""
    seeds: tuple[str, ...] = ()
    by_seed: pd.DataFrame | None = None
    """Per-seed gains before the metric's sign: rows = seed, columns = image (``pcl - other``)."""


def _seed_table(rows: pd.DataFrame, metric: str) -> pd.DataFrame:
    """seed key x normalised image name -> value (seed key "" where no training seed was recorded)."""
    frame = rows.assign(key=rows["image"].map(normalise_image_name), seed_key=rows["seed"].astype("string").fillna(""))
    return frame.groupby(["seed_key", "key"])[metric].mean().unstack("key")


def _seed_sd(table: pd.DataFrame) -> float:
    return float(table.mean(axis=1).std(ddof=1)) if len(table) > 1 else math.nan


def _match_seeds(a: pd.DataFrame, b: pd.DataFrame, pcl_name: str, other: str, what: str) -> pd.DataFrame:
    """``b`` aligned to ``a``'s seeds: equal seed sets pair seed by seed; an unseeded ``b`` is broadcast."""
    seeds_a, seeds_b = list(a.index), list(b.index)
    if sorted(seeds_a) == sorted(seeds_b):
        return b.reindex(seeds_a)
    if seeds_b == [""]:
        return pd.DataFrame([b.iloc[0].to_numpy()] * len(seeds_a), index=seeds_a, columns=b.columns)
    show = lambda s: "{" + ", ".join(x or "none" for x in s) + "}"  # noqa: E731
    raise PCLError(f"{what}: {pcl_name} ran seeds {show(seeds_a)} but {other} ran {show(seeds_b)}; train and evaluate "
                   "both experiments with the same seeds (config/experiments.yaml `seeds`) before comparing them")


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


def _require_complete(by_seed: pd.DataFrame, what: str) -> None:
    """Every seed must have a value for every image: a hole would bias the seed resampling."""
    holes = by_seed.isna()
    if holes.to_numpy().any():
        seed = holes.any(axis=1).idxmax()
        images = list(by_seed.columns[holes.loc[seed].to_numpy()][:5])
        raise PCLError(f"{what}: seed {seed or 'none'} has no value for {', '.join(images)}; evaluate every seed of "
                       "both experiments on the same images")


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
                    what = f"{tier}/{protocol}/{dataset} {metric}: {pcl_name} vs {other}"
                    ta, tb = _seed_table(a_rows, metric), _seed_table(b_rows, metric)
                    values = _pair(ta.mean(axis=0), tb.mean(axis=0), what)
                    tb = _match_seeds(ta, tb, pcl_name, other, what)
                    by_seed = ta[values.index] - tb[values.index]
                    _require_complete(by_seed, what)
                    seeds = tuple(str(x) for x in ta.index if str(x))
                    out.append(Pairing(tier, protocol, dataset, metric, pcl_name, other, kind, backbone, values,
                                       len(ta), _seed_sd(ta), seeds, by_seed))
    return out


def per_image_gains(p: Pairing) -> pd.Series:
    """Gains of one pairing, positive = +PCL better (sign flipped for lower-is-better metrics)."""
    diff = p.values["pcl"] - p.values["other"]
    return -diff if p.metric in LOWER_IS_BETTER else diff


def per_seed_gains(p: Pairing) -> np.ndarray | None:
    """Seeds x images gains with the sign of ``per_image_gains`` (None without per-seed data)."""
    if p.by_seed is None:
        return None
    g = p.by_seed.to_numpy(dtype=np.float64)
    return -g if p.metric in LOWER_IS_BETTER else g


def compute_gains(results: pd.DataFrame, *, draws: int = BOOTSTRAP_DRAWS, seed: int = BOOTSTRAP_SEED) -> pd.DataFrame:
    """One row per pairing with the columns of ``GAIN_COLUMNS`` (Holm within each family)."""
    records = []
    for p in find_pairings(results):
        gains = per_image_gains(p).to_numpy()
        if not np.all(np.isfinite(gains)):
            bad = list(p.values.index[~np.isfinite(gains)][:5])
            raise PCLError(f"{p.tier}/{p.protocol}/{p.dataset} {p.metric}: non-finite values for {', '.join(bad)}; "
                           "re-run the evaluation that produced them")
        s = gain_stats(gains, draws=draws, seed=seed, per_seed=per_seed_gains(p))
        records.append({
            "tier": p.tier, "protocol": p.protocol, "comparison": f"{p.pcl} vs {p.other}", "kind": p.kind,
            "backbone": p.backbone, "dataset": p.dataset, "metric": p.metric, "n": s.n, "mean_gain": s.mean_gain,
            "ci_low": s.ci_low, "ci_high": s.ci_high, "p_value": s.p_value, "p_holm": math.nan, "improved": s.improved,
            "mean_pcl": float(p.values["pcl"].mean()), "mean_other": float(p.values["other"].mean()),
            "n_seeds": p.n_seeds, "seed_sd": p.seed_sd, "draws": draws, "bootstrap_seed": seed,
            "mde": s.mde, "sd_diff": s.sd_diff, "seeds": ";".join(p.seeds),
            "resampled": "seeds+images" if p.n_seeds > 1 else "images",
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
