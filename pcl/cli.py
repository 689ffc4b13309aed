"""Command-line interface: the ``pcl`` parser; every command calls one library function.

Why so thin: the Snakemake rules call these commands, and users call the same commands by hand;
keeping logic out of the CLI means both paths run identical code and the library stays testable.
The commands live in small modules by subject (``pcl.cli_evaluate``, ``pcl.cli_data``,
``pcl.cli_report``, ``pcl.cli_metrics``, ``pcl.cli_train``, ``pcl.cli_findings``), each registering its sub-commands;
their heavy imports stay inside the commands so that building the parser stays cheap.
A ``PCLError`` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from pcl.cli_data import add_data_commands
from pcl.cli_evaluate import add_evaluate_commands
from pcl.cli_findings import add_findings_commands
from pcl.cli_metrics import add_metric_commands
from pcl.cli_report import add_report_commands
from pcl.errors import PCLError

log = logging.getLogger("pcl")


def build_parser() -> argparse.ArgumentParser:
    """The ``pcl`` parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="pcl", description="PCL-SR reproduction harness")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING")
    sub = parser.add_subparsers(dest="command", required=True)
    add_evaluate_commands(sub)
    add_data_commands(sub)
    add_report_commands(sub)
    _add_train_command(sub)
    add_metric_commands(sub)
    add_findings_commands(sub)
    return parser


def _add_train_command(sub: argparse._SubParsersAction) -> None:
    """``pcl train`` lives in ``pcl.cli_train`` (its heavy imports stay inside the command)."""
    from pcl.cli_train import add_train_parser

    add_train_parser(sub)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pcl`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except PCLError as exc:
        print(f"pcl: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("pcl: interrupted", file=sys.stderr)
        return 130
