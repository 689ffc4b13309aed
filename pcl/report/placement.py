"""Which paper row a result goes on: by the experiment catalog's cells for trained runs, by name otherwise.

Why two rules: the trained tiers (``pcl.names.TRAINED_TIERS``) run the experiments of
``config/experiments.yaml``, whose ``cells`` say exactly which table rows each one feeds; parsing
their names instead would drop every experiment whose name does not follow the pattern (it did:
``rcan-pcl-released`` landed nowhere).  The other tiers (released logs, bicubic, released
weights) are not catalog runs -- they even reuse catalog names such as ``rcan-pcl`` for other
models -- so they are placed by (backbone, method, experiment name) through ``TableSpec.row_for``.

A trained experiment the catalog lists without cells (an L1-only control, an authors' script as
released) goes on its backbone's row of the tables with ``backbone_rows`` (Tables II and III),
by the backbone and method the catalog gives it.  A trained experiment the catalog does not know,
or any trained result when no mapping is given, lands nowhere and is reported as unplaced.
"""

from __future__ import annotations

from collections.abc import Mapping

from pcl.names import TRAINED_TIERS
from pcl.report.cells import CellsMap
from pcl.report.paper import PaperTable
from pcl.report.specs import TableSpec

UNPLACED = "?"
"""Prefix of a returned label that names no paper row (``?<row key>`` or ``?<experiment>``)."""


def row_labels(spec: TableSpec, paper: PaperTable, rec: Mapping, cells: CellsMap | None) -> list[str]:
    """Paper row labels of ``spec`` that one summary record (tier, experiment, backbone, method) feeds.

    ``[]`` means the result does not belong on this table.  A label starting with ``UNPLACED`` is
    returned for a result that should be on it but has no row: a catalog row key the paper table
    lacks (``?alpha2``), or a trained result that no catalog cell places (``?<experiment>``).
    """
    experiment = rec["experiment"]
    if rec["tier"] not in TRAINED_TIERS:
        label = spec.row_for(rec["backbone"], rec["method"], experiment)
        return [] if label is None else [label]
    if cells is None or experiment not in cells:
        return [f"{UNPLACED}{experiment}"]
    if cells.feeds_any(experiment):
        keys = {spec.row_key(r): r["row_label"] for _, r in paper.frame.iterrows()}
        return [keys.get(key, f"{UNPLACED}{key}") for key in cells.rows(experiment, spec.number)]
    if not spec.backbone_rows:
        return []
    label = spec.row_for(cells.backbones.get(experiment, ""), cells.methods.get(experiment, ""), None)
    return [] if label is None else [label]


def unplaced_reason(tier: str, experiment: str, cells: CellsMap | None) -> str:
    """Why a result lands on no table, in words for ``pcl check``."""
    if tier not in TRAINED_TIERS:
        return f"no table has a row for {experiment} (tier {tier} is placed by backbone, method and experiment name)"
    if cells is None:
        return "no cells mapping given (pcl catalog cells); trained tiers are placed by the catalog's cells"
    if experiment not in cells:
        return f"{experiment} is not in the catalog ({cells.source}); add it with its cells"
    return f"the catalog's cells of {experiment} ({cells.describe(experiment) or 'none'}) name no row of a table"
