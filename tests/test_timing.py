"""``pcl timing`` and the workflow's benchmark files: the page's sums come from hand-made Snakemake
benchmark TSVs (expected values added up by hand in each test), and a dry run shows that every job
writes a benchmark file and that ``reports/timing.md`` is part of the default target."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from pcl.report.timing import by_rule, read_jobs, render, run_start, slowest

REPO = Path(__file__).resolve().parents[1]
HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
HOST = {"cpu": "Test CPU", "cores": "2", "load": "0.50, 0.40, 0.30"}


def _bench(root: Path, rel: str, wall: str, rss: str = "NA", cpu: str = "NA", mtime: float | None = None) -> Path:
    """One benchmark file as Snakemake 9 writes it (header + one row)."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{wall}\t0:00:00\t{rss}\tNA\tNA\tNA\tNA\tNA\tNA\t{cpu}\n")
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture()
def bench_dir(tmp_path: Path) -> Path:
    root = tmp_path / "benchmarks"
    _bench(root, "train/smoke/edsr-s-pcl.tsv", "100.50", rss="512.00", cpu="150.00")
    _bench(root, "train/smoke/edsr-s-baseline.tsv", "50.25", rss="256.00", cpu="49.75")
    _bench(root, "evaluate_trained/smoke/edsr-s-pcl_matlab_Set5.tsv", "10.00")
    _bench(root, "tables.tsv", "2.00", rss="100.00", cpu="1.00")
    return root


def test_wall_time_by_rule_sums_counts_and_maxima(bench_dir):
    # by hand: train 100.50 + 50.25 = 150.75 over 2 jobs, max 100.50; evaluate_trained 10; tables 2
    totals = {t.rule: (t.count, t.sum_s, t.max_s) for t in by_rule(read_jobs(bench_dir))}
    assert totals == {"train": (2, 150.75, 100.5), "evaluate_trained": (1, 10.0, 10.0), "tables": (1, 2.0, 2.0)}
    assert [t.rule for t in by_rule(read_jobs(bench_dir))] == ["train", "evaluate_trained", "tables"]


def test_rule_and_wildcards_come_from_the_file_path(bench_dir):
    jobs = {(j.rule, j.wildcards): j for j in read_jobs(bench_dir)}
    assert set(jobs) == {("train", "smoke/edsr-s-pcl"), ("train", "smoke/edsr-s-baseline"),
                         ("evaluate_trained", "smoke/edsr-s-pcl_matlab_Set5"), ("tables", "")}
    assert jobs[("evaluate_trained", "smoke/edsr-s-pcl_matlab_Set5")].cpu_s is None  # NA: not sampled


def test_page_lists_the_slowest_job_first_with_totals(bench_dir):
    jobs = read_jobs(bench_dir)
    assert [j.wall_s for j in slowest(jobs)] == [100.5, 50.25, 10.0, 2.0]
    page = render(jobs, start=None, host=HOST, now=0.0)
    section = page[page.index("slowest jobs"):]
    rows = [line for line in section.splitlines() if re.match(r"^\| \d+ \|", line)]
    assert rows[0].startswith("| 1 | train | smoke/edsr-s-pcl | 100.5 | 150.0 | 512.0 |")
    assert rows[1].startswith("| 2 | train | smoke/edsr-s-baseline | 50.2 |")
    assert rows[3].startswith("| 4 | tables | – | 2.0 |")
    # total wall 100.5 + 50.25 + 10 + 2 = 162.75; CPU 150 + 49.75 + 1 = 200.75 over 152.75 s of the
    # three jobs that recorded it = 1.31 cores; largest RSS 512 MB (train edsr-s-pcl)
    assert "summed wall time 162.8 s" in page
    assert "CPU time 200.8 s over 152.8 s" in page and "1.31 cores busy" in page
    assert "Peak memory (max RSS) of one job: 512.0 MB, train (smoke/edsr-s-pcl)" in page
    assert "| train | 2 | 150.8 | 92.6% | 100.5 |" in page  # 150.75 / 162.75 = 92.6 %
    assert "Test CPU, 2 cores, load average 0.50, 0.40, 0.30" in page
    assert "runs cannot be told apart" in page


