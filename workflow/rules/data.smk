# Data: discover (and optionally download) benchmarks, then verify and prepare each one.


checkpoint discover_benchmarks:
    output:
        BENCHMARKS_JSON,
    params:
        pcl=PCL,
        root=lambda w, output: str(Path(output[0]).parent),
        names=list(config["benchmarks"]),
        shipped=[f"{k}={v}" for k, v in config["shipped_benchmarks"].items()],
        download=["--download"] if config["download"]["enabled"] else [],
        present=present_benchmarks_at_parse(),
    benchmark:
        "benchmarks/discover_benchmarks.tsv",
    log:
        "logs/discover_benchmarks.log",
    conda:
        ENV
    shell:
        "{params.pcl} datasets --root {params.root:q} --names {params.names:q} "
        "--shipped {params.shipped:q} {params.download:q} --json {output:q} 2>&1 | tee {log:q}"


rule prepare_benchmark:
    input:
        hr_images,
    output:
        f"{DATA}/prepared/{{dataset}}/x{SCALE}/prepare.json",
    params:
        pcl=PCL,
        scale=SCALE,
        hr=lambda w: available_benchmarks()[w.dataset],
        out=lambda w, output: str(Path(output[0]).parent),
    benchmark:
        f"benchmarks/prepare_benchmark/{{dataset}}_x{SCALE}.tsv",
    log:
        f"logs/prepare/{{dataset}}_x{SCALE}.log",
    conda:
        ENV
    shell:
        "{params.pcl} prepare --dataset {wildcards.dataset:q} --hr-dir {params.hr:q} "
        "--out-dir {params.out:q} --scale {params.scale:q} 2>&1 | tee {log:q}"


rule div2k_lr_check:
    # Only in the DAG when DIV2K HR and official LR x4 are present (see common.smk): our MATLAB
    # bicubic against the official MATLAB-made LR, the only MATLAB ground truth available offline.
    output:
        f"{DATA}/prepared/DIV2K/x{SCALE}/lr_comparison.json",
    params:
        pcl=PCL,
        scale=SCALE,
        hr=str(DIV2K_HR),
        lr=str(DIV2K_LR),
        out=lambda w, output: str(Path(output[0]).parent),
    benchmark:
        f"benchmarks/div2k_lr_check/DIV2K_x{SCALE}.tsv",
    log:
        f"logs/prepare/DIV2K_lr_check_x{SCALE}.log",
    conda:
        ENV
    shell:
        "{params.pcl} prepare --dataset DIV2K --hr-dir {params.hr:q} --compare-lr {params.lr:q} "
        "--scale {params.scale:q} --out-dir {params.out:q} 2>&1 | tee {log:q}"
