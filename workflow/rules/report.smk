# 5c. The replication report: paper/replication.py (jupytext) executed into HTML and Markdown.

REPORT_FILES = (
    ["results/report/replication.html", "results/report/replication.md"]
    if config.get("report", {}).get("execute", True)
    else []
)


rule replication_report:
    input:
        "paper/replication.py",
        "results/summary.csv",
        TABLE_FILES,
        FIGURE_FILES,
    output:
        html=report("results/report/replication.html", category="Report",
                    caption="../report/replication.rst"),
        md="results/report/replication.md",
    conda:
        "../envs/deepstock.yaml"
    log:
        log_path("replication_report", "report"),
    benchmark:
        timing_path("replication_report", "report")
    shell:
        "deepstock report notebook --source paper/replication.py --out results/report "
        "--results results > {log} 2>&1"
