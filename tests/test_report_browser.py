"""The HTML report (`make report`, Snakemake's report of the pipeline) opened in a real browser.

Headless Chromium (Debian package `chromium`, `make browser`) loads reports/report.html, runs its
JavaScript and (a) dumps the rendered DOM, which must name the report's categories and pages, and
(b) takes a screenshot, which must not be blank. The report exists only after `make reproduce`; CI
runs this test after the pipeline with PCL_REQUIRE_REPORT=1, which turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
REPORT = Path(os.environ.get("PCL_REPORT", REPO / "reports" / "report.html"))
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars"]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        _skip_or_fail("headless Chromium is not installed (`make browser` installs Debian's chromium)")
    return found


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("PCL_REQUIRE_REPORT"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def report() -> Path:
    if not REPORT.is_file():
        _skip_or_fail(f"{REPORT} does not exist yet: run `make reproduce` (or `make report` after a pipeline run)")
    return REPORT


def _run(browser: str, tmp: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([browser, *FLAGS, f"--user-data-dir={tmp / 'profile'}", *args], capture_output=True,
                          text=True, timeout=180)


def test_report_renders_tables_figures_and_findings(report: Path, tmp_path: Path) -> None:
    browser = _chromium()
    dom = _run(browser, tmp_path, "--virtual-time-budget=15000", "--dump-dom", report.resolve().as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    text = dom.stdout
    # Categories of the report (workflow/rules/report.smk) and page / figure names it lists.
    for expected in ("Tables", "Figures", "Findings", "table2.html", "verdict.html", "gains_forest_psnr.png"):
        assert expected in text, f"{expected!r} not in the rendered report"


def test_report_screenshot_is_not_blank(report: Path, tmp_path: Path) -> None:
    browser = _chromium()
    shot = tmp_path / "report.png"
    proc = _run(browser, tmp_path, "--virtual-time-budget=15000", "--window-size=1400,1000",
                f"--screenshot={shot}", report.resolve().as_uri())
    assert proc.returncode == 0 and shot.is_file(), proc.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    # A blank page is one flat colour; a rendered report has text, tables and navigation.
    assert pixels.std() > 10.0 and len(np.unique(pixels)) > 20
    keep = os.environ.get("PCL_REPORT_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
