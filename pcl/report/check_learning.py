"""Rule ``learns`` of ``pcl check``: a small trained tier (``mini``) must show real learning.

Why: numbers from a broken trainer (misaligned LR/HR pairs, a wrong pixel range, a broken
augmentation) are finite and land in every table, so finiteness proves nothing.  This rule asks
what only a working trainer gives:

* every ``<backbone>-baseline`` beats bicubic on ``dataset`` (protocol ``protocol``) by at least
  ``margin_over_bicubic_db``;
* and beats bicubic (by any margin) on every other set it was evaluated on, sets its training never
  validated on (``dataset`` is its validation set, so a recipe could be tuned to it);
* every run fine-tuned from it (``-pcl``, ``-control``, ``-pcl-released``) is finite and within
  ``max_drift_db`` of the baseline on every evaluated set and protocol (no divergence);
* where both ran, ``-pcl-released`` and ``-control`` have bitwise-identical weights (the
  as-released term carries no gradient), read from the checkpoint sha256 of their sidecars;
* where both ran, ``-pcl`` (paper semantics) and ``-control`` have DIFFERENT weights: a contrastive
  term that back-propagates must move them, so equal hashes mean the term was silently detached
  (or never added) and every "+PCL vs control" number of the tier measures nothing;
* with ``expected_psnr`` in the rule, each listed experiment's mean on ``dataset``/``protocol`` is
  within ``cross_machine_db`` of the stored value (the published run's numbers).

Two kinds of comparison, labelled in each item's detail: weights hashes compare runs trained in
one pipeline run, on one machine, where training is deterministic, so they are bitwise; the stored
values come from another machine, whose floating-point arithmetic differs, so they get the
measured cross-machine tolerance (config/tolerances.yaml says how it was derived).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from pcl.errors import PCLError
from pcl.report.check_report import MISS, OK, SLACK, CheckItem, CheckReport
from pcl.report.results import SOURCE_COLUMN, sidecar_field

FINETUNED = ("pcl", "control", "pcl-released")


def _mean(rows: pd.DataFrame, experiment: str, protocol: str, dataset: str) -> float | None:
    sub = rows[(rows["experiment"] == experiment) & (rows["protocol"] == protocol) & (rows["dataset"] == dataset)]
    return float(sub["psnr"].mean(skipna=False)) if len(sub) else None


def check_learning(tier: str, rule: dict, rows: pd.DataFrame, bicubic: pd.DataFrame, report: CheckReport) -> None:
    """Apply the checks above to ``rows`` (one tier), with ``bicubic`` the tier-``bicubic`` rows."""
    dataset, protocol = rule["dataset"], rule["protocol"]
    margin, drift = float(rule["margin_over_bicubic_db"]), float(rule["max_drift_db"])
    bic = _mean(bicubic, "bicubic", protocol, dataset)
    backbones = sorted({e[: -len("-baseline")] for e in rows["experiment"] if e.endswith("-baseline")})
    if not backbones:
        report.items.append(CheckItem(tier, "learns", "(no baseline)", "", dataset, "psnr", None, "", "", MISS,
                                      f"no <backbone>-baseline results in tier {tier}"))
    for backbone in backbones:
        base = _mean(rows, f"{backbone}-baseline", protocol, dataset)
        if base is None or bic is None:
            detail = "baseline not evaluated" if base is None else f"no bicubic {protocol} {dataset} rows (tier bicubic) to compare with"
            report.items.append(CheckItem(tier, "learns", f"{backbone}-baseline", "", dataset, "psnr", base, "", f">= bicubic + {margin:g}", MISS, detail))
        else:
            ok = math.isfinite(base) and base >= bic + margin
            report.items.append(CheckItem(
                tier, "learns", f"{backbone}-baseline ({protocol})", "beats bicubic", dataset, "psnr", base, f"{bic:.4f}",
                f">= +{margin:g} dB", OK if ok else MISS,
                f"{base - bic:+.3f} dB over bicubic" + ("" if ok else f"; a working trainer reaches +{margin:g} dB here"),
            ))
        _check_unseen(tier, backbone, dataset, rows, bicubic, report)
        _check_drift(tier, backbone, drift, rows, report)
    _check_bitwise(tier, rows, report)
    _check_term_moves_weights(tier, rows, report)
    if "expected_psnr" in rule:
        _check_expected(tier, rule, rows, report)


def _check_unseen(tier: str, backbone: str, seen: str, rows: pd.DataFrame, bicubic: pd.DataFrame,
                  report: CheckReport) -> None:
    """The baseline beats bicubic on every other evaluated set too (no margin): the rule's own set is
    the run's validation set, so a recipe tuned to reach the margin there could overfit it; a set
    the run never saw must still be above bicubic."""
    name = f"{backbone}-baseline"
    for (protocol, dataset), part in rows[rows["experiment"] == name].groupby(["protocol", "dataset"], sort=True):
        if dataset == seen:
            continue
        ours, bic = float(part["psnr"].mean(skipna=False)), _mean(bicubic, "bicubic", protocol, dataset)
        if bic is None:
            report.notes.append(f"tier {tier}: {name} on {dataset} ({protocol}) not compared: no bicubic rows")
            continue
        ok = math.isfinite(ours) and ours > bic
        report.items.append(CheckItem(
            tier, "learns", f"{name} ({protocol})", "beats bicubic on a set it never saw", dataset, "psnr", ours,
            f"{bic:.4f}", "> bicubic", OK if ok else MISS,
            f"{ours - bic:+.3f} dB over bicubic" + ("" if ok else "; the baseline does not generalise beyond its validation set")))


def _check_drift(tier: str, backbone: str, drift: float, rows: pd.DataFrame, report: CheckReport) -> None:
    for method in FINETUNED:
        experiment = f"{backbone}-{method}"
        sub = rows[rows["experiment"] == experiment]
        if sub.empty and method in ("pcl", "control"):  # the tier's comparison needs both
            report.items.append(CheckItem(tier, "drift", experiment, f"vs {backbone}-baseline", "", "psnr", None, "",
                                          "present", MISS, f"no {tier} results of {experiment}: +PCL vs control cannot be made"))
        for (protocol, dataset), part in sub.groupby(["protocol", "dataset"], sort=True):
            ours = float(part["psnr"].mean(skipna=False))
            base = _mean(rows, f"{backbone}-baseline", protocol, dataset)
            if base is None:
                continue
            ok = math.isfinite(ours) and abs(ours - base) <= drift
            report.items.append(CheckItem(
                tier, "drift", f"{experiment} ({protocol})", f"vs {backbone}-baseline", dataset, "psnr", ours, f"{base:.4f}",
                f"±{drift:g} dB", OK if ok else MISS,
                f"{ours - base:+.3f} dB from its starting point" + ("" if ok else "; the fine-tune diverged"),
            ))


def _checkpoint_sha(rows: pd.DataFrame) -> str | None:
    if SOURCE_COLUMN not in rows.columns or rows.empty:
        return None
    try:
        sha = sidecar_field(Path(str(rows[SOURCE_COLUMN].iloc[0])), "checkpoint", "sha256")
    except PCLError:
        return None  # check ``sidecar`` reports the damaged file as a miss, naming it
    return sha if isinstance(sha, str) else None


SAME_MACHINE = "same-machine comparison (both runs trained in this pipeline run): bitwise"
"""Label of the weights comparisons: exact only because both runs ran on one machine."""


def _pair_shas(rows: pd.DataFrame, experiment: str, twin: str) -> tuple[str | None, str | None]:
    return (_checkpoint_sha(rows[rows["experiment"] == experiment]), _checkpoint_sha(rows[rows["experiment"] == twin]))


def _check_bitwise(tier: str, rows: pd.DataFrame, report: CheckReport) -> None:
    """``-pcl-released`` = ``-control`` bit for bit: the released term has no gradient."""
    for experiment in sorted({e for e in rows["experiment"] if e.endswith("-pcl-released")}):
        twin = experiment[: -len("-pcl-released")] + "-control"
        if twin not in set(rows["experiment"]):
            continue
        a, b = _pair_shas(rows, experiment, twin)
        ok = a is not None and a == b
        detail = (f"identical weights (sha256 {a[:16]}...)" if ok else
                  "sidecar without the checkpoint sha256" if a is None or b is None else
                  f"weights differ ({a[:12]} vs {b[:12]}): the as-released term reached the SR network")
        report.items.append(CheckItem(tier, "bitwise", f"{experiment} = {twin}", "", "", "weights", None, "", "equal",
                                      OK if ok else MISS, f"{detail}; {SAME_MACHINE}"))


def _check_term_moves_weights(tier: str, rows: pd.DataFrame, report: CheckReport) -> None:
    """``-pcl`` (paper semantics) != ``-control``: a term with a gradient must change the weights."""
    experiments = set(rows["experiment"])
    for experiment in sorted(e for e in experiments if e.endswith("-pcl")):
        twin = experiment[: -len("-pcl")] + "-control"
        if twin not in experiments:
            continue
        a, b = _pair_shas(rows, experiment, twin)
        ok = a is not None and b is not None and a != b
        detail = ("sidecar without the checkpoint sha256" if a is None or b is None else
                  f"weights differ ({a[:12]} vs {b[:12]}): the contrastive term moved them" if ok else
                  f"identical weights (sha256 {a[:16]}...): the paper-semantics term had no gradient to the SR "
                  "network (detached or never added), so +PCL vs control measures nothing")
        report.items.append(CheckItem(tier, "term-moves", f"{experiment} != {twin}", "", "", "weights", None, "", "differ",
                                      OK if ok else MISS, f"{detail}; {SAME_MACHINE}"))


def _check_expected(tier: str, rule: dict, rows: pd.DataFrame, report: CheckReport) -> None:
    """Each stored PSNR within the cross-machine tolerance (a number measured on another machine)."""
    dataset, protocol, tol = rule["dataset"], rule["protocol"], float(rule["cross_machine_db"])
    for experiment, stored in rule["expected_psnr"].items():
        ours = _mean(rows, experiment, protocol, dataset)
        base = dict(tier=tier, check="expected", subject=f"{experiment} ({protocol})", row="stored value", dataset=dataset,
                    metric="psnr", ours=ours, reference=f"{float(stored):.3f}", tolerance=f"±{tol:g} dB cross-machine")
        if ours is None or not math.isfinite(ours):
            report.items.append(CheckItem(**base, status=MISS, detail=f"no finite {protocol} {dataset} result to compare"))
            continue
        ok = abs(ours - float(stored)) <= tol + SLACK
        detail = (f"{ours - float(stored):+.3f} dB from the stored value; cross-machine tolerance (config/tolerances.yaml)"
                  + ("" if ok else "; beyond the spread between machines: the training or the evaluation changed "
                                    "(store a new value only with a new measurement)"))
        report.items.append(CheckItem(**base, status=OK if ok else MISS, detail=detail))
