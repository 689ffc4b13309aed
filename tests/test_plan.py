"""``pcl plan``: FLOPs, GPU-hours and SLURM resources of the training tiers, and the workflow's
``runtime: auto`` / ``mem_mb: auto`` resolved to the same numbers.

Expected values: the README's FLOP counts per iteration (batch 16, LR 48, forward + backward:
EDSR-S 0.44, EDSR-L 11.11, RCAN 3.52, HAN 3.63, NLSN 11.96 TFLOP), the H100 SXM dense bf16 peak
(989 TFLOP/s, data sheet), and the formulas of pcl/plan.py's docstring re-derived by hand here
with the defaults of config/config.yaml's training.plan (utilisation 0.10, safety 1.25, 15
start-up minutes, cap 2880, host 8000 MB, 1000 MB per worker).
"""

from __future__ import annotations

import copy
import hashlib
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pcl.gpu_check.report import RowSink
from pcl.plan import job_resources, merged_config, plan_tier, render_markdown
from pcl.plan_flops import FlopCache, count_backbone_flops

REPO = Path(__file__).resolve().parents[1]
README_TFLOP = {"edsr-s": 0.44, "edsr-l": 11.11, "rcan": 3.52, "han": 3.63, "nlsn": 11.96}
PEAK = 989e12


@pytest.fixture(scope="module")
def flop_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("flops") / "plan_flops.json"


def _one_job_config(experiment: str = "edsr-s-pcl") -> dict:
    config = merged_config(REPO / "config" / "finetune.yaml", base=REPO / "config" / "config.yaml")
    config["training"]["catalog"] = str(REPO / "config" / "experiments.yaml")
    config["training"]["tiers"]["finetune"]["experiments"] = [experiment]
    return config


@pytest.mark.slow  # RCAN and HAN take a few seconds each to build at paper size
@pytest.mark.parametrize("backbone", sorted(README_TFLOP))
def test_counted_flops_per_iteration_match_the_readme(backbone):
    flops = count_backbone_flops(backbone, {}, batch=16, lr_patch=48)
    assert flops / 1e12 == pytest.approx(README_TFLOP[backbone], rel=0.02)


def test_plan_of_one_experiment_rederived_by_hand(tmp_path, flop_cache):
    plan = plan_tier(_one_job_config(), "finetune", bench_dir=tmp_path, cache=FlopCache(flop_cache))
    (job,) = plan.jobs
    assert (job.run, job.iterations, job.source) == ("edsr-s-pcl", 599000, "assumed")
    assert job.backbone_tflop == pytest.approx(0.44, rel=0.02) and job.pcl_tflop > 0
    flops = job.tflop_per_it * 1e12
    seconds = flops / (PEAK * 0.10)
    assert job.s_per_it == pytest.approx(seconds, rel=1e-12)
    gpu_hours = 599000 * seconds / 3600
    assert job.gpu_hours == pytest.approx(gpu_hours, rel=1e-12)
    assert job.runtime == min(2880, math.ceil(gpu_hours * 60 * 1.25 + 15))
    assert job.mem_mb == math.ceil((8000 + 8 * 1000) * 1.25 / 1000) * 1000  # 8 data-loader workers
    text = render_markdown(plan)
    assert "assumed 10% of H100 SXM dense bf16 989 TFLOP/s" in text and "| edsr-s-pcl | 599000 |" in text


def test_a_zero_iteration_job_asks_for_its_start_up_time_only(tmp_path, flop_cache):
    (job,) = plan_tier(_one_job_config("edsr-s-baseline"), "finetune", bench_dir=tmp_path, cache=FlopCache(flop_cache)).jobs
    assert (job.iterations, job.gpu_hours, job.runtime) == (0, 0.0, 15)


def _bench(folder: Path, mode: str, it_per_s: float, tflop: float) -> None:
    sink = RowSink(folder / "gpu_h100.csv")
    sink.add("device", "", "mode", mode)
    sink.add("steps", "edsr-s/pcl-paper/bf16/channels_last", "it_per_s", it_per_s, "it/s")
    sink.add("steps", "edsr-s/pcl-paper/bf16/channels_last", "tflop_per_it", tflop, "TFLOP")
    sink.add("steps", "edsr-s/pcl-paper", "host_peak_rss_mb", 3000.0, "MiB")


def test_measured_throughput_prices_the_job(tmp_path, flop_cache):
    # measured: 20 it/s of 0.8 TFLOP = 16 TFLOP/s achieved, applied to the experiment's own FLOPs
    _bench(tmp_path, "paper", 20.0, 0.8)
    (job,) = plan_tier(_one_job_config(), "finetune", bench_dir=tmp_path, cache=FlopCache(flop_cache)).jobs
    assert job.source == "measured"
    assert job.s_per_it == pytest.approx(job.tflop_per_it * 1e12 / 16e12, rel=1e-9)
    assert job.mem_mb == math.ceil((3000 + 8 * 1000) * 1.25 / 1000) * 1000  # measured host RSS


