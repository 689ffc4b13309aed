"""Command-line interface: argument parsing only, every command calls one library function.

Why so thin: the Snakemake rules call these commands, and users call the same commands by hand;
keeping logic out of the CLI means both paths run identical code and the library stays testable.
A ``PCLError`` becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pcl.errors import PCLError

log = logging.getLogger("pcl")

BENCHMARKS = ("Set5", "Set14", "B100", "Urban100", "Manga109")


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Score a method on one benchmark folder and write one row per image (and a JSON sidecar)."""
    import numpy as np

    from pcl.evaluate import canonical_dataset, evaluate_bicubic, evaluate_model

    dataset = canonical_dataset(args.dataset)
    extra = _extra_metrics(args)
    common = dict(dataset=dataset, scale=args.scale, protocol=args.protocol,
                  lr_dir=Path(args.lr_dir) if args.lr_dir else None, extra=extra,
                  save_sr=Path(args.save_sr) if args.save_sr else None)
    if args.model == "bicubic":
        if args.checkpoint:
            raise PCLError("--model bicubic takes no --checkpoint; name an SR model (edsr-s, edsr-l, rcan, han, nlsn, auto)")
        rows = evaluate_bicubic(Path(args.hr_dir), Path(args.out), tier=args.tier or "bicubic", **common)
    else:
        rows = evaluate_model(
            args.model,
            args.checkpoint,
            Path(args.hr_dir),
            Path(args.out),
            tier=args.tier or "released",
            method=args.method,
            experiment=args.experiment,
            settings=_inference_settings(args),
            **common,
        )
    psnr = float(np.mean([r["psnr"] for r in rows]))
    ssim = float(np.mean([r["ssim"] for r in rows]))
    print(f"{dataset} x{args.scale} {args.model} ({args.protocol}): {len(rows)} images, "
          f"PSNR {psnr:.4f} dB, SSIM {ssim:.5f} -> {args.out}")
    return 0


def _extra_metrics(args: argparse.Namespace):
    """The metrics beyond PSNR/SSIM that `pcl evaluate --metrics` asks for, as a MetricSuite (or None).

    NIQE is computed on the SR image with ``scale`` pixels removed on every side, as SR papers do.
    """
    from pcl.metrics.suite import MetricSuite, parse_metrics

    names = tuple(m for m in parse_metrics(args.metrics) if m not in ("psnr", "ssim"))
    if not names:
        return None
    return MetricSuite(names, scale=args.scale, protocol=args.protocol, niqe_crop=args.scale, device=args.device)


def _inference_settings(args: argparse.Namespace):
    """The inference options of `pcl evaluate` as an ``InferenceSettings``."""
    from pcl.inference import InferenceSettings

    if not args.checkpoint:
        raise PCLError(f"--model {args.model} needs --checkpoint PATH (a .pt/.pth or .safetensors file)")
    return InferenceSettings(
        device=args.device,
        precision=args.precision,
        tile=args.tile,
        tile_overlap=args.tile_overlap,
        allow_global_tiling=args.allow_global_tiling,
        chop=args.chop,
        self_ensemble=args.self_ensemble,
        seed=args.seed,
    )


def cmd_checkpoints(args: argparse.Namespace) -> int:
    """List the released checkpoints (present/absent, how to get them) or fetch them."""
    from pcl.released import checkpoint_status, fetch_checkpoints, load_registry, render_status

    registry = load_registry(Path(args.config), checkpoint_dir=args.dir)
    if args.action == "list":
        statuses = checkpoint_status(registry, hash_files=args.hash)
        text = render_status(statuses, registry)
        print(text, end="")
        if args.out:
            from pcl.atomic import atomic_write_text

            atomic_write_text(Path(args.out), text)
        return 0
    if not args.names:
        raise PCLError("pcl checkpoints fetch needs NAME ... or all (see `pcl checkpoints list`)")
    results = fetch_checkpoints(registry, args.names, retries=args.retries, timeout=args.timeout)
    status = 0
    for result in results:
        print(f"{result.name}: {result.status}" + (f" ({result.detail})" if result.detail else ""))
        if result.failed and not (args.offline_ok and result.status == "unavailable"):
            status = 1
    return status


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
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(found, indent=2) + "\n")
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
            Path(args.out_dir).mkdir(parents=True, exist_ok=True)
            (Path(args.out_dir) / "lr_comparison.json").write_text(text + "\n")
        return 0
    if not args.out_dir:
        raise PCLError("pcl prepare needs --out-dir (where LR/ and prepare.json go)")
    summary = prepare_benchmark(
        Path(args.hr_dir), args.dataset, Path(args.out_dir), scale=args.scale, verify=not args.no_verify
    )
    print(f"{summary['dataset']}: {summary['images']} images, {summary['verification']}; LR in {summary['lr_dir']}")
    return 0


def cmd_ingest_logs(args: argparse.Namespace) -> int:
    """Turn the authors' released per-image logs into result rows (tier `reported`)."""
    from pcl.report.released_logs import ingest

    paths = ingest(Path(args.logs_dir), Path(args.out_dir))
    print(f"wrote {len(paths)} result files under {args.out_dir}")
    return 0


