# Tier `study` (docs/study.md, config/study.yaml): a grid of EDSR-S fine-tunes that asks whether the
# contrastive term improves PSNR or NIQE over its L1-only control at some setting of its weight.
# Its runs are trained and evaluated by `train` and `evaluate_trained` like every training tier;
# this file adds what only the study needs, and only when the study tier is configured:
#
#   runs/mini/edsr-s-baseline -> runs/study/edsr-s-baseline (the same run: see study_baseline)
#   results/study/*/<protocol>/<dataset>.csv -> reports/tables/study_grid.{csv,md,tex}
#                                             + reports/figures/study_share.png   (pcl study)
#
# `all` then asks for the study's outputs too, so `snakemake --cores 2 --configfile config/study.yaml`
# runs the whole study; it resumes like any run.

STUDY_TIER = "study"
# Targets of `all` (none while the study tier is not configured).
STUDY_FILES = (
    expand("reports/tables/study_grid.{ext}", ext=["csv", "md", "tex"]) + ["reports/figures/study_share.png"]
    if STUDY_TIER in TRAIN_TIERS
    else []
)


# Whether the study's edsr-s-baseline resolves to mini's (every setting but the tier's name): then the
# study starts from mini's run instead of training the same 3000 iterations again.
from pcl.train.config import resolve_config, run_identity

STUDY_REUSES_MINI = (
    STUDY_TIER in TRAIN_TIERS
    and "mini" in TRAIN_TIERS
    and len(
        {
            run_identity({**resolve_config(CATALOG.get("edsr-s-baseline"), t), "tier": ""}, with_cadence=True)
            for t in ("mini", STUDY_TIER)
        }
    )
    == 1
)


if STUDY_TIER in TRAIN_TIERS:

    localrules:
        study,

    if STUDY_REUSES_MINI:

        localrules:
            study_baseline,

        # The study's baseline is mini's baseline (same recipe, data, budget and seed: the catalog
        # says so, checked above), so its run is copied rather than trained twice; every fine-tune
        # seed of the study starts from this one set of weights.
        rule study_baseline:
            input:
                model=run_file("mini", "edsr-s-baseline"),
                result=run_file("mini", "edsr-s-baseline", "result.json"),
            output:
                model=run_file(STUDY_TIER, "edsr-s-baseline"),
                result=run_file(STUDY_TIER, "edsr-s-baseline", "result.json"),
            params:
                src=lambda w, input: str(Path(input.model).parent),
                dst=lambda w, output: str(Path(output.model).parent),
            benchmark:
                "benchmarks/study_baseline.tsv",
            log:
                "logs/study/baseline.log",
            conda:
                ENV
            shell:
                "(mkdir -p {params.dst:q} && for f in model.json log.csv; do "
                "if [ -f {params.src:q}/$f ]; then cp {params.src:q}/$f {params.dst:q}/$f; fi; done && "
                "cp {input.model:q} {output.model:q} && cp {input.result:q} {output.result:q}) > {log:q} 2>&1"

        ruleorder: study_baseline > train

    rule study:
        # +PCL minus control per cell with paired intervals, the term's measured gradient share,
        # the verdict lines at miniature scale, and the PSNR change against the share per run.
        input:
            results=expand(
                "results/{tier}/{run}/{protocol}/{dataset}.csv",
                tier=STUDY_TIER,
                run=TRAINED_RUNS[STUDY_TIER],
                protocol=tier_setting(STUDY_TIER, "protocols"),
                dataset=tier_setting(STUDY_TIER, "datasets"),
            ),
            catalog=TRAINING["catalog"],
            claims="config/claims.yaml",
        output:
            tables=STUDY_FILES[:-1],
            figure=STUDY_FILES[-1],
        params:
            pcl=PCL,
            out_dir=lambda w, output: str(Path(output.tables[0]).parent),
            tier=STUDY_TIER,
        benchmark:
            "benchmarks/study.tsv",
        log:
            "logs/study/study.log",
        conda:
            ENV
        shell:
            "{params.pcl} study --results {input.results:q} --catalog {input.catalog:q} --tier {params.tier:q} "
            "--claims {input.claims:q} --out-dir {params.out_dir:q} --figure {output.figure:q} 2>&1 | tee {log:q}"

