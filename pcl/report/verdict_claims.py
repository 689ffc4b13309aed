"""One evaluator per kind of claim in config/claims.yaml (the rules are in ``pcl.report.verdict_rules``).

Evidence order for the released models: our evaluation of the released weights (tier ``released``),
then the authors' per-image logs (``reported``); then our trainings (``finetune``, ``scratch``,
``mini``).  In a trained tier a +PCL run is compared with its baseline (what Table II compares; it
decides that tier's line) and with its L1-only control (what isolates the term).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pcl.report.gains import GAIN_TIERS, find_pairings, per_image_gains
from pcl.report.gains_report import DIGITS, cell_text
from pcl.report.results import sidecar_field
from pcl.report.stats import BOOTSTRAP_DRAWS, BOOTSTRAP_SEED, bootstrap_interval, mde
from pcl.report.verdict_paper import PaperTables, printed_gain, printed_losses, split_row
from pcl.report.verdict_rules import (CONTRADICTED, NOT_REPRODUCED, NOT_TESTABLE, SUPPORTED, TOO_FEW, cell_status,
                                      combine, reproduces, resolvable_text)

OFFICIAL_TIERS = ("released", "reported")
EVIDENCE_ORDER = (*OFFICIAL_TIERS, "finetune", "scratch", *sorted(GAIN_TIERS - {"finetune", "scratch"}))
TRAINED = tuple(GAIN_TIERS)
UNITS = {"psnr": " dB"}


@dataclass
class Verdict:
    claim: dict
    status: str
    evidence: list[str] = field(default_factory=list)
    cells: list[str] = field(default_factory=list)


def _num(value: float | None, metric: str) -> str:
    return "–" if value is None or math.isnan(value) else f"{value:+.{min(DIGITS.get(metric, 4), 4)}f}"


def _paper_check(claim: dict, tables: PaperTables, pairs: list[tuple[int, str, int, str]], datasets: list[str],
                 metrics: list[str]) -> tuple[str | None, str | None]:
    """(status forced by the printed table or None, evidence line) for the claim read on the paper's own numbers."""
    count, fails, ties = printed_losses(tables, pairs, datasets, metrics)
    if not count:
        return None, None
    quantifier = claim.get("quantifier", "all")
    wins = count - len(fails) - len(ties)
    failed = (quantifier == "all" and fails) or (quantifier == "most" and 2 * wins <= count)
    head = f"the paper's own printed values: {wins} of {count} comparisons go the claimed way"
    tail = (f"; the other way: {'; '.join(fails)}" if fails else "") + (f"; equal as printed: {'; '.join(ties)}" if ties else "")
    if failed:
        return CONTRADICTED, f"{head} -- the paper's own table contradicts the claim as stated{tail}"
    return None, head + (f" (consistent with \"{quantifier} cases\")" if fails and quantifier == "most" else "") + tail


