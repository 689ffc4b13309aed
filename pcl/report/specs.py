"""What each regenerated paper table is: its transcribed CSV, row labels and which rows it aims at.

Why data, not code per table: Tables II-VII differ only in their CSV, how their rows are labelled
and keyed, and which results may land on them, so one builder (``pcl.report.tables``) serves all
of them from a ``TableSpec``.  Where a result goes is decided by ``pcl.report.placement`` from
the ``TableSpec``'s ``row_for`` (tiers that are not trained from the catalog), ``number`` and ``row_key``
(the catalog's cells) and ``backbone_rows`` (trained experiments that feed no cell).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from pcl.report.labels import table2_label

RowMapper = Callable[[str, str, "str | None"], "str | None"]
"""(backbone, method, experiment or None) -> paper row label, or None when not on the table."""


def _no_row(backbone: str, method: str, experiment: str | None) -> None:
    """Row mapper of tables that only trained runs (placed by the catalog) feed."""
    return None


def _method_key(row: pd.Series) -> str:
    return str(row["method"]).strip()


@dataclass(frozen=True)
class TableSpec:
    """What a generic table needs: the paper CSV, its row labels and where result rows go."""

    name: str
    """File stem of the outputs, e.g. ``table2``."""
    title: str
    paper_file: str
    """File name under ``resources/reference/paper``."""
    row_for: RowMapper
    """(backbone, method, experiment) -> paper row label, or None when not on this table; places
    the tiers that do not come from the catalog, and (with experiment None) the trained
    experiments that feed no cell when ``backbone_rows`` is set."""
    label_columns: tuple[str, ...] = ("method",)
    is_target: Callable[[pd.Series], bool] = lambda row: True
    """Rows the harness aims to reproduce: they get a 'no result' line when nothing maps to them;
    other rows (literature) stay paper-only."""
    scale: int = 4
    number: int = 0
    """The paper's table number, as the catalog's cells name it (2, 3, 4, 5, 6, 7)."""
    row_key: Callable[[pd.Series], str] = _method_key
    """Paper CSV row -> the catalog's row key (``config3``, ``pos1-neg0``, ``alpha0.1``, ``EDSR-S``)."""
    backbone_rows: bool = False
    """Trained experiments that feed no catalog cell (the L1-only controls, the authors' scripts
    as released) are shown on their backbone's row of this table, so that they sit beside the
    runs they are controls or alternatives for."""
    named_labels: bool = False
    """Show row labels as ``column=value`` even with one label column (Table VII ``alpha=0.1``)."""
    label_header: str = "Method"
    notes: tuple[str, ...] = ()
    """Table-specific legend lines (how its metrics were computed)."""
    term_share: bool = False
    """Name, in the legend and the CSV, the contrastive term's measured share of the L1 gradient of
    each +PCL line (``pcl.report.term_share``): set on the tables that weigh +PCL against its
    backbone (II) and the term's weight alpha (VII), where that share decides what a line can show."""


def _table2_target(row: pd.Series) -> bool:
    return row.get("group", "") != "literature" or row["row_label"] == "Bicubic"


NEGATIVES_NOTE = (
    "Samples: without generated negatives (neg=0, and config 4) the bicubic-upsampled LR input is the only "
    "negative, as the released code does without --use_aug; with them (neg=1) the K blurred GT copies replace it "
    "(the paper's sampler has no LR negative). So the `neg` factor swaps the LR negative for blurred ones rather "
    "than adding them (docs/method_choices.md §7)."
)
LOSS_SCALE_NOTE = (
    "alpha weighs a scale-free contrastive term against an L1 loss that EDSR, RCAN and HAN compute on [0, 255] "
    "and NLSN on [0, 1] (`loss_scale: backbone`, the released recipe), so the same alpha is 255 times heavier "
    "relative to the L1 for NLSN; each run's config.yaml states the effective weight "
    "(`contrastive_weight_relative_to_l1_on_0_1`)."
)


TABLE2 = TableSpec(
    name="table2",
    title="Table II: x4 PSNR (dB) / SSIM on the Y channel (P-J Table II)",
    paper_file="table2.csv",
    row_for=table2_label,
    label_columns=("method",),
    is_target=_table2_target,
    number=2,
    backbone_rows=True,
    notes=(LOSS_SCALE_NOTE,),
    term_share=True,
)