def _result_files(items: Sequence[str]) -> list[Path]:
    """Expand ``--results`` arguments: CSV files, or folders searched recursively."""
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            files.extend(sorted(q for q in p.rglob("*.csv") if "bench" not in q.parts))
        elif p.is_file():
            files.append(p)
        else:
            raise PCLError(f"--results {item}: no such file or folder; run the pipeline first")
    return files


def catalog_cells(catalog: str | Path | None = None):
    """The catalog's cells as a ``pcl.report.cells.CellsMap``.

    Why here: ``pcl.report`` must not import ``pcl.train`` (architecture.md), so the CLI, which may
    import both, converts the catalog into the plain mapping the report layer reads.
    """
    from pcl.report.cells import cells_map
    from pcl.train.catalog import load_catalog

    loaded = load_catalog(catalog)
    return cells_map(
        {name: [(c.table, c.row) for c in e.cells] for name, e in loaded.experiments.items()},
        backbones={name: e.backbone for name, e in loaded.experiments.items()},
        methods={name: e.method for name, e in loaded.experiments.items()},
        source=str(loaded.path),
    )


def _cells(args: argparse.Namespace):
    """``--cells FILE`` when given, else the mapping of ``--catalog`` (default config/experiments.yaml)."""
    from pcl.report.cells import read_cells

    return read_cells(Path(args.cells)) if args.cells else catalog_cells(args.catalog)


def cmd_catalog(args: argparse.Namespace) -> int:
    """Write the experiment -> table cells mapping that `pcl tables` and `pcl check` read."""
    from pcl.report.cells import write_cells

    mapping = catalog_cells(args.catalog)
    if args.out:
        write_cells(Path(args.out), mapping)
    n_cells = sum(len(c) for c in mapping.cells.values())
    print(f"{len(mapping.cells)} experiments, {n_cells} table cells from {mapping.source}"
          + (f" -> {args.out}" if args.out else ""))
    if not args.out:
        print(json.dumps(mapping.to_json(), indent=1))
    return 0