def gains_positive(claim: dict, gains: pd.DataFrame, tables: PaperTables) -> Verdict:
    """+PCL better than its comparison model on every (or most) backbone x data set x metric."""
    effects, table, rows = claim["min_effect"], int(claim.get("paper_table", 2)), claim.get("paper_rows", {})
    lines, cells, headline = [], [], None
    pairs = [(table, f"{rows[b]}+PCL", table, rows[b]) for b in claim["backbones"] if b in rows]
    forced, paper_line = _paper_check(claim, tables, pairs, claim["datasets"], claim["metrics"])
    for tier in EVIDENCE_ORDER:
        kinds = [claim["comparison"]] if tier in OFFICIAL_TIERS else list(claim["trained_comparisons"])
        for kind in kinds:
            sub = gains[(gains["tier"] == tier) & (gains["kind"] == kind) & gains["backbone"].isin(claim["backbones"])
                        & gains["dataset"].isin(claim["datasets"]) & gains["metric"].isin(claim["metrics"])]
            for protocol, part in sub.groupby("protocol", sort=True):
                statuses, mdes, questions = [], {}, {}
                for rec in part.to_dict("records"):
                    metric = rec["metric"]
                    label = rows.get(rec["backbone"])
                    q = printed_gain(tables, table, label, f"{label}+PCL", rec["dataset"], metric) if label else None
                    m = float(rec.get("mde", math.nan))
                    s = cell_status(rec["mean_gain"], rec["ci_low"], rec["ci_high"], min_effect=effects[metric], mde=m,
                                    in_question=q)
                    statuses.append(s)
                    if metric == claim["metrics"][0]:
                        mdes.setdefault(rec["dataset"], []).append(m)
                        questions.setdefault(rec["dataset"], []).append(q if q is not None else rec["mean_gain"])
                    cells.append(f"| {tier}/{protocol} | `{rec['comparison']}` | {rec['dataset']} | {metric.upper()} | "
                                 f"{cell_text(rec)} | {_num(m, metric).lstrip('+')} | {rec['improved']}/{rec['n']} | "
                                 f"{_num(q, metric)} | {s} |")
                status = combine(statuses, claim.get("quantifier", "all"))
                missing = sorted(set(claim["backbones"]) - set(part["backbone"]))
                lines.append(f"{tier}/{protocol} ({kind}): {status}; of {len(statuses)} cells {statuses.count(SUPPORTED)} "
                             f"supported, {statuses.count(TOO_FEW)} too few images to decide, "
                             f"{statuses.count('not significant')} not significant, {statuses.count(CONTRADICTED)} "
                             "contradicted" + (f"; no rows for {', '.join(missing)}" if missing else ""))
                metric = claim["metrics"][0]
                resolved = resolvable_text(mdes, questions, UNITS.get(metric, ""), min(DIGITS.get(metric, 4), 4))
                if resolved:
                    lines.append(f"{tier}/{protocol} ({kind}) {metric.upper()} gains each data set can resolve (MDE at 80% "
                                 f"power against the printed gain): {resolved}")
                headline = headline or status
    if claim["comparison"] == "vs official" and any(l.startswith(OFFICIAL_TIERS) for l in lines):
        lines.append("The released +PCL models were trained by scripts whose contrastive term has no gradient: "
                     "their gains over the official weights measure L1 fine-tuning (claim `attribution-released`).")
    if paper_line:
        lines.insert(0, paper_line)
    return Verdict(claim, forced or headline or NOT_TESTABLE, lines or ["no result rows with these comparisons"], cells)


def mean_gain(claim: dict, results: pd.DataFrame) -> Verdict:
    """A printed mean gain over five sets: reproduced by the logs at the printed precision, and beyond noise."""
    lines, headline = [], None
    by_source: dict[tuple[str, str], dict] = {}
    for p in find_pairings(results):
        if p.kind == claim["comparison"] and p.backbone == claim["backbone"] and p.dataset in claim["datasets"]:
            by_source.setdefault((p.tier, p.protocol), {}).setdefault(p.metric, {})[p.dataset] = per_image_gains(p).to_numpy()
    for tier in EVIDENCE_ORDER:
        for (t, protocol), metrics in sorted(by_source.items()):
            if t != tier:
                continue
            statuses = []
            for metric, printed in claim["printed"].items():
                sets = metrics.get(metric, {})
                if set(sets) != set(claim["datasets"]):
                    continue
                arrays = [sets[d] for d in claim["datasets"]]
                mean = float(np.mean([a.mean() for a in arrays]))
                low, high = _bootstrap_mean_of_means(arrays)
                d = DIGITS.get(metric, 4)
                s = cell_status(mean, low, high, min_effect=claim["min_effect"][metric], mde=math.nan, in_question=printed)
                note = ""
                if tier == "reported" and not reproduces(printed, mean):
                    s = NOT_REPRODUCED
                    note = (f" by the logs: the authors' own per-image values give "
                            f"{mean:+.{d}f}, which does not round to {printed:g}. " + claim.get("discrepancy", ""))
                elif tier != "reported":
                    note = " (printed value inside the interval)" if low <= printed <= high else " (printed value outside the interval)"
                statuses.append(s)
                lines.append(f"{t}/{protocol} {metric.upper()}: five-set mean gain {mean:+.{d}f} "
                             f"[{low:+.{d}f}, {high:+.{d}f}] vs printed {printed:+g}: {s}{note}")
            if statuses:
                headline = headline or (NOT_REPRODUCED if NOT_REPRODUCED in statuses else combine(statuses))
    return Verdict(claim, headline or NOT_TESTABLE, lines or ["the five sets are not all present for this backbone"])


