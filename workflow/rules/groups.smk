# Grouped small jobs: a training tier with `group: N` in training.tiers.<tier> (the smoke tier) is
# trained and evaluated N runs per job, each job one process (`pcl batch`) that runs the very
# `pcl train` and `pcl evaluate` command lines rules `train` and `evaluate_trained` would run, in
# dependency order, writing the same files. A smoke job is seconds of work behind seconds of Python
# and torch start-up; sharing the start-up is most of the tier's time (docs/method_choices.md §9).
# Tiers without `group` (mini, study, finetune, scratch) keep one job per run and per evaluation.
#
#   runs of the group (catalog dependency order, N at a time)
#     -> runs/<tier>/<run>/model.safetensors, result.json        (as rule train)
#     -> results/<tier>/<run>/<protocol>/<dataset>.csv, .json    (as rule evaluate_trained)
#
# A run that starts from another group's run (edsr-s-pcl-fixed uses edsr-l-pcl's embedding) lists
# that run's model among the group's inputs, so Snakemake orders the groups; groups follow the
# dependency order, so they never wait on each other in a circle.


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
    """The command line of rule `train` for one run (one process: no torchrun)."""
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


for (_tier, _k), _members in GROUPS.items():

    rule:
        name:
            f"group_{_tier}_{_k}"
        input:
            **_group_inputs(_tier, _members),
        output:
            _group_outputs(_tier, _members),
        params:
            pcl=PCL,
            commands=lambda w, _t=_tier, _m=_members: group_commands(_t, _m),
            # each run's resolved settings (hashed, as rule train): editing the catalog re-runs the group
            identity=[train_identity(_wc(_tier, r)) for r in _members],
        threads: tier_setting(_tier, "threads")
        resources:
            gpu=min(1, tier_setting(_tier, "gpus")),
            runtime=tier_setting(_tier, "runtime"),
            mem_mb=tier_setting(_tier, "mem_mb"),
        benchmark:
            f"benchmarks/group/{_tier}_{_k}.tsv"
        log:
            f"logs/group/{_tier}_{_k}.log",
        conda:
            ENV
        shell:
            "{params.pcl} batch --commands {params.commands:q} 2>&1 | tee {log:q}"
