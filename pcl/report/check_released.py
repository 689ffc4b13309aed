"""``pcl check`` rules that compare with the authors' released per-image logs.

Rule ``released_logs`` (tier ``reported``): each log's stated averages equal its per-image means,
the averages match the printed Table II within half a unit of the last printed digit (or are
documented deviations), and the ingested result rows are the log's values.

Rule ``released_models`` (tier ``released``): our evaluation of a released checkpoint is compared
with the authors' released per-image log of the same model, image by image (``compare_with_log``);
image names are matched after ``normalise_image_name`` (the logs say ``img001`` where the installed
Urban100 says ``img_001``), and images that match nothing are reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pcl.report.check_config import CHECK_METRICS
from pcl.report.check_report import MISS, OK, SLACK, CheckItem, CheckReport, Ledger
from pcl.report.labels import table2_label
from pcl.report.paper import PaperTable, half_unit, to_decimal
from pcl.report.released_logs import (
    LOG_PROTOCOL,
    LOG_SCALE,
    LogBlock,
    ParsedLog,
    average_differences,
    experiment_name,
    largest_average_difference,
    log_identity,
    parse_logs,
)


def check_released_logs(tier: str, rule: dict, rows: pd.DataFrame, paper: PaperTable, logs_dir: Path, ledger: Ledger, report: CheckReport) -> None:
    """Rule ``released_logs``: (a) stated averages, (b) averages vs the printed table, (c) ingested rows."""
    logs = parse_logs(logs_dir)
    tol = float(rule["average_tolerance"])
    worst = max((largest_average_difference(p) for p in logs.values()), key=lambda m: abs(m.difference))
    report.notes.append(
        f"tier {tier}: largest |per-image mean - Average line| over {len(logs)} logs = {abs(worst.difference):.1e} "
        f"({worst.log} {worst.dataset} {worst.metric}); tolerance {tol:g}"
    )
    for name, parsed in logs.items():
        backbone, method = log_identity(name)
        label = table2_label(backbone, method)
        # (a) stated averages equal the per-image means
        for m in average_differences(parsed):
            within = abs(m.difference) <= tol
            report.items.append(
                CheckItem(tier, "average-line", name, label, m.dataset, m.metric, m.recomputed, f"{m.stated:.6f}", f"±{tol:g}",
                          OK if within else MISS, "" if within else f"line {m.line}: Average differs from the per-image mean")
            )
        # (b) log averages vs the printed table, within half a unit of the last printed digit
        for blk in parsed.blocks:
            for metric in CHECK_METRICS:
                printed = paper.printed(label, blk.dataset, metric)
                half = half_unit(printed)
                stated = to_decimal(blk.stated(metric))
                within = abs(stated - to_decimal(printed)) <= half
                status, detail = ledger.judge((tier, rule["table"], label, blk.dataset, metric), within)
                report.items.append(CheckItem(tier, "paper", name, label, blk.dataset, metric, float(stated), printed, f"±{half}", status, detail))
        # (c) the ingested rows are this log's per-image values
        _check_ingested(tier, name, parsed, rows, report)
    ingested = set(rows["experiment"])
    from_logs = {experiment_name(*log_identity(n)) for n in logs}
    for exp in sorted(ingested - from_logs):
        report.items.append(CheckItem(tier, "ingested", exp, "", "", "", None, "", "", MISS, f"rows of tier {tier} that no log in {logs_dir} produced"))


def _check_ingested(tier: str, name: str, parsed: ParsedLog, rows: pd.DataFrame, report: CheckReport) -> None:
    experiment = experiment_name(*log_identity(name))
    mine = rows[(rows["experiment"] == experiment) & (rows["protocol"] == LOG_PROTOCOL)]
    for blk in parsed.blocks:
        sub = mine[mine["dataset"] == blk.dataset]
        expected = {im.name: (im.psnr, im.ssim) for im in blk.images}
        got = {img: (p, s) for img, p, s in zip(sub["image"], sub["psnr"], sub["ssim"])}
        if len(sub) == len(expected) and got.keys() == expected.keys():
            bad = [img for img, v in expected.items() if not all(math.isclose(a, b, rel_tol=0, abs_tol=1e-9) for a, b in zip(v, got[img]))]
            status, detail = (OK, "") if not bad else (MISS, f"values differ from the log for {', '.join(bad[:5])}")
        elif sub.empty:
            status, detail = MISS, f"not ingested; run `pcl ingest-logs` (expects {experiment}/{LOG_PROTOCOL}/{blk.dataset}.csv)"
        else:
            status, detail = MISS, f"{len(sub)} rows vs {len(expected)} images in the log; re-run `pcl ingest-logs`"
        report.items.append(CheckItem(tier, "ingested", experiment, "", blk.dataset, "psnr+ssim", None, name, "1e-09", status, detail))


def normalise_image_name(name: str) -> str:
    """Key for matching image names across sources: lowercase, ``_`` removed (``img_001`` == ``img001``)."""
    return str(name).strip().lower().replace("_", "")


@dataclass(frozen=True)
class LogComparison:
    """Our per-image values for one set against a released log block, after name matching."""

    dataset: str
    pairs: tuple[tuple[str, str, float, float, float, float], ...]
    """(our name, log name, our psnr, log psnr, our ssim, log ssim) per matched image."""
    only_ours: tuple[str, ...]
    only_log: tuple[str, ...]
    ambiguous: tuple[str, ...]
    """Names that collide after normalisation (matched by nobody)."""

    def differences(self, metric: str) -> list[tuple[str, float]]:
        """(our name, ours - log) for every matched image."""
        col = 2 if metric == "psnr" else 4
        return [(p[0], p[col] - p[col + 1]) for p in self.pairs]


def compare_with_log(ours: pd.DataFrame, block: LogBlock) -> LogComparison:
    """Match our rows of one set (columns image, psnr, ssim) with a log block by normalised name."""
    def index(names: list[str]) -> tuple[dict[str, str], set[str]]:
        keys: dict[str, str] = {}
        clashes: set[str] = set()
        for n in names:
            k = normalise_image_name(n)
            if k in keys:
                clashes.add(k)
            keys[k] = n
        return keys, clashes

    ours_by = {str(i): (float(p), float(s)) for i, p, s in zip(ours["image"], ours["psnr"], ours["ssim"])}
    log_by = {im.name: (im.psnr, im.ssim) for im in block.images}
    our_keys, our_clash = index(list(ours_by))
    log_keys, log_clash = index(list(log_by))
    clashes = our_clash | log_clash
    pairs = []
    for key in sorted(set(our_keys) & set(log_keys) - clashes):
        a, b = our_keys[key], log_keys[key]
        pairs.append((a, b, ours_by[a][0], log_by[b][0], ours_by[a][1], log_by[b][1]))
    only_ours = sorted(our_keys[k] for k in set(our_keys) - set(log_keys) - clashes)
    only_log = sorted(log_keys[k] for k in set(log_keys) - set(our_keys) - clashes)
    ambiguous = sorted(n for n in [*ours_by, *log_by] if normalise_image_name(n) in clashes)
    return LogComparison(block.dataset, tuple(pairs), tuple(only_ours), tuple(only_log), tuple(ambiguous))


def _released_log_map(logs_dir: Path) -> dict[str, ParsedLog]:
    """experiment name (e.g. ``rcan-official``) -> parsed released log."""
    return {experiment_name(*log_identity(name)): parsed for name, parsed in parse_logs(logs_dir).items()}


def check_released_models(tier: str, rule: dict, rows: pd.DataFrame, logs_dir: Path, report: CheckReport) -> None:
    """Rule ``released_models``: our rows of each released checkpoint vs its released log, image by image."""
    logs = _released_log_map(logs_dir)
    other = sorted(int(x) for x in set(rows["scale"].dropna()) - {LOG_SCALE})
    if other:
        report.notes.append(f"tier {tier}: rows at scale {other} not compared (the released logs are x{LOG_SCALE})")
    rows = rows[rows["scale"] == LOG_SCALE]
    for (experiment, backbone, method, protocol), sub in rows.groupby(["experiment", "backbone", "method", "protocol"], sort=True):
        parsed = logs.get(experiment)
        label = table2_label(backbone, method, experiment) or ""
        if parsed is None:
            report.notes.append(f"tier {tier}: {experiment} has no released per-image log; shown in the tables, not compared")
            continue
        if protocol != LOG_PROTOCOL:
            report.notes.append(f"tier {tier}: {experiment} protocol {protocol} not compared (the released logs use {LOG_PROTOCOL})")
            continue
        nlsn = backbone == "nlsn"
        tolerances = {
            "psnr": max(float(rule["psnr_per_image"]), float(rule["nlsn_seed_spread_db"]) if nlsn else 0.0),
            "ssim": max(float(rule["ssim_per_image"]), float(rule["nlsn_seed_spread_ssim"]) if nlsn else 0.0),
        }
        for dataset, ds_rows in sub.groupby("dataset", sort=False):
            try:
                block = parsed.block(dataset)
            except KeyError:
                report.notes.append(f"tier {tier}: {experiment} {dataset}: the released log has no such block")
                continue
            cmp = compare_with_log(ds_rows, block)
            _released_items(tier, experiment, label, cmp, len(block.images), tolerances, nlsn, report)


def _released_items(tier: str, experiment: str, label: str, cmp: LogComparison, n_log: int, tolerances: dict,
                    nlsn: bool, report: CheckReport) -> None:
    problems = []
    if cmp.only_ours:
        problems.append(f"{len(cmp.only_ours)} of our images not in the log: {', '.join(cmp.only_ours[:5])}")
    if cmp.only_log:
        problems.append(f"{len(cmp.only_log)} log images not evaluated: {', '.join(cmp.only_log[:5])}")
    if cmp.ambiguous:
        problems.append(f"names that collide after normalisation: {', '.join(cmp.ambiguous[:5])}")
    report.items.append(
        CheckItem(tier, "images", experiment, label, cmp.dataset, "names", None, f"{n_log}", "all matched",
                  MISS if problems else OK, "; ".join(problems) or f"{len(cmp.pairs)}/{n_log} matched")
    )
    if not cmp.pairs:
        return
    basis = " (NLSN: seed spread)" if nlsn else ""
    for metric in CHECK_METRICS:
        diffs = cmp.differences(metric)
        tol = tolerances[metric]
        bad = [(n, d) for n, d in diffs if not abs(d) <= tol + SLACK]
        worst_name, worst = max(diffs, key=lambda nd: abs(nd[1]) if math.isfinite(nd[1]) else math.inf)
        col = 2 if metric == "psnr" else 4
        ours_mean = math.fsum(p[col] for p in cmp.pairs) / len(cmp.pairs)
        log_mean = math.fsum(p[col + 1] for p in cmp.pairs) / len(cmp.pairs)
        detail = f"max |ours - log| {abs(worst):.2g} ({worst_name}) over {len(diffs)} images"
        if bad:
            detail = f"{len(bad)}/{len(diffs)} images outside ±{tol:g}: " + ", ".join(f"{n} {d:+.4f}" for n, d in bad[:5]) + "; " + detail
        report.items.append(
            CheckItem(tier, "per-image", experiment, label, cmp.dataset, metric, ours_mean, f"{log_mean:.6f}",
                      f"±{tol:g} per image{basis}", MISS if bad else OK, detail)
        )
