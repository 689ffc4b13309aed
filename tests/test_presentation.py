"""How the harness presents its results: Table II's gain lines of tiers not comparable with the paper,
the legends' symbols, Table VI's notes, the labelled crop selections, the forest plot's markers and
layout, and the report's first screen (``pcl.report.front`` and workflow/report/workflow.rst).

Paper values come from resources/reference/paper/*.csv (the paper's tables as printed); verdict
statuses from ``pcl.report.verdict_rules`` (the rule this module's figure must follow); everything
else is computed here by hand from the synthetic inputs each test builds.
"""

from __future__ import annotations

import re

import itertools
import json
import math
from pathlib import Path

import pandas as pd
import pytest

from conftest import result_rows, write_results

from pcl.data.images import read_image, write_png
from pcl.data.imresize import bicubic_degrade, bicubic_upscale
from pcl.report import verdict_rules
from pcl.report.figure_set import FigureImage, automatic_crops, crop_figures
from pcl.report.front import FRONT_NAME, HEADING, front_fragment, parse_verdict, tiers_run
from pcl.report.gain_figures import DEFAULT_MIN_EFFECT, DPI, MARKERS, forest_figure, marker_status
from pcl.report.html import write_html_pages
from pcl.report.lines import NOT_COMPARABLE, Cell, Line, long_frame
from pcl.report.render import NOT_COMPUTED, NOT_EVALUATED, to_latex, to_markdown
from pcl.report.specs import TABLE2, TABLE3, TABLE6
from pcl.report.table_gains import NOT_COMPARABLE_LABEL, gain_extras
from pcl.report.tables import build_table, csv_frame
from pcl.resources import resource_path

PAPER = resource_path("reference", "paper")
SET5 = resource_path("benchmarks", "Set5", "HR")
REPO = Path(__file__).resolve().parents[1]


# --- Table II: gain lines of a tier not comparable with the paper ------------------------------------

def _gain(tier: str, comparison: str, dataset: str, metric: str, mean: float, low: float, high: float) -> dict:
    return {"tier": tier, "protocol": "matlab", "comparison": comparison, "kind": "vs control", "backbone": "edsr-s",
            "dataset": dataset, "metric": metric, "n": 5, "mean_gain": mean, "ci_low": low, "ci_high": high,
            "p_value": 0.3, "p_holm": 0.6, "improved": 3}


def test_mini_gain_lines_say_not_comparable_in_md_tex_and_csv() -> None:
    gains = pd.DataFrame([
        _gain("mini", "edsr-s-pcl vs edsr-s-control", "Set5", "psnr", 0.031, 0.012, 0.050),
        _gain("reported", "edsr-s-pcl vs edsr-s-official", "Set5", "psnr", 0.02, -0.01, 0.05),
    ])
    table = build_table(None, TABLE2, PAPER / "table2.csv")
    extras = gain_extras(gains, table.paper)
    md = to_markdown(table, extras).splitlines()
    mini = next(line for line in md if line.startswith("| gain | mini"))
    reported = next(line for line in md if line.startswith("| gain | reported"))
    assert f"({NOT_COMPARABLE_LABEL})" in mini and "+0.031 [+0.012, +0.050] (n/c)" in mini
    # table2.csv: EDSR-S+PCL Set5 32.17 - EDSR-S 32.09 = +0.08: printed beside the comparable line only
    assert "(printed" not in mini and "(printed +0.08)" in reported
    tex = next(line for line in to_latex(table, extras).splitlines() if line.startswith("gain & mini"))
    assert "not comparable with the paper" in tex and "(n/c)" in tex and "printed" not in tex
    frame = csv_frame(table, extras)
    rows = frame[frame["line"] == "gain"].set_index("source")
    assert rows.loc["mini", "comparable"] == NOT_COMPARABLE and rows.loc["reported", "comparable"] == "yes"
    assert pd.isna(rows.loc["mini", "paper_value"]) or rows.loc["mini", "paper_value"] in ("", None)
    assert rows.loc["reported", "paper_value"] == "+0.08" and rows.loc["mini", "metric"] == "psnr_gain"


