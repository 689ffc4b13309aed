"""`pcl check` for NIQE and LPIPS: Table III cells and the finiteness of computed values.

Why separate from the PSNR/SSIM rules: Table III has other rows (EDSR without variant, no HAN, no
Bicubic) and lower-is-better metrics, and the released logs hold no LPIPS/NIQE, so the only
reference is the printed table.  A tier's rule block opts in with
``table3: {niqe: <tolerance>, lpips: <tolerance>}`` in config/tolerances.yaml (validated by
``pcl.report.check_config.validate_table3_rule``).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from pcl.names import DATASET_SIZES
from pcl.report.cells import CellsMap
from pcl.report.check_report import MISS, OK, SLACK, CheckItem, CheckReport
from pcl.report.paper import read_paper_table
from pcl.report.placement import row_labels
from pcl.report.results import OPTIONAL_COLUMNS, summarise
from pcl.report.specs import TABLE3


def check_table3(
    tier: str, tolerances: dict[str, float], rows: pd.DataFrame, paper_dir: Path, report: CheckReport, cells: CellsMap | None = None
) -> None:
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
                ok = n == full and math.isfinite(ours) and abs(ours - float(printed)) <= tol + SLACK
                detail = "" if ok else (f"partial set: {n}/{full} images" if n != full else "outside tolerance")
                report.items.append(CheckItem(tier, "table3", rec["experiment"], label, rec["dataset"], metric, ours, printed,
                                              f"±{tol:g}", OK if ok else MISS, detail))


def computed_optional_metrics(sub: pd.DataFrame) -> list[str]:
    """LPIPS/NIQE columns that hold values for these rows (a file without the column reads NaN)."""
    return [m for m in OPTIONAL_COLUMNS if m in sub.columns and sub[m].notna().any()]
