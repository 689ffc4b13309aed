"""``pcl gains``, ``pcl verdict``, ``pcl figures`` and ``pcl pages``: what the results say, and the
report pages (parsing only; the logic is in ``pcl.report``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pcl.errors import PCLError


def cmd_gains(args: argparse.Namespace) -> int:
    """Gains of +PCL with intervals (gains.{csv,md,tex}), the forest plot and the per-image distributions."""
    from pcl.cli_report import _result_files
    from pcl.report.gain_figures import forest_plot, gain_distributions
    from pcl.report.gains import compute_gains
    from pcl.report.gains_report import write_gains
    from pcl.report.results import paper_side, read_results

    results = paper_side(read_results(_result_files(args.results)))
    gains = compute_gains(results, draws=args.draws, seed=args.seed)
    written = write_gains(gains, Path(args.out_dir))
    figures = Path(args.figures_dir)
    written.append(forest_plot(gains, figures / "gains_forest_psnr.png", min_effects=_min_effects(args.claims)))
    written.append(gain_distributions(results, figures / "gains_per_image_psnr.png"))
    for path in written:
        print(path)
    print(f"{len(gains)} gains ({args.draws} bootstrap draws, seed {args.seed})")
    return 0


def _min_effects(claims: str | None) -> dict[str, float] | None:
    """The claims catalog's ``min_effect``, so the forest plot's markers use the verdict's numbers;
    None (the figure's defaults, the same values) when no catalog is at hand."""
    if not claims or not Path(claims).is_file():
        return None
    from pcl.report.verdict_rules import min_effects
    from pcl.yamlio import read_yaml

    return min_effects(read_yaml(Path(claims), what="claims catalog", missing_hint="restore config/claims.yaml"), claims)


def cmd_verdict(args: argparse.Namespace) -> int:
    """One line per claim of the claims catalog, with its status and evidence (reports/verdict.md)."""
    import pandas as pd

    from pcl.atomic import atomic_write_text
    from pcl.cli_report import _cells, _result_files
    from pcl.report.results import paper_side, read_results
    from pcl.report.verdict import build_verdicts, load_claims, render
    from pcl.resources import resource_path

    study = None
    if args.study:  # first: a bad study table fails before any work
        from pcl.report.study_write import verdict_section

        study = verdict_section(Path(args.study))
    results = paper_side(read_results(_result_files(args.results)))
    try:
        gains = pd.read_csv(args.gains)
    except (FileNotFoundError, pd.errors.EmptyDataError) as exc:
        raise PCLError(f"{args.gains}: cannot read the gains ({exc.__class__.__name__}); run `pcl gains` first") from None
    claims = load_claims(Path(args.claims))
    paper = pd.read_csv(resource_path("reference", "paper", "table2.csv"), dtype=str, keep_default_na=False)
    verdicts = build_verdicts(claims, results, gains, paper_table2=paper, cells=_cells(args),
                              results_dir=Path(args.results_dir) if args.results_dir else None)
    atomic_write_text(Path(args.out), render(verdicts, gains, args.claims, study=study))
    for v in verdicts:
        print(f"{v.claim['id']}: {v.status}")
    print(f"-> {args.out}")
    return 0


def _figure_images(items: list[str]):
    """``DATASET/IMAGE`` or ``DATASET/IMAGE@X,Y,SIZE`` -> FigureImage entries."""
    from pcl.report.figure_set import parse_images

    parsed = []
    for item in items:
        name, _, crop = item.partition("@")
        dataset, sep, image = name.partition("/")
        if not sep or not image:
            raise PCLError(f"--image {item!r}: use DATASET/IMAGE or DATASET/IMAGE@X,Y,SIZE (e.g. Set14/baboon)")
        entry: dict = {"dataset": dataset, "image": image}
        if crop:
            try:
                entry["crop"] = [int(v) for v in crop.split(",")]
            except ValueError:
                raise PCLError(f"--image {item!r}: the crop must be three integers X,Y,SIZE") from None
        parsed.append(entry)
    return parse_images(parsed)


def cmd_figures(args: argparse.Namespace) -> int:
    """Crop comparisons, training curves and the alpha curve from the run's outputs."""
    from pcl.cli_report import _result_files
    from pcl.report.figure_set import alpha_figure, crop_figures, curve_figures
    from pcl.report.results import paper_side, read_results
    from pcl.resources import resource_path

    results = paper_side(read_results(_result_files(args.results)))
    hr_dirs = {}
    if args.benchmarks_json:
        import json

        hr_dirs.update({name: Path(info["hr_dir"]) for name, info in json.loads(Path(args.benchmarks_json).read_text()).items()})
    for item in args.hr or []:
        name, sep, folder = item.partition("=")
        if not sep:
            raise PCLError(f"--hr {item!r}: use DATASET=FOLDER")
        hr_dirs[name] = Path(folder)
    out = Path(args.out_dir)
    written = crop_figures(results, Path(args.results_dir), hr_dirs, _figure_images(args.image or []), out,
                           tiers=args.tiers, crop_size=args.crop_size)
    for tier in args.curve_tiers:
        written += curve_figures(Path(args.runs_root), tier, out)
    written.append(alpha_figure(results, resource_path("reference", "paper", "table7.csv"), out / "table7_alpha.png"))
    if args.real_dir:
        from pcl.report.figure_set import no_reference_figures

        models = {}
        for item in args.real_model or []:
            label, sep, path = item.partition("=")
            if not sep:
                raise PCLError(f"--real-model {item!r}: use LABEL=CHECKPOINT")
            models[label] = Path(path)
        if len(models) < 1:
            raise PCLError("--real-dir needs --real-model LABEL=CHECKPOINT (one or more, e.g. baseline and +PCL)")
        written += no_reference_figures(Path(args.real_dir), models, out, limit=args.real_limit)
    for path in written:
        print(path)
    return 0


def cmd_pages(args: argparse.Namespace) -> int:
    """Markdown (and plain-text) outputs as HTML pages for the Snakemake report."""
    from pcl.report.html import write_html_pages

    missing = [s for s in args.sources if not Path(s).is_file()]
    if missing:
        raise PCLError(f"no such file: {', '.join(missing)}; run the pipeline that writes it first")
    for path in write_html_pages([Path(s) for s in args.sources], Path(args.out_dir)):
        print(path)
    return 0


def add_findings_commands(sub: argparse._SubParsersAction) -> None:
    """Register ``gains``, ``verdict``, ``figures`` and ``pages`` on the ``pcl`` parser."""
    from pcl.report.stats import BOOTSTRAP_DRAWS, BOOTSTRAP_SEED

    p = sub.add_parser("gains", help="gains of +PCL with bootstrap intervals, Wilcoxon and Holm p-values; forest plot")
    p.add_argument("--results", nargs="*", default=["results"], help="result CSVs or folders")
    p.add_argument("--out-dir", default="reports/tables")
    p.add_argument("--figures-dir", default="reports/figures")
    p.add_argument("--draws", type=int, default=BOOTSTRAP_DRAWS, help=f"bootstrap draws (default {BOOTSTRAP_DRAWS})")
    p.add_argument("--seed", type=int, default=BOOTSTRAP_SEED, help="seed of the bootstrap (recorded in gains.csv)")
    p.add_argument("--claims", default="config/claims.yaml",
                   help="claims catalog whose min_effect decides the forest plot's filled markers (as in the verdict)")
    p.set_defaults(func=cmd_gains)

    p = sub.add_parser("verdict", help="status and evidence of each claim of config/claims.yaml")
    p.add_argument("--results", nargs="*", default=["results"], help="result CSVs or folders")
    p.add_argument("--results-dir", default="results", help="where result sidecars live (weights identity of as-released vs control)")
    p.add_argument("--gains", default="reports/tables/gains.csv")
    p.add_argument("--claims", default="config/claims.yaml")
    p.add_argument("--cells", help="cells mapping from `pcl catalog cells` (default: read --catalog)")
    p.add_argument("--catalog", help="experiment catalog used when --cells is not given")
    p.add_argument("--study", help="the study's table (reports/tables/study.csv of `pcl study`): its two lines at "
                   "miniature scale go under their own heading")
    p.add_argument("--out", default="reports/verdict.md")
    p.set_defaults(func=cmd_verdict)

    p = sub.add_parser("figures", help="Fig. 2/3-style crops, training curves and Table VII's alpha curve")
    p.add_argument("--results", nargs="*", default=["results"], help="result CSVs or folders")
    p.add_argument("--results-dir", default="results", help="where the result sidecars (and their SR folders) are")
    p.add_argument("--runs-root", default="runs", help="training runs, for the curves")
    p.add_argument("--image", action="append", help="DATASET/IMAGE[@X,Y,SIZE] to show (repeatable)")
    p.add_argument("--hr", action="append", help="DATASET=HR_FOLDER of every dataset named by --image (repeatable)")
    p.add_argument("--benchmarks-json", help="the HR folders as `pcl datasets --json` wrote them (instead of --hr)")
    p.add_argument("--tiers", nargs="*", default=["mini", "released", "finetune", "scratch"], help="tiers to draw crops for")
    p.add_argument("--curve-tiers", nargs="*", default=["mini", "finetune", "scratch"], help="tiers to draw training curves for")
    p.add_argument("--crop-size", type=int, default=48, help="side of the automatic crops in HR pixels")
    p.add_argument("--real-dir", help="Fig. 4: a folder of real LR photos without ground truth (e.g. data/RealSRSet)")
    p.add_argument("--real-model", action="append", help="Fig. 4: LABEL=CHECKPOINT of a model to compare (repeatable)")
    p.add_argument("--real-limit", type=int, default=4, help="Fig. 4: how many of the photos (default 4)")
    p.add_argument("--out-dir", default="reports/figures")
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("pages", help="Markdown / text outputs as HTML pages (for the Snakemake report)")
    p.add_argument("sources", nargs="+")
    p.add_argument("--out-dir", default="reports/html")
    p.set_defaults(func=cmd_pages)