def test_result_lines_of_the_csv_carry_the_comparable_mark() -> None:
    cell = Cell("Set5", "psnr", 2, "32.09", 30.0, 5, 1, None, files=("results/x.csv",))
    lines = (Line("EDSR-S", "paper", "", "", (Cell("Set5", "psnr", 2, "32.09"),)),
             Line("EDSR-S", "mini", "matlab", "edsr-s-baseline", (cell,)),
             Line("EDSR-S", "released", "matlab", "edsr-s-official", (cell,)))
    frame = long_frame(lines)
    assert frame["comparable"].tolist() == ["", NOT_COMPARABLE, "yes"]
    assert frame["line"].tolist() == ["paper", "result", "result"]
    assert pd.isna(frame["delta"].iloc[1]) and frame["delta"].iloc[2] == pytest.approx(30.0 - 32.09)


# --- legends: a set not evaluated and a metric not computed read differently --------------------------

def test_not_evaluated_and_not_computed_have_their_own_symbols(tmp_path: Path) -> None:
    # released RCAN on Set5 only: NIQE computed, LPIPS not (NaN: no AlexNet weights); Set14 not evaluated
    rows = write_results(tmp_path, result_rows("released", "rcan-official", "Set5", method="official", psnr=[32.0] * 5,
                                               niqe=[6.0] * 5, lpips=[math.nan] * 5))
    table = build_table(rows, TABLE3, PAPER / "table3.csv")
    md = to_markdown(table)
    line = next(l for l in md.splitlines() if l.startswith("|  | released / `rcan-official`"))
    cells = [c.strip() for c in line.strip("|").split("|")][2:]
    # table3.csv column order: set5_niqe, set5_lpips, set14_niqe, ...; RCAN Set5 NIQE printed 7.275 -> -1.275
    assert cells[0] == "6.000 (-1.275)" and cells[1] == NOT_COMPUTED and cells[2] == cells[3] == NOT_EVALUATED
    assert NOT_COMPUTED != NOT_EVALUATED
    legend = md.split("| Method")[0]
    assert f"`{NOT_EVALUATED}` a set the line has no result for" in legend
    assert f"`{NOT_COMPUTED}` a metric not computed" in legend
    tex = to_latex(table)
    assert r"$\emptyset$" in tex and "not computed" in tex


def test_table6_notes_only_metrics_it_has() -> None:
    # the paper's Table VI (table6.csv) prints PSNR, SSIM and LPIPS, no NIQE
    header = (PAPER / "table6.csv").read_text().splitlines()[0]
    assert "lpips" in header and "niqe" not in header
    md = to_markdown(build_table(None, TABLE6, PAPER / "table6.csv"))
    assert "NIQE" not in md and "LPIPS: the `lpips` package" in md


# --- crops: best and worst against the baseline and against the control -------------------------------

@pytest.fixture()
def butterfly_models(tmp_path: Path) -> dict[str, Path]:
    """HR butterfly; baseline = bicubic; +PCL = HR in the left half, bicubic elsewhere; control = +PCL
    except the left half's top quarter, where it equals HR too: so against the baseline the best
    patch lies in the left half, and against the control +PCL is never better (the halves agree)."""
    hr = read_image(SET5 / "butterfly.png")
    bic = bicubic_upscale(bicubic_degrade(hr, 4), 4)
    pcl = bic.copy()
    pcl[:, :128] = hr[:, :128]
    control = pcl.copy()
    control[128:, :128] = bic[128:, :128]  # the control lacks +PCL's improvement in the bottom-left quarter
    out = {}
    for label, img in (("Bicubic", bic), ("baseline (edsr-s-baseline)", bic), ("+PCL (edsr-s-pcl)", pcl),
                       ("control (L1) (edsr-s-control)", control)):
        out[label] = tmp_path / f"{label.split(' ')[0].strip('+')}.png"
        write_png(out[label], img)
    return out


def test_automatic_crops_are_chosen_and_labelled_per_reference(butterfly_models: dict[str, Path]) -> None:
    hr = read_image(SET5 / "butterfly.png")
    found = dict(automatic_crops(hr, butterfly_models, 48, scale=4))
    assert list(found) == ["baseline", "control"]
    (best_b, worst_b), (best_c, worst_c) = found["baseline"], found["control"]
    assert best_b.reason.startswith("best vs baseline: largest +PCL gain over the baseline (+")
    assert worst_c.reason.startswith("worst vs control: largest +PCL loss to the control (")
    assert best_b.x + 48 <= 128  # the left half, where +PCL is HR and the baseline bicubic
    # against the control the gain exists only in the bottom-left quarter: the best patch is there
    assert best_c.x + 48 <= 128 and best_c.y >= 128 - 24
    # +PCL equals the control outside that quarter: its worst patch vs the control is a 0.00 dB tie
    assert "(+0.00 dB)" in worst_c.reason or "(-0.00 dB)" in worst_c.reason
    # without a control, only the baseline selection
    no_control = {k: v for k, v in butterfly_models.items() if not k.startswith("control")}
    assert [r for r, _ in automatic_crops(hr, no_control, 48, scale=4)] == ["baseline"]


