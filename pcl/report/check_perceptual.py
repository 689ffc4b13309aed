"""`pcl check` for NIQE and LPIPS: Table III cells and the finiteness of computed values.

Why separate from the PSNR/SSIM rules: Table III has other rows (EDSR without variant, no HAN, no
Bicubic) and lower-is-better metrics, and the released logs hold no LPIPS/NIQE, so the only
reference is the printed table.  A tier's rule block opts in with
``table3: {niqe: <tolerance>, lpips: <tolerance>}`` in config/tolerances.yaml.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from pcl.errors import PCLError
from pcl.report.results import DATASET_SIZES, OPTIONAL_COLUMNS, summarise
from pcl.report.tables import TABLE3, read_paper_table, row_labels

PERCEPTUAL_METRICS: tuple[str, ...] = ("niqe", "lpips")
_SLACK = 1e-9


def validate_table3_rule(where: str, value: object) -> dict[str, float]:
    """The ``table3`` block of a tier rule: tolerances for niqe and/or lpips (finite, >= 0)."""
    if not isinstance(value, dict) or not value or set(value) - set(PERCEPTUAL_METRICS):
        raise PCLError(f"{where}.table3: must map niqe and/or lpips to tolerances, e.g. {{niqe: 0.05, lpips: 0.002}}")
    out = {}
    for key, tol in value.items():
        if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not math.isfinite(tol) or tol < 0:
            raise PCLError(f"{where}.table3.{key}: {tol!r} must be a finite number >= 0")
        out[key] = float(tol)
    return out


def check_table3(tier: str, tolerances: dict[str, float], rows: pd.DataFrame, paper_dir: Path, report, item_cls, cells=None) -> None:
    """Compare the tier's mean NIQE/LPIPS with Table III's printed cells (where computed)."""
    paper = read_paper_table(paper_dir / TABLE3.paper_file, TABLE3.label_columns, TABLE3.name)
    present = [m for m in tolerances if m in rows.columns and rows[m].notna().any()]
    if not present:
        report.notes.append(f"tier {tier}: no NIQE/LPIPS computed; Table III not compared")
        return
    for rec in summarise(rows[rows["scale"] == TABLE3.scale]).to_dict("records"):
        for label in row_labels(TABLE3, paper, rec, cells):
            if label not in paper.labels:
                continue
            for metric in present:
                printed = paper.printed(label, rec["dataset"], metric)
                if not printed or pd.isna(rec.get(metric)):
                    continue
                ours, tol = float(rec[metric]), tolerances[metric]
                n, full = int(rec["n_images"]), DATASET_SIZES[rec["dataset"]]
                ok = n == full and math.isfinite(ours) and abs(ours - float(printed)) <= tol + _SLACK
                detail = "" if ok else (f"partial set: {n}/{full} images" if n != full else "outside tolerance")
                report.items.append(item_cls(tier, "table3", rec["experiment"], label, rec["dataset"], metric, ours, printed,
                                             f"±{tol:g}", "ok" if ok else "miss", detail))


def computed_optional_metrics(sub: pd.DataFrame) -> list[str]:
    """LPIPS/NIQE columns that hold values for these rows (a file without the column reads NaN)."""
    return [m for m in OPTIONAL_COLUMNS if m in sub.columns and sub[m].notna().any()]
