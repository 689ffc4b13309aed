"""Which paper table cells each trained experiment feeds: the bridge from the catalog to the report.

Why a file and not an import: ``pcl.report`` must not import ``pcl.train`` (architecture.md,
package map), yet Tables II and IV-VII place trained runs by the catalog's ``cells``.  The CLI
(``pcl catalog cells``, which may import the catalog) writes this mapping as JSON and
``pcl tables`` / ``pcl check`` read it back with ``--cells``; the workflow keeps it at
``reports/cells.json`` so a reader can see how every line was placed.

File format (version 1)::

    {"version": 1, "catalog": "config/experiments.yaml",
     "experiments": {"rcan-pcl": {"backbone": "rcan", "method": "pcl",
                                  "cells": [[2, "RCAN+PCL"], [4, "config3"], ...]}, ...}}

``cells`` rows are the catalog's row keys (``config3``, ``pos1-neg1``, ``alpha0.1``, Table II/V
method labels); each ``TableSpec`` turns them into its paper row labels.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pcl.errors import PCLError
from pcl.atomic import atomic_write_text

CELLS_VERSION = 1
TABLE_NUMBERS: tuple[int, ...] = (2, 3, 4, 5, 6, 7)
"""Tables whose rows trained experiments can feed (Table III needs LPIPS/NIQE runs: not yet)."""


@dataclass(frozen=True)
class CellsMap:
    """Experiment -> the (table, row key) cells it feeds, plus its backbone and method."""

    cells: dict[str, tuple[tuple[int, str], ...]]
    backbones: dict[str, str] = field(default_factory=dict)
    methods: dict[str, str] = field(default_factory=dict)
    source: str = ""
    """Where the mapping came from (catalog path), for messages."""

    def __contains__(self, experiment: object) -> bool:
        return experiment in self.cells

    def rows(self, experiment: str, table: int) -> list[str]:
        """Row keys of ``table`` that ``experiment`` feeds ([] when none or unknown)."""
        return [row for t, row in self.cells.get(experiment, ()) if t == table]

    def feeds_any(self, experiment: str) -> bool:
        return bool(self.cells.get(experiment))

    def experiments_with_cells(self) -> list[str]:
        """Experiments that feed at least one paper cell, in file order."""
        return [name for name, cells in self.cells.items() if cells]

    def describe(self, experiment: str) -> str:
        """``T2:RCAN+PCL, T4:config3`` (for check reports)."""
        return ", ".join(f"T{t}:{row}" for t, row in self.cells.get(experiment, ()))

    def to_json(self) -> dict:
        return {
            "version": CELLS_VERSION,
            "catalog": self.source,
            "experiments": {
                name: {
                    "backbone": self.backbones.get(name, ""),
                    "method": self.methods.get(name, ""),
                    "cells": [[t, row] for t, row in cells],
                }
                for name, cells in self.cells.items()
            },
        }


def cells_map(
    experiments: Mapping[str, Sequence[tuple[int, str]]],
    *,
    backbones: Mapping[str, str] | None = None,
    methods: Mapping[str, str] | None = None,
    source: str = "",
) -> CellsMap:
    """Build a validated ``CellsMap`` from plain data (tests, the CLI's catalog conversion)."""
    out: dict[str, tuple[tuple[int, str], ...]] = {}
    seen: dict[tuple[int, str], str] = {}
    where = source or "cells mapping"
    for name, cells in experiments.items():
        if not isinstance(name, str) or not name:
            raise PCLError(f"{where}: experiment names must be non-empty strings, got {name!r}")
        parsed = []
        for cell in cells:
            if not isinstance(cell, (list, tuple)) or len(cell) != 2:
                raise PCLError(f"{where}: experiments.{name}.cells: each cell is [table, row], got {cell!r}")
            table, row = cell
            if isinstance(table, bool) or not isinstance(table, int) or table not in TABLE_NUMBERS:
                raise PCLError(f"{where}: experiments.{name}.cells: table {table!r} is not one of {TABLE_NUMBERS}")
            if not isinstance(row, str) or not row.strip():
                raise PCLError(f"{where}: experiments.{name}.cells: row {row!r} must be a non-empty string")
            key = (table, row.strip())
            if key in seen:
                raise PCLError(f"{where}: table {table} row {row!r} is fed by both {seen[key]!r} and {name!r}; keep one")
            seen[key] = name
            parsed.append(key)
        out[name] = tuple(parsed)
    return CellsMap(out, dict(backbones or {}), dict(methods or {}), source)


def write_cells(path: Path, mapping: CellsMap) -> Path:
    """Write the mapping as JSON (atomically) and return the path."""
    return atomic_write_text(Path(path), json.dumps(mapping.to_json(), indent=1) + "\n")


def read_cells(path: Path) -> CellsMap:
    """Read a mapping written by ``write_cells`` (``pcl catalog cells``); PCLError names the key."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PCLError(f"cells mapping {path} not found; write it with `pcl catalog cells --out {path}`") from None
    except json.JSONDecodeError as exc:
        raise PCLError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno}); re-write it with `pcl catalog cells`") from None
    if not isinstance(data, dict) or data.get("version") != CELLS_VERSION:
        raise PCLError(f"{path}: key 'version' must be {CELLS_VERSION}; re-write it with `pcl catalog cells`")
    experiments = data.get("experiments")
    if not isinstance(experiments, dict):
        raise PCLError(f"{path}: key 'experiments' must map experiment names to {{backbone, method, cells}}")
    cells, backbones, methods = {}, {}, {}
    for name, entry in experiments.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("cells"), list):
            raise PCLError(f"{path}: experiments.{name} must hold a list 'cells' of [table, row]")
        cells[name] = [tuple(c) if isinstance(c, list) else c for c in entry["cells"]]
        backbones[name] = str(entry.get("backbone", ""))
        methods[name] = str(entry.get("method", ""))
    return cells_map(cells, backbones=backbones, methods=methods, source=str(data.get("catalog") or path))
