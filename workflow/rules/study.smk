# The study of the contrastive term's weight (docs/study.md): a grid of EDSR-S fine-tunes that asks
# whether the term improves PSNR or NIQE over its L1-only control in some paper-faithful setting.
# Its runs are trained and evaluated by `train` and `evaluate_trained` like every training tier;
# this file adds what only the study needs:
#
#   results/study/*/<protocol>/<dataset>.csv -> reports/tables/study.{csv,md,tex}
#                                             + reports/figures/study_share.png   (pcl study)
#
# Two ways in. The embedded default does not train the study (about 2 hours on 2 cores): it reads
# the rows committed under results/study (`study: committed: true` in config/config.yaml) and
# regenerates the table, the figure and the verdict lines from them. `snakemake --cores 2
# --configfile config/study.yaml` trains the whole grid (resumable) and writes those rows. Tier
# `study-check` (config/study_check.yaml, run by CI) trains one cell of the grid again, seed 1, and
# `pcl check` compares its rows with the committed ones within the cross-machine tolerance.
#
#   resources/study_baseline -> runs/<study tier>/edsr-s-baseline   (committed weights: study_baseline_pinned)
#   runs/mini/edsr-s-baseline -> runs/<study tier>/edsr-s-baseline (same recipe as mini: study_baseline)

# The values and functions it uses: workflow/rules/study_plan.smk.


if STUDY_FROM_COMMITTED:

    localrules:
        study_baseline_pinned,

    # Every fine-tune of the study starts from the one baseline it was run from, committed with its
    # sha256 (resources/study_baseline/PINNED.json), so the grid and its one-cell re-run start from
    # the same weights on every machine and whatever the mini tier's recipe is.
    rule study_baseline_pinned:
        input:
            pin=f"{STUDY_BASELINE_DIR}/PINNED.json",
            model=f"{STUDY_BASELINE_DIR}/model.safetensors",
        output:
            model=run_file("{tier}", "edsr-s-baseline"),
            result=run_file("{tier}", "edsr-s-baseline", "result.json"),
        wildcard_constraints:
            tier="|".join(re.escape(t) for t in STUDY_FROM_COMMITTED),
        params:
            pcl=PCL,
            src=STUDY_BASELINE_DIR,
            dst=lambda w, output: str(Path(output.model).parent),
        benchmark:
            "benchmarks/study_baseline/{tier}.tsv"
        log:
            "logs/study/baseline_{tier}.log",
        conda:
            ENV
        shell:
            "{params.pcl} install-run {params.src:q} {params.dst:q} > {log:q} 2>&1"

    ruleorder: study_baseline_pinned > train


if STUDY_COPIES_MINI:

    localrules:
        study_baseline,

    # The study's baseline is mini's baseline (same recipe, data, budget and seed: the catalog says
    # so, checked in study_plan.smk), so its run is copied rather than trained twice; every fine-tune seed of the
    # study starts from this one set of weights.
    rule study_baseline:
        input:
            model=run_file("mini", "edsr-s-baseline"),
            result=run_file("mini", "edsr-s-baseline", "result.json"),
        output:
            model=run_file("{tier}", "edsr-s-baseline"),
            result=run_file("{tier}", "edsr-s-baseline", "result.json"),
        wildcard_constraints:
            tier="|".join(re.escape(t) for t in STUDY_COPIES_MINI),
        params:
            src=lambda w, input: str(Path(input.model).parent),
            dst=lambda w, output: str(Path(output.model).parent),
        benchmark:
            "benchmarks/study_baseline/{tier}.tsv"
        log:
            "logs/study/baseline_{tier}.log",
        conda:
            ENV
        shell:
            "(mkdir -p {params.dst:q} && for f in model.json log.csv; do "
            "if [ -f {params.src:q}/$f ]; then cp {params.src:q}/$f {params.dst:q}/$f; fi; done && "
            "cp {input.model:q} {output.model:q} && cp {input.result:q} {output.result:q}) > {log:q} 2>&1"

    ruleorder: study_baseline > train


if STUDY_ACTIVE:

    localrules:
        study,

    rule study:
        # +PCL minus control per cell with paired intervals, the term's measured gradient share,
        # the verdict lines at miniature scale, and the PSNR change against the share per run.
        input:
            results=STUDY_ROWS,
            catalog=TRAINING["catalog"],
            claims="config/claims.yaml",
        output:
            tables=STUDY_TABLES,
            figure=report(
                STUDY_FIGURE,
                caption="../report/study_share.rst",
                category="Figures",
                subcategory="Study",
            ),
        params:
            pcl=PCL,
            out_dir=lambda w, output: str(Path(output.tables[0]).parent),
            tier=STUDY_TIER,
        benchmark:
            "benchmarks/study.tsv"
        log:
            "logs/study/study.log",
        conda:
            ENV
        shell:
            "{params.pcl} study --results {input.results:q} --catalog {input.catalog:q} --tier {params.tier:q} "
            "--claims {input.claims:q} --out-dir {params.out_dir:q} --stem study --figure {output.figure:q} "
            "2>&1 | tee {log:q}"
