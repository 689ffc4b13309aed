"""The report's "Speed" page: every speed comparison in ``results/bench/`` as Markdown.

Why generated: the benchmark CSVs are the measurements; a page typed by hand would drift from them
the first time a benchmark is rerun.  Each CSV has its own columns, so the page is built from
patterns only: a column whose value is the same in every row (the machine, the versions, the input
description) is printed once as a bullet, the columns that vary form the table.  Timings are
meaningful only with the machine, its load and the library versions they were measured with, so
the page also says which of those a file does not record.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from pathlib import Path

from pcl.errors import PCLError

#: Printed for an empty cell: an en dash, so a blank never reads as a zero or a lost value.
EMPTY = "–"
SIGNIFICANT = 4

_INT_RE = re.compile(r"^[+-]?\d+$")
_FLOAT_RE = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")

#: Column-name patterns of the context a timing needs (machine, load, versions).
_MACHINE_NAMES = {"cpu_model", "processor", "platform", "cuda_device", "gpu_name", "gpu_model", "device",
                  "device_description", "machine", "hostname"}


def is_machine_column(name: str) -> bool:
    """The column names (part of) the machine a row was measured on."""
    return name.lower() in _MACHINE_NAMES


def is_load_column(name: str) -> bool:
    return name.lower().startswith("load_avg")


def is_version_column(name: str) -> bool:
    return name.lower().endswith("_version")


def format_value(text: str) -> str:
    """A cell as printed: integers unchanged, other numbers to 4 significant digits, empty as "–".

    Why not round integers: counts (images, repeats, pixels) are exact; why plain digits from 1e4
    up: ``1.235e+04`` seconds is harder to read than ``12346``.
    """
    text = text.strip()
    if not text:
        return EMPTY
    if _INT_RE.match(text) or not _FLOAT_RE.match(text):
        return _safe(text)
    value = float(text)
    if value == 0:
        return "0"
    if math.isfinite(value) and 1e4 <= abs(value) < 1e15:
        return f"{value:.0f}"
    return f"{value:.{SIGNIFICANT}g}"


def _safe(text: str) -> str:
    """One line without a pipe: a ``|`` would split the Markdown (and the HTML) table cell."""
    return " ".join(text.replace("|", "¦").split())


def _is_number(text: str) -> bool:
    return bool(_FLOAT_RE.match(text.strip()))


@dataclass(frozen=True)
class BenchTable:
    """One benchmark CSV: header and rows as text, exactly as written."""

    path: Path
    columns: list[str]
    rows: list[list[str]]


def read_bench_csv(path: Path) -> BenchTable:
    """Parse one CSV; a file that is not a table raises ``PCLError`` saying why (one line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise PCLError(f"not UTF-8 text (byte {exc.start})") from exc
    except OSError as exc:
        raise PCLError(f"cannot be read ({exc.strerror or exc})") from exc
    if not text.strip():
        raise PCLError("the file is empty")
    try:
        records = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
    except csv.Error as exc:
        raise PCLError(f"not a CSV table ({exc})") from exc
    columns = [c.strip() for c in records[0]]
    bad = next((c for c in columns if not c), None)
    if bad is not None or len(set(columns)) != len(columns):
        raise PCLError("the header has an empty or repeated column name")
    if len(records) < 2:
        raise PCLError("a header but no rows")
    for number, row in enumerate(records[1:], start=2):
        if len(row) != len(columns):
            raise PCLError(f"line {number} has {len(row)} fields, the header {len(columns)}")
    return BenchTable(path, columns, records[1:])


def _constant_columns(table: BenchTable) -> list[int]:
    """Indices of the columns whose text is identical in every row (compared before rounding)."""
    return [i for i in range(len(table.columns)) if len({row[i].strip() for row in table.rows}) == 1]


def _markdown_table(table: BenchTable, indices: list[int]) -> list[str]:
    """A pipe table of the given columns; numeric columns right-aligned (``---:``)."""
    head = [_safe(table.columns[i]) for i in indices]
    align = []
    for i in indices:
        values = [row[i] for row in table.rows if row[i].strip()]
        align.append("---:" if values and all(_is_number(v) for v in values) else "---")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(format_value(row[i]) for i in indices) + " |" for row in table.rows]
    return lines


