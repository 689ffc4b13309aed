# Tier `reported`: the authors' released per-image logs as result rows (protocol `authors`).


rule ingest_released_logs:
    input:
        logs=sorted(str(p) for p in Path(config["reference"]["logs_dir"]).glob("*.log")),
    output:
        directory("results/reported"),
    params:
        pcl=PCL,
        logs_dir=lambda w, input: str(Path(input.logs[0]).parent),
    benchmark:
        "benchmarks/ingest_released_logs.tsv",
    log:
        "logs/ingest_released_logs.log",
    conda:
        ENV
    shell:
        "{params.pcl} ingest-logs --logs-dir {params.logs_dir:q} --out-dir {output:q} 2>&1 | tee {log:q}"
