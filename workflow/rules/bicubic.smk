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
    log:
        "logs/evaluate_bicubic/{protocol}_{dataset}.log",
    conda:
        ENV
    shell:
        "{params.pcl} evaluate --model bicubic --tier bicubic --hr-dir {params.hr} "
        "--lr-dir {params.lr} --dataset {wildcards.dataset} --scale {params.scale} "
        "--protocol {wildcards.protocol} {params.metrics} {params.save_sr} --out {output.rows} 2>&1 | tee {log}"
