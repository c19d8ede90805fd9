# Shared helpers: which cells the configuration selects, and the expected output files.
import shlex

from deepstock import registry
from deepstock.hparams import conf_digest, get_scale
from deepstock.problem.settings import get_setting
from deepstock.workflow_axes import expand_settings

SCALE = get_scale(config["scale"])
# the packaged defaults, search spaces and budgets (src/deepstock/conf/*.yaml) as the tuning
# rules' parameter: a changed value there reruns the cells (Snakemake's params trigger)
CONF_DIGEST = conf_digest()
REPS = [int(r) for r in config.get("repetitions") or range(SCALE.repetitions)]
SETTINGS = expand_settings(config["settings"])


def cells():
    """(setting, method, reg, rep) tuples selected by the configuration."""
    out = []
    for sid in SETTINGS:
        iid = get_setting(sid).family == "iid"
        methods = config["s4_methods"] if iid else config["methods"]
        regs = config["s4_regs"] if iid else config["regs"]
        out += [(sid, m, r, rep) for m in methods for r in regs for rep in REPS]
    return out


CELLS = cells()
CELL_FILES = [f"results/{s}/{m}/{r}/rep{k}/winner.json" for s, m, r, k in CELLS]
BENCHMARK_FILES = [f"results/benchmarks/{s}.json" for s in SETTINGS]
DS_ON_TEST_FILES = (
    [f"results/benchmarks/ds_on_test/{s}/winner.json" for s in SETTINGS if s in ("s2", "s3")]
    if config["benchmarks"].get("ar1_ds_on_test", True)
    else []
)
FIG3_SETTING, FIG3_METHOD = registry.FIGURE3_SETTING, registry.FIGURE3_METHOD
FIG3_REGS = [r for r in registry.PAPER_REGS
             if FIG3_SETTING in SETTINGS and FIG3_METHOD in config["methods"]]


def tune_flags():
    t = config["tuning"]
    # a job Snakemake re-runs resumes its journals if they are of the same inputs, else restarts
    flags = [f"--scale {config['scale']}", f"--executor {t.get('executor', 'auto')}",
             f"--stage2-winner {t.get('stage2_winner', 'mean')}", "--quiet",
             "--restart-if-changed"]
    if t.get("retry_failed"):
        flags.append("--retry-failed")
    if t.get("max_concurrent"):
        flags.append(f"--max-concurrent {t['max_concurrent']}")
    if t.get("address"):
        flags.append(f"--address {shlex.quote(str(t['address']))}")
    return " ".join(flags)


def backend_of(method):
    """The method's training backend: config `backends`, else the registry's default."""
    return registry.get_method(method).backend(config["backends"].get(method)).name


def uses_gpu(method):
    """A tuning job asks Snakemake for a GPU when its configured backend runs on one (registry)
    and the trials are sent to CUDA."""
    backend = registry.get_method(method).backend(backend_of(method))
    return backend.gpu and config["tuning"].get("device", "auto") == "cuda"


def log_path(rule_name, name):
    return f"logs/{rule_name}/{name}.log"


def timing_path(rule_name, name):
    return f"logs/timing/{rule_name}/{name}.tsv"


def benchmark_flags(setting):
    """`deepstock benchmark` picks the family's exact π* (--method auto); the configured INDEP DP
    pmf is passed to INDEP settings only."""
    if get_setting(setting).family != "indep":
        return "--method auto"
    return f"--method auto --distribution {config['benchmarks']['indep_benchmark']}"


def figure3_winner(wildcards):
    """Figure 3 retrains each regularization's DDPG winner (or the Base winner for both)."""
    fig = config.get("figure3", {})
    reg = "base" if fig.get("config", "own") == "shared" else wildcards.reg
    rep = fig.get("repetition")
    return (f"results/{FIG3_SETTING}/{FIG3_METHOD}/{reg}/"
            f"rep{REPS[0] if rep is None else rep}/winner.json")


# Lost sales (`snakemake lostsales`, config `lost_sales`): its own cells, not in the default target.
LS = config.get("lost_sales") or {}
LS_SETTINGS = expand_settings(LS.get("settings") or [])
LS_CELL_FILES = [f"results/{s}/{m}/{r}/rep{k}/winner.json" for s in LS_SETTINGS
                 for m in LS.get("methods") or [] for r in LS.get("regs") or [] for k in REPS]
LS_BENCHMARK_FILES = [f"results/benchmarks/{s}.json" for s in LS_SETTINGS]
