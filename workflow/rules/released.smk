# Tier `released`: the authors' released checkpoints evaluated by the harness (protocol `authors`
# by default), one result file per (checkpoint present, protocol, benchmark present), plus a status
# report that lists every registered checkpoint and how to get the absent ones.


rule released_status:
    # In the DAG whenever tier `released` is configured; re-runs when a checkpoint file appears,
    # disappears or changes (the snapshot param).
    input:
        registry=RELEASED_CFG["checkpoints"],
    output:
        RELEASED_STATUS,
    params:
        pcl=PCL,
        snapshot=released_snapshot(),
    benchmark:
        "benchmarks/released_status.tsv",
    log:
        "logs/released_status.log",
    conda:
        ENV
    shell:
        "{params.pcl} checkpoints list --config {input.registry:q} --out {output:q} > {log:q} 2>&1"


rule evaluate_released:
    input:
        prepared=f"{DATA}/prepared/{{dataset}}/x{SCALE}/prepare.json",
        checkpoint=lambda w: str(RELEASED[w.experiment].path),
        benchmarks=ancient(BENCHMARKS_JSON),
    output:
        rows="results/released/{experiment}/{protocol}/{dataset}.csv",
        sidecar="results/released/{experiment}/{protocol}/{dataset}.json",
    wildcard_constraints:
        experiment="|".join(re.escape(e) for e in RELEASED) or "(?!x)x",
    params:
        pcl=PCL,
        scale=SCALE,
        hr=lambda w: available_benchmarks()[w.dataset],
        lr=lambda w, input: str(Path(input.prepared).parent / "LR"),
        model=lambda w: RELEASED[w.experiment].backbone,
        method=lambda w: RELEASED[w.experiment].method,
        options=RELEASED_OPTIONS,
        metrics=metrics_option("released"),
        save_sr=lambda w: save_sr_option("released", w.experiment, w.protocol, w.dataset),
    benchmark:
        "benchmarks/evaluate_released/{experiment}_{protocol}_{dataset}.tsv",
    log:
        "logs/evaluate_released/{experiment}_{protocol}_{dataset}.log",
    conda:
        ENV
    shell:
        "{params.pcl} evaluate --model {params.model:q} --checkpoint {input.checkpoint:q} --tier released "
        "--method {params.method:q} --experiment {wildcards.experiment:q} --hr-dir {params.hr:q} "
        "--lr-dir {params.lr:q} --dataset {wildcards.dataset:q} --scale {params.scale:q} "
        "--protocol {wildcards.protocol:q} {params.options:q} {params.metrics:q} {params.save_sr:q} "
        "--out {output.rows:q} 2>&1 | tee {log:q}"


rule weights_status:
    # Always in the DAG: which backbone weight files (AlexNet for LPIPS, VGG-19 for Table IV
    # config 1) are present and verified, and how to get the absent ones.
    output:
        WEIGHTS_STATUS,
    params:
        pcl=PCL,
        snapshot=weights_snapshot(),
    benchmark:
        "benchmarks/weights_status.tsv",
    log:
        "logs/weights_status.log",
    conda:
        ENV
    shell:
        "{params.pcl} weights list --out {output:q} > {log:q} 2>&1"
