"""Shared test fixtures: paths of the shipped data and of the optional ../shared folder."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def set5_dir() -> Path:
    return REPO / "resources" / "benchmarks" / "Set5" / "HR"


@pytest.fixture(scope="session")
def set14_dir() -> Path:
    return REPO / "resources" / "benchmarks" / "Set14" / "HR"
