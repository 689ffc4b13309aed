"""``pcl train``: the train command (parsing only; the run is ``pcl.train.loop.Trainer``).

Exit codes: 0 success (or already complete), 1 the run failed (NaN/inf loss, out of memory, a
stop signal; the last good checkpoint is kept), 2 a bad input (unknown experiment, schema error,
missing data, a damaged file of the run directory) or a run directory that another trainer holds
(``<run-dir>/.trainer.lock``, ``pcl.train.lock``).  Why imports stay inside the command: building the ``pcl`` parser must not pay for
torch, and ``pcl.train`` never imports the CLI.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pcl.errors import PCLError


def add_train_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train`` sub-command to ``subparsers`` and return its parser."""
    p = subparsers.add_parser(
        "train",
        help="train one catalog experiment (resumable), or list the catalog",
        description="Train one experiment of config/experiments.yaml at one tier. A run directory that "
        "holds a checkpoint is resumed; a complete one is left alone.",
    )
    p.add_argument("--experiment", "-e", help="catalog name, e.g. rcan-pcl (see --list), or the run of an extra seed, rcan-pcl@seed2")
    p.add_argument("--tier", default="smoke", help="a tier of the catalog: smoke (default), mini, finetune, scratch, ...")
    p.add_argument("--run-dir", help="run directory (default runs/<tier>/<experiment>)")
    p.add_argument("--list", action="store_true", help="print the catalog (with --tier: budgets) and exit")
    p.add_argument("--catalog", help="experiment catalog (default config/experiments.yaml)")
    p.add_argument("--runs-root", help="folder holding the other experiments' run dirs of this tier "
                   "(init from / embedding from an experiment; default: the run dir's parent)")
    g = p.add_argument_group("runtime")
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    g.add_argument("--deterministic", action="store_true",
                   help="deterministic algorithms (bitwise-reproducible resume on CPU)")
    g.add_argument("--threads", type=int, help="torch intra-op threads")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--no-tensorboard", action="store_true", help="do not write TensorBoard scalars")
    g.add_argument("--data-cache", default=os.environ.get("PCL_DATA_CACHE", "data/prepared/train"),
                   help="where prepared training arrays are kept (default $PCL_DATA_CACHE or data/prepared/train)")
    g.add_argument("--checkpoints-config", default="config/checkpoints.yaml",
                   help="registry of released checkpoints (init: official)")
    o = p.add_argument_group("overrides (change the budget or inputs of the catalog entry)")
    o.add_argument("--iterations", type=int)
    o.add_argument("--batch", type=int)
    o.add_argument("--lr-patch", type=int)
    o.add_argument("--workers", type=int, help="data-loader worker processes")
    o.add_argument("--log-every", type=int)
    o.add_argument("--checkpoint-every", type=int)
    o.add_argument("--validate-every", type=int, help="0 = at the end only")
    o.add_argument("--validation-images", type=int)
    o.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    o.add_argument("--channels-last", choices=["auto", "on", "off"])
    o.add_argument("--compile", action="store_true", help="torch.compile the SR network")
    o.add_argument("--seed", type=int)
    o.add_argument("--train-dir", help="train on this folder of images instead of the tier's data")
    o.add_argument("--lr-mode", choices=["imresize", "official"], help="how LR images are made (with --lr-dir for official)")
    o.add_argument("--lr-dir", help="official LR folder")
    o.add_argument("--init", help="start from this checkpoint file or run directory instead of the catalog's init")
    o.add_argument("--embedding-from", help="pcl-fixed: run directory (or embedding.safetensors) of the frozen embedding")
    p.set_defaults(func=cmd_train)
    return p


def _budget_overrides(args: argparse.Namespace) -> dict:
    budget = {
        "iterations": args.iterations,
        "batch": args.batch,
        "lr_patch": args.lr_patch,
        "workers": args.workers,
        "log_every": args.log_every,
        "checkpoint_every": args.checkpoint_every,
        "validate_every": args.validate_every,
        "validation_images": args.validation_images,
        "precision": args.precision,
        "channels_last": {"auto": "auto", "on": True, "off": False}.get(args.channels_last) if args.channels_last else None,
        "compile": True if args.compile else None,
    }
    for key in ("iterations", "batch", "lr_patch", "workers", "log_every", "checkpoint_every", "validate_every",
                "validation_images"):
        value = budget[key]
        minimum = 1 if key in ("batch", "lr_patch", "log_every", "validation_images") else 0
        if value is not None and value < minimum:
            raise PCLError(f"--{key.replace('_', '-')} must be >= {minimum}, got {value}")
    return {k: v for k, v in budget.items() if v is not None}


def cmd_train(args: argparse.Namespace) -> int:
    """Run (or resume) one experiment; ``--list`` prints the catalog."""
    from pcl.train.catalog import load_catalog

    catalog = load_catalog(args.catalog)
    if args.list:
        print(catalog.describe(args.tier if args.tier else None))
        return 0
    if not args.experiment:
        raise PCLError("pcl train needs --experiment NAME (or --list to see the catalog)")
    from pcl.train.config import TrainOptions, resolve_config
    from pcl.train.loop import Trainer
    from pcl.train.runtime import TrainingFailed

    from pcl.train.seeds import run_of, seeded_starts

    experiment, run_seed = run_of(catalog, args.tier, args.experiment)
    data = {}
    if args.train_dir:
        data = {"hr_dir": args.train_dir, "lr": args.lr_mode or "imresize", "lr_dir": args.lr_dir, "range": None}
    elif args.lr_mode or args.lr_dir:
        data = {k: v for k, v in {"lr": args.lr_mode, "lr_dir": args.lr_dir}.items() if v is not None}
    seed = args.seed if args.seed is not None else run_seed
    config = resolve_config(experiment, args.tier, budget=_budget_overrides(args), seed=seed, data=data)
    run_dir = Path(args.run_dir) if args.run_dir else Path("runs") / args.tier / args.experiment
    init_dir, embedding_dir = seeded_starts(catalog, args.tier, args.experiment,
                                            Path(args.runs_root) if args.runs_root else run_dir.parent)
    options = TrainOptions(
        device=args.device,
        deterministic=args.deterministic,
        progress=not args.no_progress,
        data_cache=Path(args.data_cache),
        checkpoints_config=Path(args.checkpoints_config),
        runs_root=Path(args.runs_root) if args.runs_root else None,
        init=args.init or (str(init_dir) if init_dir else None),
        embedding_from=args.embedding_from or (str(embedding_dir) if embedding_dir else None),
        threads=args.threads,
        tensorboard=not args.no_tensorboard,
        command=["pcl", *sys.argv[1:]] if sys.argv and sys.argv[0].endswith("pcl") else list(sys.argv),
    )
    try:
        Trainer(config, run_dir, options).run()
    except TrainingFailed as exc:
        print(f"pcl train: error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0

