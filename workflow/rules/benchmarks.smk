# 2. Benchmarks pi* (spec §6): exact DP (INDEP), critical fractile (IID), exact AR(1) DP, and our
#    stand-in for the paper's AR(1) approximation ("DS trained on the testing dataset"): DS-Base
#    tuned on the test set (Base, the tuning protocol and the seed are our choices).


rule benchmark:
    input:
        data="results/data/{setting}.npz",
    output:
        "results/benchmarks/{setting}.json",
    params:
        flags=lambda wc: benchmark_flags(wc.setting),
        z=config["benchmarks"]["iid_z"],
        delta=config["benchmarks"]["ar1_dp_delta"],
    conda:
        "../envs/deepstock.yaml"
    log:
        log_path("benchmark", "{setting}"),
    benchmark:
        timing_path("benchmark", "{setting}")
    shell:
        "deepstock benchmark {wildcards.setting} --data {input.data} --out {output} "
        "{params.flags} --iid-z {params.z} --delta {params.delta} > {log} 2>&1"


rule ar1_ds_on_test:
    input:
        data="results/data/{setting}.npz",
    output:
        "results/benchmarks/ds_on_test/{setting}/winner.json",
    wildcard_constraints:
        setting="s2|s3",
    params:
        out=lambda wc, output: os.path.dirname(output[0]),
        flags=tune_flags(),
        device=config["tuning"]["device"],
        backend=backend_of("ds"),
        conf=CONF_DIGEST,
    threads: config["tuning"]["threads"]
    resources:
        gpu=1 if uses_gpu("ds") else 0,
    conda:
        "../envs/deepstock.yaml"
    log:
        log_path("ar1_ds_on_test", "{setting}"),
    benchmark:
        timing_path("ar1_ds_on_test", "{setting}")
    shell:
        "deepstock tune {wildcards.setting} --method ds --reg base --repetition 0 --fit-on test "
        "--data {input.data} --out {params.out} --backend {params.backend} "
        "--device {params.device} --cpus {threads} {params.flags} > {log} 2>&1"
