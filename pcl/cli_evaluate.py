"""``pcl evaluate`` and ``pcl checkpoints``: scoring a method on a benchmark, and the released weights
(parsing only; the logic is in ``pcl.evaluate``, ``pcl.inference`` and ``pcl.released``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pcl.errors import PCLError
from pcl.names import DATASETS, canonical_dataset


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Score a method on one benchmark folder and write one row per image (and a JSON sidecar)."""
    import numpy as np

    from pcl.evaluate import check_outputs, evaluate_bicubic, evaluate_model

    dataset = canonical_dataset(args.dataset)
    check_outputs(Path(args.out), Path(args.hr_dir), Path(args.lr_dir) if args.lr_dir else None,
                  Path(args.save_sr) if args.save_sr else None)
    extra = _extra_metrics(args)
    common = dict(dataset=dataset, scale=args.scale, protocol=args.protocol,
                  lr_dir=Path(args.lr_dir) if args.lr_dir else None, extra=extra,
                  save_sr=Path(args.save_sr) if args.save_sr else None,
                  save_only=frozenset(n.strip() for n in args.save_sr_images.split(",") if n.strip()) if args.save_sr_images else None)
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
            train_seed=args.train_seed,
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


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="score a method on a benchmark folder (one row per image)")
    p.add_argument("--model", required=True,
                   help="bicubic, an SR backbone (edsr-s, edsr-l, rcan, han, nlsn) or auto (from the checkpoint)")
    p.add_argument("--checkpoint", help="weights of the SR model (.pt/.pth state_dict or harness .safetensors)")
    p.add_argument("--hr-dir", required=True, help="folder of HR images")
    p.add_argument("--lr-dir", help="folder of LR images (default: made with MATLAB bicubic)")
    p.add_argument("--dataset", required=True, help=f"benchmark name ({', '.join(DATASETS)})")
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--protocol", default="matlab", help="matlab (default) or authors")
    p.add_argument("--tier", help="tier recorded in the rows (default: bicubic for bicubic, released for a model)")
    p.add_argument("--method", default="checkpoint",
                   help="method recorded in the rows: official, pcl, baseline, ... (default: checkpoint)")
    p.add_argument("--experiment", help="experiment recorded in the rows (default: <backbone>-<method>)")
    p.add_argument("--train-seed", type=int,
                   help="training seed recorded in the rows' seed column: one of several seeded runs of --experiment")
    p.add_argument("--out", required=True, help="CSV file for the per-image rows (a <stem>.json sidecar goes beside it)")
    p.add_argument("--metrics", default="psnr,ssim",
                   help="psnr and ssim always, plus any of lpips, niqe, niqe-y, niqe-spread, niqe-y-spread (comma-separated)")
    p.add_argument("--save-sr", help="also write the SR images as PNG into this folder (named by the HR stem; lossless, the uint8 image scored)")
    p.add_argument("--save-sr-images", help="with --save-sr: only these image stems (comma-separated), e.g. the ones a figure uses")
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


def _add_checkpoints(sub: argparse._SubParsersAction) -> None:
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


def add_evaluate_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``evaluate`` and ``checkpoints`` on the ``pcl`` parser."""
    _add_evaluate(sub)
    _add_checkpoints(sub)