def cmd_tables(args: argparse.Namespace) -> int:
    """Write the paper's tables with our values beside them, the audit and the figures."""
    from pcl.report.tables import write_reports

    written = write_reports(_result_files(args.results), Path(args.out_dir), figures_dir=Path(args.figures_dir),
                            cells=_cells(args))
    for path in written:
        print(path)
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Compare produced values with the paper under the configured tolerances (CI gate)."""
    from pcl.report.check import check_files

    report = check_files(
        _result_files(args.results),
        tolerances_path=Path(args.tolerances),
        deviations_path=Path(args.deviations),
        cells=_cells(args),
    )
    text = report.render()
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    return report.exit_code


def cmd_bench(args: argparse.Namespace) -> int:
    """Run speed benchmarks and write CSV + figures under results/bench/."""
    from pcl.bench import run_benchmarks

    results = run_benchmarks(args.what, Path(args.out_dir), device=args.device, repeats=args.repeats)
    print(json.dumps(results, indent=2, default=str))
    return 0


# --------------------------------------------------------------------------------------------
# parser
# --------------------------------------------------------------------------------------------


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a method on a benchmark folder (one row per image)")
    p.add_argument("--model", required=True,
                   help="bicubic, an SR backbone (edsr-s, edsr-l, rcan, han, nlsn) or auto (from the checkpoint)")
    p.add_argument("--checkpoint", help="weights of the SR model (.pt/.pth state_dict or harness .safetensors)")
    p.add_argument("--hr-dir", required=True, help="folder of HR images")
    p.add_argument("--lr-dir", help="folder of LR images (default: made with MATLAB bicubic)")
    p.add_argument("--dataset", required=True, help="benchmark name (Set5, Set14, B100, Urban100, Manga109)")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--protocol", default="matlab", help="matlab (default) or authors")
    p.add_argument("--tier", help="tier recorded in the rows (default: bicubic for bicubic, released for a model)")
    p.add_argument("--method", default="checkpoint",
                   help="method recorded in the rows: official, pcl, baseline, ... (default: checkpoint)")
    p.add_argument("--experiment", help="experiment recorded in the rows (default: <backbone>-<method>)")
    p.add_argument("--out", required=True, help="CSV file for the per-image rows (a <stem>.json sidecar goes beside it)")
    p.add_argument("--metrics", default="psnr,ssim",
                   help="psnr and ssim always, plus any of lpips, niqe, niqe-y (comma-separated)")
    p.add_argument("--save-sr", help="also write every SR image as PNG into this folder (named by the HR stem)")
    g = p.add_argument_group("inference (SR models only; every option is recorded in the sidecar)")
    g.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    g.add_argument("--precision", default="fp32", help="fp32 (default), bf16 (CPU or CUDA) or fp16 (CUDA)")
    g.add_argument("--self-ensemble", action="store_true", help="x8 flips/transposes, outputs averaged (EDSR '+')")
    g.add_argument("--tile", type=int, help="tiled inference: tile size in LR pixels")
    g.add_argument("--tile-overlap", type=int,
                   help="context around each tile in LR pixels (default: the receptive-field radius, exact for EDSR)")
    g.add_argument("--allow-global-tiling", action="store_true",
                   help="allow --tile for rcan/han/nlsn, whose outputs then differ from whole-image inference")
    g.add_argument("--chop", action="store_true",
                   help="the official EDSR-PyTorch forward_chop (4 quadrants + 10 px, recursive), as the RCAN/HAN/NLSN authors test")
    g.add_argument("--seed", type=int, default=0,
                   help="torch seed set before every image (NLSN draws random rotations; default 0)")
    p.set_defaults(func=cmd_evaluate)


def _add_checkpoint_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("checkpoints", help="released checkpoints: list their status or fetch them")
    p.add_argument("action", choices=["list", "fetch"])
    p.add_argument("names", nargs="*", help="fetch: checkpoint names or all")
    p.add_argument("--config", default="config/checkpoints.yaml", help="the checkpoint registry")
    p.add_argument("--dir", help="checkpoint folder (default: $PCL_CHECKPOINT_DIR, else the registry's dir)")
    p.add_argument("--out", help="list: also write the status (Markdown) to this file")
    p.add_argument("--hash", action="store_true", help="list: hash present files and compare with the pinned sha256")
    p.add_argument("--offline-ok", action="store_true", help="fetch: unreachable sources are reported, not failures")
    p.add_argument("--retries", type=int, default=3, help="fetch: retries per URL")
    p.add_argument("--timeout", type=float, default=30.0, help="fetch: seconds per network read")
    p.set_defaults(func=cmd_checkpoints)


def _add_data_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("download", help="download, verify and install datasets")
    p.add_argument("--dataset", nargs="+", required=True)
    p.add_argument("--root", default="data")
    p.add_argument("--offline-ok", action="store_true", help="report unreachable sources instead of failing")
    p.add_argument("--json", help="on success, write {name: {status, reason}} here (the workflow's marker)")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("datasets", help="list benchmark folders present (optionally download missing ones)")
    p.add_argument("--names", nargs="+", default=list(BENCHMARKS))
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


def _add_report_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest-logs", help="parse the authors' released logs into result rows")
    p.add_argument("--logs-dir", required=True)
    p.add_argument("--out-dir", required=True)
    p.set_defaults(func=cmd_ingest_logs)

    p = sub.add_parser("catalog", help="experiment catalog: write the experiment -> table cells mapping")
    p.add_argument("action", choices=["cells"])
    p.add_argument("--catalog", help="the experiment catalog (default config/experiments.yaml)")
    p.add_argument("--out", help="JSON file for `pcl tables --cells` / `pcl check --cells` (default: print it)")
    p.set_defaults(func=cmd_catalog)

    cells_help = "cells mapping from `pcl catalog cells` (default: read --catalog)"
    p = sub.add_parser("tables", help="write Tables II, IV-VII (md, tex, csv), audit and figures")
    p.add_argument("--results", nargs="*", required=True, help="result CSVs or folders (none: paper values only)")
    p.add_argument("--out-dir", default="reports/tables")
    p.add_argument("--figures-dir", default="reports/figures")
    p.add_argument("--cells", help=cells_help)
    p.add_argument("--catalog", help="experiment catalog used when --cells is not given (default config/experiments.yaml)")
    p.set_defaults(func=cmd_tables)

    p = sub.add_parser("check", help="compare results with the paper under per-tier tolerances")
    p.add_argument("--results", nargs="*", default=["results"], help="result CSVs or folders")
    p.add_argument("--tolerances", default="config/tolerances.yaml")
    p.add_argument("--deviations", default="config/expected_deviations.yaml")
    p.add_argument("--cells", help=cells_help)
    p.add_argument("--catalog", help="experiment catalog used when --cells is not given (default config/experiments.yaml)")
    p.add_argument("--out", help="also write the report to this file")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("bench", help="speed benchmarks (figures under results/bench/)")
    p.add_argument("what", nargs="?", default="all", help="imresize, metrics, eval, nlsn-seed, method, train or all")
    p.add_argument("--out-dir", default="results/bench")
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=3)
    p.set_defaults(func=cmd_bench)


def build_parser() -> argparse.ArgumentParser:
    """The ``pcl`` parser with every sub-command."""
    parser = argparse.ArgumentParser(prog="pcl", description="PCL-SR reproduction harness")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_evaluate(sub)
    _add_checkpoint_commands(sub)
    _add_data_commands(sub)
    _add_report_commands(sub)
    _add_train_command(sub)
    from pcl.cli_metrics import add_metric_commands

    add_metric_commands(sub)
    return parser


def _add_train_command(sub: argparse._SubParsersAction) -> None:
    """``pcl train`` lives in ``pcl.train.cli`` (imported here, its heavy imports stay inside the command)."""
    try:
        from pcl.train.cli import add_train_parser
    except ModuleNotFoundError as exc:  # an install without the training package: no `train` command
        if exc.name != "pcl.train.cli":
            raise
        return
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
