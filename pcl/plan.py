"""``pcl plan``: before anything runs, what a training tier will cost and what each job asks SLURM for.

For every job of a tier (one per catalog experiment and training seed) the plan gives the
iterations, the FLOPs per iteration (``pcl.plan_flops``: counted on the paper configurations),
the seconds per iteration, the GPU-hours, and the SLURM ``runtime`` and ``mem_mb`` of its training
job.  The Snakemake workflow resolves ``runtime: auto`` / ``mem_mb: auto`` of a tier through
:func:`job_resources`, so the plan and the jobs' requests are the same numbers.

Seconds per iteration, in order of preference:
1. measured: ``results/bench/gpu_<device>.csv`` written by ``pcl gpu-check`` at paper size on
   that device (``--device h100``): the achieved FLOP/s of the same backbone and method class
   (L1; +PCL paper semantics; +PCL released semantics) in the precision and memory format the
   tier trains with, applied to the experiment's own FLOPs (so variants such as the VGG or FFT
   embeddings are priced by their work);
2. assumed: FLOPs / (the device's dense bf16 peak x an assumed utilisation, 10 % by default,
   i.e. about 100 TFLOP/s on an H100 SXM), stated in the output.

Runtime of a job = min(estimate x safety + start-up minutes, the tier's cap).  A job longer than
the cap is cut by SLURM, checkpoints on SIGTERM, and is resubmitted by Snakemake (``retries``),
resuming where it stopped: the plan says how many allocations each job needs.  GPU-hours assume
ideal data-parallel scaling when a tier asks for several GPUs per job (wall = GPU-hours / gpus).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

from pcl.errors import PCLError
from pcl.plan_flops import FlopCache, experiment_flops

#: Defaults of ``training.plan`` in config/config.yaml (each key may be overridden there).
PLAN_DEFAULTS: dict[str, Any] = {
    "device": "h100", "utilisation": 0.10, "safety": 1.25, "startup_minutes": 15, "runtime_cap": 2880,
    "host_mb": 8000, "worker_mb": 1000, "retries": 2,
}
#: Catalog method -> the step-part method whose measured speed prices it.
METHOD_CLASS = {"baseline": "l1", "control": "l1", "pcl": "pcl-paper", "pcl-fixed": "pcl-paper",
                "pcl-released": "pcl-released"}


@dataclass
class Job:
    """One training job of the plan."""

    run: str
    experiment: str
    backbone: str
    method: str
    iterations: int
    tflop_per_it: float
    backbone_tflop: float
    pcl_tflop: float
    s_per_it: float
    source: str
    gpu_hours: float
    runtime: int
    mem_mb: int
    allocations: int


@dataclass
class Plan:
    """Every job of one tier and the totals."""

    tier: str
    gpus: int
    device: str
    basis: str
    settings: dict[str, Any]
    jobs: list[Job] = field(default_factory=list)

    @property
    def total_gpu_hours(self) -> float:
        return sum(j.gpu_hours for j in self.jobs)

    @property
    def total_eflop(self) -> float:
        return sum(j.tflop_per_it * j.iterations for j in self.jobs) / 1e6

    def to_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "gpus_per_job": self.gpus, "device": self.device, "basis": self.basis,
                "settings": self.settings, "total_gpu_hours": self.total_gpu_hours, "total_eflop": self.total_eflop,
                "jobs": [asdict(j) for j in self.jobs]}


def _peak(device: str) -> tuple[str, float]:
    from pcl.gpu_check.device_info import peak_for

    name, flops = peak_for(device)
    if flops is None:
        raise PCLError(f"plan: no dense bf16 peak is known for device {device!r}; use h100, h200 or a100 in "
                       "--device (or training.plan.device), or measure it with `pcl gpu-check`")
    return name, flops


def measured_speeds(bench_dir: Path, device: str) -> dict[tuple[str, str, str, bool], tuple[float, float]]:
    """(backbone, method class, precision, channels_last) -> (s/it, FLOPs/it) from a paper-size
    ``gpu_<device>.csv``; empty when there is none (or it holds a ``--tiny`` run)."""
    from pcl.gpu_check.report import read_rows

    path = Path(bench_dir) / f"gpu_{device}.csv"
    rows = read_rows(path)
    if not any(r["part"] == "device" and r["quantity"] == "mode" and r["value"] == "paper" for r in rows):
        return {}
    speeds: dict[tuple[str, str, str], dict[str, float]] = {}
    for r in rows:
        if r["part"] == "steps" and r["quantity"] in ("it_per_s", "tflop_per_it") and r["case"].count("/") == 3:
            try:
                speeds.setdefault(tuple(r["case"].split("/")), {})[r["quantity"]] = float(r["value"])
            except ValueError:
                continue
    out = {}
    for (backbone, method, precision, layout), v in speeds.items():
        if v.get("it_per_s", 0) > 0 and v.get("tflop_per_it", 0) > 0:
            out[(backbone, method, precision, layout == "channels_last")] = (1 / v["it_per_s"], v["tflop_per_it"] * 1e12)
    return out


def merged_config(configfile: Path | None, base: Path = Path("config/config.yaml")) -> dict[str, Any]:
    """The workflow's configuration: ``base`` updated recursively by ``configfile`` (as Snakemake's
    ``--configfile`` does)."""
    from pcl.yamlio import read_yaml

    def update(a: dict, b: Mapping) -> dict:
        for k, v in b.items():
            a[k] = update(dict(a[k]), v) if isinstance(v, Mapping) and isinstance(a.get(k), dict) else v
        return a

    config = read_yaml(base, what="workflow configuration", missing_hint="run from the harness' root folder or pass --config")
    if not isinstance(config, dict) or "training" not in config:
        raise PCLError(f"{base}: no `training` block; it is not the workflow configuration (config/config.yaml)")
    if configfile is not None:
        extra = read_yaml(configfile, what="--configfile", missing_hint="give an existing file such as config/finetune.yaml")
        if extra is not None and not isinstance(extra, dict):
            raise PCLError(f"{configfile}: expected a mapping of configuration keys; fix the file")
        config = update(config, extra or {})
    return config


def training_tiers(config: Mapping[str, Any]) -> list[str]:
    from pcl.names import UNTRAINED_TIERS

    return [t for t in config.get("tiers", []) if t not in UNTRAINED_TIERS]


def plan_settings(config: Mapping[str, Any], tier: str, **overrides: Any) -> dict[str, Any]:
    """``PLAN_DEFAULTS`` < ``training.plan`` < ``training.tiers.<tier>.plan`` < command-line overrides."""
    training = config["training"]
    merged = {**PLAN_DEFAULTS, **(training.get("plan") or {}), **(training["tiers"][tier].get("plan") or {})}
    merged.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("utilisation", "safety"):
        if not float(merged[key]) > 0:
            raise PCLError(f"training.plan.{key} must be > 0, got {merged[key]!r}; fix it in config/config.yaml")
    return merged


def _runs(config: Mapping[str, Any], tier: str, catalog) -> list[tuple[str, Any]]:
    from pcl.train.seeds import run_names, run_of

    training = config["training"]
    chosen = training["tiers"][tier].get("experiments", training.get("experiments", "all"))
    names = catalog.tier_experiments(tier) if chosen == "all" else list(chosen)
    names = catalog.order(tier, names)
    return [(run, run_of(catalog, tier, run)[0]) for n in names for run in run_names(catalog, tier, n)]


def _precision(budget: Mapping[str, Any]) -> tuple[str, bool]:
    """What a tier trains in on a GPU: ``auto`` precision = bf16, ``auto`` channels_last = on."""
    precision = "bf16" if budget.get("precision", "auto") == "auto" else str(budget["precision"])
    layout = budget.get("channels_last", "auto")
    return precision, True if layout == "auto" else bool(layout)


def plan_tier(config: Mapping[str, Any], tier: str, *, bench_dir: Path = Path("results/bench"),
              cache: FlopCache | None = None, catalog=None, **overrides: Any) -> Plan:
    """The plan of training tier ``tier`` of a merged workflow configuration."""
    from pcl.train.catalog import load_catalog

    if tier not in config["training"]["tiers"]:
        raise PCLError(f"plan: tier {tier!r} has no training.tiers.{tier} block in the configuration; add one or "
                       f"choose one of {', '.join(config['training']['tiers'])}")
    settings = plan_settings(config, tier, **overrides)
    catalog = catalog or load_catalog(Path(config["training"]["catalog"]))
    cache = cache if cache is not None else FlopCache(Path(bench_dir) / "plan_flops.json")
    device = str(settings["device"]).lower()
    peak_name, peak = _peak(device)
    speeds = measured_speeds(Path(bench_dir), device)
    gpus = max(1, int(config["training"]["tiers"][tier].get("gpus", 1) or 1))
    assumed = f"assumed {float(settings['utilisation']):.0%} of {peak_name} {peak / 1e12:.0f} TFLOP/s"
    plan = Plan(tier=tier, gpus=gpus, device=device, settings=settings,
                basis=(f"measured on {device} (results/bench/gpu_{device}.csv), else {assumed}" if speeds else assumed))
    host = _host_mb(settings, speeds, Path(bench_dir) / f"gpu_{device}.csv")
    for run, experiment in _runs(config, tier, catalog):
        resolved = experiment.resolve(tier)
        b_flops, p_flops = experiment_flops(resolved, cache) if int(resolved["budget"]["iterations"]) > 0 else (0, 0)
        plan.jobs.append(_job(run, resolved, b_flops, p_flops, speeds, peak, settings, gpus, host))
    cache.save()
    return plan


def _host_mb(settings: Mapping[str, Any], speeds: dict, csv_path: Path) -> tuple[float, str]:
    """Host memory of the training process: the largest measured ru_maxrss of the gpu-check's
    paper-size steps when there is one, else ``host_mb``."""
    if speeds:
        from pcl.gpu_check.report import read_rows

        values = [float(r["value"]) for r in read_rows(csv_path) if r["quantity"] == "host_peak_rss_mb" and r["value"]]
        if values:
            return max(values), "measured host peak RSS"
    return float(settings["host_mb"]), "assumed host_mb"


def _job(run: str, resolved: Mapping[str, Any], b_flops: int, p_flops: int, speeds: dict, peak: float,
         settings: Mapping[str, Any], gpus: int, host: tuple[float, str]) -> Job:
    iterations = int(resolved["budget"]["iterations"])
    flops = b_flops + p_flops
    precision, layout = _precision(resolved["budget"])
    measured = speeds.get((resolved["backbone"], METHOD_CLASS[resolved["method"]], precision, layout))
    if measured is not None and flops:
        seconds, source = flops / (measured[1] / measured[0]), "measured"
    else:
        seconds, source = flops / (peak * float(settings["utilisation"])), "assumed"
    gpu_hours = iterations * seconds / 3600
    estimate_min = gpu_hours / gpus * 60 * float(settings["safety"]) + float(settings["startup_minutes"])
    cap = int(settings["runtime_cap"])
    workers = int(resolved["budget"].get("workers", 0) or 0)
    mem = (host[0] + workers * float(settings["worker_mb"])) * float(settings["safety"]) * gpus
    return Job(run=run, experiment=resolved["experiment"], backbone=resolved["backbone"], method=resolved["method"],
               iterations=iterations, tflop_per_it=flops / 1e12, backbone_tflop=b_flops / 1e12, pcl_tflop=p_flops / 1e12,
               s_per_it=seconds, source=source if iterations else "-", gpu_hours=gpu_hours,
               runtime=min(cap, math.ceil(estimate_min)), mem_mb=int(math.ceil(mem / 1000) * 1000),
               allocations=max(1, math.ceil(estimate_min / cap)))


#: Jobs of each planned (configuration, tier, bench folder), so that Snakemake, which asks for two
#: resources of every training job while it builds the DAG, plans each tier once per process.
_PLANNED: dict[tuple[str, str, str], dict[str, Job]] = {}


def job_resources(config: Mapping[str, Any], tier: str, run: str, key: str, *,
                  bench_dir: Path = Path("results/bench")) -> int:
    """The SLURM ``runtime`` (minutes) or ``mem_mb`` of training job ``run`` of ``tier`` (for
    ``auto`` in training.tiers.<tier>)."""
    import json

    memo_key = (json.dumps(config["training"], sort_keys=True, default=str), tier, str(bench_dir))
    if memo_key not in _PLANNED:
        _PLANNED[memo_key] = {j.run: j for j in plan_tier(config, tier, bench_dir=bench_dir).jobs}
    jobs = _PLANNED[memo_key]
    if run not in jobs:
        raise PCLError(f"plan: run {run!r} is not a job of tier {tier!r}; jobs: {', '.join(jobs)}")
    return int(getattr(jobs[run], key))


def render_markdown(plan: Plan) -> str:
    """The plan as a markdown section: basis, one row per job, totals, and the jobs that need more
    allocations than Snakemake's retries give."""
    s = plan.settings
    lines = [f"## Plan of tier `{plan.tier}`", "",
             f"- seconds per iteration: {plan.basis}",
             f"- FLOPs: counted with torch.utils.flop_counter (backbone forward+backward on meta tensors, PCL extras "
             f"under FakeTensorMode) at each experiment's batch and patch",
             f"- runtime = min(estimate x {s['safety']} + {s['startup_minutes']} min start-up, cap {s['runtime_cap']} min); "
             f"a longer job resumes over several allocations (Snakemake retries: {s['retries']})",
             f"- mem_mb = (host process + workers x {s['worker_mb']} MB) x {s['safety']} x GPUs per job; "
             f"host process {s['host_mb']} MB unless a paper-size gpu-check measured it",
             f"- GPUs per job: {plan.gpus} (GPU-hours assume ideal scaling over them)", "",
             "| job | iterations | TFLOP/it (backbone + PCL) | s/it | source | GPU-h | runtime (min) | mem_mb | allocations |",
             "|---|---|---|---|---|---|---|---|---|"]
    for j in plan.jobs:
        lines.append(f"| {j.run} | {j.iterations} | {j.tflop_per_it:.2f} ({j.backbone_tflop:.2f} + {j.pcl_tflop:.2f}) | "
                     f"{j.s_per_it:.4f} | {j.source} | {j.gpu_hours:.1f} | {j.runtime} | {j.mem_mb} | {j.allocations} |")
    lines += ["", f"Total: {len(plan.jobs)} jobs, {plan.total_eflop:.1f} EFLOP, **{plan.total_gpu_hours:.0f} GPU-hours**."]
    over = [j.run for j in plan.jobs if j.allocations > int(s["retries"]) + 1]
    if over:
        lines.append(f"Warning: {', '.join(over)} need more than {int(s['retries']) + 1} allocations; raise `retries` in "
                     "the SLURM profile or runtime_cap, or rerun snakemake until they complete (they resume).")
    return "\n".join(lines) + "\n"
