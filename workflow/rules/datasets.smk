# 1. Datasets (spec §5): one .npz per setting, generated from a seed.


rule dataset:
    output:
        "results/data/{setting}.npz",
    params:
        opts=lambda wc: (
            f"--rng-mode {config['data']['rng_mode']} --data-seed {config['data']['data_seed']} "
            f"--s3-test {config['data']['s3_test']} "
            f"--indep-feature {config['data']['indep_feature']} "
            f"--iid-demand-days {config['data']['iid_demand_days']}"
        ),
    conda:
        "../envs/deepstock.yaml"
    log:
        log_path("dataset", "{setting}"),
    benchmark:
        timing_path("dataset", "{setting}")
    shell:
        "deepstock data {wildcards.setting} --out {output} {params.opts} > {log} 2>&1"
