"""The experiment catalog: coverage of the paper's table cells, tier budgets, and schema errors."""

from __future__ import annotations

import argparse
import copy
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pcl.cli_train import add_train_parser
from pcl.errors import PCLError
from pcl.train.catalog import TABLE_ROWS, load_catalog

REPO = Path(__file__).resolve().parents[1]
CATALOG = REPO / "config" / "experiments.yaml"
PAPER = REPO / "resources" / "reference" / "paper"


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(CATALOG)


@pytest.fixture()
def raw() -> dict:
    return yaml.safe_load(CATALOG.read_text(encoding="utf-8"))


def _load(tmp_path: Path, data: dict):
    path = tmp_path / "experiments.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return load_catalog(path, schema=REPO / "workflow" / "schemas" / "experiments.schema.json")


def test_every_paper_table_row_is_fed_by_exactly_one_experiment(catalog) -> None:
    # Row labels as in resources/reference/paper: table2 'method' (backbone groups), table4 'config',
    # table5 'method', table6 (pos, neg), table7 'alpha'.
    t2 = pd.read_csv(PAPER / "table2.csv")
    expected = {
        2: [m for m, g in zip(t2["method"], t2["group"]) if g != "literature"],
        4: [f"config{c}" for c in pd.read_csv(PAPER / "table4.csv")["config"]],
        5: list(pd.read_csv(PAPER / "table5.csv")["method"]),
        6: [f"pos{p}-neg{n}" for p, n in pd.read_csv(PAPER / "table6.csv")[["pos", "neg"]].itertuples(index=False)],
        7: [f"alpha{a:g}" for a in pd.read_csv(PAPER / "table7.csv")["alpha"]],
    }
    for table, rows in expected.items():
        assert sorted(rows) == sorted(TABLE_ROWS[table])
        for row in rows:
            assert catalog.by_cell(table, row) is not None, (table, row)


def test_the_catalog_holds_every_table_experiment(catalog) -> None:
    names = set(catalog.experiments)
    for b in ("edsr-s", "edsr-l", "rcan", "han", "nlsn"):
        assert {f"{b}-baseline", f"{b}-pcl"} <= names
    assert {"rcan-pcl-cfg1-vgg", "rcan-pcl-cfg2-d", "rcan-pcl-cfg4-noaug", "rcan-pcl-cfg5-fft", "edsr-s-pcl-fixed",
            "rcan-pcl-pos-only", "rcan-pcl-neg-only", "edsr-l-control", "rcan-control", "han-control",
            "nlsn-control", "rcan-pcl-released", "nlsn-pcl-released"} <= names
    assert {f"rcan-pcl-alpha{a}" for a in ("0.01", "0.25", "0.5", "1", "5")} <= names
    for e in catalog.experiments.values():
        assert re.fullmatch(rf"{e.backbone}-{e.method}(-[a-z0-9.]+)*", e.name)
    # Shared cells (spec: Table IV config 3 = Table II RCAN+PCL = Table VI pos1-neg1 = Table VII alpha 0.1).
    assert catalog.by_cell(4, "config3").name == catalog.by_cell(2, "RCAN+PCL").name == "rcan-pcl"
    assert catalog.by_cell(6, "pos0-neg0").name == "rcan-pcl-cfg4-noaug"
    assert catalog.by_cell(5, "EDSR-S").name == "edsr-s-baseline"


def test_method_settings_resolve(catalog) -> None:
    # Paper defaults (docs/method_choices.md): alpha 0.1; Table VII overrides alpha only.
    assert catalog.get("rcan-pcl").method_config("finetune").weight == 0.1
    assert catalog.get("rcan-pcl-alpha5").method_config("finetune").weight == 5.0
    assert catalog.get("rcan-pcl-cfg2-d").method_config("finetune").embedding == "rgb"
    assert catalog.get("rcan-pcl-cfg1-vgg").method_config("finetune").layers == (0, 1, 2, 3)
    neg_only = catalog.get("rcan-pcl-neg-only").method_config("finetune")
    assert neg_only.total_positives == 1 and neg_only.num_negatives == 4
    # Table IV config 4 / Table VI "neg0": no generated positives (cfg4) / the LR input as negative,
    # as the released code without --use_aug (docs/method.md §0 step 2).
    noaug = catalog.get("rcan-pcl-cfg4-noaug").method_config("finetune")
    assert noaug.total_positives == 1 and noaug.lr_negative
    pos_only = catalog.get("rcan-pcl-pos-only").method_config("finetune")
    assert pos_only.num_positives == 4 and pos_only.lr_negative
    released = catalog.get("rcan-pcl-released").method_config("finetune")
    assert released.semantics == "released" and released.num_positives == 0  # RCAN script as it ran (docs/method.md §1.1)
    assert catalog.get("nlsn-pcl-released").method_config("finetune").loss_type == "cosine"  # docs/method.md §4.3
    assert catalog.get("rcan-control").method_config("finetune") is None


