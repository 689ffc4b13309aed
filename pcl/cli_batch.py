"""``pcl batch``: several ``pcl`` command lines run one after the other in one process.

Why: a smoke-tier job trains a tiny model for ten iterations and scores it on two small sets in a
few seconds, while starting a Python that imports torch, the backbones and the metrics costs about
as much again; thirty experiments, each trained and evaluated in its own processes, spent most of
the tier's time starting interpreters.  The workflow therefore runs the small tiers' jobs in
groups (``group:`` in ``training.tiers.<tier>``): each group is one ``pcl batch`` running exactly
the ``pcl train`` and ``pcl evaluate`` command lines the per-experiment rules would run, in
dependency order, so the code paths and the files they write are the same; only the process start
is shared.  The cluster tiers keep one job per training run, where start-up is noise.

The first command that fails stops the batch with its exit code (the ones after it do not run):
a group is one job, and Snakemake discards a failed job's outputs as a whole.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

from pcl.errors import PCLError


def read_commands(text: str | None, path: str | None) -> list[list[str]]:
    """The command lines (JSON: a list of lists of strings), from ``--commands`` or ``--commands-file``."""
    where = f"--commands-file {path}" if path else "--commands"
    if path:
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise PCLError(f"{where}: cannot read ({exc.__class__.__name__}); pass a JSON list of command lines") from None
    try:
        commands = json.loads(text or "")
    except json.JSONDecodeError as exc:
        raise PCLError(f"{where}: not JSON ({exc.msg} at character {exc.pos}); pass a list of command lines, "
                       'e.g. [["train", "--experiment", "rcan-pcl", ...], ["evaluate", ...]]') from None
    well_formed = isinstance(commands, list) and all(
        isinstance(c, list) and c and all(isinstance(w, str) for w in c) for c in commands)
    if not well_formed or not commands:
        raise PCLError(f"{where}: must be a non-empty list of command lines, each a non-empty list of strings")
    nested = [c for c in commands if c[0] == "batch"]
    if nested:
        raise PCLError(f"{where}: a batch cannot run `pcl batch` ({shlex.join(nested[0])}); list its commands instead")
    return commands


def _run_one(argv: list[str]) -> int:
    """One command line through the ``pcl`` entry point, its exit code (argparse's exits included)."""
    from pcl.cli import main

    try:
        return main(argv)
    except SystemExit as exc:  # argparse: --help, or a bad option
        return exc.code if isinstance(exc.code, int) else 2


def cmd_batch(args: argparse.Namespace) -> int:
    """Run each command line in order; stop at the first that fails, with its exit code."""
    commands = read_commands(args.commands, args.commands_file)
    total, started = len(commands), time.perf_counter()
    for k, argv in enumerate(commands, 1):
        line = "pcl " + shlex.join(argv)
        print(f"== batch {k}/{total}: {line}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        code = _run_one(argv)
        print(f"== batch {k}/{total}: exit {code} after {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
        if code:
            rest = f"; the {total - k} command(s) after it did not run" if k < total else ""
            print(f"pcl: error: batch command {k}/{total} failed with exit {code}: {line}{rest}", file=sys.stderr)
            return code
    print(f"== batch: {total} commands in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return 0


def add_batch_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("batch", help="run several pcl command lines in one process (the workflow's grouped small jobs)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--commands", help='JSON list of command lines, e.g. [["train", ...], ["evaluate", ...]]')
    src.add_argument("--commands-file", help="a file holding that JSON")
    p.set_defaults(func=cmd_batch)
