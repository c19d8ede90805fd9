# 5b. Figures 1-4 (PNG and PDF).

FIGURES = ["figure1", "figure2", "figure3", "figure4"]
FIGURE_FILES = [f"figures/{f}.{ext}" for f in FIGURES for ext in ("png", "pdf")]


rule figures:
    input:
        summary="results/summary.csv",
        reported="paper/reported.yaml",
        fig3=expand("results/figure3/{reg}/metrics.json", reg=FIG3_REGS),
    output:
        [
            report(f, category="Figures", caption=f"../report/{os.path.basename(f)[:-4]}.rst")
            if f.endswith(".png") else f
            for f in FIGURE_FILES
        ],
    conda:
        "../envs/deepstock.yaml"
    log:
        log_path("figures", "figures"),
    benchmark:
        timing_path("figures", "figures")
    shell:
        "deepstock report figures --results results --summary {input.summary} "
        "--reported {input.reported} --out figures > {log} 2>&1"