def test_files_older_than_the_latest_run_are_listed_apart_and_not_counted(tmp_path):
    root, logs = tmp_path / "benchmarks", tmp_path / "log"
    start = datetime(2026, 1, 2, 3, 4, 5, 123456)
    logs.mkdir()
    # Snakemake names a run's log by its local start time (isoformat without colons)
    (logs / (start.isoformat().replace(":", "") + ".snakemake.log")).write_text("")
    (logs / "2025-06-01T000000.000001.snakemake.log").write_text("")
    t0 = start.timestamp()
    _bench(root, "train/smoke/old.tsv", "900.00", mtime=t0 - 3600)
    _bench(root, "tables.tsv", "3.00", mtime=t0 + 60)
    _bench(root, "check.tsv", "1.00", mtime=t0 + 90)
    assert run_start(logs) == pytest.approx(t0)
    page = render(read_jobs(root), start=run_start(logs), host=HOST, now=t0 + 100)
    counted = page[:page.index("earlier runs")]
    assert "summed wall time 4.0 s" in counted and "| train |" not in counted  # 3 + 1, not the 900 s job
    assert "1 benchmark files are older" in page
    assert re.search(r"earlier runs.*\n\n.*\n.*\n\| train \| 1 \| 900\.0 \|", page)
    # elapsed: last file at t0 + 90 -> 4 s of jobs over 90 s
    assert "Elapsed from the run's start to its last benchmark file: 90.0 s" in page


@pytest.mark.faults
def test_a_broken_benchmark_file_is_one_line_naming_it_and_writes_no_page(bench_dir, tmp_path):
    bad = _bench(bench_dir, "gains.tsv", "fast")
    out = tmp_path / "reports" / "timing.md"
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in bench_dir.rglob("*") if p.is_file()}
    proc = subprocess.run([sys.executable, "-m", "pcl", "timing", "--benchmarks", str(bench_dir),
                           "--log-dir", str(tmp_path / "nolog"), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "'fast'" in lines[0] and "delete" in lines[0]
    assert not out.exists() and not out.parent.exists()
    assert before == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in bench_dir.rglob("*") if p.is_file()}


# --- the workflow ---------------------------------------------------------------------------------


def _snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(workdir)}
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def dry_run(make_workdir, tmp_path_factory) -> str:
    """The default target's dry run in a fresh folder (no pipeline output seen)."""
    workdir = make_workdir(tmp_path_factory.mktemp("timing_wf"))
    proc = _snakemake(workdir, "-n")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def _jobs(text: str) -> list[dict[str, str]]:
    """Each job block of a dry run as {field: value}, with its rule under 'rule'."""
    jobs: list[dict[str, str]] = []
    for line in text.splitlines():
        m = re.match(r"^(?:local)?(?:rule|checkpoint) (\w+):$", line)
        if m:
            jobs.append({"rule": m.group(1)})
        elif jobs and (f := re.match(r"^    (\w+): (.*)$", line)):
            jobs[-1][f.group(1)] = f.group(2)
    return jobs


def test_every_rule_declares_a_benchmark_file():
    # the rules' definitions, top-level or inside an `if` of a rules file: each block runs from
    # `rule X:` / `checkpoint X:` to the next one, its directives one level deeper than its name
    text = "\n".join(p.read_text() for p in [REPO / "Snakefile", *(REPO / "workflow" / "rules").glob("*.smk")])
    head = r"^( *)(?:rule|checkpoint) (\w+):"
    starts = list(re.finditer(head, text, flags=re.M))
    rules = {m.group(2): (m.group(1), text[m.end():nxt.start() if nxt else len(text)])
             for m, nxt in zip(starts, [*starts[1:], None])}
    assert {"train", "evaluate_trained", "discover_benchmarks", "pages", "timing", "timing_page"} <= set(rules)
    missing = [r for r, (indent, body) in rules.items()
               if r != "all" and not re.search(rf"^{indent}    benchmark:\n\s+\S", body, re.M)]
    assert missing == []


def test_every_job_of_the_default_target_writes_its_own_benchmark_file(dry_run):
    jobs = [j for j in _jobs(dry_run) if j["rule"] != "all"]
    # the embedded default: smoke groups, mini training and evaluation, the reports (about 40 jobs)
    assert len(jobs) > 30 and any(j["rule"].startswith("group_smoke_") for j in jobs)
    assert [j["rule"] for j in jobs if "benchmark" not in j] == []
    paths = [j["benchmark"] for j in jobs]
    assert len(set(paths)) == len(paths) and all(p.startswith("benchmarks/") and p.endswith(".tsv") for p in paths)


def test_timing_page_is_in_the_default_dag_after_every_other_target(dry_run):
    jobs = {j["rule"]: j for j in _jobs(dry_run)}
    assert jobs["timing"]["output"] == "reports/timing.md"
    assert jobs["timing_page"]["output"] == "reports/html/timing.html"
    timing_inputs = set(jobs["timing"]["input"].split(", "))
    all_inputs = set(jobs["all"]["input"].split(", "))
    # everything rule all asks for, the other HTML pages included, except the timing page itself
    assert all_inputs - timing_inputs == {"reports/html/timing.html"}
    assert {"reports/html/verdict.html", "reports/html/plan.html", "reports/check.txt"} <= timing_inputs
