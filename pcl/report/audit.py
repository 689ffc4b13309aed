"""Audit of the released logs against the printed Table II, computed from the files.

Why: docs/method.md §8 lists where the logs and the paper disagree (§8.1), what the gains
are when taken from the logs (§8.2), and how many images PCL improves.  This module derives all of
that from ``resources/reference/released_logs`` and ``table2.csv`` so the report can never drift
from the data; the tests compare its output with the hand-made tables of docs/method.md §8.1–§8.2.

Flags (``classify``): ``=`` the log value rounded half-up to the printed digits (2 for PSNR, 4 for
SSIM) equals the printed value; ``±1`` it differs by one unit in the last printed digit (rounding
direction or truncation); ``X`` it differs by more.  Gains are compared with the difference of the
two printed rows (the printed "Gains" row is not transcribed; docs/method.md §8.3 checks it).
CLI entry point: ``write_audit`` (called by ``pcl.report.reports.write_reports``).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pandas as pd

from pcl.atomic import atomic_write_text
from pcl.errors import PCLError
from pcl.names import DATASETS
from pcl.report.labels import BACKBONE_LABELS, table2_label
from pcl.report.paper import decimals, read_paper_table, round_half_up, to_decimal
from pcl.report.released_logs import ParsedLog, log_identity, parse_logs
from pcl.resources import resource_path

FLAG_EQUAL, FLAG_ONE, FLAG_MORE = "=", "±1", "X"
METRICS = ("psnr", "ssim")
AUDIT_COLUMNS = (
    "kind",
    "backbone",
    "log",
    "row_label",
    "dataset",
    "metric",
    "log_value",
    "log_rounded",
    "paper_value",
    "diff_units",
    "flag",
    "images_improved",
    "n_images",
)

_HEADER = """# Released logs vs Table II (audit)

Computed by `pcl tables` from the authors' released per-image logs (authors' protocol,
docs/protocols.md §3) and the transcribed Table II; no value is typed in.  Log values are the
logs' `Average` lines (they equal the per-image means to 1e-6).

