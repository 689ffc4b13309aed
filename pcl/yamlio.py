"""Read a YAML configuration file with a one-line error for the two ways it goes wrong.

Why shared: the config files (tolerances, deviations, checkpoint registry, experiment catalog)
are edited by hand, and a missing file or a syntax slip must say which file and what to do,
the same way everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pcl.errors import PCLError


def read_yaml(path: Path, *, what: str, missing_hint: str) -> Any:
    """Parse ``path``; PCLError ``"<what> <path> not found; <missing_hint>"`` or naming the syntax error."""
    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PCLError(f"{what} {path} not found; {missing_hint}") from None
    except yaml.YAMLError as exc:
        raise PCLError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix the syntax") from None
