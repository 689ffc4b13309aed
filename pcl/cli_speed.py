"""``pcl speed``: the report's Speed page from the benchmark CSVs (parsing only; the page is built by
``pcl.report.speed``)."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_speed(args: argparse.Namespace) -> int:
    """Write the Speed page; the folder is checked before anything is written."""
    from pcl.atomic import atomic_write_text
    from pcl.report.speed import speed_page

    text = speed_page(Path(args.bench_dir))
    print(atomic_write_text(Path(args.out), text))
    return 0


def add_speed_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("speed", help="the Speed page (Markdown) from the benchmark CSVs of `pcl bench`")
    p.add_argument("--bench-dir", default="results/bench", help="folder of the benchmark CSVs (default results/bench)")
    p.add_argument("--out", default="reports/speed.md", help="Markdown page to write (default reports/speed.md)")
    p.set_defaults(func=cmd_speed)
