"""The study tier: its grid in the catalog, its jobs in the workflow, and its table and figure.

Expected values: the grid is the one docs/study.md describes (L1 range {x255, x1} x warm-up {0, 100}
x alpha {0.1, 1}, three seeds, 300 iterations, all from one baseline); the gains of the report
tests are built by hand so that every number follows from the rows (given in each test).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pcl.errors import PCLError
from pcl.report.results import read_results, write_rows
from pcl.report.study import StudyCell, alpha_pairs, per_run_points, study_table
from pcl.report.study_write import ALPHA_CLAIM, ATTRIBUTION, markdown, share_figure, verdict_lines, write_study
from pcl.train.catalog import load_catalog
from pcl.train.seeds import dependency_runs, run_names

from tests.conftest import result_rows
from tests.test_workflow import _job_counts, _n_experiments

REPO = Path(__file__).resolve().parents[1]
EFFECTS = {"psnr": 0.01, "ssim": 0.0001, "lpips": 0.001, "niqe": 0.01, "niqe_y": 0.01}  # config/claims.yaml
GRID = [(scale, w, a) for scale in ("l255", "l1") for w in (0, 100) for a in ("0.1", "1")]


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(REPO / "config" / "experiments.yaml")


# --- the catalog ------------------------------------------------------------------------------


def test_study_tier_lists_the_grid_its_controls_and_the_baseline(catalog) -> None:
    names = catalog.tier_experiments("study")
    pcl = {f"edsr-s-pcl-{s}-w{w}-a{a}" for s, w, a in GRID}
    assert set(names) == pcl | {"edsr-s-control-l255", "edsr-s-control-l1", "edsr-s-baseline"}
    for s, w, a in GRID:
        e = catalog.get(f"edsr-s-pcl-{s}-w{w}-a{a}")
        config, resolved = e.method_config("study"), e.resolve("study")
        assert config.semantics == "paper" and config.weight == float(a) and config.tau == 1.0
        assert config.embedding_warmup == w and (w == 0 or config.warmup_mode == "term_off")
        assert resolved["loss_scale"] == ("backbone" if s == "l255" else 1)
        assert resolved["budget"]["iterations"] == 300 and resolved["schedule"]["periods"] == [300]
    assert catalog.get("edsr-s-control-l1").resolve("study")["loss_scale"] == 1


def test_every_fine_tune_seed_starts_from_the_one_baseline_run(catalog) -> None:
    # seeds [1, 2, 3] on the fine-tunes only: the baseline keeps one run, which every seed starts from
    assert run_names(catalog, "study", "edsr-s-baseline") == ["edsr-s-baseline"]
    for name in catalog.tier_experiments("study"):
        if name == "edsr-s-baseline":
            continue
        runs = run_names(catalog, "study", name)
        assert runs == [name, f"{name}@seed2", f"{name}@seed3"]
        for run in runs:
            assert dependency_runs(catalog, "study", run) == {"edsr-s-baseline": "edsr-s-baseline"}


def test_study_baseline_keeps_its_own_recipe_and_the_grid_stays_out_of_other_tiers(catalog) -> None:
    # The study's baseline is the recipe its committed weights were trained with (3000 iterations at
    # a constant lr 5e-4, resources/study_baseline/PROVENANCE.md), which mini has since shortened
    # (docs/method_choices.md §10: 1600 iterations at 1e-3); study-check resolves to the study's recipe.
    mini, study, check = (catalog.get("edsr-s-baseline").resolve(t) for t in ("mini", "study", "study-check"))
    assert {**study, "tier": ""} == {**check, "tier": ""}
    assert study["budget"]["iterations"] == 3000 and study["schedule"] == {"type": "constant", "lr": 5.0e-4}
    assert mini["budget"]["iterations"] == 1600 and mini["schedule"] == {"type": "constant", "lr": 1.0e-3}
    for tier in ("smoke", "finetune", "scratch", "mini"):
        assert not [n for n in catalog.tier_experiments(tier) if re.search(r"-l(255|1)(-|$)", n)], tier


def _catalog_with(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load((REPO / "config" / "experiments.yaml").read_text())
    edit(data)
    path = tmp_path / "experiments.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_a_tier_listing_an_experiment_outside_its_only_tiers_is_refused(tmp_path) -> None:
    path = _catalog_with(tmp_path, lambda d: d["tiers"]["mini"]["experiments"].append("edsr-s-control-l1"))
    with pytest.raises(PCLError, match=r"tiers\.mini\.experiments.*edsr-s-control-l1.*only_tiers"):
        load_catalog(path, schema=REPO / "workflow" / "schemas" / "experiments.schema.json")


def test_an_unknown_tier_in_only_tiers_is_refused(tmp_path) -> None:
    path = _catalog_with(tmp_path, lambda d: d["experiments"]["edsr-s-control-l1"].update(only_tiers=["study", "nope"]))
    with pytest.raises(PCLError, match=r"edsr-s-control-l1.*only_tiers.*unknown tier\(s\) nope"):
        load_catalog(path, schema=REPO / "workflow" / "schemas" / "experiments.schema.json")


# --- the workflow -----------------------------------------------------------------------------


@pytest.mark.slow  # one dry run: about 10 s on a shared 2-core machine
def test_study_dry_run_lists_the_study_jobs(workdir) -> None:
    counts = _job_counts(workdir, "--configfile", "config/study.yaml")
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    mini = yaml.safe_load((REPO / "config" / "experiments.yaml").read_text())["tiers"]["mini"]["experiments"]
    sets = {t: config["training"]["tiers"][t] for t in ("smoke", "mini")}
    default_evals = len(mini) * len(sets["mini"]["datasets"]) * len(sets["mini"]["protocols"])
    # study: 10 fine-tunes x 3 seeds trained; the baseline installed from the committed weights
    # (resources/study_baseline); 31 runs x Set5, Set14 x matlab.
    # The smoke tier runs in groups (one job per `group` runs, workflow/rules/groups.smk), not as `train` jobs.
    smoke_groups = -(-_n_experiments() // sets["smoke"]["group"])
    assert sum(v for k, v in counts.items() if k.startswith("group_smoke_")) == smoke_groups
    assert counts["train"] == len(mini) + 30
    assert counts["study_baseline_pinned"] == 1
    assert counts["evaluate_trained"] == default_evals + 31 * 2 * 1
    assert counts["study"] == counts["tables"] == counts["check"] == 1


def test_study_rules_are_local_and_included_from_the_snakefile() -> None:
    text = (REPO / "workflow" / "rules" / "study.smk").read_text()
    assert 'include: "workflow/rules/study.smk"' in (REPO / "Snakefile").read_text()
    assert re.search(r"localrules:\n\s+study,", text) and re.search(r"localrules:\n\s+study_baseline,", text)


# --- the table and the figure on hand-built rows ------------------------------------------------

CELL = StudyCell("edsr-s-pcl-l1-w0-a0.1", "edsr-s-control-l1", "1", 0, 0.1)
CELL_A1 = StudyCell("edsr-s-pcl-l1-w0-a1", "edsr-s-control-l1", "1", 0, 1.0)
SHARES = {1: 0.5, 2: 0.6, 3: 0.7}


def _write_run(root: Path, experiment: str, seed: int, psnr: list[float], niqe: float, method: str,
               share: float | None = None) -> Path:
    run = experiment if seed == 1 else f"{experiment}@seed{seed}"
    rows = result_rows("study", experiment, "Set5", backbone="edsr-s", method=method, psnr=psnr, niqe=niqe, seed=seed)
    path = write_rows(root / "study" / run / "matlab" / "Set5.csv", rows)
    training = {"term_grad_share": share, "embedding_loss": 9.0 + seed / 10, "embedding_chance": 9.72} if share else {}
    path.with_suffix(".json").write_text(json.dumps({"training": training}))
    return path


@pytest.fixture
def grid_rows(tmp_path) -> pd.DataFrame:
    """Set5, 5 images, seeds 1-3. Control: 30 dB, NIQE 5. Alpha 0.1: +0.1 * seed dB on every image,
    NIQE 5.5 (worse). Alpha 1: 29 dB, NIQE 5."""
    paths = []
    for seed in (1, 2, 3):
        paths.append(_write_run(tmp_path, CELL.control, seed, [30.0] * 5, 5.0, "control"))
        paths.append(_write_run(tmp_path, CELL.pcl, seed, [30.0 + 0.1 * seed] * 5, 5.5, "pcl", SHARES[seed]))
        paths.append(_write_run(tmp_path, CELL_A1.pcl, seed, [29.0] * 5, 5.0, "pcl", 10 * SHARES[seed]))
    return read_results(paths, source=True)


def test_study_table_pairs_each_cell_with_its_control_over_seeds(grid_rows) -> None:
    table = study_table(grid_rows, [CELL, CELL_A1], tier="study", min_effects=EFFECTS, draws=500)
    row = table[(table["first"] == CELL.pcl) & (table["metric"] == "psnr")].iloc[0]
    # mean of +0.1, +0.2, +0.3; seed sd of those three = 0.1; every draw lies in [0.1, 0.3]
    assert row["mean_gain"] == pytest.approx(0.2) and row["seed_sd_gain"] == pytest.approx(0.1)
    assert 0.1 - 1e-9 <= row["ci_low"] <= row["ci_high"] <= 0.3 + 1e-9 and row["status"] == "supported"
    assert row["n"] == 5 and row["n_seeds"] == 3
    assert row["share_median"] == pytest.approx(0.6) and row["share_runs"] == 3  # median of 0.5, 0.6, 0.7
    assert row["embedding_loss"] == pytest.approx(9.2) and row["embedding_chance"] == pytest.approx(9.72)
    niqe = table[(table["first"] == CELL.pcl) & (table["metric"] == "niqe")].iloc[0]
    assert niqe["mean_gain"] == pytest.approx(-0.5) and niqe["status"] == "contradicted"  # 5 - 5.5, lower is better
    a1 = table[(table["first"] == CELL_A1.pcl) & (table["metric"] == "psnr")].iloc[0]
    assert a1["mean_gain"] == pytest.approx(-1.0) and a1["share_median"] == pytest.approx(6.0)
    alpha = table[(table["comparison"] == "alpha") & (table["metric"] == "psnr")].iloc[0]
    # alpha 0.1 minus alpha 1: 30.2 - 29 on average over seeds
    assert (alpha["first"], alpha["second"]) == (CELL.pcl, CELL_A1.pcl) and alpha["mean_gain"] == pytest.approx(1.2)


def test_verdict_lines_are_labelled_and_name_the_supported_cell(grid_rows) -> None:
    table = study_table(grid_rows, [CELL, CELL_A1], tier="study", min_effects=EFFECTS, draws=500)
    attribution, alpha = verdict_lines(table)
    assert attribution.startswith(ATTRIBUTION) and "L1 x1, warm-up 0, alpha 0.1 Set5 psnr +0.200" in attribution
    assert alpha.startswith(ALPHA_CLAIM) and ": supported (" in alpha  # 1.2 dB on every image and seed
    text = markdown(table, [attribution, alpha])
    assert "not the paper's claims" in text and "| L1 x1, warm-up 0, alpha 0.1 | matlab | Set5 | psnr | +0.200 [" in text


def test_verdict_lines_without_rows_say_not_testable() -> None:
    empty = study_table(pd.DataFrame(columns=["tier", "experiment"]).assign(source_file=[]), [], tier="study",
                        min_effects=EFFECTS)
    assert [line.split(":")[1].strip() for line in verdict_lines(empty)] == [
        "not testable here (no +PCL cell with its control evaluated)", "not testable here (no pair of alphas evaluated)"]


def test_figure_has_one_point_per_run_at_its_share(grid_rows, tmp_path) -> None:
    points = per_run_points(grid_rows, [CELL, CELL_A1], tier="study", dataset="Set5", protocol="matlab", draws=200)
    mine = points[points["experiment"] == CELL.pcl].sort_values("seed")
    assert list(mine["share"]) == [0.5, 0.6, 0.7] and list(mine["gain"].round(6)) == [0.1, 0.2, 0.3]
    assert len(points) == 6
    path = share_figure(points, tmp_path / "fig" / "study_share.png", dataset="Set5")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_study_writes_csv_md_tex(grid_rows, tmp_path) -> None:
    table = study_table(grid_rows, [CELL, CELL_A1], tier="study", min_effects=EFFECTS, draws=200)
    paths = write_study(table, tmp_path / "out")
    assert [p.name for p in paths] == ["study.csv", "study.md", "study.tex"]
    back = pd.read_csv(paths[0])
    assert len(back) == len(table) and math.isclose(back["mean_gain"].iloc[0], table["mean_gain"].iloc[0], rel_tol=1e-5)
    assert r"\begin{tabular}" in paths[2].read_text()


def test_alpha_pairs_group_by_range_and_warmup() -> None:
    cells = [StudyCell(f"p{s}{w}{a}", "c", s, w, a) for s in ("1", "backbone") for w in (0, 100) for a in (1.0, 0.1)]
    pairs = alpha_pairs(cells)
    assert len(pairs) == 4 and all(a.alpha == 0.1 and b.alpha == 1.0 and (a.loss_scale, a.warmup) == (b.loss_scale, b.warmup)
                                   for a, b in pairs)


# --- the command --------------------------------------------------------------------------------


def test_pcl_study_writes_the_table_and_figure(grid_rows, tmp_path, monkeypatch) -> None:
    from pcl.cli import main

    monkeypatch.chdir(REPO)
    out = tmp_path / "reports"
    code = main(["study", "--results", str(tmp_path / "study"), "--out-dir", str(out / "tables"),
                 "--figure", str(out / "figures" / "study_share.png"), "--draws", "200"])
    assert code == 0
    assert sorted(p.name for p in (out / "tables").iterdir()) == ["study.csv", "study.md", "study.tex"]
    assert (out / "figures" / "study_share.png").is_file()


def test_pcl_study_without_study_rows_fails_in_one_line_and_writes_nothing(tmp_path, capsys, monkeypatch) -> None:
    from pcl.cli import main

    monkeypatch.chdir(REPO)
    rows = result_rows("mini", "edsr-s-pcl", "Set5", backbone="edsr-s", psnr=[30.0] * 5)
    write_rows(tmp_path / "res" / "mini" / "edsr-s-pcl" / "matlab" / "Set5.csv", rows)
    out = tmp_path / "out"
    code = main(["study", "--results", str(tmp_path / "res"), "--out-dir", str(out), "--figure", str(out / "f.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "no result rows of tier study" in err[0]
    assert not out.exists()


def test_study_report_does_not_import_train() -> None:
    # docs/architecture.md: pcl.report must not import pcl.train; the CLI resolves the catalog instead
    import subprocess
    import sys

    code = "import sys, pcl.report.study, pcl.report.study_write; print([m for m in sys.modules if m.startswith('pcl.train')])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_cell_without_its_control_is_refused_naming_it(tmp_path) -> None:
    # the x1 control dropped from the tier: the four x1 cells have no control with their loss_scale
    from pcl.cli_study import study_cells

    path = _catalog_with(tmp_path, lambda d: d["tiers"]["study"]["experiments"].remove("edsr-s-control-l1"))
    with pytest.raises(PCLError, match=r"tier study: edsr-s-pcl-l1-w0-a0\.1 needs exactly one control.*found: none"):
        study_cells(str(path), "study")
