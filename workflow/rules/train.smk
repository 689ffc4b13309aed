# Training tiers (smoke, mini, finetune, scratch, ...): train every selected catalog experiment, then evaluate it.
#
#   runs/<tier>/<experiment>/model.safetensors (+ model.json, result.json, checkpoints/, log.csv, tb/)
#     -> results/<tier>/<experiment>/<protocol>/<dataset>.csv (+ .json sidecar)
#
# Smoke jobs run on the CPU with one thread each; finetune/scratch jobs ask the cluster for a GPU
# (resource `gpu`, which snakemake-executor-plugin-slurm turns into --gpus=N; the plugin refuses
# --gres in slurm_extra), their time limit and memory from training.tiers.<tier>. A tier with
# `gpus` > 1 trains with DDP: `torchrun --standalone --nproc_per_node=<gpus>`, one process per GPU,
# each with threads/gpus torch threads and its own share of every batch. `pcl train` resumes from
# the run's last checkpoint (on SIGTERM, a time limit, it writes one first), so a job killed by its
# time limit continues when re-run (the SLURM profile retries; `snakemake --rerun-incomplete`
# resumes by hand); CPU runs are --deterministic, so the resumed weights are bitwise those of an
# uninterrupted run (docs/cluster.md). Editing an experiment in the catalog re-runs its job (param
# `identity`); the trainer then refuses to resume a checkpoint of the old settings and says so:
# delete runs/<tier>/<experiment> to start over.


rule download_div2k:
    # In the DAG only while DIV2K's training folders are absent (see train_inputs in common.smk):
    # downloads and installs DIV2K (HR + official bicubic LR x4); offline it fails naming the
    # archives to place by hand under <data_root>/downloads/.
    output:
        DIV2K_MARKER,
    params:
        pcl=PCL,
        root=lambda w, output: str(Path(output[0]).parents[1]),
    benchmark:
        "benchmarks/download_div2k.tsv",
    log:
        "logs/download_div2k.log",
    conda:
        ENV
    shell:
        "{params.pcl} download --dataset DIV2K --root {params.root:q} --json {output:q} 2>&1 | tee {log:q}"


rule train:
    input:
        unpack(train_inputs),
    output:
        model=f"{RUN_ROOT}/{{tier}}/{{experiment}}/model.safetensors",
        result=f"{RUN_ROOT}/{{tier}}/{{experiment}}/result.json",
    wildcard_constraints:
        tier="|".join(SINGLE_JOB_TIERS) or "(?!x)x",
        experiment="|".join(re.escape(e) for e in TRAINABLE) or "(?!x)x",
    params:
        run_dir=lambda w, output: str(Path(output.model).parent),
        device=lambda w: tier_setting(w.tier, "device"),
        cache=TRAINING["data_cache"],
        catalog=TRAINING["catalog"],
        # the experiment's resolved settings (hashed): editing the catalog re-runs only what it changes
        identity=train_identity,
        # `python -m pcl`, or torchrun with one process per GPU when the tier asks for several
        launch=lambda w, resources: (
            PCL
            if resources.gpu <= 1
            else PCL.rpartition("python -m pcl")[0]
            + f"torchrun --standalone --nproc_per_node={resources.gpu} -m pcl"
        ),
        process_threads=lambda w, threads, resources: max(1, threads // max(1, resources.gpu)),
        deterministic=lambda w: ["--deterministic"] if tier_setting(w.tier, "device") == "cpu" else [],
    threads: lambda w: tier_setting(w.tier, "threads")
    resources:
        gpu=lambda w: tier_setting(w.tier, "gpus"),
        runtime=lambda w: tier_setting(w.tier, "runtime", w.experiment),
        mem_mb=lambda w: tier_setting(w.tier, "mem_mb", w.experiment),
    benchmark:
        "benchmarks/train/{tier}/{experiment}.tsv",
    log:
        "logs/train/{tier}/{experiment}.log",
    conda:
        ENV
    # On SIGTERM (a time limit: SLURM signals every process of the job) the shell waits for the
    # trainer to write its checkpoint instead of dying first, and tee keeps logging until the end.
    shell:
        "trap 'echo \"train: SIGTERM, waiting for the trainer to checkpoint\" >&2' TERM; "
        "echo \"train on $(hostname): CUDA_VISIBLE_DEVICES=${{CUDA_VISIBLE_DEVICES-}} "
        "SLURM_JOB_ID=${{SLURM_JOB_ID-}}\" > {log:q}; "
        "{params.launch} train --experiment {wildcards.experiment:q} --tier {wildcards.tier:q} "
        "--run-dir {params.run_dir:q} --catalog {params.catalog:q} --device {params.device:q} "
        "{params.deterministic:q} --threads {params.process_threads:q} --data-cache {params.cache:q} --no-progress "
        "2>&1 | (trap '' TERM; exec tee -a {log:q})"


rule evaluate_trained:
    input:
        prepared=f"{DATA}/prepared/{{dataset}}/x{SCALE}/prepare.json",
        model=f"{RUN_ROOT}/{{tier}}/{{experiment}}/model.safetensors",
        benchmarks=ancient(BENCHMARKS_JSON),
    output:
        rows="results/{tier}/{experiment}/{protocol}/{dataset}.csv",
        sidecar="results/{tier}/{experiment}/{protocol}/{dataset}.json",
    wildcard_constraints:
        tier="|".join(SINGLE_JOB_TIERS) or "(?!x)x",
        experiment="|".join(re.escape(e) for e in EVALUATED) or "(?!x)x",
    params:
        pcl=PCL,
        scale=SCALE,
        hr=lambda w: benchmark_hr(w.dataset),
        lr=lambda w, input: str(Path(input.prepared).parent / "LR"),
        method=lambda w: run_of(CATALOG, w.tier, w.experiment)[0].method,
        experiment=lambda w: evaluated_as(w.tier, w.experiment),
        device=lambda w: tier_setting(w.tier, "device"),
        metrics=lambda w: metrics_option(w.tier),
        save_sr=lambda w: save_sr_option(w.tier, w.experiment, w.protocol, w.dataset),
    threads: lambda w: tier_setting(w.tier, "threads")
    resources:
        gpu=lambda w: min(1, tier_setting(w.tier, "gpus")),  # one process: one GPU at most
    benchmark:
        "benchmarks/evaluate_trained/{tier}/{experiment}_{protocol}_{dataset}.tsv",
    log:
        "logs/evaluate_trained/{tier}/{experiment}_{protocol}_{dataset}.log",
    conda:
        ENV
    shell:
        "{params.pcl} evaluate --model auto --checkpoint {input.model:q} --tier {wildcards.tier:q} "
        "--method {params.method:q} {params.experiment:q} --hr-dir {params.hr:q} "
        "--lr-dir {params.lr:q} --dataset {wildcards.dataset:q} --scale {params.scale:q} "
        "--protocol {wildcards.protocol:q} --device {params.device:q} {params.metrics:q} {params.save_sr:q} "
        "--out {output.rows:q} 2>&1 | tee {log:q}"
