"""``pcl check`` rules of the harness's own tiers: ``paper`` (bicubic) and ``finite`` (trained tiers).

Rule ``paper``: the mean of our per-image rows against the printed Table II cell, for the
protocols the paper row used; partial sets and non-finite means miss.

Rule ``finite`` (tier ``smoke``): never compared with the paper; with the catalog's cells mapping
(``pcl.report.cells``) every experiment that feeds a paper cell must have a full set of rows for
every (protocol, dataset) the tier evaluated, and every value must be finite.
"""

from __future__ import annotations

import math

import pandas as pd

from pcl.names import DATASET_SIZES, DATASETS
from pcl.report.cells import CellsMap
from pcl.report.check_config import CHECK_METRICS
from pcl.report.check_perceptual import computed_optional_metrics
from pcl.report.check_report import MISS, OK, SLACK, CheckItem, CheckReport, Ledger
from pcl.report.labels import table2_label
from pcl.report.paper import PaperTable
from pcl.report.results import summarise
from pcl.report.specs import TABLE2


def check_paper_rule(tier: str, rule: dict, rows: pd.DataFrame, paper: PaperTable, ledger: Ledger, report: CheckReport) -> None:
    """Rule ``paper``: each set mean of the listed protocols vs the printed cell, within the tolerance."""
    scale = TABLE2.scale
    summary = summarise(rows[rows["scale"] == scale])
    other_scales = sorted(int(x) for x in set(rows["scale"].dropna()) - {scale})
    if other_scales:
        report.notes.append(f"tier {tier}: rows at scale {other_scales} not compared ({rule['table']} is x{scale})")
    for rec in summary.to_dict("records"):
        label = table2_label(rec["backbone"], rec["method"], rec["experiment"])
        if label is None or label not in paper.labels:
            report.notes.append(f"tier {tier}: experiment {rec['experiment']} has no row in {rule['table']}; not compared")
            continue
        if rec["protocol"] not in rule["protocols"]:
            report.notes.append(
                f"tier {tier}: {rec['experiment']} {rec['dataset']} protocol {rec['protocol']} not compared "
                f"(the paper row uses {', '.join(rule['protocols'])})"
            )
            continue
        for metric in CHECK_METRICS:
            printed = paper.printed(label, rec["dataset"], metric)
            if not printed:
                continue
            ours = float(rec[metric])
            tol = float(rule[metric])
            n, full = int(rec["n_images"]), DATASET_SIZES[rec["dataset"]]
            base = dict(tier=tier, check="paper", subject=rec["experiment"], row=label, dataset=rec["dataset"], metric=metric,
                        ours=ours, reference=printed, tolerance=f"±{tol:g}")
            if n != full:
                report.items.append(CheckItem(**base, status=MISS, detail=f"partial set: {n}/{full} images"))
                continue
            if not math.isfinite(ours):
                report.items.append(CheckItem(**base, status=MISS, detail="mean is not finite"))
                continue
            status, detail = ledger.judge((tier, rule["table"], label, rec["dataset"], metric), abs(ours - float(printed)) <= tol + SLACK)
            report.items.append(CheckItem(**base, status=status, detail=detail))


def check_finite(tier: str, rows: pd.DataFrame, report: CheckReport, cells: CellsMap | None = None,
                 *, present_only: bool = False) -> None:
    """Rule ``finite``: every set mean exists and every per-image value is finite.

    With a cells mapping, "exists" means: every experiment that feeds a paper cell has rows for
    every (protocol, dataset) this tier evaluated (the union over its experiments), with the
    benchmark's full image count (``present_only``: only the experiments the tier has rows of, for
    a tier that trains a subset of the catalog, like ``mini``).  Never compared with the paper.
    """
    if cells is None:
        report.notes.append(f"tier {tier}: no cells mapping given (pcl check --cells); only finiteness checked, not completeness")
    else:
        _check_cells_present(tier, rows, report, cells, present_only=present_only)
    for (experiment, protocol, dataset), sub in rows.groupby(["experiment", "protocol", "dataset"], sort=True):
        for metric in (*CHECK_METRICS, *computed_optional_metrics(sub)):
            values = sub[metric].astype(float)
            bad = sub["image"][~values.map(math.isfinite)].tolist()
            detail = "" if not bad else f"{len(bad)}/{len(sub)} images not finite: {', '.join(map(str, bad[:5]))}"
            report.items.append(
                CheckItem(tier, "finite", f"{experiment} ({protocol})", "", dataset, metric, None, "", "finite", MISS if bad else OK, detail)
            )


def _check_cells_present(tier: str, rows: pd.DataFrame, report: CheckReport, cells: CellsMap, *,
                         present_only: bool = False) -> None:
    evaluated = sorted(set(zip(rows["protocol"], rows["dataset"])), key=lambda pd_: (pd_[0], DATASETS.index(pd_[1])))
    counts = rows.groupby(["experiment", "protocol", "dataset"])["image"].nunique().to_dict()  # distinct images, not rows
    present = set(rows["experiment"])
    for experiment in cells.experiments_with_cells():
        if present_only and experiment not in present:
            continue
        where = cells.describe(experiment)
        for protocol, dataset in evaluated:
            n = int(counts.get((experiment, protocol, dataset), 0))
            full = DATASET_SIZES[dataset]
            if n == 0:
                status, detail = MISS, f"no {tier} result: results/{tier}/{experiment}/{protocol}/{dataset}.csv is missing"
            elif n != full:
                status, detail = MISS, f"partial set: {n}/{full} images"
            else:
                status, detail = OK, f"{n} images"
            report.items.append(CheckItem(tier, "cell", f"{experiment} ({protocol})", where, dataset, "rows", None, "", "present", status, detail))
    unknown = sorted(set(rows["experiment"]) - set(cells.cells))
    if unknown:
        report.notes.append(f"tier {tier}: experiment(s) not in the catalog ({cells.source}): {', '.join(unknown)}; checked for finiteness only")
