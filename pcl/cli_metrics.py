"""``pcl score`` and ``pcl weights``: the metric commands (parsing only; logic in the library)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pcl.errors import PCLError


def cmd_score(args: argparse.Namespace) -> int:
    """Score a folder of SR images (with their HR images for full-reference metrics)."""
    from pcl.metrics.suite import parse_metrics
    from pcl.score import score_folder

    rows = score_folder(
        Path(args.sr_dir), Path(args.out), metrics=parse_metrics(args.metrics),
        hr_dir=Path(args.hr_dir) if args.hr_dir else None, protocol=args.protocol, scale=args.scale,
        crop_border=args.crop_border, device=args.device,
    )
    columns = [c for c in rows[0] if c != "image"] if rows else []
    means = ", ".join(f"{c} {sum(r[c] for r in rows) / len(rows):.4f}" for c in columns)
    print(f"{len(rows)} images: {means} -> {args.out}")
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    """List the backbone weight files (present, verified, how to get them) or fetch them."""
    from pcl.atomic import atomic_write_text
    from pcl.weights import fetch_weights, render_weights_status, weights_status

    if args.action == "list":
        statuses = weights_status(hash_files=True)
        text = render_weights_status(statuses)
        print(text, end="")
        if args.out:
            atomic_write_text(Path(args.out), text)
        return 0
    if not args.names:
        raise PCLError("pcl weights fetch needs NAME ... or all (see `pcl weights list`)")
    for line in fetch_weights(args.names, retries=args.retries, timeout=args.timeout):
        print(line)
    return 0


def add_metric_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``score`` and ``weights`` on the ``pcl`` parser."""
    p = sub.add_parser("score", help="score a folder of SR images (PSNR, SSIM, LPIPS, NIQE, pyiqa:<name>)")
    p.add_argument("--sr-dir", required=True, help="folder of SR images (any names; paired with HR by file stem)")
    p.add_argument("--hr-dir", help="folder of ground-truth images (needed for psnr, ssim, lpips)")
    p.add_argument("--metrics", default="psnr,ssim", help="comma-separated: psnr, ssim, lpips, niqe, niqe-y, pyiqa:<name>; "
                   "niqe-spread, niqe-y-spread: the arithmetic uncertainty of niqe, niqe-y")
    p.add_argument("--protocol", default="matlab", help="PSNR/SSIM protocol: matlab (default) or authors")
    p.add_argument("--scale", type=int, default=4, help="SR scale: GT mod-crop and pixels shaved for psnr/ssim/lpips")
    p.add_argument("--crop-border", type=int, default=0, help="pixels removed on every side before NIQE (default 0)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--out", required=True, help="CSV of one row per image (a .json sidecar goes beside it)")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("weights", help="backbone weights in the torch.hub cache (AlexNet for LPIPS, VGG-19): list or fetch")
    p.add_argument("action", choices=["list", "fetch"])
    p.add_argument("names", nargs="*", help="fetch: alexnet, vgg19 or all")
    p.add_argument("--out", help="list: also write the status (Markdown) to this file")
    p.add_argument("--retries", type=int, default=3, help="fetch: retries per URL")
    p.add_argument("--timeout", type=float, default=30.0, help="fetch: seconds per network read")
    p.set_defaults(func=cmd_weights)
