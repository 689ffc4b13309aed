# PCL-SR reproduction pipeline.
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


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/reported.smk"
include: "workflow/rules/bicubic.smk"
include: "workflow/rules/released.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        TABLE_FILES,
        "reports/check.txt",
        DIV2K_CHECK,
        [RELEASED_STATUS] if "released" in TIERS else [],
        WEIGHTS_STATUS,
    default_target: True
