# Data: discover (and optionally download) benchmarks, then verify and prepare each one.


checkpoint discover_benchmarks:
    output:
        f"{DATA}/benchmarks.json",
    params:
        pcl=PCL,
        root=lambda w, output: str(Path(output[0]).parent),
        names=" ".join(config["benchmarks"]),
        shipped=" ".join(f"{k}={v}" for k, v in config["shipped_benchmarks"].items()),
        download="--download" if config["download"]["enabled"] else "",
        present=present_benchmarks_at_parse(),
    log:
        "logs/discover_benchmarks.log",
    conda:
        ENV
    shell:
        "{params.pcl} datasets --root {params.root} --names {params.names} "
        "--shipped {params.shipped} {params.download} --json {output} 2>&1 | tee {log}"


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
    log:
        f"logs/prepare/{{dataset}}_x{SCALE}.log",
    conda:
        ENV
    shell:
        "{params.pcl} prepare --dataset {wildcards.dataset} --hr-dir {params.hr} "
        "--out-dir {params.out} --scale {params.scale} 2>&1 | tee {log}"
