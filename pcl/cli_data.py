"""``pcl download``, ``datasets``, ``verify`` and ``prepare``: the benchmark folders
(parsing only; the logic is in ``pcl.data``)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

from pcl.atomic import atomic_write_text
from pcl.errors import PCLError
from pcl.names import DATASETS


def cmd_download(args: argparse.Namespace) -> int:
    """Download, verify and install datasets (resumable; checksums verified)."""
    from pcl.data.download import fetch_dataset

    status = 0
    summary = {}
    for name in args.dataset:
        result = fetch_dataset(name, Path(args.root), offline_ok=args.offline_ok)
        print(f"{name}: {result.status}" + (f" ({result.reason})" if result.reason else ""))
        summary[name] = {"status": result.status, "reason": result.reason}
        if result.status == "unavailable" and not args.offline_ok:
            status = 1
    if args.json and status == 0:
        from pcl.atomic import atomic_write_text

        atomic_write_text(Path(args.json), json.dumps(summary, indent=2) + "\n")
    return status


def _shipped_dirs(pairs: Sequence[str]) -> dict[str, Path]:
    """Parse ``NAME=DIR`` options naming the benchmark folders that ship with the harness."""
    out = {}
    for item in pairs:
        name, sep, folder = item.partition("=")
        if not sep:
            raise PCLError(f"--shipped expects NAME=DIR, got {item!r}")
        out[name] = Path(folder)
    return out


def cmd_datasets(args: argparse.Namespace) -> int:
    """List (and optionally fetch) the benchmark folders that are present; write JSON for the DAG."""
    from pcl.data.download import fetch_dataset

    root = Path(args.root)
    shipped = _shipped_dirs(args.shipped)
    found: dict[str, dict] = {}
    for name in args.names:
        hr = shipped.get(name)
        if hr is None or not hr.is_dir():
            hr = root / "benchmarks" / name / "HR"
        if not hr.is_dir() and args.download:
            result = fetch_dataset(name, root, offline_ok=True)
            print(f"{name}: {result.status}" + (f" ({result.reason})" if result.reason else ""))
        if hr.is_dir():
            found[name] = {"hr_dir": str(hr), "source": "shipped" if name in shipped else "data"}
        else:
            print(f"{name}: absent (place the HR images in {hr} or run `pcl download --dataset {name}`)")
    for name, info in found.items():
        print(f"{name}: present at {info['hr_dir']}")
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(found, indent=2) + "\n")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Check a benchmark folder against the shipped pixel-hash manifest."""
    from pcl.data.verify import verify_benchmark

    report = verify_benchmark(Path(args.hr_dir), args.dataset)
    print(report.details())
    return 0 if report.ok else 1


def cmd_prepare(args: argparse.Namespace) -> int:
    """Verify a benchmark folder and cache its LR images (or compare with an official LR set)."""
    from pcl.data.prepare import compare_official_lr, prepare_benchmark

    if args.compare_lr:
        stats = compare_official_lr(Path(args.hr_dir), Path(args.compare_lr), scale=args.scale, limit=args.limit)
        text = json.dumps(stats, indent=2)
        print(text)
        if args.out_dir:
            atomic_write_text(Path(args.out_dir) / "lr_comparison.json", text + "\n")
        return 0
    if not args.out_dir:
        raise PCLError("pcl prepare needs --out-dir (where LR/ and prepare.json go)")
    summary = prepare_benchmark(
        Path(args.hr_dir), args.dataset, Path(args.out_dir), scale=args.scale, verify=not args.no_verify
    )
    print(f"{summary['dataset']}: {summary['images']} images, {summary['verification']}; LR in {summary['lr_dir']}")
    return 0


def add_data_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``download``, ``datasets``, ``verify`` and ``prepare`` on the ``pcl`` parser."""
    p = sub.add_parser("download", help="download, verify and install datasets")
    p.add_argument("--dataset", nargs="+", required=True)
    p.add_argument("--root", default="data")
    p.add_argument("--offline-ok", action="store_true", help="report unreachable sources instead of failing")
    p.add_argument("--json", help="on success, write {name: {status, reason}} here (the workflow's marker)")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("datasets", help="list benchmark folders present (optionally download missing ones)")
    p.add_argument("--names", nargs="+", default=list(DATASETS))
    p.add_argument("--root", default="data")
    p.add_argument("--shipped", nargs="*", default=[], metavar="NAME=DIR")
    p.add_argument("--download", action="store_true")
    p.add_argument("--json", help="write {name: {hr_dir, source}} here")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("verify", help="verify a benchmark folder by pixel hashes")
    p.add_argument("--dataset", required=True)
    p.add_argument("--hr-dir", required=True)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("prepare", help="verify a benchmark folder and cache its LR images")
    p.add_argument("--dataset", required=True)
    p.add_argument("--hr-dir", required=True)
    p.add_argument("--out-dir", help="where LR/ and prepare.json (or lr_comparison.json) go")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--no-verify", action="store_true", help="skip the manifest check (own data)")
    p.add_argument("--compare-lr", help="official LR folder to compare ours with (e.g. DIV2K X4)")
    p.add_argument("--limit", type=int, help="compare only the first N images")
    p.set_defaults(func=cmd_prepare)