def test_pcl_fixed_depends_on_the_edsr_l_run(catalog) -> None:
    fixed = catalog.get("edsr-s-pcl-fixed")
    assert fixed.embedding_from == "edsr-l-pcl" and fixed.depends_on("smoke") == ["edsr-l-pcl"]
    order = catalog.order("smoke")
    assert order.index("edsr-l-pcl") < order.index("edsr-s-pcl-fixed") and len(order) == len(catalog.experiments)


def test_finetune_and_scratch_budgets_follow_the_spec(catalog) -> None:
    rcan, nlsn = catalog.get("rcan-pcl"), catalog.get("nlsn-pcl")
    # docs/method.md §5.2 and §6.1: 599 epochs x 1000 iterations, batch 16, LR patch 48, cosine restarts.
    b = rcan.budget("finetune")
    assert (b["iterations"], b["batch"], b["lr_patch"]) == (599_000, 16, 48)
    assert rcan.schedule("finetune") == {"type": "cosine-restart", "lr": 5e-5, "eta_min": 1e-8, "periods": [200, 200, 200],
                                         "weights": [1, 1, 1], "iterations_per_epoch": 1000}
    assert nlsn.schedule("finetune")["lr"] == 5e-6 and nlsn.schedule("finetune")["weights"] == [1, 0.5, 0.5]
    assert rcan.resolve("finetune")["grad_clip"] == 1.0 and nlsn.resolve("finetune")["grad_clip"] is None
    assert rcan.init("finetune") == "official" and rcan.init("scratch") == "scratch"
    assert rcan.model_kwargs("finetune") == {}  # the paper configuration
    assert catalog.get("rcan-baseline").budget("finetune")["iterations"] == 0  # the official weights themselves
    assert catalog.get("rcan-control").budget("finetune")["iterations"] == 599_000
    # P-C: 200k iterations from scratch; P-J: flips and 90-degree rotations.
    assert rcan.budget("scratch")["iterations"] == 200_000 and rcan.resolve("scratch")["augment"] == "paper"


def test_smoke_budgets_are_tiny(catalog) -> None:
    for e in catalog.experiments.values():
        b = e.budget("smoke")
        assert b["iterations"] <= 20 and b["batch"] <= 4 and b["lr_patch"] <= 24 and b["validation_images"] <= 2
        assert e.init("smoke") == "scratch" and b["validate_every"] == 0
        kwargs = e.model_kwargs("smoke")
        assert kwargs.get("n_feats", 999) <= 16


def _mutate(raw: dict, path: list, value) -> dict:
    data = copy.deepcopy(raw)
    node = data
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    "path, value, message",
    [
        (["experiments", "rcan-pcl", "backbone"], "rcn", r"experiments\.rcan-pcl\.backbone"),
        (["experiments", "rcan-pcl", "method"], "contrastive", r"experiments\.rcan-pcl\.method"),
        (["experiments", "rcan-pcl", "cells"], KeyError, r"experiments\.rcan-pcl.*'cells' is a required"),
        (["experiments", "rcan-pcl", "tiers"], {"finetune": {"schedule": {"lr": -1e-4}}}, r"rcan-pcl\.tiers\.finetune\.schedule\.lr"),
        (["recipes", "released-rcan", "finetune", "schedule", "lr"], -5e-5, r"recipes\.released-rcan\.finetune\.schedule\.lr"),
        (["experiments", "rcan-pcl", "cells"], [{"table": 4, "row": "config9"}], r"experiments\.rcan-pcl\.cells\.0\.row"),
        (["experiments", "rcan-pcl", "learning_rate"], 1e-4, r"experiments\.rcan-pcl.*learning_rate"),
        (["tiers", "smoke", "budget", "batch"], 0, r"tiers\.smoke\.budget\.batch"),
    ],
)
def test_schema_errors_name_the_key(tmp_path: Path, raw: dict, path: list, value, message: str) -> None:
    with pytest.raises(PCLError, match=message):
        _load(tmp_path, _mutate(raw, path, value))


