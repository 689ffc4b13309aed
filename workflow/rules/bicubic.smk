# Tier `bicubic`: the paper's first row, from real images, under both protocols.


rule evaluate_bicubic:
    input:
        f"{DATA}/prepared/{{dataset}}/x{SCALE}/prepare.json",
        # the discovery result the `hr` param reads (ancient: re-discovery alone re-runs nothing)
        benchmarks=ancient(BENCHMARKS_JSON),
    output:
        rows="results/bicubic/bicubic/{protocol}/{dataset}.csv",
        sidecar="results/bicubic/bicubic/{protocol}/{dataset}.json",
    params:
        pcl=PCL,
        scale=SCALE,
        hr=lambda w: available_benchmarks()[w.dataset],
        lr=lambda w, input: str(Path(input[0]).parent / "LR"),
        metrics=metrics_option("bicubic"),
        save_sr=lambda w: save_sr_option("bicubic", "bicubic", w.protocol, w.dataset),
    benchmark:
        "benchmarks/evaluate_bicubic/{protocol}_{dataset}.tsv",
    log:
        "logs/evaluate_bicubic/{protocol}_{dataset}.log",
    conda:
        ENV
    shell:
        "{params.pcl} evaluate --model bicubic --tier bicubic --hr-dir {params.hr:q} "
        "--lr-dir {params.lr:q} --dataset {wildcards.dataset:q} --scale {params.scale:q} "
        "--protocol {wildcards.protocol:q} {params.metrics:q} {params.save_sr:q} --out {output.rows:q} "
        "2>&1 | tee {log:q}"
