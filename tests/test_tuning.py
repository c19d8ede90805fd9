"""Two-stage tuning: winner rules, resume after a kill, fault tolerance, executors agree, and
the training backend as one of the cell's inputs (fingerprint, trials, winner.json, summary)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from deepstock.cli import main
from deepstock.journal import describe_change
from deepstock.problem.generators import generate_dataset
from deepstock.tuning import (
    TuneOptions,
    config_seed,
    median_seed_row,
    pick_winner,
    plan_cell,
    tune_cell,
)


@pytest.fixture(scope="module")
def s1_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "s1.npz"
    generate_dataset("s1").save(path)
    return path


def _s2(rows):
    return pd.DataFrame(
        [
            {"config_index": c, "stage1_trial": c + 1, "config": json.dumps({"lr": c}),
             "seed": s, "val_loss": v, "status": "ok" if math.isfinite(v) else "failed"}
            for c, s, v in rows
        ]
    )


def test_config_seed_is_md5_of_canonical_json():
    import hashlib

    cfg = {"b": 2, "a": 0.5}
    text = '{"a":0.5,"b":2}'
    assert config_seed(cfg) == int(hashlib.md5(text.encode()).hexdigest()[:8], 16) % 10_000
    assert config_seed({"a": 0.5, "b": 2}) == config_seed({"b": 2, "a": 0.5})
    assert 0 <= config_seed(cfg) < 10_000


def test_median_seed_is_index_floor_n_over_2_of_sorted_vals():
    runs = _s2([(0, 42, 3.0), (0, 43, 1.0), (0, 44, 2.0), (0, 45, 5.0), (0, 46, 4.0)])
    assert median_seed_row(runs)["seed"] == 42  # sorted vals 1,2,3,4,5 -> index 2 -> 3.0
    runs4 = _s2([(0, 42, 3.0), (0, 43, 1.0), (0, 44, 2.0), (0, 45, 5.0)])
    assert median_seed_row(runs4)["seed"] == 42  # 1,2,3,5 -> index 2 -> 3.0


def test_winner_is_lowest_mean_and_failures_are_excluded():
    s2 = _s2([
        (0, 42, 1.0), (0, 43, 9.0),          # mean 5.0, median 5.0
        (1, 42, 4.0), (1, 43, 4.5),          # mean 4.25
        (2, 42, 0.5), (2, 43, float("inf")),  # one failure: mean of successes 0.5
    ])
    idx, summaries = pick_winner(s2, "mean")
    assert idx == 2
    assert summaries[2]["n_failed"] == 1 and summaries[2]["val_losses"] == [0.5]
    s2b = _s2([(0, 42, 1.0), (0, 43, 2.0), (0, 44, 30.0), (1, 42, 3.0), (1, 43, 3.0), (1, 44, 3.0)])
    assert pick_winner(s2b, "mean")[0] == 1  # means 11 vs 3
    assert pick_winner(s2b, "median")[0] == 0  # medians 2 vs 3


def test_tiny_cell_outputs_and_determinism(s1_path, tmp_path):
    opts = TuneOptions(scale="tiny", executor="local", quiet=True, num_samples=3)
    w1 = tune_cell("s1", "ds", "base", s1_path, tmp_path / "a", opts)
    w2 = tune_cell("s1", "ds", "base", s1_path, tmp_path / "b", opts)
    for name in ("stage1.csv", "stage2.csv", "winner.json", "final/metrics.json", "final/curve.csv"):
        assert (tmp_path / "a" / name).is_file(), name
    s1a = pd.read_csv(tmp_path / "a" / "stage1.csv")
    s1b = pd.read_csv(tmp_path / "b" / "stage1.csv")
    assert list(s1a["trial"]) == [1, 2, 3]
    assert list(s1a["config"]) == list(s1b["config"])
    assert list(s1a["val_loss"]) == list(s1b["val_loss"])
    assert (s1a["best_so_far"].diff().fillna(0) <= 0).all()
    assert w1["test_loss"] == w2["test_loss"]
    final = json.loads((tmp_path / "a" / "final" / "metrics.json").read_text())
    assert final["seed"] == w1["reported_seed"]
    assert final["test_loss"] == pytest.approx(w1["test_loss"])
    # a different repetition seeds TPE differently
    w3 = tune_cell("s1", "ds", "base", s1_path, tmp_path / "c",
                   TuneOptions(scale="tiny", executor="local", quiet=True, num_samples=3, repetition=1))
    s1c = pd.read_csv(tmp_path / "c" / "stage1.csv")
    assert list(s1c["config"]) != list(s1a["config"])
    assert w3["repetition"] == 1


def test_failed_trial_is_recorded_and_cell_completes(s1_path, tmp_path, failing_trials):
    failing_trials("first_nan")
    w = tune_cell("s1", "ds", "base", s1_path, tmp_path,
                  TuneOptions(scale="tiny", executor="local", quiet=True, num_samples=3))
    s1 = pd.read_csv(tmp_path / "stage1.csv")
    assert list(s1["status"]) == ["failed", "ok", "ok"]
    assert "NaN" in s1["error"].iloc[0]
    assert w["stage1_failed"] == 1 and math.isfinite(w["val_loss"])


def test_all_trials_failing_exits_nonzero_with_message(s1_path, tmp_path, capsys,
                                                      failing_trials):
    failing_trials("all")
    rc = main(["tune", "s1", "--method", "ds", "--reg", "base", "--scale", "tiny", "--executor",
               "local", "--data", str(s1_path), "--out", str(tmp_path), "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "all 2 stage-1 trials failed" in err and "injected" in err


def test_bad_config_fails_before_compute(s1_path, tmp_path, capsys):
    space = tmp_path / "space.yaml"
    space.write_text("ds:\n  '*':\n    learning_rte: {loguniform: [0.001, 0.1]}\n")
    rc = main(["tune", "s1", "--method", "ds", "--reg", "base", "--scale", "tiny", "--data",
               str(s1_path), "--out", str(tmp_path / "o"), "--space", str(space)])
    assert rc == 2
    assert "learning_rte" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


_DIE_AFTER_TWO_ROWS = """
import os, signal, sys
from deepstock import journal
from deepstock.cli import main
append, rows = journal.Journal.append, []
def append_then_die(self, row):  # kill -9 right after the second trial is journaled
    append(self, row)
    rows.append(row)
    if len(rows) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
