"""Every benchmark file names its machine, its load and its versions (pcl.bench.write_bench_csv).

Expected values: the torch and numpy versions of this process, os.cpu_count(), and the column
classes of the Speed page (pcl.report.speed), which must recognise what is added.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import torch

from pcl.bench import write_bench_csv
from pcl.report.speed import is_load_column, is_machine_column, is_version_column


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_missing_context_is_added_and_recognised(tmp_path: Path) -> None:
    path = write_bench_csv(tmp_path / "toy.csv", ["implementation", "median_s"], [{"implementation": "a", "median_s": 1.0}])
    (row,) = _read(path)
    assert row["implementation"] == "a" and row["median_s"] == "1.0"
    assert row["torch_version"] == torch.__version__ and row["numpy_version"] == np.__version__
    assert row["cpu_model"].endswith(f"{os.cpu_count()} cores")
    assert float(row["load_avg_1min_at_write"]) >= 0 and row["load_avg_1min_at_start"] == ""  # not under pcl bench
    added = set(row) - {"implementation", "median_s"}
    assert any(is_machine_column(c) for c in added) and any(is_load_column(c) for c in added)
    assert sum(is_version_column(c) for c in added) == 2


def test_recorded_context_is_kept_as_is(tmp_path: Path) -> None:
    columns = ["implementation", "cpu_model", "load_avg_before", "torch_version", "numpy_version"]
    row = {"implementation": "a", "cpu_model": "X", "load_avg_before": 0.5, "torch_version": "t", "numpy_version": "n"}
    (got,) = _read(write_bench_csv(tmp_path / "toy.csv", columns, [row]))
    assert list(got) == columns and got["cpu_model"] == "X" and got["torch_version"] == "t"
