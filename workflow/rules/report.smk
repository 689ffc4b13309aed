# Tables, audit, figures and the tolerance check, from the per-image rows of every tier run.
# Rows of the training tiers are placed in the tables by the catalog's cells (reports/cells.json).


rule catalog_cells:
    # Which paper cells each catalog experiment feeds: read by `pcl tables` and `pcl check`
    # (pcl.report must not import pcl.train, so the mapping travels as a file).
    input:
        catalog=TRAINING["catalog"],
    output:
        CELLS,
    params:
        pcl=PCL,
    log:
        "logs/catalog_cells.log",
    conda:
        ENV
    shell:
        "{params.pcl} catalog cells --catalog {input.catalog} --out {output} 2>&1 | tee {log}"


rule tables:
    input:
        static=static_results(),
        discovered=result_inputs,
        cells=CELLS,
    output:
        TABLE_FILES,
        "reports/tables/audit_released_logs.md",
    params:
        pcl=PCL,
        out_dir=lambda w, output: str(Path(output[0]).parent),
    log:
        "logs/tables.log",
    conda:
        ENV
    shell:
        "{params.pcl} tables --results {input.static} {input.discovered} --cells {input.cells} --out-dir {params.out_dir} "
        "--figures-dir reports/figures 2>&1 | tee {log}"


rule check:
    input:
        static=static_results(),
        discovered=result_inputs,
        cells=CELLS,
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
        "{params.pcl} check --results {input.static} {input.discovered} --cells {input.cells} --tolerances {params.tolerances} "
        "--deviations {params.deviations} --out {output} 2>&1 | tee {log}"