journal.Journal.append = append_then_die
sys.exit(main(sys.argv[1:]))
"""


def test_resume_after_kill_does_not_rerun_finished_trials(s1_path, tmp_path):
    out = tmp_path / "cell"
    args = ["tune", "s1", "--method", "ds", "--reg", "base", "--scale", "tiny", "--executor",
            "local", "--num-samples", "6", "--data", str(s1_path), "--out", str(out), "--quiet"]
    cmd = [sys.executable, "-m", "deepstock.cli", *args]
    killed = subprocess.run([sys.executable, "-c", _DIE_AFTER_TWO_ROWS, *args],
                            capture_output=True)
    assert killed.returncode == -signal.SIGKILL
    journal = out / "stage1.jsonl"
    before = [json.loads(x) for x in journal.read_text().splitlines()[1:]]
    assert len(before) == 2, "the kill lands after the second trial"
    assert not (out / "winner.json").exists()
    rc = subprocess.run(cmd, capture_output=True, env={**os.environ}).returncode
    assert rc == 0
    after = [json.loads(x) for x in journal.read_text().splitlines()[1:]]
    assert [r["trial"] for r in after] == list(range(1, 7))
    assert after[: len(before)] == before  # finished trials kept, not re-run
    assert (out / "winner.json").is_file()


@pytest.mark.slow
def test_both_executors_ask_the_same_configurations_for_the_same_batch(s1_path, tmp_path):
    base = dict(scale="tiny", quiet=True, num_samples=5, batch=2)
    wl = tune_cell("s1", "ds", "base", s1_path, tmp_path / "l", TuneOptions(executor="local", **base))
    wr = tune_cell("s1", "ds", "base", s1_path, tmp_path / "r", TuneOptions(executor="ray", **base))
    a = pd.read_csv(tmp_path / "l" / "stage1.csv")
    b = pd.read_csv(tmp_path / "r" / "stage1.csv")
    assert list(a["config"]) == list(b["config"])
    assert list(a["val_loss"]) == pytest.approx(list(b["val_loss"]))
    assert wl["test_loss"] == pytest.approx(wr["test_loss"])


@pytest.mark.parametrize(
    ("scale", "executor", "cpus", "max_concurrent", "address", "expected"),
    [
        ("tiny", "auto", 8, None, None, "local"),     # short trials: no Ray start-up
        ("quick", "auto", 8, None, None, "local"),
        ("paper", "auto", 8, None, None, "ray"),      # the scale asks for Ray, trials in parallel
        ("paper", "auto", 1, None, None, "local"),    # one CPU: nothing to parallelise
        ("paper", "auto", 8, 1, None, "local"),       # max_concurrent 1: nothing to parallelise
        ("tiny", "auto", 1, None, "auto", "ray"),     # a cluster address means Ray
        ("tiny", "ray", 1, None, None, "ray"),        # explicit choices win
        ("paper", "local", 8, None, None, "local"),
    ],
)
def test_auto_executor_uses_ray_only_where_it_parallelises(
    scale, executor, cpus, max_concurrent, address, expected
):
    from deepstock.hparams import get_scale
    from deepstock.tuning import resolve_executor

    opts = TuneOptions(scale=scale, executor=executor, cpus=cpus, max_concurrent=max_concurrent,
                       address=address)
    assert resolve_executor(opts, get_scale(scale)) == expected


def test_local_executor_with_an_address_is_a_config_error(s1_path, tmp_path):
    from deepstock.errors import ConfigError

    with pytest.raises(ConfigError, match="address needs executor 'ray'"):
        tune_cell("s1", "ds", "base", s1_path, tmp_path,
                  TuneOptions(scale="tiny", executor="local", address="auto", quiet=True))
    assert not (tmp_path / "stage1.jsonl").exists()


def test_local_executor_never_imports_ray(s1_path, tmp_path):
    """`auto` at tiny scale is local, which asks Optuna's TPE study directly: Ray never imported."""
    code = (
        "import sys; from deepstock.cli import main\n"
        f"rc = main(['tune', 's1', '--method', 'ds', '--reg', 'base', '--scale', 'tiny', "
        f"'--data', {str(s1_path)!r}, '--out', {str(tmp_path)!r}, "
        "'--quiet'])\n"
        "assert rc == 0, rc\n"
        "assert not any(m == 'ray' or m.startswith('ray.') for m in sys.modules), 'ray imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "winner.json").read_text())["executor"] == "local"


def test_retraining_the_winner_reproduces_the_reported_run(s1_path, tmp_path):
    """`deepstock train --from-winner` re-runs the median-seed run bit for bit (CPU)."""
    w = tune_cell("s1", "ds", "base", s1_path, tmp_path / "cell",
                  TuneOptions(scale="tiny", executor="local", quiet=True))
    rc = main(["train", "s1", "--method", "ds", "--reg", "base", "--device", "cpu",
               "--from-winner", str(tmp_path / "cell" / "winner.json"), "--data", str(s1_path),
               "--out", str(tmp_path / "again")])
    assert rc == 0
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["seed"] == w["reported_seed"]
    assert again["test_loss"] == w["test_loss"] and again["val_loss"] == w["val_loss"]


_GPU_SHARE = '''
import json, os, sys, time
os.environ["RAY_AUTH_MODE"] = "disabled"
from pathlib import Path
import ray
from ray import tune
from deepstock.tuning import fit_trials, trial_resources
ray.init(num_cpus=8, num_gpus=1, include_dashboard=False, log_to_driver=False,
         configure_logging=False, logging_level="ERROR")
def trainable(config):
    # a barrier, not a timer: trial k waits until the trials of its group of 4 have all started,
    # so 4 run at once whatever the machine's speed; with fewer slots the wait times out and the
    # peak falls short of 4, with more the next group starts at once and the peak exceeds 4
    started = Path(config["dir"]) / "started"
    started.mkdir(exist_ok=True)
    (started / str(config["i"])).touch()
    t0, k = time.time(), len(list(started.iterdir()))
    need = 4 * ((k + 3) // 4)
    while len(list(started.iterdir())) < need and time.time() < t0 + 60:
        time.sleep(0.05)
    time.sleep(0.5)
    return {"start": t0, "end": time.time(), "gpu_ids": ray.get_gpu_ids()}
rows = []
class Record(tune.Callback):
    def on_trial_result(self, iteration, trials, trial, result, **info):
        rows.append({k: result[k] for k in ("start", "end", "gpu_ids")})
fit_trials(trainable, {"i": tune.grid_search(list(range(8))), "dir": sys.argv[1]},
     tune.TuneConfig(num_samples=1, reuse_actors=True), [Record()], Path(sys.argv[1]), "share",
     trial_resources("cuda"))
events = sorted([(r["start"], 1) for r in rows] + [(r["end"], -1) for r in rows])
now = peak = 0
for _, step in events:
    now += step
    peak = max(peak, now)
print(json.dumps({"n": len(rows), "peak": peak, "gpus": sorted({str(r["gpu_ids"]) for r in rows})}))
'''


@pytest.mark.slow
def test_cuda_trials_share_one_gpu_four_at_a_time(tmp_path):
    """DS trials on CUDA ask Ray for 0.25 GPU: on a (logical) one-GPU node with CPUs to spare,
    Ray runs exactly 4 of them at once, all on GPU 0 — the request the GPU profile relies on."""
    proc = subprocess.run([sys.executable, "-c", _GPU_SHARE, str(tmp_path)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got == {"n": 8, "peak": 4, "gpus": ["[0]"]}


# ----------------------------------------------------------------------------- backends
TINY = dict(scale="tiny", executor="local", quiet=True)


def test_the_fingerprint_differs_when_only_the_backend_differs(s1_path):
    default = plan_cell("s1", "ddpg", "base", s1_path, TuneOptions(**TINY))
    sb3 = plan_cell("s1", "ddpg", "base", s1_path, TuneOptions(backend="sb3", **TINY))
    jax = plan_cell("s1", "ddpg", "base", s1_path, TuneOptions(backend="jax", **TINY))
    assert default.fingerprint == sb3.fingerprint and default.spec.backend == "sb3"
    assert describe_change(sb3.fingerprint, jax.fingerprint) == "backend sb3 -> jax"
    assert sb3.spec.fingerprint != jax.spec.fingerprint
    assert (jax.spec.backend, jax.spec.device) == ("jax", "cpu")  # jax: 'auto' is the CPU


def test_a_backend_the_method_lacks_is_refused_before_the_cell_folder_is_made(s1_path, tmp_path):
    from deepstock.errors import ConfigError

    with pytest.raises(ConfigError, match="method 'ds' has no backend 'jax'"):
        tune_cell("s1", "ds", "base", s1_path, tmp_path / "cell", TuneOptions(backend="jax", **TINY))
    assert not (tmp_path / "cell").exists()


def test_every_trial_trains_on_the_cells_backend_and_winner_json_records_it(
        s1_path, tmp_path, fake_trainers):
    w = tune_cell("s1", "ddpg", "base", s1_path, tmp_path, TuneOptions(backend="jax", **TINY))
    n_stage2 = len(pd.read_csv(tmp_path / "stage2.csv"))
    assert len(fake_trainers) == w["num_samples"] + n_stage2
    assert set(fake_trainers) == {("ddpg", "jax", "cpu")}
    stored = json.loads((tmp_path / "winner.json").read_text())
    assert stored["backend"] == stored["fingerprint"]["backend"] == "jax"
    assert json.loads((tmp_path / "final" / "metrics.json").read_text())["backend"] == "jax"


def test_resuming_a_cell_with_another_backend_is_refused_naming_backend(
        s1_path, tmp_path, capsys, fake_trainers):
    argv = ["tune", "s1", "--method", "ddpg", "--reg", "base", "--scale", "tiny", "--executor",
            "local", "--quiet", "--data", str(s1_path), "--out", str(tmp_path)]
    assert main([*argv, "--backend", "sb3"]) == 0
    files = lambda: {p: p.read_bytes() for p in tmp_path.rglob("*")  # noqa: E731
                     if p.is_file() and p.name != ".lock"}
    before, n = files(), len(fake_trainers)
    capsys.readouterr()
    assert main([*argv, "--backend", "jax"]) == 2
    errors = [x for x in capsys.readouterr().err.splitlines() if not x.startswith("note: ")]
    assert len(errors) == 1 and "backend sb3 -> jax" in errors[0] and "--restart" in errors[0]
    assert files() == before and len(fake_trainers) == n  # nothing trained, nothing touched
    assert main([*argv, "--backend", "jax", "--restart-if-changed"]) == 0
    assert {backend for _, backend, _ in fake_trainers[n:]} == {"jax"}
    assert json.loads((tmp_path / "winner.json").read_text())["backend"] == "jax"


def test_summary_csv_names_the_backend_of_each_tuned_cell(s1_path, tmp_path, fake_trainers):
    results = tmp_path / "results"
    for method, backend in (("ddpg", "jax"), ("ppo", "sb3")):
        tune_cell("s1", method, "base", s1_path, results / "s1" / method / "base" / "rep0",
                  TuneOptions(backend=backend, **TINY))
    assert main(["report", "summary", "--results", str(results)]) == 0
    summary = pd.read_csv(results / "summary.csv")
    assert dict(zip(summary["method"], summary["backend"], strict=True)) == {
        "ddpg": "jax", "ppo": "sb3"}
