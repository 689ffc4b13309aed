"""The paper's tables as printed: transcribed CSVs read as strings, and decimal rounding.

Why strings: a printed ``26.00`` and ``26.0`` say different things about precision, and typos
(Table II's VDSR B100 SSIM ``0.0726``) must survive so the report shows the paper as it is.  The
transcriptions ship in ``resources/reference/paper``; every comparison with a printed cell (the
tables, the audit, the check) reads them here and rounds with ``Decimal``, never with binary floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import pandas as pd

from pcl.errors import PCLError
from pcl.names import DATASETS

METRICS: tuple[str, ...] = ("psnr", "ssim", "lpips", "niqe")
"""Metrics a paper table may print, in column order."""
DATASET_KEYS: dict[str, str] = {d.lower(): d for d in DATASETS}
"""Lower-case dataset name as in the CSV column names -> canonical name."""


@dataclass(frozen=True)
class PaperTable:
    """A transcribed paper table: printed strings per (row label, dataset, metric)."""

    name: str
    path: Path
    frame: pd.DataFrame
    """The CSV as strings, plus a ``row_label`` column."""
    columns: tuple[tuple[str, str, str], ...]
    """(csv column, dataset, metric) for every value column, in file order."""

    @property
    def labels(self) -> list[str]:
        return list(self.frame["row_label"])

    def row(self, label: str) -> pd.Series:
        hit = self.frame[self.frame["row_label"] == label]
        if hit.empty:
            raise PCLError(f"{self.path}: no row labelled {label!r}; rows are {', '.join(self.labels)}")
        return hit.iloc[0]

    def printed(self, label: str, dataset: str, metric: str) -> str:
        """The value exactly as printed ('' when the paper has no such cell)."""
        col = self.column(dataset, metric)
        return "" if col is None else str(self.row(label)[col]).strip()

    def column(self, dataset: str, metric: str) -> str | None:
        for col, ds, met in self.columns:
            if (ds, met) == (dataset, metric):
                return col
        return None

    def digits(self, dataset: str, metric: str) -> int:
        """Decimals printed in that column (the most any of its cells shows)."""
        col = self.column(dataset, metric)
        return max((decimals(v) for v in self.frame[col] if str(v).strip()), default=2)

    def note(self, label: str) -> str:
        if "note" not in self.frame.columns:
            return ""
        return str(self.row(label)["note"]).strip()


def read_paper_table(
    path: Path, label_columns: tuple[str, ...] = ("method",), name: str | None = None, *, named: bool = False
) -> PaperTable:
    """Read a transcribed paper CSV, keeping printed strings; columns ``<dataset>_<metric>``.

    Several ``label_columns`` (or one with ``named=True``) are joined as ``col=value`` pairs
    (e.g. Table VI ``pos=1, neg=0``, Table VII ``alpha=0.1``).
    """
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise PCLError(f"paper table {path} not found; it ships in resources/reference/paper") from None
    missing = [c for c in label_columns if c not in frame.columns]
    if missing:
        raise PCLError(f"paper table {path} lacks label column(s) {', '.join(missing)}")
    columns = []
    for col in frame.columns:
        key, _, metric = col.rpartition("_")
        if key in DATASET_KEYS and metric in METRICS:
            columns.append((col, DATASET_KEYS[key], metric))
    if not columns:
        raise PCLError(f"paper table {path} has no <dataset>_<metric> columns")
    for col, _, _ in columns:
        for i, value in enumerate(frame[col]):
            text = value.strip()
            if text:
                try:
                    float(text)
                except ValueError:
                    raise PCLError(f"{path}: line {i + 2}, column {col!r} holds {value!r}, not a number") from None
    frame = frame.copy()
    if len(label_columns) == 1 and not named:
        frame["row_label"] = frame[label_columns[0]].str.strip()
    else:
        frame["row_label"] = [", ".join(f"{c}={r[c].strip()}" for c in label_columns) for _, r in frame.iterrows()]
    if frame["row_label"].duplicated().any():
        dup = frame["row_label"][frame["row_label"].duplicated()].iloc[0]
        raise PCLError(f"{path}: row label {dup!r} appears twice; labels must be unique")
    return PaperTable(name or path.stem, path, frame, tuple(columns))


# --- rounding ---------------------------------------------------------------------------------


def decimals(printed: str) -> int:
    """Number of decimals in a printed number ('26.00' -> 2, '28.4' -> 1, '5' -> 0)."""
    text = str(printed).strip()
    return len(text.split(".", 1)[1]) if "." in text else 0


def to_decimal(value: float | str | Decimal) -> Decimal:
    """Exact decimal of a printed number; floats go through ``repr`` (values parsed from
    6-decimal text come back as that text)."""
    if isinstance(value, Decimal):
        return value
    return Decimal(str(value).strip() if isinstance(value, str) else repr(float(value)))


def round_half_up(value: float | str | Decimal, digits: int) -> Decimal:
    """Round half-up to ``digits`` decimals, as a table would print it."""
    return to_decimal(value).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)


def half_unit(printed: str) -> Decimal:
    """Half a unit of the last printed digit ('32.64' -> 0.005): the widest gap a correctly
    rounded value can have from what is printed."""
    return Decimal(5).scaleb(-decimals(printed) - 1)
