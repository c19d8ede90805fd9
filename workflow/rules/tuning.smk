# 3-4. Training and tuning: one job per cell (setting x method x regularization x repetition):
#      TPE stage 1, top-k x seeds stage 2, winner and its median-seed run (spec §8).


rule tune:
    input:
        data="results/data/{setting}.npz",
    output:
        winner="results/{setting}/{method}/{reg}/rep{rep}/winner.json",
        stage1="results/{setting}/{method}/{reg}/rep{rep}/stage1.csv",
        stage2="results/{setting}/{method}/{reg}/rep{rep}/stage2.csv",
    params:
        out=lambda wc, output: os.path.dirname(output.winner),
        flags=tune_flags(),
        device=config["tuning"].get("device", "auto"),
        backend=lambda wc: backend_of(wc.method),
        conf=CONF_DIGEST,
    threads: config["tuning"]["threads"]
    resources:
        gpu=lambda wc: 1 if uses_gpu(wc.method) else 0,
    conda:
        "../envs/deepstock.yaml"
    log:
        log_path("tune", "{setting}_{method}_{reg}_rep{rep}"),
    benchmark:
        timing_path("tune", "{setting}_{method}_{reg}_rep{rep}")
    shell:
        "deepstock tune {wildcards.setting} --method {wildcards.method} --reg {wildcards.reg} "
        "--repetition {wildcards.rep} --data {input.data} --out {params.out} "
        "--backend {params.backend} --device {params.device} --cpus {threads} {params.flags} "
        "> {log} 2>&1"


rule figure3_run:
    # Figure 3: DDPG on Setting 1 re-trained from the winner (its hyper-parameters, reported
    # seed and backend: --from-winner) with the critic log, which both DDPG backends write.
    input:
        data=f"results/data/{FIG3_SETTING}.npz",
        winner=figure3_winner,
    output:
        "results/figure3/{reg}/metrics.json",
    wildcard_constraints:
        reg="|".join(registry.PAPER_REGS),
    params:
        out=lambda wc, output: os.path.dirname(output[0]),
        cell=f"{FIG3_SETTING} --method {FIG3_METHOD}",
    conda:
        "../envs/deepstock.yaml"
    log:
        log_path("figure3_run", "{reg}"),
    benchmark:
        timing_path("figure3_run", "{reg}")
    shell:
        "deepstock train {params.cell} --reg {wildcards.reg} --from-winner {input.winner} "
        "--log-critic --device cpu --data {input.data} --out {params.out} > {log} 2>&1"
