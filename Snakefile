# PCL-SR reproduction pipeline.  `snakemake --report reports/report.html` (make report) then
# gathers every table page, figure and finding into one HTML file.
#
#   sources -> verified benchmark folders -> prepared LR images -> per-image result rows
#           -> Tables (md/tex/csv) beside the paper, audit, figures -> `pcl check`
#   experiment catalog -> training runs (runs/<tier>/<experiment>) -> per-image result rows
#
# Rules are thin: each calls one `pcl` command. Local runs and CI use the active virtual
# environment (`make reproduce`); on a cluster add `--use-conda --profile workflow/profiles/slurm`.

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.json")


# The report's first screen: what was reproduced and the verdict per claim (reports/html/front.html).
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/reported.smk"
include: "workflow/rules/bicubic.smk"
include: "workflow/rules/released.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/groups_plan.smk"
include: "workflow/rules/groups.smk"
include: "workflow/rules/study_plan.smk"
include: "workflow/rules/study.smk"
include: "workflow/rules/report.smk"


# Light rules run where snakemake runs (never sent to a GPU node); the heavy ones (train, evaluate,
# prepare) go to the cluster. The report rules declare their own in report.smk.
localrules:
    discover_benchmarks,
    ingest_released_logs,
    released_status,
    weights_status,
    download_div2k,


rule all:
    input:
        TABLE_FILES,
        TIER_TABLES,
        GAINS_FILES,
        VERDICT,
        "reports/figures/paper",
        [f"reports/html/{name}.html" for name in PAGES],
        "reports/html/timing.html",  # last: rule timing waits for every other target
        "reports/check.txt",
        DIV2K_CHECK,
        [RELEASED_STATUS] if "released" in TIERS else [],
        WEIGHTS_STATUS,
        STUDY_FILES,
    default_target: True
