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
