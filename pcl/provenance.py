"""Where a file came from: the harness commit (and whether the tree was dirty) and package versions.

Why one module: training runs (``provenance.json``) and every result sidecar record the same
facts, so that a table cell leads to the code that produced it.  Imports only the standard
library at import time (torch and numpy versions are read from their metadata).
"""

from __future__ import annotations

import importlib.metadata as md
import platform
import subprocess
from datetime import datetime, timezone
from typing import Any

#: Packages whose versions change numbers (or their files) and are therefore recorded.
RECORDED_PACKAGES: tuple[str, ...] = (
    "torch", "torchvision", "lpips", "numpy", "scipy", "safetensors", "tqdm", "pyyaml", "jsonschema",
    "kornia", "tensorboard",
)


def git_commit() -> dict[str, Any]:
    """Commit of the harness checkout and whether tracked files differ from it (None outside git)."""
    from pcl.resources import REPO_ROOT

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", "-C", str(REPO_ROOT), *args], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def package_versions() -> dict[str, str]:
    """Python, pcl and the recorded packages' versions (absent packages are left out)."""
    import pcl

    versions = {"python": platform.python_version(), "pcl": getattr(pcl, "__version__", "?")}
    for name in RECORDED_PACKAGES:
        try:
            versions[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return versions


def code_provenance() -> dict[str, Any]:
    """The block every result sidecar carries: git commit, package versions, creation time."""
    return {
        "git": git_commit(),
        "packages": package_versions(),
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