def _missing_context(columns: list[str]) -> list[str]:
    """Which of machine, load, versions no column of the file records."""
    checks = (("machine", is_machine_column), ("load", is_load_column), ("versions", is_version_column))
    return [what for what, test in checks if not any(test(c) for c in columns)]


def _producer(path: Path, bench_dir: Path) -> str:
    """The command that writes ``path``: gpu-check for its ``gpu_*`` files, the benchmarks otherwise."""
    if path.stem.startswith("gpu_"):
        return f"`pcl gpu-check --out-dir {bench_dir}`"
    return f"`pcl bench all --out-dir {bench_dir}`"


def csv_section(path: Path, bench_dir: Path) -> list[str]:
    """The lines of one CSV's section (its heading first)."""
    lines = [f"## {path.stem}", ""]
    try:
        table = read_bench_csv(path)
    except PCLError as exc:
        return lines + [f"`{path}` cannot be parsed: {exc}; rerun {_producer(path, bench_dir)} to measure it again.", ""]
    figure = path.with_suffix(".png")
    where = f"`{path}`, {len(table.rows)} row{'s' if len(table.rows) != 1 else ''}"
    lines += [where + (f"; figure `{figure}`." if figure.is_file() else "."), ""]
    constant = _constant_columns(table)
    varying = [i for i in range(len(table.columns)) if i not in constant]
    if len(table.rows) == 1:
        lines += ["One row: every column is listed.", ""]
    if constant:
        lines += [f"- {_safe(table.columns[i])}: {format_value(table.rows[0][i])}" for i in constant] + [""]
    if varying:
        lines += _markdown_table(table, varying) + [""]
    missing = _missing_context(table.columns)
    if missing:
        lines += [f"Not recorded in this file: {', '.join(missing)}.", ""]
    return lines


def bench_csvs(bench_dir: Path) -> list[Path]:
    """The CSV files of ``bench_dir`` by name (hidden files, such as a writer's temp files, skipped)."""
    return sorted((p for p in bench_dir.iterdir() if p.suffix == ".csv" and not p.name.startswith(".")),
                  key=lambda p: p.name)


def speed_page(bench_dir: Path) -> str:
    """The Markdown of the Speed page for the CSVs in ``bench_dir``.

    A missing folder is an error (nothing to report on); an empty one gives a page saying how to
    measure, and a CSV that cannot be parsed gives a one-line section, so one bad file never hides
    the others.
    """
    bench_dir = Path(bench_dir)
    if not bench_dir.is_dir():
        raise PCLError(f"benchmark folder {bench_dir} does not exist (or is not a folder): run "
                       f"`pcl bench all --out-dir {bench_dir}` first, or pass --bench-dir with the folder of the CSVs")
    lines = ["# Speed", "",
             f"Every comparison that `pcl bench all` measured, the implementations of each run side by side in "
             f"one process, with the machine, the load and the versions each row was measured with. Regenerate "
             f"with `pcl bench all --out-dir {bench_dir}`, then `pcl speed`. The figures are those of the machine "
             f"named in each section or row, not of the machine that wrote this page unless they match.", ""]
    paths = bench_csvs(bench_dir)
    if not paths:
        return "\n".join(lines + [f"No benchmark CSV in `{bench_dir}`: none were measured yet. Measure with "
                                  f"`pcl bench all --out-dir {bench_dir}` (and `pcl gpu-check` on a GPU machine), "
                                  "then write this page again with `pcl speed`.", ""])
    for path in paths:
        lines += csv_section(path, bench_dir)
    return "\n".join(lines)


__all__ = ["BenchTable", "bench_csvs", "csv_section", "format_value", "read_bench_csv", "speed_page"]