def test_cross_checks_name_the_key(tmp_path: Path, raw: dict) -> None:
    bad = _mutate(raw, ["experiments", "rcan-pcl", "method_settings"], {"preset": "paper", "tau": 0})
    with pytest.raises(PCLError, match=r"experiments\.rcan-pcl\.method_settings.*tau"):
        _load(tmp_path, bad)
    bad = _mutate(raw, ["experiments", "rcan-pcl", "backbone"], "han")  # name no longer matches
    with pytest.raises(PCLError, match=r"experiments\.rcan-pcl.*han-pcl"):
        _load(tmp_path, bad)
    bad = _mutate(raw, ["experiments", "rcan-pcl-alpha5", "cells"], [{"table": 7, "row": "alpha0.1"}])
    with pytest.raises(PCLError, match=r"rcan-pcl-alpha5\.cells.*already fed by 'rcan-pcl'"):
        _load(tmp_path, bad)
    bad = _mutate(raw, ["experiments", "edsr-s-pcl-fixed", "embedding_from"], "edsr-l-pcl-typo")
    with pytest.raises(PCLError, match=r"edsr-s-pcl-fixed\.embedding_from"):
        _load(tmp_path, bad)
    bad = _mutate(raw, ["tiers", "smoke", "model_kwargs", "rcan"], {"n_resgroups": 2, "n_feat": 16})
    with pytest.raises(PCLError, match=r"n_feat"):
        _load(tmp_path, bad)
    bad = _mutate(raw, ["experiments", "rcan-pcl-released", "method_settings"], {"preset": "paper"})
    with pytest.raises(PCLError, match=r"rcan-pcl-released\.method_settings.*'released' semantics"):
        _load(tmp_path, bad)
    bad = _mutate(raw, ["experiments", "rcan-control", "method_settings"], {"preset": "paper"})
    with pytest.raises(PCLError, match=r"rcan-control\.method_settings.*L1 only"):
        _load(tmp_path, bad)
    with pytest.raises(PCLError, match="unknown experiment 'rcan-pcll'"):
        load_catalog(CATALOG).get("rcan-pcll")


def test_train_list_prints_the_catalog(capsys, catalog) -> None:
    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers())
    args = parser.parse_args(["train", "--list", "--catalog", str(CATALOG)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    for name in catalog.tier_experiments("smoke"):  # the default --tier; only_tiers experiments stay out
        assert name in out
    assert f"{len(catalog.experiments)} experiments" in out


def test_mini_tier_is_a_miniature_of_the_finetune_protocol(catalog) -> None:
    # the baseline from scratch, then +PCL, its control and the as-released twin from that baseline,
    # with the same schedule and iterations (docs/method_choices.md §7)
    assert catalog.tier_experiments("mini") == ["edsr-s-baseline", "edsr-s-pcl", "edsr-s-control", "edsr-s-pcl-released"]
    assert catalog.get("edsr-s-baseline").init("mini") == "scratch"
    tuned = [catalog.get(n) for n in ("edsr-s-pcl", "edsr-s-control", "edsr-s-pcl-released")]
    assert {str(e.init("mini")) for e in tuned} == {"{'experiment': 'edsr-s-baseline'}"}
    assert len({json_of(e.schedule("mini")) for e in tuned}) == 1
    assert len({e.budget("mini")["iterations"] for e in tuned}) == 1
    assert catalog.order("mini", ["edsr-s-pcl"]) == ["edsr-s-baseline", "edsr-s-pcl"]


def json_of(value) -> str:
    import json

    return json.dumps(value, sort_keys=True)


def test_a_tier_added_to_the_catalog_works_without_code_changes(tmp_path: Path, raw: dict, capsys) -> None:
    data = copy.deepcopy(raw)
    data["tiers"]["tiny"] = copy.deepcopy(data["tiers"]["smoke"])
    data["tiers"]["tiny"]["experiments"] = ["edsr-s-baseline"]
    for recipe in data["recipes"].values():
        recipe["tiny"] = copy.deepcopy(recipe["smoke"])
    loaded = _load(tmp_path, data)
    assert "tiny" in loaded.tiers and loaded.tier_experiments("tiny") == ["edsr-s-baseline"]
    parser = argparse.ArgumentParser()
    add_train_parser(parser.add_subparsers())
    args = parser.parse_args(["train", "--list", "--tier", "tiny", "--catalog", str(tmp_path / "experiments.yaml")])
    assert args.func(args) == 0 and "(tier tiny: 1)" in capsys.readouterr().out
    # the report layer learns the tier from the catalog too (PCL_CATALOG), in a fresh interpreter
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import pcl.names as n; print('tiny' in n.TIERS, 'tiny' in n.TRAINED_TIERS)"],
                         capture_output=True, text=True, env={"PCL_CATALOG": str(tmp_path / "experiments.yaml"),
                                                              "PATH": "/usr/bin:/bin"}, cwd=REPO)
    assert out.stdout.split() == ["True", "True"], out.stderr
    del data["recipes"]["released-rcan"]["tiny"]
    with pytest.raises(PCLError, match=r"recipes\.released-rcan: no block for tier\(s\) tiny"):
        _load(tmp_path, data)


def test_unknown_tier_is_one_line_naming_the_tiers(capsys) -> None:
    from pcl.cli import main

    code = main(["train", "--experiment", "edsr-s-baseline", "--tier", "medium", "--catalog", str(CATALOG)])
    err = capsys.readouterr().err
    assert code == 2 and "unknown training tier 'medium'" in err and "mini" in err and err.count("\n") == 1