def test_a_tiny_gpu_check_is_not_used_as_a_measurement(tmp_path, flop_cache):
    _bench(tmp_path, "tiny", 20.0, 0.8)
    (job,) = plan_tier(_one_job_config(), "finetune", bench_dir=tmp_path, cache=FlopCache(flop_cache)).jobs
    assert job.source == "assumed"


def test_job_resources_are_the_plans_numbers(tmp_path, flop_cache):
    config = _one_job_config()
    (job,) = plan_tier(config, "finetune", bench_dir=tmp_path, cache=FlopCache(flop_cache)).jobs
    shutil.copy(flop_cache, tmp_path / "plan_flops.json")
    # job_resources keeps its FLOP cache in bench_dir, as the workflow does in results/bench
    assert job_resources(config, "finetune", "edsr-s-pcl", "runtime", bench_dir=tmp_path) == job.runtime
    assert job_resources(config, "finetune", "edsr-s-pcl", "mem_mb", bench_dir=tmp_path) == job.mem_mb


def test_plan_cli_writes_markdown_and_json(tmp_path, flop_cache):
    configfile = tmp_path / "one.yaml"
    configfile.write_text(yaml.safe_dump({"tiers": ["finetune"], "training": {"tiers": {"finetune": {"experiments": ["edsr-s-pcl"]}}}}))
    out = tmp_path / "plan.json"
    proc = subprocess.run([sys.executable, "-m", "pcl", "plan", "--configfile", str(configfile), "--json", "--out", str(out),
                           "--flop-cache", str(flop_cache), "--bench-dir", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    import json

    (plan,) = json.loads(out.read_text())
    assert plan["tier"] == "finetune" and [j["run"] for j in plan["jobs"]] == ["edsr-s-pcl"]
    assert plan["total_gpu_hours"] == pytest.approx(plan["jobs"][0]["gpu_hours"])


def _digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        h.update(str(p.relative_to(folder)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.mark.faults
@pytest.mark.parametrize("args, named", [
    (["--configfile", "no/such.yaml"], "no/such.yaml"),
    (["--configfile", "config/finetune.yaml", "--device", "tpu9"], "tpu9"),
    (["--configfile", "config/finetune.yaml", "--utilisation", "0"], "utilisation"),
])
def test_bad_plan_input_is_one_line_and_writes_nothing(tmp_path, args, named):
    before = _digest(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "pcl", "plan", *args, "--out", str(tmp_path / "plan.md"),
                           "--flop-cache", str(tmp_path / "cache.json"), "--bench-dir", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert named in proc.stderr
    assert _digest(tmp_path) == before


def _train_resources(workdir: Path) -> dict[str, dict[str, int]]:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(workdir)}
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", "config/finetune.yaml"], cwd=workdir,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    found = {}
    for block in (proc.stdout + proc.stderr).split("rule train:")[1:]:
        run = re.search(r"experiment=([^\s,]+)", block).group(1)
        res = re.search(r"resources: ([^\n]+)", block).group(1)
        values = dict(item.split("=", 1) for item in res.split(", "))
        found[run] = {"runtime": int(values["runtime"]), "mem_mb": int(values["mem_mb"])}
    return found


@pytest.mark.slow  # counts the FLOPs of every paper configuration once (about a minute), then a dry run
def test_dry_run_lists_the_jobs_with_the_plans_resources(workdir, flop_cache):
    config = merged_config(workdir / "config" / "finetune.yaml", base=workdir / "config" / "config.yaml")
    config["training"]["catalog"] = str(workdir / "config" / "experiments.yaml")
    plan = plan_tier(config, "finetune", bench_dir=workdir / "results" / "bench", cache=FlopCache(flop_cache))
    (workdir / "results" / "bench").mkdir(parents=True)
    shutil.copy(flop_cache, workdir / "results" / "bench" / "plan_flops.json")  # the workflow's cache
    found = _train_resources(workdir)
    assert sorted(found) == sorted(j.run for j in plan.jobs) and len(found) == 30
    assert found == {j.run: {"runtime": j.runtime, "mem_mb": j.mem_mb} for j in plan.jobs}


@pytest.mark.slow
def test_explicit_numbers_in_the_config_still_set_the_resources(workdir):
    path = workdir / "config" / "config.yaml"
    data = yaml.safe_load(path.read_text())
    tier = copy.deepcopy(data["training"]["tiers"]["finetune"])
    tier.update(runtime=123, mem_mb=4567)
    data["training"]["tiers"]["finetune"] = tier
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    found = _train_resources(workdir)
    assert found and set(map(tuple, (sorted(v.items()) for v in found.values()))) == {(("mem_mb", 4567), ("runtime", 123))}
