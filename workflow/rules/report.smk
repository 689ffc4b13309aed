# Tables, audit, gains, verdict, figures, the tolerance check and the HTML report pages, from the
# per-image rows of every tier run. All of these are light: they run on the submitting node
# (localrules), never queue on a GPU partition.
# Rows of the training tiers are placed in the tables by the catalog's cells (reports/cells.json).
# `pcl check` also fails on a result file that lands in no table, or (outside tier `reported`)
# whose JSON sidecar, written beside it by the same job, is missing or lacks git/packages.


localrules:
    plan,
    speed_page,
    catalog_cells,
    tables,
    gains,
    verdict,
    figures,
    check,
    pages,
    timing,
    timing_page,


rule catalog_cells:
    # Which paper cells each catalog experiment feeds: read by `pcl tables` and `pcl check`
    # (pcl.report must not import pcl.train, so the mapping travels as a file).
    input:
        catalog=TRAINING["catalog"],
    output:
        CELLS,
    params:
        pcl=PCL,
    benchmark:
        "benchmarks/catalog_cells.tsv",
    log:
        "logs/catalog_cells.log",
    conda:
        ENV
    shell:
        "{params.pcl} catalog cells --catalog {input.catalog:q} --out {output:q} 2>&1 | tee {log:q}"


rule tables:
    # Table II also shows our +PCL gains with their intervals under each +PCL row (from rule gains).
    input:
        static=static_results(),
        discovered=result_inputs,
        cells=CELLS,
        gains="reports/tables/gains.csv",
    output:
        TABLE_FILES,
        TIER_TABLES,
        "reports/tables/audit_released_logs.md",
    params:
        pcl=PCL,
        out_dir=lambda w, output: str(Path(output[0]).parent),
        runs=RUN_ROOT,
    benchmark:
        "benchmarks/tables.tsv",
    log:
        "logs/tables.log",
    conda:
        ENV
    shell:
        "{params.pcl} tables --results {input.static:q} {input.discovered:q} --cells {input.cells:q} "
        "--out-dir {params.out_dir:q} --figures-dir reports/figures --runs-root {params.runs:q} "
        "--gains {input.gains:q} 2>&1 | tee {log:q}"


rule gains:
    # +PCL vs its comparison models, per image: bootstrap intervals, Wilcoxon, Holm; forest plot.
    input:
        static=static_results(),
        discovered=result_inputs,
    output:
        GAINS_FILES,
        forest=report(
            "reports/figures/gains/gains_forest_psnr.png",
            caption="../report/gains_forest.rst",
            category="Figures",
            subcategory="Gains",
        ),
        per_image=report(
            "reports/figures/gains/gains_per_image_psnr.png",
            caption="../report/gains_per_image.rst",
            category="Figures",
            subcategory="Gains",
        ),
    params:
        pcl=PCL,
        out_dir=lambda w, output: str(Path(output[0]).parent),
        figures=lambda w, output: str(Path(output.forest).parent),
    benchmark:
        "benchmarks/gains.tsv",
    log:
        "logs/gains.log",
    conda:
        ENV
    shell:
        "{params.pcl} gains --results {input.static:q} {input.discovered:q} --out-dir {params.out_dir:q} "
        "--figures-dir {params.figures:q} 2>&1 | tee {log:q}"


rule verdict:
    # One line per claim of config/claims.yaml, computed from the gains and the rows; then, under
    # their own heading, the study's two lines at miniature scale (from its table).
    input:
        static=static_results(),
        discovered=result_inputs,
        gains="reports/tables/gains.csv",
        cells=CELLS,
        claims="config/claims.yaml",
        study=STUDY_TABLES[0] if STUDY_ACTIVE else [],
    output:
        VERDICT,
    params:
        pcl=PCL,
        study=lambda w, input: ["--study", input.study] if input.study else [],
    benchmark:
        "benchmarks/verdict.tsv",
    log:
        "logs/verdict.log",
    conda:
        ENV
    shell:
        "{params.pcl} verdict --results {input.static:q} {input.discovered:q} --gains {input.gains:q} "
        "--cells {input.cells:q} --claims {input.claims:q} {params.study:q} --out {output:q} 2>&1 | tee {log:q}"


