"""The lines of a regenerated table (the paper's and ours) and their machine-readable long form.

Why a line carries its files: a reader of any cell must be able to go from the table to the
result file(s) it aggregates (``results/<tier>/<experiment>/<protocol>/<dataset>.csv``), from
there to the file's JSON sidecar, and from that to the code and packages that produced it.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median

import pandas as pd

from pcl.names import DATASET_SIZES, NON_COMPARABLE_TIERS

LONG_COLUMNS: tuple[str, ...] = (
    "row_label",
    "source",
    "protocol",
    "experiment",
    "dataset",
    "metric",
    "paper_value",
    "our_value",
    "delta",
    "n_images",
    "n_seeds",
    "seed_sd",
    "source_files",
    "line",
    "comparable",
    "term_grad_share",
)
"""Columns of a table's CSV: one row per (line, dataset, metric); ``source`` is the tier (``paper``
for the paper's lines), ``n_seeds``/``seed_sd`` the training seeds averaged and the spread of
their means, ``source_files`` the result files of the cell, ``;``-separated; ``line`` says what the
row is (``paper``, ``result``, or ``gain`` for Table II's gain lines) and ``comparable`` whether the
tier may be set beside the paper (``yes``, or ``no: not comparable with the paper``; empty on the
paper's own lines), so a reader of the CSV alone sees what the Markdown marks ``(n/c)``;
``term_grad_share`` is the contrastive term's measured share of the L1 gradient on the +PCL lines of
a table that shows it (``Line.term_share``; the median when several runs recorded one), empty where
not recorded or not shown."""

NOT_COMPARABLE = "no: not comparable with the paper"
"""Value of the ``comparable`` column for a tier in ``pcl.names.NON_COMPARABLE_TIERS``."""


def comparable_text(tier: str) -> str:
    """``yes`` or ``NOT_COMPARABLE``: the CSV's ``comparable`` value for a line of ``tier``."""
    return NOT_COMPARABLE if tier in NON_COMPARABLE_TIERS else "yes"


@dataclass(frozen=True)
class Cell:
    """One (dataset, metric) cell of a line."""

    dataset: str
    metric: str
    digits: int
    paper_printed: str
    our_value: float | None = None
    n_images: int | None = None
    n_seeds: int | None = None
    seed_sd: float | None = None
    """Sample standard deviation of the seed means when ``n_seeds`` > 1 (None otherwise)."""
    files: tuple[str, ...] = ()
    """Result files this cell was read from (empty on the paper's lines and for a set not evaluated)."""

    @property
    def evaluated(self) -> bool:
        """Whether our line has rows for this set at all: a cell with files but no value is a metric
        that was not computed on an evaluated set (an LPIPS without its weights), not a missing set."""
        return bool(self.files)

    @property
    def paper_value(self) -> float | None:
        return float(self.paper_printed) if self.paper_printed else None

    @property
    def delta(self) -> float | None:
        if self.our_value is None or self.paper_value is None:
            return None
        return self.our_value - self.paper_value

    @property
    def partial(self) -> bool:
        return self.n_images is not None and self.n_images < DATASET_SIZES[self.dataset]


@dataclass(frozen=True)
class Line:
    """A printed line: the paper's (source 'paper') or one of ours (source = tier)."""

    row_label: str
    source: str
    protocol: str
    experiment: str
    cells: tuple[Cell, ...]
    message: str = ""
    """Set instead of cells for a 'no result' line."""
    files: tuple[str, ...] = ()
    """Every result file of this (tier, experiment, protocol) at the table's scale, including
    sets the table has no column for: the files this line stands for."""
    method: str = ""
    """The method of the line's results (``pcl``, ``control``...; empty on paper and 'no result' lines)."""
    term_shares: tuple[float, ...] | None = None
    """The contrastive term's measured share of the L1 gradient, one per run, from the sidecars of
    ``files`` (``pcl.report.term_share``): None where the table does not show it or the line is not
    +PCL, ``()`` for a +PCL line whose sidecars record none."""

    @property
    def is_paper(self) -> bool:
        return self.source == "paper"

    @property
    def comparable(self) -> bool:
        return self.source not in NON_COMPARABLE_TIERS

    @property
    def term_share(self) -> float | None:
        """The median of ``term_shares`` (None when there is none)."""
        return median(self.term_shares) if self.term_shares else None


def long_frame(lines: tuple[Line, ...]) -> pd.DataFrame:
    """One row per (line, dataset, metric); paper lines have empty our_value/delta/source_files."""
    records = []
    for line in lines:
        for cell in line.cells:
            records.append(
                {
                    "row_label": line.row_label,
                    "source": line.source,
                    "protocol": line.protocol,
                    "experiment": line.experiment,
                    "dataset": cell.dataset,
                    "metric": cell.metric,
                    "paper_value": cell.paper_printed,
                    "our_value": cell.our_value,
                    "delta": cell.delta if line.comparable else None,
                    "n_images": cell.n_images,
                    "n_seeds": cell.n_seeds,
                    "seed_sd": cell.seed_sd,
                    "source_files": ";".join(cell.files),
                    "line": "paper" if line.is_paper else "result",
                    "comparable": "" if line.is_paper else comparable_text(line.source),
                    "term_grad_share": line.term_share,
                }
            )
    frame = pd.DataFrame.from_records(records, columns=LONG_COLUMNS)
    frame["n_images"] = frame["n_images"].astype("Int64")
    frame["n_seeds"] = frame["n_seeds"].astype("Int64")
    frame["term_grad_share"] = frame["term_grad_share"].astype(float)
    return frame
