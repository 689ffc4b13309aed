"""Several training seeds of one experiment: run names, what each seeded run starts from, and how
tables average the seeds (mean of the seed means, sample standard deviation across seeds).

Expected numbers are worked out by hand in each test from the values it builds.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pcl.errors import PCLError
from pcl.names import run_name, split_run_name
from pcl.report.results import read_results, summarise
from pcl.train.catalog import load_catalog
from pcl.train.seeds import dependency_runs, run_names, run_of, seeded_starts

REPO = Path(__file__).resolve().parents[1]


def _catalog(tmp_path: Path, edit) -> Path:
    data = yaml.safe_load((REPO / "config" / "experiments.yaml").read_text())
    edit(data)
    path = tmp_path / "experiments.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_run_names_round_trip() -> None:
    assert run_name("rcan-pcl", 1, first_seed=1) == "rcan-pcl"
    assert run_name("rcan-pcl", 3, first_seed=1) == "rcan-pcl@seed3"
    assert split_run_name("rcan-pcl@seed3") == ("rcan-pcl", 3)
    assert split_run_name("rcan-pcl") == ("rcan-pcl", None)
    with pytest.raises(ValueError, match="rcan-pcl@seedx"):
        split_run_name("rcan-pcl@seedx")


def test_seeds_come_from_the_experiment_then_the_tier_then_the_catalog_seed(tmp_path: Path) -> None:
    def edit(data: dict) -> None:
        data["tiers"]["mini"]["seeds"] = [1, 2, 3]
        data["experiments"]["edsr-s-control"].setdefault("tiers", {})["mini"] = {"seeds": [7, 8]}

    catalog = load_catalog(_catalog(tmp_path, edit))
    assert catalog.get("edsr-s-baseline").seeds("mini") == [1, 2, 3]
    assert catalog.get("edsr-s-control").seeds("mini") == [7, 8]
    assert catalog.get("edsr-s-baseline").seeds("smoke") == [1]  # the catalog's `seed: 1`
    assert catalog.get("edsr-s-control").resolve("mini")["seed"] == 7  # the bare run is the first seed
    assert run_names(catalog, "mini", "edsr-s-control") == ["edsr-s-control", "edsr-s-control@seed8"]
    assert run_of(catalog, "mini", "edsr-s-baseline@seed3")[1] == 3
    with pytest.raises(PCLError, match=r"seed 9 is not an extra seed of edsr-s-baseline.*edsr-s-baseline@seed2"):
        run_of(catalog, "mini", "edsr-s-baseline@seed9")


def test_a_seeded_fine_tune_starts_from_the_baseline_of_its_seed_when_there_is_one(tmp_path: Path) -> None:
    # In the mini tier every fine-tune starts from edsr-s-baseline (catalog: init {experiment: ...}).
    both = load_catalog(_catalog(tmp_path, lambda d: d["tiers"]["mini"].update(seeds=[1, 2])))
    assert dependency_runs(both, "mini", "edsr-s-pcl@seed2") == {"edsr-s-baseline": "edsr-s-baseline@seed2"}
    assert seeded_starts(both, "mini", "edsr-s-pcl@seed2", Path("runs/mini")) == (
        Path("runs/mini/edsr-s-baseline@seed2"), None)
    assert seeded_starts(both, "mini", "edsr-s-pcl", Path("runs/mini")) == (None, None)

    def only_pcl(data: dict) -> None:
        data["experiments"]["edsr-s-pcl"]["tiers"]["mini"]["seeds"] = [1, 2]

    one_baseline = load_catalog(_catalog(tmp_path, only_pcl))
    assert dependency_runs(one_baseline, "mini", "edsr-s-pcl@seed2") == {"edsr-s-baseline": "edsr-s-baseline"}
    assert seeded_starts(one_baseline, "mini", "edsr-s-pcl@seed2", Path("runs/mini")) == (None, None)


def test_a_seed_list_must_be_non_empty_and_unique(tmp_path: Path) -> None:
    for bad in ([], [1, 1], [-1]):
        path = _catalog(tmp_path, lambda d, bad=bad: d["tiers"]["mini"].update(seeds=bad))
        with pytest.raises(PCLError, match="tiers.mini.seeds"):
            load_catalog(path)


def _rows(seed: int | None, psnr: list[float]) -> pd.DataFrame:
    return pd.DataFrame({
        "tier": "mini", "experiment": "edsr-s-pcl", "backbone": "edsr-s", "method": "pcl", "dataset": "Set5",
        "image": [f"im{i}" for i in range(len(psnr))], "scale": 4, "protocol": "matlab", "psnr": psnr,
        "ssim": 0.9, "seed": seed,
    })


def test_summary_is_the_mean_of_the_seed_means_with_their_spread() -> None:
    # seed 1: images 30, 32 -> 31; seed 2: 31, 35 -> 33; mean 32, sample sd |33 - 31| / sqrt(2) = 1.41421
    frame = pd.concat([_rows(1, [30.0, 32.0]), _rows(2, [31.0, 35.0])], ignore_index=True)
    rec = summarise(frame).iloc[0]
    assert rec["psnr"] == pytest.approx(32.0)
    assert rec["psnr_seed_sd"] == pytest.approx(math.sqrt(2.0))
    assert rec["n_seeds"] == 2 and rec["n_images"] == 2
    # A seed that lost an image: the set is marked partial (n = the smaller count).
    rec = summarise(pd.concat([_rows(1, [30.0, 32.0]), _rows(2, [31.0])], ignore_index=True)).iloc[0]
    assert rec["n_images"] == 1
    # One run: no spread, as before.
    rec = summarise(_rows(None, [30.0, 32.0])).iloc[0]
    assert rec["psnr"] == pytest.approx(31.0) and rec["n_seeds"] == 1 and math.isnan(rec["psnr_seed_sd"])


@pytest.mark.slow  # two smoke trainings and their evaluations: about 40 s on 2 CPU cores
def test_two_seeds_train_evaluate_and_average_through_the_workflow(workdir: Path) -> None:
    catalog = workdir / "config" / "experiments.yaml"
    data = yaml.safe_load(catalog.read_text())
    data["tiers"]["smoke"]["seeds"] = [1, 2]
    catalog.write_text(yaml.safe_dump(data, sort_keys=False))
    (workdir / "config" / "seeds.yaml").write_text(yaml.safe_dump({"training": {"tiers": {"smoke": {
        "datasets": ["Set5"], "protocols": ["matlab"], "device": "cpu", "threads": 1, "gpus": 0,
        "runtime": 30, "mem_mb": 4000, "group": 0}}}}))
    targets = ["results/smoke/edsr-s-baseline/matlab/Set5.csv", "results/smoke/edsr-s-baseline@seed2/matlab/Set5.csv"]
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(workdir)}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "config/seeds.yaml",
                           "--config", "tiers=[smoke]", "--", *targets],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    configs = [yaml.safe_load((workdir / "runs" / "smoke" / run / "config.yaml").read_text())
               for run in ("edsr-s-baseline", "edsr-s-baseline@seed2")]
    assert [c["seed"] for c in configs] == [1, 2] and {c["experiment"] for c in configs} == {"edsr-s-baseline"}
    rows = read_results([workdir / t for t in targets])
    assert set(rows["experiment"]) == {"edsr-s-baseline"} and sorted(set(rows["seed"])) == [1, 2]
    per_seed = rows.groupby("seed")["psnr"].mean()
    assert per_seed[1] != per_seed[2]  # different seeds, different networks
    rec = summarise(rows).iloc[0]
    assert rec["psnr"] == pytest.approx(per_seed.mean(), abs=1e-12)
    assert rec["psnr_seed_sd"] == pytest.approx(per_seed.std(ddof=1), abs=1e-12)
    assert rec["n_images"] == 5 and rec["n_seeds"] == 2
