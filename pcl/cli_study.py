"""``pcl study``: the study tier's table, verdict lines and share figure (docs/study.md).

Why the CLI resolves the catalog: ``pcl.report`` must not import ``pcl.train``, so the grid's
settings (L1 range, warm-up, alpha) and each +PCL experiment's control are found here and handed
to ``pcl.report.study`` as plain records.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pcl.errors import PCLError

#: Settings a control must share with its +PCL cell to be that cell's control.
_SHARED = ("loss_scale", "schedule", "init", "data", "grad_clip", "augment", "model_kwargs")


def study_cells(catalog_path: str | None, tier: str):
    """The +PCL experiments of ``tier`` as ``StudyCell`` records, each with the one control that
    shares its L1 range, schedule, initialisation, data, budget and seeds."""
    from pcl.report.study import StudyCell
    from pcl.train.catalog import load_catalog

    catalog = load_catalog(catalog_path)
    names = catalog.tier_experiments(tier)
    experiments = [catalog.get(n) for n in names]
    controls = [e for e in experiments if e.method == "control"]
    cells = []
    for e in (e for e in experiments if e.method == "pcl"):
        mine = _comparable(e, tier)
        matches = [c.name for c in controls if _comparable(c, tier) == mine]
        if len(matches) != 1:
            found = ", ".join(matches) or "none"
            raise PCLError(f"{catalog.path}: tier {tier}: {e.name} needs exactly one control with the same loss_scale, "
                           f"schedule, init, data, budget and seeds (found: {found}); add or fix its control experiment")
        config = e.method_config(tier)
        cells.append(StudyCell(e.name, matches[0], str(e.resolve(tier)["loss_scale"]), int(config.embedding_warmup),
                               float(config.weight)))
    if not cells:
        raise PCLError(f"{catalog.path}: tier {tier} lists no +PCL (method pcl) experiment; pass the study's tier with --tier")
    return cells


def _comparable(experiment, tier: str) -> tuple:
    resolved = experiment.resolve(tier)
    budget = {k: v for k, v in resolved["budget"].items() if k not in ("log_every", "checkpoint_every", "validate_every")}
    return (*(repr(resolved[k]) for k in _SHARED), repr(budget), tuple(experiment.seeds(tier)))


def cmd_study(args: argparse.Namespace) -> int:
    """The study's table (csv, md with the verdict lines, tex) and its share figure."""
    from pcl.cli_report import _result_files
    from pcl.report.results import read_results
    from pcl.report.study import per_run_points, study_table
    from pcl.report.study_write import share_figure, write_study
    from pcl.report.verdict_rules import min_effects
    from pcl.yamlio import read_yaml

    cells = study_cells(args.catalog, args.tier)
    effects = min_effects(read_yaml(Path(args.claims), what="claims catalog", missing_hint="restore config/claims.yaml"),
                          args.claims)
    results = read_results(_result_files(args.results), source=True)
    results = results[results["tier"] == args.tier]
    if results.empty:
        raise PCLError(f"--results {' '.join(args.results)}: no result rows of tier {args.tier}; train and evaluate it first "
                       "(snakemake --cores 2 --configfile config/study.yaml)")
    table = study_table(results, cells, tier=args.tier, min_effects=effects, draws=args.draws, seed=args.seed)
    written = write_study(table, Path(args.out_dir), stem=args.stem)
    protocol = args.protocol or sorted(set(results["protocol"]))[0]
    points = per_run_points(results, cells, tier=args.tier, dataset=args.figure_dataset, protocol=protocol,
                            draws=args.draws, seed=args.seed)
    written.append(share_figure(points, Path(args.figure), dataset=args.figure_dataset))
    for path in written:
        print(path)
    print(f"{len(cells)} cells, {len(table)} rows, {len(points)} runs in the figure ({args.draws} bootstrap draws)")
    return 0


def cmd_install_run(args: argparse.Namespace) -> int:
    from pcl.train.pinned import install_run, read_pin

    dst = install_run(Path(args.src), Path(args.dst), read_pin(Path(args.src))["sha256"])
    print(f"installed {args.src} -> {dst} (weights sha256 checked)")
    return 0


def add_study_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("install-run", help="copy a committed run (e.g. the study's baseline) into a run directory, hash-checked")
    p.add_argument("src", help="committed run folder holding PINNED.json, model.safetensors, model.json, result.json")
    p.add_argument("dst", help="run directory to fill (runs/<tier>/<experiment>)")
    p.set_defaults(func=cmd_install_run)

    p = sub.add_parser("study", help="the study tier: +PCL minus control per cell, gradient share, verdicts at miniature scale")
    p.add_argument("--results", nargs="*", default=["results"], help="result CSVs or folders")
    p.add_argument("--catalog", default=None, help="experiment catalog (default config/experiments.yaml)")
    p.add_argument("--tier", default="study")
    p.add_argument("--claims", default="config/claims.yaml", help="its min_effect decides the cell statuses")
    p.add_argument("--out-dir", default="reports/tables")
    p.add_argument("--stem", default="study", help="file names of the table: <stem>.{csv,md,tex}")
    p.add_argument("--figure", default="reports/figures/study_share.png")
    p.add_argument("--figure-dataset", default="Set5")
    p.add_argument("--protocol", default=None, help="protocol of the figure (default: the first present)")
    p.add_argument("--draws", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=20230101)
    p.set_defaults(func=cmd_study)
