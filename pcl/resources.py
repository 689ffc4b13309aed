"""Locate the small data shipped with the harness (``resources/`` at the repository root).

Why a function: product code must never read ``../shared``; everything it needs was copied into
``resources/`` with a provenance note.  ``PCL_RESOURCES`` overrides the location for installs
that keep the data elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

from pcl.errors import PCLError

REPO_ROOT = Path(__file__).resolve().parents[1]


def resources_root() -> Path:
    """Return the resources folder, honouring ``$PCL_RESOURCES``."""
    root = Path(os.environ.get("PCL_RESOURCES", REPO_ROOT / "resources"))
    if not root.is_dir():
        raise PCLError(
            f"resources folder {root} not found; run from a checkout of the harness or set "
            "PCL_RESOURCES to the folder that holds reference/ and benchmarks/"
        )
    return root


def resource_path(*parts: str) -> Path:
    """Path of a shipped file, e.g. ``resource_path('reference', 'paper', 'table2.csv')``."""
    return resources_root().joinpath(*parts)