def _bootstrap_mean_of_means(arrays: list[np.ndarray]) -> tuple[float, float]:
    """95% interval of the mean over sets of per-set mean gains, each set resampled on its own."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    draws = np.zeros(BOOTSTRAP_DRAWS)
    for a in arrays:
        idx = rng.integers(0, a.size, size=(BOOTSTRAP_DRAWS, a.size))
        draws += a[idx].mean(axis=1)
    draws /= len(arrays)
    low, high = np.quantile(draws, [0.025, 0.975])
    return float(low), float(high)


def attribution_released(claim: dict, results_dir: Path | None) -> Verdict:
    """Released models: a trained as-released run bitwise equal to its control settles it (the term has no gradient)."""
    lines, identical = [], []
    for tier, backbone, same in released_equals_control(results_dir):
        identical.append(same)
        lines.append(f"{tier}: `{backbone}-pcl-released` and `{backbone}-control` trained "
                     + ("bitwise-identical weights: the released term changes nothing, so the released +PCL models' "
                        "gains are not attributable to it" if same
                        else "different weights (unexpected: the released term should carry no gradient)"))
    if not lines:
        return Verdict(claim, NOT_TESTABLE, ["no trained tier has both an as-released and a control run with "
                                             "checkpoint hashes in their result sidecars"])
    return Verdict(claim, CONTRADICTED if any(identical) else NOT_TESTABLE, lines)


def released_equals_control(results_dir: Path | None) -> list[tuple[str, str, bool]]:
    """(tier, backbone, identical?) from the checkpoint sha256 in the result sidecars."""
    out = []
    if results_dir is None or not Path(results_dir).is_dir():
        return out
    for sidecar in sorted(Path(results_dir).glob("*/*-pcl-released/*/*.json")):
        tier, experiment = sidecar.parts[-4], sidecar.parts[-3]
        backbone = experiment[: -len("-pcl-released")]
        twin = sidecar.parents[2] / f"{backbone}-control" / sidecar.parts[-2] / sidecar.name
        if not twin.is_file() or any(o[:2] == (tier, backbone) for o in out):
            continue
        a, b = (sidecar_field(p, "checkpoint", "sha256") for p in (sidecar, twin))  # PCLError naming a damaged one
        if a and b:
            out.append((tier, backbone, a == b))
    return out


def attribution_trained(claim: dict, gains: pd.DataFrame, results_dir: Path | None) -> Verdict:
    """Trained tiers: +PCL vs control, counted only where the term's recorded gradient share is large enough."""
    lines, statuses = [], []
    floor, known = float(claim["min_term_share"]), claim.get("term_share", {})
    sub = gains[gains["tier"].isin(TRAINED) & (gains["kind"] == "vs control")]
    for (tier, protocol), part in sub.groupby(["tier", "protocol"], sort=True):
        share, where = _term_share(results_dir, tier, part), "recorded by the run"
        if share is None and tier in known:
            share, where = float(known[tier]["share"]), known[tier]["note"]
        summary = ", ".join(f"{r['backbone']} {r['dataset']} {r['metric'].upper()} {cell_text(r)}" for r in part.to_dict("records"))
        if share is None or share < floor:
            why = ("no run of this tier records the contrastive term's share of the gradient" if share is None
                   else f"the contrastive term is about {share:.1%} of the L1 gradient ({where})")
            lines.append(f"{tier}/{protocol}: not informative -- {why}, below the {floor:.0%} at which +PCL vs "
                         f"control could show the term's effect ({summary})")
            continue
        st = [cell_status(r["mean_gain"], r["ci_low"], r["ci_high"], min_effect=claim["min_effect"][r["metric"]],
                          mde=float(r.get("mde", math.nan))) for r in part.to_dict("records")]
        statuses += st
        lines.append(f"{tier}/{protocol} +PCL vs control (term {share:.1%} of the gradient): {combine(st)} ({summary})")
    return Verdict(claim, combine(statuses), lines or ["no trained tier has +PCL and control runs"])