def test_crop_figures_write_both_labelled_selections(butterfly_models: dict[str, Path], tmp_path: Path) -> None:
    results_dir = tmp_path / "results"
    folders = {"bicubic": ("bicubic", "Bicubic"), "edsr-s-baseline": ("mini", "baseline (edsr-s-baseline)"),
               "edsr-s-pcl": ("mini", "+PCL (edsr-s-pcl)"), "edsr-s-control": ("mini", "control (L1) (edsr-s-control)")}
    for experiment, (tier, label) in folders.items():
        sr = tmp_path / "sr" / experiment
        sr.mkdir(parents=True)
        (sr / "butterfly.png").write_bytes(butterfly_models[label].read_bytes())
        sidecar = results_dir / tier / experiment / "matlab" / "Set5.json"
        sidecar.parent.mkdir(parents=True)
        sidecar.write_text(json.dumps({"sr_images": str(sr)}))
    rows = pd.DataFrame([{"tier": "mini", "backbone": "edsr-s", "experiment": e} for e in folders if e != "bicubic"])
    written = crop_figures(rows, results_dir, {"Set5": SET5}, [FigureImage("Set5", "butterfly")], tmp_path / "fig",
                           tiers=["mini"], crop_size=48)
    assert sorted(p.name for p in written) == sorted(f"crops_mini_edsr-s_Set5_butterfly_{k}_vs_{r}.png"
                                                     for k in ("best", "worst") for r in ("baseline", "control"))
    assert all(p.stat().st_size > 10_000 for p in written)


# --- forest plot: markers follow the verdict's cell rule; no label overlaps another -------------------

def _row(mean: float, low: float, high: float, mde: float, **kw) -> dict:
    base = {"tier": "mini", "protocol": "matlab", "kind": "vs control", "comparison": "edsr-s-pcl vs edsr-s-control",
            "backbone": "edsr-s", "dataset": "Set5", "metric": "psnr", "n": 5, "improved": 3,
            "mean_gain": mean, "ci_low": low, "ci_high": high, "mde": mde, "p_value": 0.06, "p_holm": 0.06}
    return {**base, **kw}


@pytest.mark.parametrize("row, status", [
    (_row(0.05, 0.01, 0.09, 0.03), verdict_rules.SUPPORTED),           # interval above 0, mean >= 0.01 dB
    (_row(0.005, 0.001, 0.009, 0.003), verdict_rules.NOT_SIGNIFICANT),  # above 0 but below the minimum effect
    (_row(-0.05, -0.09, -0.01, 0.03), verdict_rules.CONTRADICTED),
    (_row(0.02, -0.1, 0.14, 0.2), verdict_rules.TOO_FEW),             # spans 0, MDE 0.2 > |mean| 0.02
    (_row(0.02, -0.01, 0.05, 0.015), verdict_rules.NOT_SIGNIFICANT),   # spans 0, MDE 0.015 <= 0.02
])
def test_marker_status_is_the_verdicts_cell_rule(row: dict, status: str) -> None:
    # Holm p is 0.06 on every row: the old marker rule (interval only) and a p-value rule would both differ
    assert marker_status(row) == status == verdict_rules.cell_status(
        row["mean_gain"], row["ci_low"], row["ci_high"], min_effect=DEFAULT_MIN_EFFECT["psnr"], mde=row["mde"])


def test_marker_status_takes_the_claims_minimum_effect() -> None:
    # a +0.05 dB gain with its interval above 0 is supported at the default 0.01 dB, not at a 0.1 dB minimum
    row = _row(0.05, 0.01, 0.09, 0.03)
    assert marker_status(row) == verdict_rules.SUPPORTED
    assert marker_status(row, {"psnr": 0.1}) == verdict_rules.NOT_SIGNIFICANT
    assert marker_status({**row, "mde": float("nan")}) == verdict_rules.SUPPORTED  # a gains.csv without MDE


