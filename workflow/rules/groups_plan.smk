# The groups of a grouped training tier and the command lines of each (workflow/rules/groups.smk
# turns them into one job per group). Functions only: Snakemake's lint keeps rules and functions apart.


def _group_runs(tier):
    """The tier's training runs in catalog dependency order, cut into groups of `group` runs."""
    size = int(TRAINING["tiers"][tier]["group"])
    runs = [r for n in CATALOG.order(tier, TRAINED[tier]) for r in run_names(CATALOG, tier, n)]
    return [runs[i : i + size] for i in range(0, len(runs), size)]


GROUPS = {
    (tier, k): members
    for tier in GROUPED_TIERS
    for k, members in enumerate(_group_runs(tier), 1)
}


def _wc(tier, run):
    """A wildcards stand-in for the per-run helpers of common.smk (train_inputs, train_identity)."""
    from types import SimpleNamespace

    return SimpleNamespace(tier=tier, experiment=run)


def _group_inputs(tier, members):
    """Training inputs of every member (runs inside the group left out), the prepared benchmarks."""
    inputs = {}
    own = {run_file(tier, r) for r in members}
    for run in members:
        for key, value in train_inputs(_wc(tier, run)).items():
            values = value if isinstance(value, list) else [value]
            inputs.setdefault(key if key == "images" else "runs", set()).update(v for v in values if v not in own)
    sets = tier_setting(tier, "datasets")
    return {
        **{k: sorted(v) for k, v in inputs.items()},
        "prepared": [f"{DATA}/prepared/{d}/x{SCALE}/prepare.json" for d in sets],
        "benchmarks": ancient(BENCHMARKS_JSON),
    }


def _evaluated(tier, members):
    """(run, protocol, dataset) of every evaluation of the group's runs."""
    runs = [r for r in members if r in TRAINED_RUNS[tier]]
    return [(r, p, d) for r in runs for p in tier_setting(tier, "protocols") for d in tier_setting(tier, "datasets")]


def _group_outputs(tier, members):
    rows = [f"results/{tier}/{r}/{p}/{d}.csv" for r, p, d in _evaluated(tier, members)]
    return (
        [run_file(tier, r) for r in members]
        + [run_file(tier, r, "result.json") for r in members]
        + rows
        + [row[: -len(".csv")] + ".json" for row in rows]
    )


def _train_argv(tier, run):
    """The command line that the `train` job of one run would run (one process, so no torchrun)."""
    device = tier_setting(tier, "device")
    return [
        "train", "--experiment", run, "--tier", tier, "--run-dir", str(Path(run_file(tier, run)).parent),
        "--catalog", TRAINING["catalog"], "--device", device,
        *(["--deterministic"] if device == "cpu" else []),
        "--threads", str(tier_setting(tier, "threads")), "--data-cache", TRAINING["data_cache"], "--no-progress",
    ]


def _evaluate_argv(tier, run, protocol, dataset):
    """The command line of rule `evaluate_trained` for one result file."""
    return [
        "evaluate", "--model", "auto", "--checkpoint", run_file(tier, run), "--tier", tier,
        "--method", run_of(CATALOG, tier, run)[0].method, *evaluated_as(tier, run),
        "--hr-dir", benchmark_hr(dataset), "--lr-dir", f"{DATA}/prepared/{dataset}/x{SCALE}/LR",
        "--dataset", dataset, "--scale", str(SCALE), "--protocol", protocol, "--device", tier_setting(tier, "device"),
        *metrics_option(tier), *save_sr_option(tier, run, protocol, dataset),
        "--out", f"results/{tier}/{run}/{protocol}/{dataset}.csv",
    ]


def group_commands(tier, members):
    """JSON of the group's command lines: every training, then every evaluation (run at job time,
    after benchmark discovery, which names the HR folders)."""
    trains = [_train_argv(tier, r) for r in members]
    return json.dumps(trains + [_evaluate_argv(tier, *e) for e in _evaluated(tier, members)])