rule figures:
    # Fig. 2/3-style crops of the images in `figures:`, training curves, Table VII's alpha curve.
    input:
        static=static_results(),
        discovered=result_inputs,
        benchmarks=ancient(BENCHMARKS_JSON),
        real_models=list(REAL_MODELS.values()),
    output:
        report(
            directory("reports/figures/paper"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
            subcategory="{name}",
        ),
    params:
        pcl=PCL,
        images=figure_image_args(),
        tiers=FIGURE_TIERS or ["none"],
        curve_tiers=[t for t in PAPER_TRAIN_TIERS if t != "smoke"] or ["none"],
        crop=FIGURES["crop_size"],
        runs=RUN_ROOT,
        real=REAL_OPTION,
    benchmark:
        "benchmarks/figures.tsv",
    log:
        "logs/figures.log",
    conda:
        ENV
    shell:
        "{params.pcl} figures --results {input.static:q} {input.discovered:q} --runs-root {params.runs:q} "
        "{params.images:q} --benchmarks-json {input.benchmarks:q} "
        "--tiers {params.tiers:q} --curve-tiers {params.curve_tiers:q} --crop-size {params.crop:q} {params.real:q} "
        "--out-dir {output:q} 2>&1 | tee {log:q}"


rule check:
    # The study's rows (committed or trained) and its one-cell re-run are checked beside the rest.
    input:
        static=static_results(),
        discovered=result_inputs,
        study=STUDY_ROWS + STUDY_CHECK_ROWS,
        cells=CELLS,
        gains="reports/tables/gains.csv",
        verdict=VERDICT,
        claims="config/claims.yaml",
    output:
        "reports/check.txt",
    params:
        pcl=PCL,
        tolerances=config["check"]["tolerances"],
        deviations=config["check"]["deviations"],
    benchmark:
        "benchmarks/check.tsv",
    log:
        "logs/check.log",
    conda:
        ENV
    shell:
        "{params.pcl} check --results {input.static:q} {input.discovered:q} {input.study:q} --cells {input.cells:q} "
        "--tolerances {params.tolerances:q} --deviations {params.deviations:q} --gains {input.gains:q} "
        "--verdict {input.verdict:q} --claims {input.claims:q} --out {output:q} 2>&1 | tee {log:q}"


rule speed_page:
    # Every speed comparison `pcl bench all` measured (results/bench, committed with the machine,
    # the load and the versions of each row), as one page of the report.
    input:
        sorted(str(p) for p in Path("results/bench").glob("*.csv")),
    output:
        "reports/speed.md",
    params:
        pcl=PCL,
    benchmark:
        "benchmarks/speed_page.tsv"
    log:
        "logs/speed_page.log",
    conda:
        ENV
    shell:
        "{params.pcl} speed --bench-dir results/bench --out {output:q} 2>&1 | tee {log:q}"


rule plan:
    # What the cluster tiers will cost before they run (pcl plan): GPU-hours, runtime and memory per
    # job, the numbers `runtime: auto` / `mem_mb: auto` give each training job.
    input:
        configs=["config/finetune.yaml", "config/scratch.yaml"],
        catalog=TRAINING["catalog"],
    output:
        "reports/plan.md",
    params:
        pcl=PCL,
        parts=["reports/plan_finetune.part.md", "reports/plan_scratch.part.md"],
    benchmark:
        "benchmarks/plan.tsv",
    log:
        "logs/plan.log",
    conda:
        ENV
    shell:
        "({params.pcl} plan --configfile {input.configs[0]:q} --out {params.parts[0]:q} && "
        "{params.pcl} plan --configfile {input.configs[1]:q} --out {params.parts[1]:q} && "
        "(echo '# Cost plan of the cluster tiers'; echo; cat {params.parts:q}) > {output:q}; "
        "status=$?; rm -f {params.parts:q}; exit $status) > {log:q} 2>&1"


PAGES = {
    # page: (source, category, caption)
    **{f"table{n}": (f"reports/tables/table{n}.md", "Tables", "table") for n in (2, 3, 4, 5, 6, 7)},
    **{t: (f"reports/tables/{t}.md", "Tables", "tier_table") for t in PAPER_TRAIN_TIERS if t != "smoke"},
    "gains": ("reports/tables/gains.md", "Findings", "gains"),
    "verdict": (VERDICT, "Findings", "verdict"),
    "check": ("reports/check.txt", "Findings", "check"),
    "audit_released_logs": ("reports/tables/audit_released_logs.md", "Findings", "audit"),
    **({"study": (STUDY_TABLES[1], "Findings", "study")} if STUDY_ACTIVE else {}),
    "weights_status": (WEIGHTS_STATUS, "Status", "status"),
    "plan": ("reports/plan.md", "Status", "plan"),
    "speed": ("reports/speed.md", "Status", "speed"),
    **({"released_status": (RELEASED_STATUS, "Status", "status")} if "released" in TIERS else {}),
}


rule pages:
    # The Markdown / text outputs as HTML pages: what Snakemake's report shows.
    input:
        [src for src, _, _ in PAGES.values()],
    output:
        [
            report(f"reports/html/{name}.html", caption=f"../report/{caption}.rst", category=category, labels={"page": name})
            for name, (_, category, caption) in PAGES.items()
        ],
        # the report's first screen (workflow/report/workflow.rst includes it); written with verdict.md
        front="reports/html/front.html",
    params:
        pcl=PCL,
    benchmark:
        "benchmarks/pages.tsv",
    log:
        "logs/pages.log",
    conda:
        ENV
    shell:
        "{params.pcl} pages {input:q} --out-dir reports/html 2>&1 | tee {log:q}"


rule timing:
    # Wall time by rule and the slowest jobs of the latest run, from every job's benchmark file. Its
    # input is everything the default target asks for except this page's own HTML (rule timing_page,
    # not the shared rule pages, converts it), so it runs after every other job.
    input:
        lambda w: [str(f) for f in rules.all.input if str(f) != "reports/html/timing.html"],
    output:
        "reports/timing.md",
    params:
        pcl=PCL,
    benchmark:
        "benchmarks/timing.tsv",
    log:
        "logs/timing.log",
    conda:
        ENV
    shell:
        "{params.pcl} timing --benchmarks benchmarks --log-dir .snakemake/log --out {output:q} 2>&1 | tee {log:q}"


rule timing_page:
    input:
        "reports/timing.md",
    output:
        report("reports/html/timing.html", caption="../report/timing.rst", category="Status", labels={"page": "timing"}),
    params:
        pcl=PCL,
    benchmark:
        "benchmarks/timing_page.tsv",
    log:
        "logs/timing_page.log",
    conda:
        ENV
    shell:
        "{params.pcl} pages {input:q} --out-dir reports/html 2>&1 | tee {log:q}"