def _forest_rows() -> pd.DataFrame:
    """Three panels (two tiers, two kinds) of five data sets each, every status represented."""
    rows = []
    statuses = [(0.05, 0.01, 0.09, 0.03), (0.02, -0.1, 0.14, 0.2), (-0.05, -0.09, -0.01, 0.03),
                (0.02, -0.01, 0.05, 0.015), (0.005, 0.001, 0.009, 0.003)]
    for (tier, kind, other), (ds, values) in itertools.product(
            (("mini", "vs control", "control"), ("mini", "vs baseline", "baseline"), ("reported", "vs official", "official")),
            zip(("Set5", "Set14", "B100", "Urban100", "Manga109"), statuses)):
        rows.append(_row(*values, tier=tier, kind=kind, dataset=ds, comparison=f"edsr-s-pcl vs edsr-s-{other}"))
    return pd.DataFrame(rows)


def test_forest_markers_match_the_rule_and_labels_do_not_overlap() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.text import Text

    frame = _forest_rows()
    fig = forest_figure(frame)
    canvas = FigureCanvasAgg(fig)
    fig.set_dpi(DPI)
    canvas.draw()
    renderer = canvas.get_renderer()
    # markers: one per row, filled exactly where the verdict decides the cell
    points = [l for ax in fig.axes for l in ax.get_lines() if l.get_marker() not in ("None", None, "")
              and len(l.get_xdata()) == 1]
    assert len(points) == len(frame)
    filled = sum(1 for l in points if l.get_markerfacecolor() != "white")
    expected = sum(1 for r in frame.to_dict("records") if MARKERS[marker_status(r)][1])
    assert filled == expected == 6  # supported and contradicted, in each of the three panels
    # every visible text: at least 12 px high at the saved resolution, and no two boxes overlap
    found = {id(t): t for t in fig.findobj(Text)}.values()
    texts = [t for t in found if t.get_visible() and t.get_text().strip()]
    boxes = [(t.get_text(), t.get_window_extent(renderer)) for t in texts]
    assert len(boxes) > 40
    for (a, box_a), (b, box_b) in itertools.combinations(boxes, 2):
        assert not box_a.overlaps(box_b), f"{a!r} overlaps {b!r}"
    assert min(t.get_fontsize() for t in texts) * DPI / 72 >= 12.0
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles == ["mini / matlab: +PCL vs control", "mini / matlab: +PCL vs baseline",
                      "reported / matlab: +PCL vs official"]


# --- the report's first screen ----------------------------------------------------------------------

VERDICT_MD = """# Verdict on the paper's claims

Generated from the result rows by `pcl verdict`.

- **table2-all-surpass**: not significant. "All of our re-trained models surpass the original results." (P-J Section IV-B, Table II)
  - reported/authors (vs official): not significant
- **table7-alpha**: not testable here. "alpha = 0.1 is best." (P-J Table VII)

## Cells of `table2-all-surpass`

| source | status |
|---|---|
| reported/authors | supported |
"""


def test_front_fragment_says_what_ran_and_each_verdict_with_links() -> None:
    claims = parse_verdict(VERDICT_MD)
    assert [(c.id, c.status) for c in claims] == [("table2-all-surpass", "not significant"), ("table7-alpha", "not testable here")]
    table2 = "# Table II\n\nTiers with results: reported, mini. Protocols: ...\n"
    assert tiers_run(table2) == ["reported", "mini"] and tiers_run("Tiers with results: none. x") == []
    # the real legend writes the names as Markdown code (reports/tables/table2.md)
    assert tiers_run("Tiers with results: `reported`, `bicubic`. Protocols") == ["reported", "bicubic"]
    html = front_fragment(VERDICT_MD, table2_md=table2, pages={"verdict", "table2", "gains"})
    assert HEADING in html and '<span style="font-family:monospace">reported</span> the authors\' released per-image logs' in html
    assert re.search(r"<strong>table2-all-surpass</strong></td><td[^>]*><em>not significant</em>", html)
    assert "app.showResultInfo('reports/html/table2.html')\">Table II</a>" in html
    assert "table7.html" not in html  # no such page was written: no link to it
    assert "app.showResultInfo('reports/figures/gains/gains_forest_psnr.png')" in html
    assert "app.showCategory('Findings')" in html


def test_pages_write_the_front_fragment_beside_the_verdict(tmp_path: Path) -> None:
    verdict = tmp_path / "verdict.md"
    verdict.write_text(VERDICT_MD)
    table = tmp_path / "table2.md"
    table.write_text("# Table II\n\nTiers with results: bicubic.\n")
    written = write_html_pages([verdict, table], tmp_path / "html")
    assert [p.name for p in written] == ["verdict.html", "table2.html", FRONT_NAME]
    assert "table2-all-surpass" in (tmp_path / "html" / FRONT_NAME).read_text()
    assert not (tmp_path / "other" / FRONT_NAME).exists()
    assert [p.name for p in write_html_pages([table], tmp_path / "other")] == ["table2.html"]


