# 5a. Summary and Tables 6-9 (CSV, Markdown, LaTeX) with the paper's values beside ours.
# The summary rule depends on the selected cells, and its command collects every finished cell
# under results/, so a subset rerun (e.g. --config settings=[s2]) keeps the other settings.

TABLES = ["table6", "table7", "table8", "table9"]
TABLE_FILES = [f"results/tables/{t}.{ext}" for t in TABLES for ext in ("csv", "md", "tex")] + [
    "results/tables/comparison.csv"
]


rule summary:
    input:
        CELL_FILES,
        BENCHMARK_FILES,
        DS_ON_TEST_FILES,
    output:
        summary="results/summary.csv",
        benchmarks="results/benchmarks.csv",
    params:
        ref=config["benchmarks"]["ar1_gap_reference"],
    conda:
        "../envs/deepstock.yaml"
    log:
        log_path("summary", "summary"),
    benchmark:
        timing_path("summary", "summary")
    shell:
        "deepstock report summary --results results --out {output.summary} "
        "--ar1-gap-reference {params.ref} > {log} 2>&1"


rule tables:
    input:
        summary="results/summary.csv",
        reported="paper/reported.yaml",
    output:
        [
            report(f, category="Tables", caption="../report/tables.rst")
            if f.endswith(".md") else f
            for f in TABLE_FILES
        ],
    conda:
        "../envs/deepstock.yaml"
    log:
        log_path("tables", "tables"),
    benchmark:
        timing_path("tables", "tables")
    shell:
        "deepstock report tables --summary {input.summary} --reported {input.reported} "
        "--out results/tables > {log} 2>&1"
