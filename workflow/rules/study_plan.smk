# What the study needs before its rules (workflow/rules/study.smk): its tiers, the committed or
# trained rows, the one-cell re-run's rows, and where each study tier's baseline comes from.
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


# Where a study tier's edsr-s-baseline comes from, first match:
#   1. the committed weights of `study: baseline:` (resources/study_baseline, hash-checked by
#      `pcl install-run`) when the tier's baseline has the identity they were trained under;
#   2. mini's run when the tier's baseline resolves to mini's (every setting but the tier's name);
#   3. otherwise the tier trains it, like any run.
from pcl.train.config import resolve_config, run_identity
from pcl.train.pinned import read_pin


def _baseline_identity(tier):
    return run_identity({**resolve_config(CATALOG.get("edsr-s-baseline"), tier), "tier": ""}, with_cadence=True)


def _study_tiers():
    return [t for t in (STUDY_TIER, STUDY_CHECK_TIER) if t in TRAIN_TIERS]


STUDY_BASELINE_DIR = STUDY_CFG.get("baseline") if CATALOG is not None else None
STUDY_PIN = read_pin(Path(STUDY_BASELINE_DIR)) if STUDY_BASELINE_DIR and _study_tiers() else None
STUDY_FROM_COMMITTED = (
    [t for t in _study_tiers() if _baseline_identity(t) == STUDY_PIN["identity"]] if STUDY_PIN else []
)
STUDY_COPIES_MINI = (
    [t for t in _study_tiers() if t not in STUDY_FROM_COMMITTED and _baseline_identity(t) == _baseline_identity("mini")]
    if "mini" in TRAIN_TIERS
    else []
)
