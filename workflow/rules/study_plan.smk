# What the study needs before its rules (workflow/rules/study.smk): its tiers, the committed or
# trained rows, the one-cell re-run's rows, and which study tiers start from mini's baseline.
# Functions and values only: Snakemake's lint keeps rules and functions apart.

STUDY_TIER = "study"
STUDY_CHECK_TIER = "study-check"
STUDY_CFG = config.get("study", {"committed": False})
STUDY_TRAINED = STUDY_TIER in TRAIN_TIERS
# The study needs the catalog (loaded when any training tier is configured) to name its runs.
STUDY_ACTIVE = CATALOG is not None and (STUDY_TRAINED or bool(STUDY_CFG.get("committed")))
STUDY_TABLES = expand("reports/tables/study.{ext}", ext=["csv", "md", "tex"])
STUDY_FIGURE = "reports/figures/study_share.png"


def study_rows():
    """The study's result files: made by `evaluate_trained` when the tier is trained, else the
    committed ones, each checked for its CSV and sidecar when the workflow is parsed (a missing one
    would otherwise surface as a rule with no producer)."""
    if STUDY_TRAINED:
        return trained_results([STUDY_TIER])
    runs = [r for n in CATALOG.tier_experiments(STUDY_TIER) for r in run_names(CATALOG, STUDY_TIER, n)]
    files = expand(
        "results/{tier}/{run}/{protocol}/{dataset}.csv",
        tier=STUDY_TIER,
        run=runs,
        protocol=STUDY_CFG["protocols"],
        dataset=STUDY_CFG["datasets"],
    )
    for name in files:
        for path in (Path(name), Path(name).with_suffix(".json")):
            if not path.is_file():
                raise ValueError(
                    f"config: study.committed is true but {path} is missing; restore the committed rows "
                    "(git checkout -- results/study), train them (snakemake --cores 2 --configfile config/study.yaml) "
                    "or set study: committed: false"
                )
    return files


STUDY_ROWS = study_rows() if STUDY_ACTIVE else []
# Rows of the one-cell re-run (tier study-check), compared by `pcl check` with STUDY_ROWS.
STUDY_CHECK_ROWS = trained_results([STUDY_CHECK_TIER]) if STUDY_CHECK_TIER in TRAIN_TIERS else []
# Targets of `all`.
STUDY_FILES = (STUDY_TABLES + [STUDY_FIGURE] if STUDY_ACTIVE else []) + STUDY_CHECK_ROWS


# Study tiers whose edsr-s-baseline resolves to mini's (every setting but the tier's name): they
# start from mini's run instead of training the same 3000 iterations again.
from pcl.train.config import resolve_config, run_identity


def _same_baseline_as_mini(tier):
    identity = lambda t: run_identity(
        {**resolve_config(CATALOG.get("edsr-s-baseline"), t), "tier": ""}, with_cadence=True
    )
    return identity(tier) == identity("mini")


STUDY_COPIES_MINI = (
    [t for t in (STUDY_TIER, STUDY_CHECK_TIER) if t in TRAIN_TIERS and _same_baseline_as_mini(t)]
    if "mini" in TRAIN_TIERS
    else []
)