def _term_share(results_dir: Path | None, tier: str, part: pd.DataFrame) -> float | None:
    """The smallest ``training.term_grad_share`` recorded in the +PCL runs' sidecars of this tier (None if none)."""
    if results_dir is None:
        return None
    shares = []
    for comparison in sorted(set(part["comparison"])):
        pcl = comparison.split(" vs ")[0]
        for sidecar in sorted((Path(results_dir) / tier / pcl).glob("*/*.json")):
            value = sidecar_field(sidecar, "training", "term_grad_share")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                shares.append(float(value))
    return min(shares) if shares else None


def ordering(claim: dict, results: pd.DataFrame, cells, tables: PaperTables) -> Verdict:
    """``best`` beats each of ``others`` (and, with ``chain``, each link of the chain) by paired intervals."""
    table = int(claim["table"])
    needed = [claim["best"], *claim["others"]]
    pairs = [(*split_row(claim["best"], table), *split_row(o, table)) for o in claim["others"]]
    chain = claim.get("chain") or []
    pairs += [(*split_row(a, table), *split_row(b, table)) for a, b in zip(chain, chain[1:]) if a != claim["best"]]
    forced, paper_line = _paper_check(claim, tables, pairs, claim["datasets"], [claim["metric"]])
    lines = [paper_line] if paper_line else []
    feeders = {}
    for experiment in (cells.experiments_with_cells() if cells is not None else []):
        for t in range(2, 8):
            for row in cells.rows(experiment, t):
                feeders.setdefault(f"{t}:{row}", experiment)
    key = lambda spec: "{}:{}".format(*split_row(spec, table))  # noqa: E731
    missing = [r for r in needed + chain if key(r) not in feeders]
    if cells is None or missing:
        lines.append("no catalog cells mapping given" if cells is None else f"no catalog experiment feeds {', '.join(sorted(set(missing)))}")
        return Verdict(claim, forced or NOT_TESTABLE, lines)
    headline = None
    effect = claim["min_effect"][claim["metric"]]
    links = [(claim["best"], o) for o in claim["others"]] + [(a, b) for a, b in zip(chain, chain[1:]) if a != claim["best"]]
    for tier in ("finetune", "scratch", "mini"):
        rows = results[(results["tier"] == tier) & results["experiment"].isin([feeders[key(r)] for r in needed + chain])
                       & results["dataset"].isin(claim["datasets"])]
        for protocol, part in rows.groupby("protocol", sort=True):
            statuses, notes = [], []
            for dataset in claim["datasets"]:
                for a, b in links:
                    g = _paired(part, dataset, feeders[key(a)], feeders[key(b)], claim["metric"])
                    if g.size == 0:
                        continue
                    low, high, d = *bootstrap_interval(g), mde(g)
                    s = cell_status(float(g.mean()), low, high, min_effect=effect, mde=d)
                    statuses.append(s)
                    notes.append(f"{dataset} {a} - {b}: {g.mean():+.3f} [{low:+.3f}, {high:+.3f}], MDE {d:.3f}: {s}")
            if statuses:
                lines.append(f"{tier}/{protocol}: {combine(statuses)} ({'; '.join(notes)})")
                headline = headline or combine(statuses)
    if len(lines) == (1 if paper_line else 0):
        lines.append("the runs behind these cells have not been trained in a tier that counts (finetune, scratch, "
                     "mini); smoke numbers are never used")
    return Verdict(claim, forced or headline or NOT_TESTABLE, lines)


def _paired(part: pd.DataFrame, dataset: str, a: str, b: str, metric: str) -> np.ndarray:
    sub = part[part["dataset"] == dataset]
    va = sub[sub["experiment"] == a].groupby("image")[metric].mean()
    vb = sub[sub["experiment"] == b].groupby("image")[metric].mean()
    common = va.index.intersection(vb.index)
    diff = (va[common] - vb[common]).to_numpy()
    return -diff if metric in ("lpips", "niqe", "niqe_y") else diff
