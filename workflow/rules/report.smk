# Tables, audit, figures and the tolerance check, from the per-image rows of every tier run.


rule tables:
    input:
        result_inputs,
    output:
        TABLE_FILES,
        "reports/tables/audit_released_logs.md",
    params:
        pcl=PCL,
    log:
        "logs/tables.log",
    conda:
        ENV
    shell:
        "{params.pcl} tables --results {input} --out-dir reports/tables "
        "--figures-dir reports/figures 2>&1 | tee {log}"


rule check:
    input:
        result_inputs,
    output:
        "reports/check.txt",
    params:
        pcl=PCL,
        tolerances=config["check"]["tolerances"],
        deviations=config["check"]["deviations"],
    log:
        "logs/check.log",
    conda:
        ENV
    shell:
        "{params.pcl} check --results {input} --tolerances {params.tolerances} "
        "--deviations {params.deviations} --out {output} 2>&1 | tee {log}"
