"""``pcl timing``: where the pipeline's time went, from Snakemake's per-job benchmark files.

Why: every rule declares ``benchmark: benchmarks/<rule>[/<wildcards>].tsv``, so Snakemake records
each job's wall seconds, CPU seconds and peak memory.  This page sums them by rule and lists the
slowest jobs, so that whoever runs the pipeline next sees which steps to speed up or to send to a
cluster.  It is honest about its scope: a job that did not run (its output was up to date) keeps the
file of the run that made it, so files older than the start of the latest run (the newest
``.snakemake/log/*.snakemake.log``) are listed apart and left out of the totals.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from pcl.atomic import atomic_write_text
from pcl.errors import PCLError

#: How many of the slowest jobs the page lists.
SLOWEST = 15


@dataclass(frozen=True)
class Job:
    """One benchmark file: a job's rule, wildcards (from the file's path) and measurements."""

    rule: str
    wildcards: str
    path: Path
    wall_s: float
    cpu_s: float | None  # Snakemake writes NA when a job ended before its first sample
    max_rss_mb: float | None
    mtime: float


@dataclass(frozen=True)
class RuleTotal:
    rule: str
    count: int
    sum_s: float
    max_s: float


def _number(value: str, path: Path, column: str) -> float | None:
    """A benchmark cell as a float; ``NA``/``-`` (not sampled) as None; anything else is an error."""
    if value.strip() in ("NA", "-", ""):
        return None
    try:
        return float(value)
    except ValueError:
        raise PCLError(f"{path}: column {column!r} holds {value!r}, not a number; delete the file "
                       "(the rule's next run writes it again)") from None


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def read_job(path: Path, root: Path) -> Job:
    """Parse one Snakemake benchmark TSV; ``benchmarks/<rule>/<wildcards>.tsv`` names the job.

    Rows beyond the first (``repeat(...)`` benchmarks) are averaged.
    """
    try:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PCLError(f"{path}: cannot read the benchmark file ({exc}); delete it and re-run its rule") from None
    if not rows or "s" not in rows[0]:
        raise PCLError(f"{path}: not a Snakemake benchmark file (no rows, or no column 's'); delete it "
                       "(the rule's next run writes it again)")
    wall = _mean([_number(r["s"], path, "s") for r in rows])
    if wall is None:
        raise PCLError(f"{path}: no wall time in column 's'; delete the file and re-run its rule")
    rel = path.relative_to(root).with_suffix("")
    rule, wildcards = (rel.parts[0], "/".join(rel.parts[1:])) if len(rel.parts) > 1 else (rel.name, "")
    return Job(rule=rule, wildcards=wildcards, path=path, wall_s=wall,
               cpu_s=_mean([_number(r.get("cpu_time", "NA"), path, "cpu_time") for r in rows]),
               max_rss_mb=_mean([_number(r.get("max_rss", "NA"), path, "max_rss") for r in rows]),
               mtime=path.stat().st_mtime)


def read_jobs(root: Path) -> list[Job]:
    """Every ``*.tsv`` under ``root`` (none when the folder does not exist yet)."""
    if not root.is_dir():
        return []
    return [read_job(p, root) for p in sorted(root.rglob("*.tsv"))]


def run_start(log_dir: Path) -> float | None:
    """Start of the latest Snakemake run: the newest log's name (``<local ISO time>.snakemake.log``).

    Why the name: Snakemake names each run's log by its start time, and a dry run writes none.
    None when there is no log (the page then says it cannot tell runs apart).
    """
    starts = []
    for p in log_dir.glob("*.snakemake.log") if log_dir.is_dir() else []:
        stamp = p.name.removesuffix(".snakemake.log")
        for fmt in ("%Y-%m-%dT%H%M%S.%f", "%Y-%m-%dT%H%M%S"):
            try:
                starts.append(datetime.strptime(stamp, fmt).timestamp())
                break
            except ValueError:
                continue
    return max(starts) if starts else None


def by_rule(jobs: list[Job]) -> list[RuleTotal]:
    """Wall time per rule (sum, count, max), the largest sum first."""
    groups: dict[str, list[float]] = {}
    for job in jobs:
        groups.setdefault(job.rule, []).append(job.wall_s)
    totals = [RuleTotal(r, len(w), sum(w), max(w)) for r, w in groups.items()]
    return sorted(totals, key=lambda t: (-t.sum_s, t.rule))


def slowest(jobs: list[Job], n: int = SLOWEST) -> list[Job]:
    return sorted(jobs, key=lambda j: (-j.wall_s, j.rule, j.wildcards))[:n]


def machine() -> dict[str, str]:
    """CPU model, core count and load average now: how loaded the machine was while timing."""
    from pcl.device import cpu_model  # imports torch: only when a page is written

    try:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "unknown"
    return {"cpu": cpu_model(), "cores": str(os.cpu_count() or "unknown"), "load": load}


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _fmt(v: float | None, spec: str = ".1f") -> str:
    return "–" if v is None else format(v, spec)


def _job_name(job: Job) -> str:
    return f"{job.rule} ({job.wildcards})" if job.wildcards else job.rule


def _summary(jobs: list[Job], start: float | None) -> list[str]:
    wall = sum(j.wall_s for j in jobs)
    cpu_jobs = [j for j in jobs if j.cpu_s is not None]
    cpu = sum(j.cpu_s for j in cpu_jobs)  # type: ignore[misc]
    cpu_wall = sum(j.wall_s for j in cpu_jobs)
    rss = [j.max_rss_mb for j in jobs if j.max_rss_mb is not None]
    lines = [f"- Jobs: {len(jobs)}; summed wall time {wall:.1f} s ({wall / 3600:.2f} h)"]
    if cpu_jobs:
        lines.append(f"- CPU time {cpu:.1f} s over {cpu_wall:.1f} s of wall time in the {len(cpu_jobs)} jobs "
                     f"that recorded it: {cpu / cpu_wall if cpu_wall else 0:.2f} cores busy per job on average")
    if start is not None and jobs:
        elapsed = max(j.mtime for j in jobs) - start
        if elapsed > 0:
            lines.append(f"- Elapsed from the run's start to its last benchmark file: {elapsed:.1f} s; "
                         f"summed job wall time / elapsed = {wall / elapsed:.2f} jobs at once on average")
    if rss:
        worst = max((j for j in jobs if j.max_rss_mb is not None), key=lambda j: j.max_rss_mb or 0)
        lines.append(f"- Peak memory (max RSS) of one job: {max(rss):.1f} MB, {_job_name(worst)}")
    return lines


def render(jobs: list[Job], *, start: float | None, host: dict[str, str], now: float) -> str:
    """The Markdown page: summary, wall time by rule, the slowest jobs, files of earlier runs."""
    current = [j for j in jobs if start is None or j.mtime >= start]
    earlier = [j for j in jobs if start is not None and j.mtime < start]
    out = ["# Where the time went", "",
           f"Written {_stamp(now)} on {host['cpu']}, {host['cores']} cores, load average {host['load']} "
           "(1, 5, 15 min) at writing time. Each job's numbers are Snakemake's benchmark of that job "
           "(`benchmarks/<rule>/<wildcards>.tsv`): wall seconds, CPU seconds of its processes, peak "
           "resident memory, measured on the machine that ran it. This page's own job and its HTML page "
           "finish after it is written and are not counted. Snakemake samples CPU and memory about once a "
           "second, so for jobs shorter than that those two figures are partial or missing (–).", ""]
    if start is None:
        out += ["No `.snakemake/log` run log was found, so runs cannot be told apart: every benchmark file "
                "is counted, including those of jobs that did not run last time.", ""]
    else:
        out += [f"Latest run started {_stamp(start)}. Only jobs that ran in it are counted; "
                f"{len(earlier)} benchmark files are older (their outputs were up to date) and listed at the end.", ""]
    if not current:
        out += ["No benchmark file of this run was found under `benchmarks/`.", ""]
    else:
        out += ["## Summary", "", *_summary(current, start),
                f"- Benchmark files written between {_stamp(min(j.mtime for j in current))} and "
                f"{_stamp(max(j.mtime for j in current))}", "",
                "## Wall time by rule", "", "| rule | jobs | total s | share | max s |", "|---|---:|---:|---:|---:|"]
        total = sum(j.wall_s for j in current) or 1.0
        out += [f"| {t.rule} | {t.count} | {t.sum_s:.1f} | {100 * t.sum_s / total:.1f}% | {t.max_s:.1f} |"
                for t in by_rule(current)]
        out += ["", f"## The {min(SLOWEST, len(current))} slowest jobs", "",
                "| # | rule | wildcards | wall s | CPU s | max RSS MB | finished |", "|---:|---|---|---:|---:|---:|---|"]
        out += [f"| {i} | {j.rule} | {j.wildcards or '–'} | {j.wall_s:.1f} | {_fmt(j.cpu_s)} | {_fmt(j.max_rss_mb)} | "
                f"{_stamp(j.mtime)} |" for i, j in enumerate(slowest(current), 1)]
        out.append("")
    if earlier:
        out += ["## Benchmark files of earlier runs (not counted)", "",
                "| rule | files | wall s (sum) | oldest | newest |", "|---|---:|---:|---|---|"]
        for t in sorted({j.rule for j in earlier}):
            mine = [j for j in earlier if j.rule == t]
            out.append(f"| {t} | {len(mine)} | {sum(j.wall_s for j in mine):.1f} | "
                       f"{_stamp(min(j.mtime for j in mine))} | {_stamp(max(j.mtime for j in mine))} |")
        out.append("")
    return "\n".join(out)


def write_timing(benchmarks: Path, out: Path, log_dir: Path) -> Path:
    """Read every benchmark file and write the page (atomically: a bad file leaves no page)."""
    jobs = read_jobs(benchmarks)
    return atomic_write_text(out, render(jobs, start=run_start(log_dir), host=machine(), now=time.time()))


def cmd_timing(args: argparse.Namespace) -> int:
    path = write_timing(Path(args.benchmarks), Path(args.out), Path(args.log_dir))
    print(path)
    return 0


def add_timing_command(sub: argparse._SubParsersAction) -> None:
    """Register ``pcl timing``."""
    p = sub.add_parser("timing", help="wall time by rule and the slowest jobs, from Snakemake's benchmark files")
    p.add_argument("--benchmarks", default="benchmarks", help="folder of benchmark TSVs (benchmarks/<rule>/...)")
    p.add_argument("--log-dir", default=".snakemake/log", help="Snakemake's run logs: the newest one dates the latest run")
    p.add_argument("--out", default="reports/timing.md")
    p.set_defaults(func=cmd_timing)
