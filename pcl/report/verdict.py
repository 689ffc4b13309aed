"""``reports/verdict.md``: one line per claim of ``config/claims.yaml``, its status and its evidence.

Why generated: a verdict typed by hand goes stale the moment a tier runs.  Every status here is
computed from the gains (``pcl.report.gains``), the result rows and their sidecars, so the same
command gives "not testable here" before the GPU tiers have run and a real answer after.

Cell status (one backbone x data set x metric, or one ordering): ``supported`` when the claimed
direction holds with a 95% interval excluding zero (gains also need Holm p < 0.05),
``contradicted`` when the opposite holds that clearly, ``not significant`` otherwise.  A claim is
supported when all its cells are, contradicted when any is, and otherwise not significant.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pcl.errors import PCLError
from pcl.report.gains import GAIN_TIERS, find_pairings, per_image_gains
from pcl.report.gains_report import ATTRIBUTION_NOTE, DIGITS, cell_text
from pcl.report.results import sidecar_field
from pcl.report.stats import BOOTSTRAP_DRAWS, BOOTSTRAP_SEED, bootstrap_interval
from pcl.yamlio import read_yaml

STATUSES = ("supported", "not significant", "contradicted", "not testable here")
KINDS = ("gains_positive", "mean_gain", "attribution", "ordering")
#: Evidence tiers in order of directness for the paper's released models, then our trainings.
EVIDENCE_ORDER = ("released", "reported", "finetune", "scratch", *sorted(GAIN_TIERS - {"finetune", "scratch"}))
TRAINED = tuple(GAIN_TIERS)
ALPHA = 0.05


@dataclass
class Verdict:
    claim: dict
    status: str
    evidence: list[str] = field(default_factory=list)
    cells: list[str] = field(default_factory=list)


def load_claims(path: Path) -> list[dict]:
    """Validated claims (id, kind, text, and the keys of each kind)."""
    data = read_yaml(Path(path), what="claims catalog", missing_hint="restore config/claims.yaml from the repository")
    claims = data.get("claims") if isinstance(data, dict) else None
    if data.get("version") != 1 or not isinstance(claims, list) or not claims:
        raise PCLError(f"{path}: expected 'version: 1' and a non-empty list 'claims'")
    seen = set()
    for i, c in enumerate(claims):
        where = f"{path}: claims[{i}]"
        if not isinstance(c, dict) or not all(isinstance(c.get(k), str) for k in ("id", "kind", "text", "source")):
            raise PCLError(f"{where}: every claim needs string keys id, kind, text and source")
        if c["kind"] not in KINDS:
            raise PCLError(f"{where} ({c['id']}): kind {c['kind']!r} is not one of {', '.join(KINDS)}")
        if c["id"] in seen:
            raise PCLError(f"{where}: id {c['id']!r} appears twice")
        seen.add(c["id"])
    return claims


def combine(statuses: list[str]) -> str:
    if not statuses:
        return "not testable here"
    if "contradicted" in statuses:
        return "contradicted"
    return "supported" if all(s == "supported" for s in statuses) else "not significant"


def gain_status(rec: dict) -> str:
    p = rec.get("p_holm", math.nan)
    significant = not math.isnan(p) and p < ALPHA
    if rec["ci_low"] > 0 and significant:
        return "supported"
    if rec["ci_high"] < 0 and significant:
        return "contradicted"
    return "not significant"


def _printed_gain(paper: pd.DataFrame | None, backbone: str, dataset: str, metric: str) -> str:
    """The gain the paper prints for this cell (+PCL row minus its plain row of Table II)."""
    if paper is None:
        return ""
    from pcl.report.labels import BACKBONE_LABELS

    label = BACKBONE_LABELS.get(backbone)
    col = f"{dataset.lower()}_{metric}"
    rows = paper.set_index("method")
    if label is None or col not in rows.columns or label not in rows.index or f"{label}+PCL" not in rows.index:
        return ""
    d = DIGITS.get(metric, 4)
    return f"{float(rows.loc[f'{label}+PCL', col]) - float(rows.loc[label, col]):+.{min(d, 4) if metric == 'ssim' else 2}f}"


def _gains_positive(claim: dict, gains: pd.DataFrame, paper: pd.DataFrame | None) -> Verdict:
    lines, cells, headline = [], [], None
    for tier in EVIDENCE_ORDER:
        kind = claim["trained_comparison"] if tier in TRAINED else claim["comparison"]
        sub = gains[(gains["tier"] == tier) & (gains["kind"] == kind) & gains["backbone"].isin(claim["backbones"])
                    & gains["dataset"].isin(claim["datasets"]) & gains["metric"].isin(claim["metrics"])]
        for protocol, part in sub.groupby("protocol", sort=True):
            statuses = []
            for rec in part.to_dict("records"):
                s = gain_status(rec)
                statuses.append(s)
                printed = _printed_gain(paper, rec["backbone"], rec["dataset"], rec["metric"]) if tier == "reported" else ""
                cells.append(f"| {tier}/{protocol} | `{rec['comparison']}` | {rec['dataset']} | {rec['metric'].upper()} | "
                             f"{cell_text(rec)} | {rec['improved']}/{rec['n']} | {printed or '–'} | {s} |")
            status = combine(statuses)
            n_sup = statuses.count("supported")
            lines.append(f"{tier}/{protocol} ({kind}): {status}; {n_sup} of {len(statuses)} cells significantly better, "
                         f"{statuses.count('contradicted')} significantly worse")
            headline = headline or status
    if claim["comparison"] == "vs official" and any(l.startswith(("reported", "released")) for l in lines):
        lines.append("The released +PCL models were trained by scripts whose contrastive term has no gradient: "
                     "their gains over the official weights measure L1 fine-tuning (see claim `attribution`).")
    return Verdict(claim, headline or "not testable here", lines or ["no result rows with these comparisons"], cells)


def _mean_gain(claim: dict, results: pd.DataFrame) -> Verdict:
    lines, headline = [], None
    pairings = [p for p in find_pairings(results) if p.kind == claim["comparison"] and p.backbone == claim["backbone"]
                and p.dataset in claim["datasets"]]
    by_source: dict[tuple[str, str], dict] = {}
    for p in pairings:
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
                if low <= printed <= high and low > 0:
                    s = "supported"
                elif low > 0:
                    s = "contradicted"
                else:
                    s = "not significant"
                statuses.append(s)
                d = DIGITS.get(metric, 4)
                lines.append(f"{t}/{protocol} {metric.upper()}: five-set mean gain {mean:+.{d}f} "
                             f"[{low:+.{d}f}, {high:+.{d}f}] vs printed {printed:+g}: {s}"
                             + (" (a gain, but not the printed size)" if s == "contradicted" else ""))
            if statuses:
                headline = headline or combine(statuses)
    return Verdict(claim, headline or "not testable here", lines or ["the five sets are not all present for this backbone"])


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


def _attribution(claim: dict, gains: pd.DataFrame, results_dir: Path | None) -> Verdict:
    lines = []
    for tier, backbone, same in _released_equals_control(results_dir):
        lines.append(f"{tier}: `{backbone}-pcl-released` and `{backbone}-control` trained "
                     + ("bitwise-identical weights: the as-released term changes nothing" if same
                        else "different weights (unexpected: the as-released term should carry no gradient)"))
    sub = gains[gains["tier"].isin(TRAINED) & (gains["kind"] == "vs control")]
    statuses = []
    for (tier, protocol), part in sub.groupby(["tier", "protocol"], sort=True):
        st = [gain_status(r) for r in part.to_dict("records")]
        statuses += st
        cells = ", ".join(f"{r['backbone']} {r['dataset']} {r['metric'].upper()} {cell_text(r)}" for r in part.to_dict("records"))
        lines.append(f"{tier}/{protocol} +PCL vs control: {combine(st)} ({cells})"
                     + (" -- a CPU miniature, not the paper's scale" if tier == "mini" else ""))
    lines.append(ATTRIBUTION_NOTE)
    return Verdict(claim, combine(statuses), lines)


def _released_equals_control(results_dir: Path | None) -> list[tuple[str, str, bool]]:
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


def _ordering(claim: dict, results: pd.DataFrame, cells) -> Verdict:
    if cells is None:
        return Verdict(claim, "not testable here", ["no catalog cells mapping given"])
    feeders = {}
    for experiment in cells.experiments_with_cells():
        for row in cells.rows(experiment, int(claim["table"])):
            feeders[row] = experiment
    needed = [claim["best"], *claim["others"]]
    missing = [r for r in needed if r not in feeders]
    if missing:
        return Verdict(claim, "not testable here", [f"no catalog experiment feeds {', '.join(missing)}"])
    lines, headline = [], None
    for tier in ("finetune", "scratch", "mini"):
        rows = results[(results["tier"] == tier) & results["experiment"].isin([feeders[r] for r in needed])
                       & results["dataset"].isin(claim["datasets"])]
        for protocol, part in rows.groupby("protocol", sort=True):
            statuses, notes = [], []
            for dataset in claim["datasets"]:
                means = part[part["dataset"] == dataset].groupby("experiment")[claim["metric"]].mean()
                if not all(feeders[r] in means.index for r in needed):
                    continue
                for other in claim["others"]:
                    g = _paired(part, dataset, feeders[claim["best"]], feeders[other], claim["metric"])
                    low, high = bootstrap_interval(g)
                    s = "supported" if low > 0 else ("contradicted" if high < 0 else "not significant")
                    statuses.append(s)
                    notes.append(f"{dataset} {claim['best']} - {other}: {g.mean():+.3f} [{low:+.3f}, {high:+.3f}]")
                if claim.get("chain"):
                    chain = [float(means[feeders[r]]) for r in claim["chain"]]
                    if any(a <= b for a, b in zip(chain, chain[1:])):
                        statuses.append("contradicted")
                        notes.append(f"{dataset}: the chain {' > '.join(claim['chain'])} does not hold in the means")
            if statuses:
                lines.append(f"{tier}/{protocol}: {combine(statuses)} ({'; '.join(notes)})")
                headline = headline or combine(statuses)
    if not lines:
        lines.append("the runs behind these cells have not been trained in a tier that counts (finetune, scratch); "
                     "smoke numbers are never used")
    return Verdict(claim, headline or "not testable here", lines)


def _paired(part: pd.DataFrame, dataset: str, a: str, b: str, metric: str) -> np.ndarray:
    sub = part[part["dataset"] == dataset]
    va = sub[sub["experiment"] == a].groupby("image")[metric].mean()
    vb = sub[sub["experiment"] == b].groupby("image")[metric].mean()
    common = va.index.intersection(vb.index)
    return (va[common] - vb[common]).to_numpy()


def build_verdicts(claims: list[dict], results: pd.DataFrame, gains: pd.DataFrame, *, paper_table2: pd.DataFrame | None = None,
                   cells=None, results_dir: Path | None = None) -> list[Verdict]:
    """Evaluate every claim against the data."""
    out = []
    for claim in claims:
        if claim["kind"] == "gains_positive":
            out.append(_gains_positive(claim, gains, paper_table2))
        elif claim["kind"] == "mean_gain":
            out.append(_mean_gain(claim, results))
        elif claim["kind"] == "attribution":
            out.append(_attribution(claim, gains, results_dir))
        else:
            out.append(_ordering(claim, results, cells))
    return out


def _sensitivity(gains: pd.DataFrame) -> list[str]:
    """Where the protocol changes a cell's status (tiers evaluated under both protocols)."""
    lines = []
    both = gains.groupby(["tier", "comparison", "dataset", "metric"])
    for key, part in both:
        if part["protocol"].nunique() < 2:
            continue
        st = {r["protocol"]: gain_status(r) for r in part.to_dict("records")}
        if len(set(st.values())) > 1:
            lines.append(f"- {key[0]} `{key[1]}` {key[2]} {key[3].upper()}: " + ", ".join(f"{p}: {s}" for p, s in st.items()))
    return lines


