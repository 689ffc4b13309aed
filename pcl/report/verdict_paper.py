"""The paper's own printed tables as evidence for the verdict.

Why: some claims fail on the paper's own numbers (Table IV's "configuration 3 is best" loses three
of its PSNR comparisons in Table IV itself).  The verdict says so, quoting the printed cells, before
any run of ours is needed.  Tables are the shipped transcriptions in resources/reference/paper.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pcl.errors import PCLError
from pcl.report.gains import LOWER_IS_BETTER

#: Column of each table that names its rows, and how a catalog row key maps onto it.
_ROW_COLUMNS = {2: "method", 3: "method", 5: "method"}


class PaperTables:
    """Tables II-VII as printed, read on demand (strings, so that printed precision survives)."""

    def __init__(self, folder: Path | None, table2: pd.DataFrame | None = None) -> None:
        self.folder = Path(folder) if folder is not None else None
        self._frames: dict[int, pd.DataFrame | None] = {2: table2} if table2 is not None else {}

    def frame(self, table: int) -> pd.DataFrame | None:
        if table not in self._frames:
            path = self.folder / f"table{table}.csv" if self.folder is not None else None
            if path is None or not path.is_file():
                self._frames[table] = None
            else:
                try:
                    self._frames[table] = pd.read_csv(path, dtype=str, keep_default_na=False)
                except (OSError, ValueError) as exc:
                    raise PCLError(f"{path}: cannot read the printed table ({exc.__class__.__name__}); restore it "
                                   "from the repository") from None
        return self._frames[table]

    def value(self, table: int, row: str, dataset: str, metric: str) -> str | None:
        """The printed cell as a string (None where the table has no such row or column)."""
        frame = self.frame(table)
        col = f"{dataset.lower()}_{metric}"
        if frame is None or col not in frame.columns:
            return None
        mask = _row_mask(frame, table, row)
        if mask is None or not mask.any():
            return None
        text = str(frame.loc[mask, col].iloc[0]).strip()
        return text or None


def _row_mask(frame: pd.DataFrame, table: int, row: str) -> pd.Series | None:
    if table in _ROW_COLUMNS:
        return frame[_ROW_COLUMNS[table]] == row
    if table == 4 and row.startswith("config"):
        return frame["config"] == row[len("config"):]
    if table == 6 and row.startswith("pos") and "-neg" in row:
        pos, neg = row[3:].split("-neg")
        return (frame["pos"] == pos) & (frame["neg"] == neg)
    if table == 7 and row.startswith("alpha"):
        try:
            alpha = float(row[len("alpha"):])
        except ValueError:
            return None
        return pd.to_numeric(frame["alpha"], errors="coerce") == alpha
    return None


def split_row(spec: str, default_table: int) -> tuple[int, str]:
    """``"2:RCAN"`` -> (2, "RCAN"); ``"config3"`` -> (default_table, "config3")."""
    if ":" in spec:
        table, row = spec.split(":", 1)
        return int(table), row
    return default_table, spec


def printed_gain(tables: PaperTables, table: int, plain: str, pcl: str, dataset: str, metric: str) -> float | None:
    """``pcl`` row minus ``plain`` row as printed, sign flipped for lower-is-better metrics (None if absent)."""
    a, b = tables.value(table, pcl, dataset, metric), tables.value(table, plain, dataset, metric)
    if a is None or b is None:
        return None
    try:
        diff = float(a) - float(b)
    except ValueError:
        return None
    return -diff if metric in LOWER_IS_BETTER else diff


def printed_losses(tables: PaperTables, pairs: list[tuple[int, str, int, str]], datasets: list[str],
                   metrics: list[str]) -> tuple[int, list[str], list[str]]:
    """Printed comparisons of a row claimed better with a row claimed worse.

    ``pairs`` holds (table, row claimed better, table, row claimed worse).  Returns how many printed
    comparisons exist, the quoted ones that go the other way, and the quoted ties (equal as printed:
    not a loss, not a win).
    """
    count, fails, ties = 0, [], []
    for t_best, best, t_other, other in pairs:
        for dataset in datasets:
            for metric in metrics:
                a, b = tables.value(t_best, best, dataset, metric), tables.value(t_other, other, dataset, metric)
                if a is None or b is None:
                    continue
                count += 1
                gain = float(a) - float(b)
                gain = -gain if metric in LOWER_IS_BETTER else gain
                quoted = (f"{dataset} {metric.upper()}: {best} {a} vs {other} {b} (Table {_roman(t_best)}"
                          + (f"/{_roman(t_other)}" if t_other != t_best else "") + ")")
                if gain < 0:
                    fails.append(quoted)
                elif gain == 0:
                    ties.append(quoted)
    return count, fails, ties


def _roman(n: int) -> str:
    return {2: "II", 3: "III", 4: "IV", 5: "V", 6: "VI", 7: "VII"}.get(n, str(n))
