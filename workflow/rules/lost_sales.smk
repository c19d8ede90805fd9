# 6. Lost sales with lead times (Zipkin 2008): `snakemake lostsales`. The cells are tuned by the
#    `tune` rule like every other cell; the summary is the usual one, written beside the default
#    run's so that neither target rewrites the other's file.

LS_TABLE_FILES = [f"results/tables/lost_sales{x}" for x in (".csv", ".md", "_takeaways.md")]
LS_FIGURE_FILES = [f"figures/lost_sales.{ext}" for ext in ("png", "pdf")]


rule lost_sales_summary:
    input:
        LS_CELL_FILES,
        LS_BENCHMARK_FILES,
    output:
        summary="results/lost-sales/summary.csv",
        benchmarks="results/lost-sales/benchmarks.csv",
    conda:
        "../envs/deepstock.yaml"
    log:
        log_path("lost_sales_summary", "summary"),
    benchmark:
        timing_path("lost_sales_summary", "summary")
    shell:
        "deepstock report summary --results results --out {output.summary} > {log} 2>&1"


rule lost_sales_report:
    input:
        summary="results/lost-sales/summary.csv",
        literature="paper/literature/zipkin2008.yaml",
    output:
        LS_TABLE_FILES,
        LS_FIGURE_FILES,
    conda:
        "../envs/deepstock.yaml"
    log:
        log_path("lost_sales_report", "report"),
    benchmark:
        timing_path("lost_sales_report", "report")
    shell:
        "deepstock report lostsales --results results --summary {input.summary} "
        "--literature {input.literature} --tables-out results/tables --figures-out figures "
        "> {log} 2>&1"


rule lostsales:
    input:
        LS_TABLE_FILES,
        LS_FIGURE_FILES,