def render(verdicts: list[Verdict], gains: pd.DataFrame, claims_path: str) -> str:
    out = ["# Verdict on the paper's claims", "",
           f"Generated from the result rows by `pcl verdict` (claims: `{claims_path}`; gains: reports/tables/gains.md). "
           "Status per claim: supported / not significant / contradicted / not testable here (definitions in the "
           "claims file). The first evidence line decides the status shown (our evaluation of the released weights, "
           "then the authors' logs, then our trainings).", ""]
    for v in verdicts:
        out.append(f"- **{v.claim['id']}**: {v.status}. \"{v.claim['text']}\" ({v.claim['source']})")
        out += [f"  - {line}" for line in v.evidence]
    out += ["", "## Protocol and printed-table sensitivity", ""]
    sens = _sensitivity(gains)
    out += sens or ["- No cell changes status between the `matlab` and `authors` protocols where both were evaluated "
                    "(the authors' logs exist under `authors` only)."]
    out += ["- The `printed gain` column below is the paper's Table II (+PCL row minus plain row); where it differs "
            "from the log gain by more than the rounding, the printed table and the logs disagree "
            "(reports/tables/audit_released_logs.md). The paper's printed gains are all positive; the status above "
            "uses the logs' per-image values instead.", ""]
    for v in verdicts:
        if v.cells:
            out += [f"## Cells of `{v.claim['id']}`", "",
                    "| source | comparison | data set | metric | gain [95% CI] | improved | printed gain | status |",
                    "|---|---|---|---|---:|---:|---:|---|", *v.cells, ""]
    return "\n".join(out) + "\n"