LPIPS_NOTE = (
    "LPIPS: the `lpips` package v0.1, AlexNet, RGB in [0, 1], on the region PSNR/SSIM score (GT mod-cropped, 4 px "
    "shaved); its cells read `∅` (not computed) until the AlexNet weights are in place (`pcl weights fetch "
    "alexnet`, see reports/weights_status.md). The paper does not state its setting. Lower is better."
)
PERCEPTUAL_NOTES: tuple[str, ...] = (
    "NIQE: the official MATLAB NIQE (Mittal et al. 2013, shipped pristine model, 96x96 blocks), computed by the "
    "harness on the SR image converted with MATLAB's rgb2gray, after removing `scale` (4) pixels on every side as "
    "SR papers do (rows also hold `niqe_y`, the same on MATLAB's Y channel); the paper does not state its setting, "
    "lower is better. " + LPIPS_NOTE,
    "The authors released no per-image LPIPS/NIQE, so the `reported` tier has no line here: the paper's values "
    "are the only reference.",
)


def _table3_label(backbone: str, method: str, experiment: str | None) -> str | None:
    """Table III names its EDSR rows without the variant: the harness feeds them from EDSR-L."""
    label = table2_label(backbone, method, experiment)
    if label is None or label.startswith(("EDSR-S", "HAN", "Bicubic")):
        return None
    return label.replace("EDSR-L", "EDSR")


TABLE3 = TableSpec(
    name="table3",
    title="Table III: x4 NIQE / LPIPS (lower is better) of EDSR, RCAN and NLSN with and without PCL (P-J Table III)",
    paper_file="table3.csv",
    row_for=_table3_label,
    label_columns=("method",),
    number=3,
    backbone_rows=True,
    notes=PERCEPTUAL_NOTES,
)

TABLE4 = TableSpec(
    name="table4",
    title="Table IV: embedding network and generated samples, RCAN x4 PSNR (dB) / SSIM (P-J Table IV)",
    paper_file="table4.csv",
    row_for=_no_row,
    label_columns=("config", "embedding", "aug"),
    number=4,
    row_key=lambda row: f"config{str(row['config']).strip()}",
    label_header="Configuration",
    notes=(NEGATIVES_NOTE,),
)


def _table5_label(backbone: str, method: str, experiment: str | None) -> str | None:
    """Table V's first two rows are Table II's EDSR-S rows (e.g. the released EDSR-S weights)."""
    label = table2_label(backbone, method, experiment)
    return label if label in ("EDSR-S", "EDSR-S+PCL") else None


TABLE5 = TableSpec(
    name="table5",
    title="Table V: EDSR-S with a fixed embedding trained alongside EDSR-L (PCL-F), x4 PSNR (dB) / SSIM (P-J Table V)",
    paper_file="table5.csv",
    row_for=_table5_label,
    label_columns=("method",),
    number=5,
)

TABLE6 = TableSpec(
    name="table6",
    title="Table VI: generated positives / negatives, RCAN x4 PSNR (dB) / SSIM / LPIPS (P-J Table VI)",
    paper_file="table6.csv",
    row_for=_no_row,
    label_columns=("pos", "neg"),
    number=6,
    row_key=lambda row: f"pos{str(row['pos']).strip()}-neg{str(row['neg']).strip()}",
    label_header="Samples",
    notes=(LPIPS_NOTE, NEGATIVES_NOTE),  # the paper's Table VI has LPIPS but no NIQE column
)

TABLE7 = TableSpec(
    name="table7",
    title="Table VII: weight alpha of the contrastive term, RCAN x4 Set14 PSNR (dB) (P-J Table VII)",
    paper_file="table7.csv",
    row_for=_no_row,
    label_columns=("alpha",),
    number=7,
    row_key=lambda row: f"alpha{str(row['alpha']).strip()}",
    named_labels=True,
    label_header="Weight",
    notes=(LOSS_SCALE_NOTE,),
    term_share=True,
)

TABLES: tuple[TableSpec, ...] = (TABLE2, TABLE3, TABLE4, TABLE5, TABLE6, TABLE7)
"""Every table ``pcl tables`` writes, in paper order."""
