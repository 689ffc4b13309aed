"""Rule ``rerun`` of ``pcl check``: one cell of the study trained again must give the committed rows.

Why: the study's conclusions (docs/study.md) rest on rows trained once, on one machine, and
committed (results/study).  CI trains its cheapest cell again (tier ``study-check``, seed 1 of a
+PCL cell and of its control, from the committed baseline weights) and this rule compares the
two, so a change to the trainer, the method or the evaluation that would alter the study's numbers
fails CI instead of leaving stale rows behind.

What is compared, per re-run experiment, protocol and data set:

* its mean PSNR with the committed run of the same seed (the first seed, the run that keeps the
  experiment's name), within ``cross_machine_db``;
* for each ``effects`` pair (a +PCL cell and its control), the re-run's paired effect (mean over
  images of first minus second) with the committed one of the same seed, within the same bound.

The bound is the measured spread of the mini tier between machines (config/tolerances.yaml), whose
baseline's level differs by up to 0.08 dB between CPUs. The re-run starts from the committed
baseline weights (resources/study_baseline), so only the 300 fine-tune iterations can drift between
machines, and the effect of a pair, a difference of two runs from the same start, varies less than
either level; no smaller bound has been measured for either, so the same one is used.  The term's
measured gradient share of each run is reported beside the committed one as a note (not checked:
no cross-machine spread has been measured for it).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from pcl.report.check_report import MISS, OK, SLACK, CheckItem, CheckReport
from pcl.report.results import SOURCE_COLUMN, sidecar_field

_KEYS = ("experiment", "protocol", "dataset")


def _seed_text(value: object) -> str:
    return "" if pd.isna(value) else str(value)


def _first_seed_rows(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows of each experiment's first-seed run: the rows without a seed, else those of the
    smallest seed (a tier with several seeds labels every run, the first one included)."""
    if "seed" not in rows.columns:
        return rows
    seeds = rows["seed"].map(_seed_text)
    keep: list = []
    for _, idx in rows.groupby("experiment", sort=False).groups.items():
        own = seeds.loc[idx]
        if (own == "").any():
            keep.extend(own[own == ""].index)
            continue
        first = min(set(own), key=float)
        keep.extend(own[own == first].index)
    return rows.loc[sorted(keep)]


def _means(rows: pd.DataFrame) -> dict[tuple[str, str, str], tuple[float, int]]:
    """(experiment, protocol, dataset) -> (mean PSNR, images)."""
    out = {}
    for key, grp in rows.groupby(list(_KEYS), sort=True):
        values = pd.to_numeric(grp["psnr"], errors="coerce")
        out[tuple(str(k) for k in key)] = (float(values.mean()), int(values.notna().sum()))
    return out


def _paired_effect(rows: pd.DataFrame, first: str, second: str, protocol: str, dataset: str) -> tuple[float, int] | None:
    """Mean over images of first minus second (images paired by name), None without both."""
    pick = lambda e: rows[(rows["experiment"] == e) & (rows["protocol"] == protocol) & (rows["dataset"] == dataset)]  # noqa: E731
    a, b = pick(first).set_index("image")["psnr"], pick(second).set_index("image")["psnr"]
    common = a.index.intersection(b.index)
    if a.empty or b.empty or len(common) == 0:
        return None
    diff = pd.to_numeric(a.loc[common], errors="coerce") - pd.to_numeric(b.loc[common], errors="coerce")
    return float(diff.mean()), int(diff.notna().sum())


def _compare(report: CheckReport, base: dict, ours: float | None, ref: float | None, tol: float, what: str) -> None:
    if ours is None or ref is None or not (math.isfinite(ours) and math.isfinite(ref)):
        detail = f"no finite {what} in the re-run" if ref is not None else f"no committed {what} to compare with"
        report.items.append(CheckItem(**base, ours=ours, reference="" if ref is None else f"{ref:.4f}", status=MISS,
                                      detail=detail + "; restore results/study (git checkout -- results/study) or re-run the study"))
        return
    ok = abs(ours - ref) <= tol + SLACK
    detail = (f"{ours - ref:+.4f} dB from the committed study (cross-machine tolerance, config/tolerances.yaml)"
              + ("" if ok else "; beyond the spread between machines: the trainer, the method or the evaluation "
                               "changed the study's numbers (re-run the study: snakemake --cores 2 --configfile config/study.yaml)"))
    report.items.append(CheckItem(**base, ours=ours, reference=f"{ref:.4f}", status=OK if ok else MISS, detail=detail))


def check_rerun(tier: str, rule: dict, rows: pd.DataFrame, reference: pd.DataFrame, report: CheckReport) -> None:
    """Compare the re-run tier's rows with the reference tier's committed rows (module docstring)."""
    tol, ref_tier = float(rule["cross_machine_db"]), str(rule["reference_tier"])
    tolerance = f"±{tol:g} dB cross-machine"
    ref_rows = _first_seed_rows(reference)
    ours, refs = _means(rows), _means(ref_rows)
    for key, (value, n) in ours.items():
        experiment, protocol, dataset = key
        base = dict(tier=tier, check="rerun", subject=f"{experiment} ({protocol})", row=f"{ref_tier} seed 1",
                    dataset=dataset, metric="psnr", tolerance=tolerance)
        ref = refs.get(key)
        if ref is not None and ref[1] != n:
            report.items.append(CheckItem(**base, ours=value, reference=f"{ref[0]:.4f}", status=MISS,
                                          detail=f"{n} images re-run, {ref[1]} committed; evaluate the same images"))
            continue
        _compare(report, base, value, None if ref is None else ref[0], tol, "mean PSNR")
    datasets = sorted({(p, d) for _, p, d in ours})
    for first, second in rule.get("effects", []):
        for protocol, dataset in datasets:
            base = dict(tier=tier, check="rerun effect", subject=f"{first} - {second} ({protocol})",
                        row=f"{ref_tier} seed 1", dataset=dataset, metric="psnr", tolerance=tolerance)
            mine = _paired_effect(rows, first, second, protocol, dataset)
            theirs = _paired_effect(ref_rows, first, second, protocol, dataset)
            _compare(report, base, None if mine is None else mine[0], None if theirs is None else theirs[0], tol,
                     "paired effect")
    _share_notes(tier, rows, ref_rows, report)


def _share(rows: pd.DataFrame, experiment: str) -> float | None:
    if SOURCE_COLUMN not in rows.columns:
        return None
    for path in rows.loc[rows["experiment"] == experiment, SOURCE_COLUMN]:
        if not isinstance(path, str) or not path:
            continue
        value = sidecar_field(Path(path), "training", "term_grad_share")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _share_notes(tier: str, rows: pd.DataFrame, ref_rows: pd.DataFrame, report: CheckReport) -> None:
    for experiment in sorted(set(rows["experiment"])):
        mine, theirs = _share(rows, experiment), _share(ref_rows, experiment)
        if mine is None and theirs is None:
            continue
        fmt = lambda v: "not recorded" if v is None else f"{v:.4g}"  # noqa: E731
        report.notes.append(f"tier {tier}: {experiment}: measured gradient share {fmt(mine)} (committed study: {fmt(theirs)})")