def _render_description(files: list[str], workdir: Path) -> str:
    """workflow/report/workflow.rst as Snakemake 9 renders the workflow description: Jinja2 with the
    report's files, then docutils' html writer (snakemake/report/__init__.py, ``publish_parts``)."""
    import os
    from types import SimpleNamespace

    from docutils.core import publish_parts
    from jinja2 import Environment

    text = (REPO / "workflow" / "report" / "workflow.rst").read_text()
    env = Environment(trim_blocks=True, lstrip_blocks=True)
    rendered = env.from_string(text).render(files=[SimpleNamespace(target=f) for f in files], categories={})
    cwd = os.getcwd()
    os.chdir(workdir)  # Snakemake renders in the working directory: the raw include is relative to it
    try:
        return publish_parts(rendered, writer_name="html")["html_body"]
    finally:
        os.chdir(cwd)


def test_workflow_description_includes_the_front_fragment(tmp_path: Path) -> None:
    pages = tmp_path / "reports" / "html"
    pages.mkdir(parents=True)
    (pages / FRONT_NAME).write_text(front_fragment(VERDICT_MD, pages={"verdict"}))
    body = _render_description(["verdict.html", "table2.html"], tmp_path)
    assert HEADING in body and "<em>not testable here</em>" in body
    # before the pipeline wrote the verdict: a line saying so, and no include of a missing file
    empty = _render_description(["table2.html"], tmp_path / "reports")
    assert "No verdict in this report yet" in empty and HEADING not in empty


def test_mini_table_tells_a_missing_set_from_a_missing_metric() -> None:
    from pcl.report.mini import tier_summary, to_markdown as mini_markdown

    # baseline: Set5 only, LPIPS not computed (NaN); +PCL: Set5 and Set14 with LPIPS
    rows = pd.DataFrame(
        result_rows("mini", "edsr-s-baseline", "Set5", backbone="edsr-s", method="baseline", psnr=[30.0] * 5,
                    lpips=[math.nan] * 5)
        + result_rows("mini", "edsr-s-pcl", "Set5", backbone="edsr-s", psnr=[30.1] * 5, lpips=[0.2] * 5)
        + result_rows("mini", "edsr-s-pcl", "Set14", backbone="edsr-s", psnr=[27.0] * 14, lpips=[0.3] * 14))
    md = mini_markdown(tier_summary(rows))
    header = next(l for l in md.splitlines() if l.startswith("| method"))
    baseline = next(l for l in md.splitlines() if l.startswith("| baseline"))
    cols = [c.strip() for c in header.strip("|").split("|")][1:]
    cells = dict(zip(cols, [c.strip() for c in baseline.strip("|").split("|")][1:]))
    assert cells["Set5 PSNR"] == "30.000" and cells["Set5 LPIPS"] == NOT_COMPUTED
    assert cells["Set14 PSNR"] == cells["Set14 LPIPS"] == NOT_EVALUATED
    assert f"`{NOT_COMPUTED}`: a metric not computed" in md


def test_the_mini_table_prints_each_pcl_runs_measured_term_share() -> None:
    """The share, cosine and embedding loss come from the run's result.json (``pcl_diagnostics``,
    written by the trainer); the numbers here are the mini figures measured on its baseline
    checkpoint (0.22%, cosine -0.05, 8.91 against 2 ln 129 = 9.72)."""
    import pandas as pd

    from pcl.report.mini import to_markdown

    summary = pd.DataFrame([{"backbone": "edsr-s", "protocol": "matlab", "role": "pcl", "experiment": "edsr-s-pcl",
                             "dataset": "Set5", "metric": "psnr", "value": 29.9, "seed_sd": float("nan"),
                             "n_seeds": 1, "n_images": 5, "source": "x.csv"}])
    diagnostics = {"edsr-s-pcl": {"grad_share_median": 0.0022, "grad_cosine_median": -0.05,
                                  "embedding_loss_median": 8.91, "embedding_chance": 9.72},
                   "edsr-s-control": {"grad_share_median": None}}
    text = to_markdown(summary, diagnostics=diagnostics)
    assert "`edsr-s-pcl` 0.22% of the L1 gradient (cosine -0.05), embedding loss 8.91 against a chance level of 9.72" in text
    assert "edsr-s-control" not in text.split("Measured weight")[1]
    assert "Measured weight" not in to_markdown(summary)