Flags: `=` the log value rounded half-up to the printed digits (2 for PSNR, 4 for SSIM) equals
the printed value; `±1` it differs by one unit in the last printed digit; `X` it differs by
more.  Gains (+PCL minus official) from the logs are compared with the difference of the two
printed rows (the printed Gains row itself is checked in docs/method.md §8.3).  Images improved
counts the images whose value is strictly higher with +PCL.
"""


def classify(value: float | str | Decimal, printed: str) -> tuple[str, int, str]:
    """(rounded text, difference in units of the last printed digit, flag) for one cell."""
    digits = decimals(printed)
    rounded = round_half_up(value, digits)
    units = int((rounded - to_decimal(printed)).scaleb(digits))
    flag = FLAG_EQUAL if units == 0 else FLAG_ONE if abs(units) == 1 else FLAG_MORE
    return str(rounded), units, flag


def _log_value(parsed: ParsedLog, dataset: str, metric: str) -> Decimal:
    return to_decimal(parsed.block(dataset).stated(metric))


def _pairs(logs: dict[str, ParsedLog]) -> list[tuple[str, ParsedLog, ParsedLog]]:
    """(backbone, official log, +PCL log) for every backbone with both logs, in Table II order."""
    by_backbone: dict[str, dict[str, ParsedLog]] = {}
    for name, parsed in logs.items():
        backbone, method = log_identity(name)
        by_backbone.setdefault(backbone, {})[method] = parsed
    return [
        (b, by_backbone[b]["official"], by_backbone[b]["pcl"])
        for b in BACKBONE_LABELS
        if b in by_backbone and {"official", "pcl"} <= set(by_backbone[b])
    ]


def audit_table(logs_dir: Path | None = None, paper_csv: Path | None = None) -> pd.DataFrame:
    """Long audit frame (``AUDIT_COLUMNS``): kind 'average' per log/dataset/metric and kind 'gain'
    per backbone/dataset/metric (with images improved)."""
    logs = parse_logs(logs_dir or resource_path("reference", "released_logs"))
    paper = read_paper_table(paper_csv or resource_path("reference", "paper", "table2.csv"))
    records = []
    for name in sorted(logs, key=_log_order):
        backbone, method = log_identity(name)
        label = table2_label(backbone, method)
        for dataset in DATASETS:
            for metric in METRICS:
                printed = paper.printed(label, dataset, metric)
                value = _log_value(logs[name], dataset, metric)
                rounded, units, flag = classify(value, printed)
                records.append(
                    dict(kind="average", backbone=backbone, log=name, row_label=label, dataset=dataset, metric=metric,
                         log_value=float(value), log_rounded=rounded, paper_value=printed, diff_units=units, flag=flag,
                         images_improved=None, n_images=len(logs[name].block(dataset).images))
                )
    for backbone, base, pcl in _pairs(logs):
        base_label, pcl_label = table2_label(backbone, "official"), table2_label(backbone, "pcl")
        for dataset in DATASETS:
            b_imgs, p_imgs = base.block(dataset).images, pcl.block(dataset).images
            names_b, names_p = [im.name for im in b_imgs], [im.name for im in p_imgs]
            if names_b != names_p:
                raise PCLError(f"{base.path} and {pcl.path} list different {dataset} images; cannot pair them for gains")
            for metric in METRICS:
                gain = _log_value(pcl, dataset, metric) - _log_value(base, dataset, metric)
                row_gain = to_decimal(paper.printed(pcl_label, dataset, metric)) - to_decimal(paper.printed(base_label, dataset, metric))
                rounded, units, flag = classify(gain, str(row_gain))
                improved = sum(getattr(p, metric) > getattr(b, metric) for b, p in zip(b_imgs, p_imgs))
                records.append(
                    dict(kind="gain", backbone=backbone, log=f"{pcl.name} - {base.name}", row_label=f"{pcl_label} - {base_label}",
                         dataset=dataset, metric=metric, log_value=float(gain), log_rounded=rounded, paper_value=str(row_gain),
                         diff_units=units, flag=flag, images_improved=improved, n_images=len(b_imgs))
                )
    frame = pd.DataFrame.from_records(records, columns=AUDIT_COLUMNS)
    frame["images_improved"] = frame["images_improved"].astype("Int64")
    return frame


def _log_order(name: str) -> tuple[int, int]:
    backbone, method = log_identity(name)
    return list(BACKBONE_LABELS).index(backbone), 0 if method != "pcl" else 1


def audit_markdown(frame: pd.DataFrame) -> str:
    """The audit as Markdown: averages per log, gains per backbone, images improved."""
    out = [_HEADER, "## Log averages vs Table II", ""]
    out.append("| log | Table II row | metric | " + " | ".join(DATASETS) + " |")
    out.append("|---|---|---|" + "---|" * len(DATASETS))
    avg = frame[frame["kind"] == "average"]
    for (log, label), grp in avg.groupby(["log", "row_label"], sort=False):
        for metric in METRICS:
            sub = grp[grp["metric"] == metric].set_index("dataset")
            cells = [
                f"{sub.loc[d, 'log_value']:.6f} vs {sub.loc[d, 'paper_value']} ({sub.loc[d, 'flag']})" for d in DATASETS
            ]
            out.append(f"| {log} | {label} | {metric.upper()} | " + " | ".join(cells) + " |")
    gains = frame[frame["kind"] == "gain"]
    out += ["", "## Gains (+PCL minus official): logs vs difference of the printed rows", ""]
    out.append("| backbone | metric | " + " | ".join(DATASETS) + " | mean (logs vs rows) |")
    out.append("|---|---|" + "---|" * (len(DATASETS) + 1))
    for backbone, grp in gains.groupby("backbone", sort=False):
        for metric in METRICS:
            sub = grp[grp["metric"] == metric].set_index("dataset")
            digits = 3 if metric == "psnr" else 4
            cells = [f"{sub.loc[d, 'log_value']:+.{digits}f} vs {sub.loc[d, 'paper_value']} ({sub.loc[d, 'flag']})" for d in DATASETS]
            mean_log = sub["log_value"].mean()
            mean_rows = sum(to_decimal(v) for v in sub["paper_value"]) / len(sub)
            cells.append(f"{mean_log:+.{digits}f} vs {float(mean_rows):.{digits + 1}f}")
            out.append(f"| {BACKBONE_LABELS[backbone]} | {metric.upper()} | " + " | ".join(cells) + " |")
    out += ["", "## Images improved by +PCL (per-image value strictly higher than official)", ""]
    out.append("| backbone | metric | " + " | ".join(DATASETS) + " |")
    out.append("|---|---|" + "---|" * len(DATASETS))
    for backbone, grp in gains.groupby("backbone", sort=False):
        for metric in METRICS:
            sub = grp[grp["metric"] == metric].set_index("dataset")
            cells = [f"{sub.loc[d, 'images_improved']}/{sub.loc[d, 'n_images']}" for d in DATASETS]
            out.append(f"| {BACKBONE_LABELS[backbone]} | {metric.upper()} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def write_audit(out_dir: Path, *, logs_dir: Path | None = None, paper_csv: Path | None = None) -> list[Path]:
    """Write ``audit_released_logs.md`` and ``.csv`` into ``out_dir`` (normally reports/tables)."""
    frame = audit_table(logs_dir, paper_csv)
    out_dir = Path(out_dir)
    return [
        atomic_write_text(out_dir / "audit_released_logs.md", audit_markdown(frame)),
        atomic_write_text(out_dir / "audit_released_logs.csv", frame.to_csv(index=False)),
    ]
