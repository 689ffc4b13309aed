"""The HTML report (`make report`, Snakemake's report of the pipeline) opened in a real browser.

Headless Chromium (Debian package `chromium`, `make browser`) loads reports/report.html, runs its
JavaScript and (a) dumps the rendered DOM, which must name the report's categories and pages, and
(b) takes a screenshot, which must not be blank, and (c) measures the first screen: it must open on
what was reproduced and the verdict of every claim of reports/verdict.md, all inside a 1400x1000
window. The report exists only after `make reproduce`; CI runs this test after the pipeline with
PCL_REQUIRE_REPORT=1, which turns the skip into a failure.  The first screen is also checked on a
report that Snakemake builds here from a small workflow (the repository's workflow/report/workflow.rst
and real `pcl ingest-logs`/`gains`/`verdict`/`tables`/`pages` outputs), so it is tested without the pipeline.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pcl.report.front import HEADING, parse_verdict

REPO = Path(__file__).resolve().parents[1]
WINDOW = (1400, 1000)
"""The first screen: a common laptop browser window."""
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


# Run in the page after React has drawn it: where the first screen's heading and last verdict row
# are (pixels from the window's top) and the description's text, left on <body> for --dump-dom.
PROBE = """<script>setTimeout(function () {
  var doc = document.querySelector('.document');
  var head = doc ? doc.querySelector('h2') : null;
  var rows = doc ? doc.querySelectorAll('tr') : [];
  document.body.setAttribute('data-first-screen', JSON.stringify({
    top: head ? head.getBoundingClientRect().top : null,
    bottom: rows.length ? rows[rows.length - 1].getBoundingClientRect().bottom : null,
    text: doc ? doc.innerText : ''}));
}, 3000);</script>"""


def first_screen(browser: str, tmp: Path, report: Path) -> dict:
    """Where the first screen's heading and last verdict row lie, and its text (``PROBE``)."""
    probed = tmp / "probed.html"
    page = report.read_text()
    assert "</body>" in page, f"{report}: no </body> to add the probe before"
    head, _, tail = page.rpartition("</body>")  # the last one: the page's scripts hold the string too
    probed.write_text(head + PROBE + "</body>" + tail)
    dom = _run(browser, tmp, "--virtual-time-budget=15000", f"--window-size={WINDOW[0]},{WINDOW[1]}", "--dump-dom",
               probed.resolve().as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    marker = 'data-first-screen="'
    start = dom.stdout.find(marker)
    assert start >= 0, "the probe did not run: the report's first screen was not drawn"
    end = dom.stdout.index('"', start + len(marker))
    return json.loads(html.unescape(dom.stdout[start + len(marker):end]))


def assert_first_screen(screen: dict, verdict_md: str) -> None:
    """The heading and every claim's verdict are on the first screen, none of it cut off."""
    claims = parse_verdict(verdict_md)
    assert claims, "the verdict page holds no claim line"
    text = " ".join(screen["text"].split())
    assert text.startswith(HEADING) and "Tiers with results:" in text, text[:300]
    for claim in claims:
        assert f"{claim.id} {claim.status}" in text, f"{claim.id}: {claim.status} not on the first screen"
    assert screen["top"] is not None and screen["top"] >= 0, f"heading cut off above the window: {screen}"
    assert screen["bottom"] is not None and screen["bottom"] <= WINDOW[1], f"last claim below the first screen: {screen}"


def test_report_opens_on_the_verdict_per_claim(report: Path, tmp_path: Path) -> None:
    verdict = REPO / "reports" / "verdict.md"
    if not verdict.is_file():
        _skip_or_fail(f"{verdict} does not exist: the report was built without the pipeline's verdict")
    assert_first_screen(first_screen(_chromium(), tmp_path, report), verdict.read_text())


def test_report_forest_plot_is_legible_at_full_size(report: Path) -> None:
    # the figure is shown at its own size in the report: its width must fit the window (no downscaling)
    # while its 7 pt labels stay 12.6 px high (130 dpi, tests/test_presentation.py checks the layout)
    forest = REPO / "reports" / "figures" / "gains" / "gains_forest_psnr.png"
    width, height = Image.open(forest).size
    assert 900 <= width <= WINDOW[0] and height >= 250, (width, height)
    # its caption (workflow/report/gains_forest.rst) says the markers are the verdict's cell statuses
    assert "status of that cell" in report.read_text()


SMALL_WORKFLOW = """report: {description!r}

rule all:
    input: "reports/html/verdict.html"

rule pages:
    input: "reports/verdict.md", "reports/tables/table2.md", "reports/tables/gains.md"
    output:
        report("reports/html/verdict.html", category="Findings"),
        report("reports/html/table2.html", category="Tables"),
        report("reports/html/gains.html", category="Findings"),
        report("reports/figures/gains/gains_forest_psnr.png", caption={caption!r}, category="Figures"),
    shell: "{pcl} pages {{input}} --out-dir reports/html && cp {forest!r} reports/figures/gains/"
"""


@pytest.mark.slow
def test_first_screen_of_a_report_snakemake_builds_here(tmp_path: Path) -> None:
    browser = _chromium()
    bin_dir = Path(sys.executable).parent
    pcl, snakemake = bin_dir / "pcl", bin_dir / "snakemake"
    work = tmp_path / "wf"
    reports, results = work / "reports", tmp_path / "results"

    def run(*args: str | Path) -> None:
        proc = subprocess.run([str(a) for a in args], cwd=work, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, (args, proc.stdout[-1500:], proc.stderr[-1500:])

    work.mkdir()
    run(pcl, "ingest-logs", "--logs-dir", REPO / "resources" / "reference" / "released_logs", "--out-dir", results / "reported")
    run(pcl, "gains", "--results", results, "--out-dir", reports / "tables", "--figures-dir", tmp_path / "fig", "--draws", "200")
    run(pcl, "verdict", "--results", results, "--gains", reports / "tables" / "gains.csv", "--out", reports / "verdict.md",
        "--claims", REPO / "config" / "claims.yaml", "--results-dir", results)
    run(pcl, "tables", "--results", results, "--out-dir", reports / "tables", "--figures-dir", tmp_path / "fig",
        "--gains", reports / "tables" / "gains.csv")
    (reports / "figures" / "gains").mkdir(parents=True)
    (work / "Snakefile").write_text(SMALL_WORKFLOW.format(
        description=str(REPO / "workflow" / "report" / "workflow.rst"), pcl=str(pcl),
        caption=str(REPO / "workflow" / "report" / "gains_forest.rst"), forest=str(tmp_path / "fig" / "gains_forest_psnr.png")))
    run(snakemake, "--cores", "1", "--quiet")
    run(snakemake, "--cores", "1", "--report", "report.html")
    report = work / "report.html"
    assert_first_screen(first_screen(browser, tmp_path, report), (reports / "verdict.md").read_text())
    shot = tmp_path / "first.png"
    proc = _run(browser, tmp_path, "--virtual-time-budget=15000", f"--window-size={WINDOW[0]},{WINDOW[1]}",
                f"--screenshot={shot}", report.resolve().as_uri())
    assert proc.returncode == 0 and Image.open(shot).size == WINDOW
    keep = os.environ.get("PCL_REPORT_SCREENSHOT")
    if keep:
        shutil.copy(shot, Path(keep).with_name("first_screen_" + Path(keep).name))
