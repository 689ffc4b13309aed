"""Command-line interface: the ``pcl`` parser; every command calls one library function.

Why so thin: the Snakemake rules call these commands, and users call the same commands by hand;
keeping logic out of the CLI means both paths run identical code and the library stays testable.
The commands live in small modules by subject (``pcl.cli_evaluate``, ``pcl.cli_data``,
``pcl.cli_report``, ``pcl.cli_metrics``, ``pcl.cli_train``, ``pcl.cli_findings``, ``pcl.cli_gpu``), each registering its sub-commands;
their heavy imports stay inside the commands so that building the parser stays cheap.
A ``PCLError`` becomes one line on stderr and exit code 2, and so does an ``OSError`` of the
user's storage (full disk or quota, read-only mount, permission denied): the line names the path,
the option that chose it and what to do, instead of a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator, Sequence

from pcl.cli_batch import add_batch_command
from pcl.cli_data import add_data_commands
from pcl.cli_evaluate import add_evaluate_commands
from pcl.cli_findings import add_findings_commands
from pcl.cli_gpu import add_gpu_commands
from pcl.cli_metrics import add_metric_commands
from pcl.cli_report import add_report_commands
from pcl.cli_speed import add_speed_command
from pcl.cli_study import add_study_commands
from pcl.errors import PCLError, StorageError, storage_error_in

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
    add_gpu_commands(sub)
    add_study_commands(sub)
    add_batch_command(sub)
    add_speed_command(sub)
    return parser


def _add_train_command(sub: argparse._SubParsersAction) -> None:
    """``pcl train`` lives in ``pcl.cli_train`` (its heavy imports stay inside the command)."""
    from pcl.cli_train import add_train_parser

    add_train_parser(sub)


def _actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    """Every argument of ``parser`` and of its sub-commands, depth first."""
    for action in parser._actions:
        yield action
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _actions(child)


def _command_parser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    """The sub-command's own parser, so that its option names are found first."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]
    return parser


def _option_name(parser: argparse.ArgumentParser, dest: str) -> str:
    for action in _actions(parser):
        if action.dest == dest:
            longs = [o for o in action.option_strings if o.startswith("--")]
            return max(longs, key=len) if longs else (action.metavar or dest.upper())
    return "--" + dest.replace("_", "-")


def _within(path: str, folder: str) -> bool:
    path, folder = os.path.abspath(path), os.path.abspath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


#: Output options, most likely first: where a write without a file name in its error went.
_OUTPUT_DESTS = ("out", "out_dir", "run_dir", "json", "data_cache", "save_sr", "figures_dir")


def _blame_option(problem: StorageError, args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Name the command-line option whose path holds ``problem.path`` (the nearest one wins).

    Why: "free space or point --out-dir elsewhere" tells the user which knob moves the output; a
    write whose ``OSError`` carried no file name gets the output option's path as its path.
    """
    if problem.option:
        return
    paths = {k: v for k, v in vars(args).items() if isinstance(v, str | os.PathLike) and k not in ("command", "log_level")}
    if problem.path is None:
        outputs = [k for k in _OUTPUT_DESTS if k in paths]
        if not outputs:
            return
        problem.path = os.fspath(paths[outputs[0]])
    matches = [k for k, v in paths.items() if _within(problem.path, os.fspath(v))]
    if matches:
        best = max(matches, key=lambda k: len(os.path.abspath(os.fspath(paths[k]))))
        problem.option = _option_name(_command_parser(parser, args.command), best)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pcl`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except PCLError as exc:
        if isinstance(exc, StorageError):
            _blame_option(exc, args, parser)
        print(f"pcl: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("pcl: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a storage problem raised outside pcl.atomic (library writers, workers)
        problem = storage_error_in(exc)
        if problem is None:
            raise
        _blame_option(problem, args, parser)
        print(f"pcl: error: {problem}", file=sys.stderr)
        return problem.exit_code
