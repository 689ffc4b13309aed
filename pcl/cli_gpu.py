"""``pcl gpu-check`` and ``pcl plan``: what the GPU paths do on a device, and what a tier will cost
(parsing only; logic in ``pcl.gpu_check`` and ``pcl.plan``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pcl.errors import PCLError


def cmd_gpu_check(args: argparse.Namespace) -> int:
    """Run the GPU check; exit 1 when a check failed (the CSV and summary say which)."""
    from pcl.gpu_check import run_gpu_check
    from pcl.gpu_check.runner import parse_budgets

    parts = [p.strip() for p in args.parts.split(",") if p.strip()] if args.parts else None
    result = run_gpu_check(device=args.device, tiny=args.tiny, out_dir=Path(args.out_dir), parts=parts,
                           budgets=parse_budgets(args.budget))
    print(f"{result['rows']} rows -> {result['csv']}; summary {result['summary']}")
    if result["failed"]:
        print(f"{len(result['failed'])} checks failed: {', '.join(result['failed'][:10])}", file=sys.stderr)
        return 1
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    """Print (and optionally write) the plan of every training tier of the configuration."""
    from pcl.atomic import atomic_write_text
    from pcl.plan import merged_config, plan_tier, render_markdown, training_tiers
    from pcl.plan_flops import FlopCache

    config = merged_config(Path(args.configfile) if args.configfile else None, base=Path(args.config))
    tiers = [args.tier] if args.tier else training_tiers(config)
    if not tiers:
        raise PCLError(f"{args.configfile or args.config}: no training tier in `tiers`; pass --configfile "
                       "config/finetune.yaml (or scratch) or --tier NAME")
    cache = FlopCache(Path(args.flop_cache) if args.flop_cache else Path(args.bench_dir) / "plan_flops.json")
    plans = [plan_tier(config, t, bench_dir=Path(args.bench_dir), cache=cache, device=args.device,
                       utilisation=args.utilisation) for t in tiers]
    if args.json:
        text = json.dumps([p.to_dict() for p in plans], indent=1) + "\n"
    else:
        text = "\n".join(render_markdown(p) for p in plans)
    if args.out:
        atomic_write_text(Path(args.out), text)
    print(text, end="")
    return 0


def add_gpu_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gpu-check", help="exercise every GPU path; write results/bench/gpu_<device>.csv and .md")
    p.add_argument("--device", default="auto", help="cuda, cuda:N, cpu or auto (default)")
    p.add_argument("--tiny", action="store_true", help="smoke-size networks and batches (the CPU test of the check)")
    p.add_argument("--out-dir", default="results/bench", help="folder of gpu_<device>.csv and gpu_<device>.md")
    p.add_argument("--parts", help="comma-separated subset of metrics,steps,precision,resume,ddp (default: all)")
    p.add_argument("--budget", action="append", metavar="PART=SECONDS", help="time budget of a part (repeatable)")
    p.set_defaults(func=cmd_gpu_check)
    q = sub.add_parser("plan", help="jobs, iterations, GPU-hours and SLURM runtime/mem_mb of the training tiers")
    q.add_argument("--configfile", help="workflow config on top of --config, e.g. config/finetune.yaml")
    q.add_argument("--config", default="config/config.yaml", help="base workflow configuration")
    q.add_argument("--tier", help="one training tier (default: every training tier of the configuration)")
    q.add_argument("--device", help="h100, h200, a100 (default training.plan.device): its measured gpu-check CSV, "
                                     "else its dense bf16 peak")
    q.add_argument("--utilisation", type=float, help="assumed fraction of the peak without a measurement (default 0.10)")
    q.add_argument("--bench-dir", default="results/bench", help="folder of gpu_<device>.csv")
    q.add_argument("--flop-cache", help="cache of counted FLOPs (default: plan_flops.json in --bench-dir)")
    q.add_argument("--json", action="store_true", help="JSON instead of markdown")
    q.add_argument("--out", help="also write the output to this file")
    q.set_defaults(func=cmd_plan)
