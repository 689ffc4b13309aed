"""The cluster path as users take it: `snakemake --profile workflow/profiles/slurm`, here through its
CI twin on a one-node SLURM cluster on this machine (workflow/ci/slurm-up.sh, fake GPUs).

Marked `slurm` and skipped unless PCL_SLURM_TEST=1 (root, Debian; the cluster fixture installs the
SLURM packages if missing and needs snakemake-executor-plugin-slurm, requirements/cluster.txt):

* smoke experiments trained and evaluated through SLURM give byte-identical result files to a
  local run of the same configuration, every job visibly scheduled by slurmctld, GPU jobs on the
  `gpu` partition with `--gpus=1` and CUDA_VISIBLE_DEVICES set, CPU jobs without;
* a training job with a 1-minute limit that needs about two is cut by SLURM, checkpoints on
  SIGTERM, is resubmitted by the profile's `retries`, resumes, and ends with the weights of an
  uninterrupted run (CPU, --deterministic);
* a tier with `gpus: 2` trains under torchrun (2 processes, gloo on the CPU) and ends where DDP's
  semantics say: each rank its own half of every batch, i.e. the single-process run of the whole
  batch (up to float rounding), not the run of half a batch.

The cluster is taken down after the module, whatever happened. Timings are reported at the end.

Not marked (always run): the CI profile differs from the user profile only where a test node must,
and every rule's conda env is a file of workflow/envs whose pins are requirements/base.txt
(`--use-conda` itself needs conda, which the test machines lack).
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
USER_PROFILE = REPO / "workflow" / "profiles" / "slurm" / "config.yaml"
CI_PROFILE = REPO / "workflow" / "profiles" / "slurm-ci" / "config.yaml"
SLURM_DIR = Path(os.environ.get("PCL_SLURM_DIR", "/run/pcl-slurm"))
ENABLED = os.environ.get("PCL_SLURM_TEST") == "1"
VENV_BIN = Path(sys.executable).parent
#: The user's command line (docs/cluster.md), with the CI profile.
ON_SLURM = ("--cores", "all", "--profile", "workflow/profiles/slurm-ci")

#: Where the CI profile may differ from the user profile (dotted keys), and nowhere else.
CI_ONLY = {
    "use-conda",  # no conda on the test machines: the rules run in the active venv
    "slurm-status-command",  # squeue: sacct knows no job without slurmdbd
    "slurm-init-seconds-before-status-checks",  # the test jobs take seconds, not hours
    "default-resources.slurm_account",  # CHANGE_ME for users; none on the test node (no -A)
}

#: Training seconds the time-limit job needs, at the speed measured on this machine when the test
#: runs. SLURM checks time limits every 30 s, so a 1-minute job is cut 60-90 s after it starts, and
#: each job spends about 15 s starting (Snakemake, torch, data). 88 s: cut even when SLURM cuts late
#: (88 + 15 > 90), done in the second job unless it runs much slower than measured, and well
#: within the three jobs the profile allows (retries: 2).
TIME_LIMIT_TRAINING_SECONDS = 88

needs_cluster = pytest.mark.skipif(
    not ENABLED, reason="SLURM cluster test: set PCL_SLURM_TEST=1 (as root; installs the SLURM packages when "
                        "missing, starts a one-node cluster and stops it afterwards; about 6 minutes)")

TIMES: dict[str, float] = {}


# ---------------------------------------------------------------------------------------- always run


def _flatten(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_ci_profile_differs_from_the_user_profile_only_where_a_test_node_must() -> None:
    user = _flatten(yaml.safe_load(USER_PROFILE.read_text()))
    ci = _flatten(yaml.safe_load(CI_PROFILE.read_text()))
    differing = {k for k in user.keys() | ci.keys() if user.get(k, "<absent>") != ci.get(k, "<absent>")}
    assert differing <= CI_ONLY, sorted(differing - CI_ONLY)
    # what the test exercises is what users get
    for key in ("executor", "retries", "rerun-incomplete", "default-resources.runtime", "default-resources.mem_mb",
                "default-resources.slurm_partition"):
        assert key in user and ci[key] == user[key], key
    assert user["retries"] >= 1 and user["rerun-incomplete"] is True
    assert user["use-conda"] is True and ci["use-conda"] is False
    assert ci["slurm-status-command"] == "squeue"


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            pins[re.split(r"[<>=!~ ]", line, maxsplit=1)[0].lower()] = line.replace(" ", "")
    return pins


def test_every_rule_runs_in_a_workflow_env_pinned_like_requirements(workdir: Path, monkeypatch) -> None:
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import OutputSettings, ResourceSettings

    monkeypatch.chdir(workdir)
    with SnakemakeApi(OutputSettings()) as api:
        rules = list(api.workflow(resource_settings=ResourceSettings(), snakefile=workdir / "Snakefile",
                                  workdir=workdir)._workflow.rules)
    envs = set()
    for rule in rules:
        if not (rule.shellcmd or rule.script or rule.notebook or rule.wrapper):
            continue  # `all`: nothing runs
        assert rule.conda_env, f"rule {rule.name} has no conda env"
        env = Path(str(rule.conda_env)).resolve()
        assert env.parent == (REPO / "workflow" / "envs").resolve() and env.suffix == ".yaml", (rule.name, env)
        envs.add(env)
    assert envs
    base = _pins((REPO / "requirements" / "base.txt").read_text().splitlines())
    for env in envs:
        spec = yaml.safe_load(env.read_text())
        pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d)
        assert _pins(pip) == base, env
        assert "python=3.11" in spec["dependencies"], env


def _dry_run_train_command(workdir: Path, gpus: int, threads: int) -> str:
    (workdir / "config" / "launch.yaml").write_text(yaml.safe_dump({"training": {"tiers": {"smoke": {
        "datasets": ["Set5"], "protocols": ["matlab"], "device": "cpu", "threads": threads, "gpus": gpus,
        "runtime": 30, "mem_mb": 4000, "group": 0}}}}))
    proc = subprocess.run([sys.executable, "-m", "snakemake", "-n", "-p", "--forceall", "--cores", "8", "--configfile",
                           "config/launch.yaml", "--config", "tiers=[smoke]",
                           "training={'experiments': ['edsr-s-baseline']}", "--",
                           "runs/smoke/edsr-s-baseline/model.safetensors"],
                          cwd=workdir, env=_env(workdir), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return next(line for line in (proc.stdout + proc.stderr).splitlines() if " train --experiment " in line)


@pytest.mark.slow  # two dry runs: 10 s on 2 CPU cores
def test_train_rule_launches_torchrun_for_several_gpus(workdir: Path) -> None:
    one = _dry_run_train_command(workdir, gpus=1, threads=8)
    assert "python -m pcl train" in one and "torchrun" not in one and "--threads 8" in one
    several = _dry_run_train_command(workdir, gpus=4, threads=8)
    assert "torchrun --standalone --nproc_per_node=4 -m pcl train" in several
    assert "--threads 2" in several  # the job's CPUs shared among its processes
    assert "--deterministic" in several  # device cpu: bitwise-exact resume


# ------------------------------------------------------------------------------------ the cluster


def _env(workdir: Path) -> dict[str, str]:
    return {"PATH": f"{VENV_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": str(workdir), "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg"}


def _script(name: str, timeout: float, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO / "workflow" / "ci" / name), *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PCL_SLURM_DIR": str(SLURM_DIR)})


@pytest.fixture(scope="module")
def cluster(request):
    if os.geteuid() != 0:
        pytest.fail("PCL_SLURM_TEST=1 needs root: the test cluster's daemons run as root")
    if importlib.util.find_spec("snakemake_executor_plugin_slurm") is None:
        pytest.fail(f"snakemake-executor-plugin-slurm is missing: {VENV_BIN / 'python'} -m pip install -r "
                    "requirements/cluster.txt")
    started = time.monotonic()
    try:
        # PCL_SLURM_TEST=1 is the caller's consent to the changes slurm-up.sh makes (docs/cluster.md §8)
        up = _script("slurm-up.sh", 900, "--i-know-this-changes-the-machine")
        TIMES["cluster up (slurm-up.sh, packages included when missing)"] = time.monotonic() - started
        assert up.returncode == 0, f"slurm-up.sh failed:\n{up.stdout[-3000:]}\n{up.stderr[-5000:]}"
        yield SLURM_DIR
    finally:
        started = time.monotonic()
        down = _script("slurm-down.sh", 300)
        TIMES["cluster down (slurm-down.sh)"] = time.monotonic() - started
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print("", *(f"slurm timing: {name}: {seconds:.1f} s" for name, seconds in TIMES.items()), sep="\n",
                  flush=True)
        assert down.returncode == 0, f"slurm-down.sh failed:\n{down.stdout[-3000:]}\n{down.stderr[-3000:]}"


def _default_sigint() -> None:
    # a background shell starts its children with SIGINT ignored, and Python then keeps it so
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Process:
    """A local command in its own session (stopped by SIGKILL to its process group on timeout)."""

    def __init__(self, command: list[str], workdir: Path, name: str, nice: int = 0) -> None:
        self.log = workdir / f"{name}.out"
        if nice:
            command = ["nice", "-n", str(nice), *command]
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(command, cwd=workdir, env=_env(workdir), stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True,
                                         preexec_fn=_default_sigint)

    def wait(self, timeout: float) -> None:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"{self.log.name}: not finished within {timeout:.0f} s")
        assert self.proc.returncode == 0, f"{self.log.name} failed:\n{self.log.read_text()[-4000:]}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


class Snakemake(Process):
    """A snakemake process in its own session, output to a file; stopped with SIGINT (which makes
    it cancel its SLURM jobs; it ignores SIGTERM), then SIGKILL and `scancel` of its jobs if it
    does not finish in time."""

    def __init__(self, workdir: Path, *args: str, name: str, nice: int = 0) -> None:
        super().__init__([sys.executable, "-m", "snakemake", *args], workdir, name, nice)

    def wait(self, timeout: float) -> str:
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"snakemake did not finish within {timeout:.0f} s:\n{self.text()[-5000:]}")
        assert self.proc.returncode == 0, f"snakemake failed ({self.proc.returncode}):\n{self.text()[-6000:]}"
        return self.text()

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
            run = re.search(r"SLURM run ID: (\S+)", self.text())
            if run:
                subprocess.run(["scancel", "--name", run.group(1)], capture_output=True, timeout=30)

    def text(self) -> str:
        return self.log.read_text(errors="replace")


def _train_command(catalog: Path, run_dir: Path, cache: Path, *extra: str) -> list[str]:
    """`pcl train` as the train rule runs it for a CPU smoke job (one thread, --deterministic)."""
    return [sys.executable, "-m", "pcl", "train", "--experiment", "edsr-s-baseline", "--tier", "smoke",
            "--catalog", str(catalog), "--run-dir", str(run_dir), "--device", "cpu", "--deterministic",
            "--threads", "1", "--data-cache", str(cache), "--no-progress", "--no-tensorboard", *extra]


def _tier(workdir: Path, **settings) -> None:
    """config/ci.yaml: the smoke tier's block (datasets, GPUs, time limit) for this test, one job per
    run and per evaluation (`group: 0`) as on the cluster tiers."""
    block = {"datasets": ["Set5"], "protocols": ["matlab"], "device": "cpu", "threads": 1, "gpus": 0,
             "runtime": 30, "mem_mb": 4000, "group": 0, **settings}
    (workdir / "config" / "ci.yaml").write_text(yaml.safe_dump({"training": {"tiers": {"smoke": block}}}))


def _selection(experiments: list[str]) -> list[str]:
    """Tier smoke only, these experiments (--config) with the tier block of config/ci.yaml."""
    return ["--configfile", "config/ci.yaml", "--config", "tiers=[smoke]",
            f"training={{'experiments': {experiments!r}}}"]


def _submissions(text: str) -> list[dict]:
    """The SLURM jobs of a snakemake output: SLURM job id and rule, in the order of submission."""
    found = re.findall(r"has been submitted with SLURM jobid (\d+) \(log: \S*/rule_(\w+)/", text)
    return [{"jobid": jobid, "rule": rule} for jobid, rule in found]


def _jobcomp(cluster: Path) -> dict[str, dict[str, str]]:
    """The job completion log: {job id: {field: value}} (the last record of each id)."""
    jobs = {}
    for line in (cluster / "jobcomp.log").read_text().splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "JobId" in fields:
            jobs[fields["JobId"]] = fields
    return jobs


def _show_job(jobid: str) -> str:
    """`scontrol show job` (finished jobs stay in slurmctld for MinJobAge = 300 s)."""
    proc = subprocess.run(["scontrol", "show", "job", jobid], capture_output=True, text=True, timeout=30)
    return proc.stdout


def _scheduled(cluster: Path, jobid: str) -> bool:
    """slurmctld started the job: its main scheduler or the backfill scheduler says so."""
    log = (cluster / "slurmctld.log").read_text(errors="replace")
    return re.search(rf"(sched: Allocate JobId={jobid} NodeList=localhost|_start_job: Started JobId={jobid} in )",
                     log) is not None


def _tensors(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path))


def _max_difference(a: dict, b: dict) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


# -------------------------------------------------------------------------- smoke run through SLURM

SMOKE_EXPERIMENTS = ["edsr-s-baseline", "edsr-s-pcl"]


@pytest.fixture(scope="module")
def smoke_run(cluster: Path, tmp_path_factory, make_workdir) -> dict:
    """Two smoke experiments trained and evaluated on Set5 with one (fake) GPU per training and
    evaluation job, through SLURM and, at the same time, locally (niced)."""
    started = time.monotonic()
    runs = {}
    targets = [f"results/smoke/{e}/matlab/Set5.csv" for e in SMOKE_EXPERIMENTS]
    for where in ("slurm", "local"):
        runs[where] = make_workdir(tmp_path_factory.mktemp(f"smoke-{where}"))
        _tier(runs[where], gpus=1)
    slurm_run = Snakemake(runs["slurm"], *ON_SLURM,
                          *_selection(SMOKE_EXPERIMENTS), "--", *targets, name="snakemake")
    local_run = Snakemake(runs["local"], "--cores", "1", *_selection(SMOKE_EXPERIMENTS), "--", *targets,
                          name="snakemake", nice=15)
    try:
        text = slurm_run.wait(timeout=420)
        local_run.wait(timeout=300)
    finally:
        slurm_run.stop()
        local_run.stop()
    jobs = _submissions(text)
    shown = {job["jobid"]: _show_job(job["jobid"]) for job in jobs}
    TIMES["smoke workflow through SLURM + local reference"] = time.monotonic() - started
    return {"dirs": runs, "targets": targets, "text": text, "jobs": jobs, "shown": shown}


@pytest.mark.slurm
@needs_cluster
def test_smoke_workflow_through_slurm_equals_a_local_run(smoke_run: dict, cluster: Path) -> None:
    jobs = smoke_run["jobs"]
    rules = sorted(job["rule"] for job in jobs)
    n = len(SMOKE_EXPERIMENTS)
    assert rules == sorted(["prepare_benchmark"] + ["train"] * n + ["evaluate_trained"] * n), rules
    completed = _jobcomp(cluster)
    for job in jobs:
        assert _scheduled(cluster, job["jobid"]), f"slurmctld never allocated job {job['jobid']}"
        record = completed[job["jobid"]]
        assert record["JobState"] == "COMPLETED" and record["Partition"] == "gpu", record
    for target in smoke_run["targets"]:
        slurm_csv = (smoke_run["dirs"]["slurm"] / target).read_bytes()
        assert slurm_csv == (smoke_run["dirs"]["local"] / target).read_bytes(), target
        assert slurm_csv.count(b"\n") == 6  # header + the 5 Set5 images


@pytest.mark.slurm
@needs_cluster
def test_gpu_request_reaches_slurm(smoke_run: dict) -> None:
    for job in smoke_run["jobs"]:
        shown = smoke_run["shown"][job["jobid"]]
        assert "Partition=gpu" in shown, shown
        if job["rule"] in ("train", "evaluate_trained"):  # gpus: 1 in the tier
            assert "TresPerJob=gres:gpu:1" in shown, shown
        else:
            assert "gres:gpu" not in shown, shown
    for experiment in SMOKE_EXPERIMENTS:
        log = (smoke_run["dirs"]["slurm"] / "logs" / "train" / "smoke" / f"{experiment}.log").read_text()
        seen = re.search(r"CUDA_VISIBLE_DEVICES=(\S*) SLURM_JOB_ID=(\d+)", log)
        assert seen and seen.group(1) in ("0", "1") and seen.group(2), log[:500]
        local = (smoke_run["dirs"]["local"] / "logs" / "train" / "smoke" / f"{experiment}.log").read_text()
        assert re.search(r"CUDA_VISIBLE_DEVICES= SLURM_JOB_ID=$", local.splitlines()[0]), local[:500]


# ------------------------------------------------------------------------------- the time limit


@pytest.mark.slurm
@needs_cluster
def test_a_job_cut_by_its_time_limit_resumes_to_the_uninterrupted_weights(cluster: Path, tmp_path: Path,
                                                                          make_workdir) -> None:
    started = time.monotonic()
    workdir = make_workdir(tmp_path / "run")
    catalog_path = workdir / "config" / "experiments.yaml"

    # iterations: TIME_LIMIT_TRAINING_SECONDS at this machine's speed now, measured as the job will
    # run: beside a niced process like the uninterrupted reference (the fastest of its windows: a
    # job that runs faster than measured must still be cut)
    calibration = tmp_path / "calibration"
    calibration.mkdir()
    probes = [Process(_train_command(catalog_path, calibration / name, calibration / f"cache-{name}", "--iterations",
                                     "500", "--log-every", "100", "--checkpoint-every", "0"), calibration, name,
                      nice=nice) for name, nice in (("probe", 0), ("beside", 19))]
    try:
        for probe in probes:
            probe.wait(timeout=180)
    finally:
        for probe in probes:
            probe.stop()
    with open(calibration / "probe" / "log.csv", newline="") as fh:
        speed = max(float(row["it_per_s"]) for row in csv.DictReader(fh) if row["it_per_s"])
    iterations = max(1000, int(round(speed * TIME_LIMIT_TRAINING_SECONDS, -2)))

    catalog = yaml.safe_load(catalog_path.read_text())
    catalog["tiers"]["smoke"]["budget"].update(iterations=iterations, checkpoint_every=0,
                                               log_every=max(100, iterations // 10))
    catalog_path.write_text(yaml.safe_dump(catalog, sort_keys=False))
    _tier(workdir, runtime=1)

    reference = Process(_train_command(catalog_path, tmp_path / "whole", tmp_path / "cache"), tmp_path,
                        "uninterrupted", nice=19)
    run = Snakemake(workdir, *ON_SLURM, *_selection(["edsr-s-baseline"]), "--",
                    "runs/smoke/edsr-s-baseline/model.safetensors", name="snakemake")
    try:
        text = run.wait(timeout=540)
        reference.wait(timeout=300)
    finally:
        run.stop()
        reference.stop()

    jobs = [job for job in _submissions(text) if job["rule"] == "train"]
    completed = _jobcomp(cluster)
    states = [completed[job["jobid"]]["JobState"] for job in jobs]
    note = f"{iterations} iterations at {speed:.0f} it/s; SLURM states {states}"
    assert len(jobs) >= 2 and states[:-1] == ["TIMEOUT"] * (len(jobs) - 1) and states[-1] == "COMPLETED", note
    assert all(completed[job["jobid"]]["TimeLimit"] == "1" for job in jobs), note
    controller = (cluster / "slurmctld.log").read_text(errors="replace")
    assert f"Time limit exhausted for JobId={jobs[0]['jobid']}" in controller, note
    assert "Trying to restart job" in text

    # the first job's output (SLURM keeps the log of a failed job): SIGTERM, then a checkpoint
    first = workdir / ".snakemake" / "slurm_logs" / "rule_train" / "smoke_edsr-s-baseline" / f"{jobs[0]['jobid']}.log"
    first_log = first.read_text(errors="replace")
    assert "CANCELLED" in first_log and "DUE TO TIME LIMIT" in first_log, first_log[-3000:]
    # the last one resumed from the checkpoint written on SIGTERM: with checkpoint_every 0 a resume
    # from an iteration strictly between 0 and the total can only come from the signal handler
    run_dir = workdir / "runs" / "smoke" / "edsr-s-baseline"
    log = (workdir / "logs" / "train" / "smoke" / "edsr-s-baseline.log").read_text()
    assert "init: resumed from runs/smoke/edsr-s-baseline/checkpoints/last.pt" in log, log[-3000:]
    resumed = re.search(rf"iterations (\d+)->{iterations}\b", log)
    assert resumed and 0 < int(resumed.group(1)) < iterations, log[-3000:]
    # The trainer's own line about it reaches the job's log when srun still forwards output; srun
    # stops forwarding once it is killing the step, and in one CI run the line was lost that way
    # although the checkpoint was written. Where it arrived, it names the same iteration only if
    # one job was cut.
    stopped = re.findall(r"stopped by signal 15 after iteration (\d+); checkpoint \S+ written", first_log)
    if stopped and len(jobs) == 2:
        assert int(stopped[-1]) == int(resumed.group(1)), (stopped, resumed.group(0))
    result = json.loads((run_dir / "result.json").read_text())
    assert result["iterations"] == iterations and result["sessions"] == len(jobs), note

    whole = tmp_path / "whole" / "model.safetensors"
    assert _max_difference(_tensors(run_dir / "model.safetensors"), _tensors(whole)) == 0.0, note
    TIMES[f"time limit: 1-minute job, {iterations} iterations, {len(jobs)} SLURM jobs"] = time.monotonic() - started


# ---------------------------------------------------------------------------------- torchrun (DDP)


@pytest.mark.slurm
@needs_cluster
def test_two_gpus_train_under_torchrun_with_ddp_semantics(cluster: Path, tmp_path: Path, make_workdir) -> None:
    started = time.monotonic()
    workdir = make_workdir(tmp_path / "run")
    _tier(workdir, gpus=2, threads=2)
    catalog = workdir / "config" / "experiments.yaml"
    run = Snakemake(workdir, *ON_SLURM, *_selection(["edsr-s-baseline"]), "--",
                    "runs/smoke/edsr-s-baseline/model.safetensors", name="snakemake")
    # references, one process each: the whole batch of 4 (what DDP must equal) and half of it
    references = []
    try:
        for name, extra in (("batch4", ()), ("batch2", ("--batch", "2"))):
            references.append(Process(_train_command(catalog, tmp_path / name, tmp_path / f"cache-{name}", *extra),
                                      tmp_path, name, nice=15))
            references[-1].wait(timeout=300)
        text = run.wait(timeout=300)
    finally:
        run.stop()
        for reference in references:
            reference.stop()

    assert "torchrun --standalone --nproc_per_node=2 -m pcl train" in text
    jobs = _submissions(text)
    assert [job["rule"] for job in jobs] == ["train"], jobs
    shown = _show_job(jobs[0]["jobid"])
    assert "Partition=gpu" in shown and "TresPerJob=gres:gpu:2" in shown, shown
    assert _jobcomp(cluster)[jobs[0]["jobid"]]["JobState"] == "COMPLETED"
    run_dir = workdir / "runs" / "smoke" / "edsr-s-baseline"
    log = (workdir / "logs" / "train" / "smoke" / "edsr-s-baseline.log").read_text()
    assert "CUDA_VISIBLE_DEVICES=0,1 " in log, log[:500]
    runtime = yaml.safe_load((run_dir / "config.yaml").read_text())["runtime"]
    assert runtime["world_size"] == 2 and runtime["per_rank_batch"] == 2 and runtime["device"] == "cpu", runtime

    ddp = _tensors(run_dir / "model.safetensors")
    to_whole = _max_difference(ddp, _tensors(tmp_path / "batch4" / "model.safetensors"))
    to_half = _max_difference(ddp, _tensors(tmp_path / "batch2" / "model.safetensors"))
    assert to_whole < 1e-5 and to_half > 100 * max(to_whole, 1e-7), (to_whole, to_half)
    TIMES["torchrun: 2 processes on 2 fake GPUs + references"] = time.monotonic() - started
