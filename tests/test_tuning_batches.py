"""Stage 1 in batches of k (Optuna ask/tell, constant liar), populations, exact batch resume,
and the default hyper-parameters as trial 1."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import pandas as pd
import pytest

from deepstock.errors import ConfigError
from deepstock.hparams import decode_config, encode_choice, get_scale
from deepstock.journal import seal
from deepstock.problem.generators import generate_dataset
from deepstock.tuning import TuneOptions, config_seed, plan_cell, tune_cell

JAX = dict(scale="tiny", executor="local", quiet=True, backend="jax")


@pytest.fixture(scope="module")
def s1_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "s1.npz"
    generate_dataset("s1").save(path)
    return path


def _stage1_configs(out: Path) -> list[dict]:
    rows = [json.loads(x) for x in (out / "stage1.jsonl").read_text().splitlines()[1:]]
    latest = {r["trial"]: r for r in rows}
    return [latest[t]["config"] for t in sorted(latest)]


def _fake_score(config: dict) -> float:
    """What the ``fake_trainers`` stand-in scores a stage-1 configuration."""
    return 1.0 + config["learning_rate"] + config_seed(decode_config(config)) * 1e-6


def test_batch_one_asks_exactly_the_configurations_of_sequential_tpe(s1_path, tmp_path,
                                                                      fake_trainers):
    tune_cell("s1", "ddpg", "base", s1_path, tmp_path / "c",
              TuneOptions(num_samples=6, batch=1, **JAX))
    plan = plan_cell("s1", "ddpg", "base", s1_path, TuneOptions(num_samples=6, batch=1, **JAX))
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(
        n_startup_trials=get_scale("tiny").n_startup_trials, seed=0))
    dists = {k: d.to_optuna() for k, d in plan.dims.items()}
    expected = []
    for _ in range(6):
        trial = study.ask(dists)
        digits = get_scale("tiny").significant_digits  # the journal holds rounded proposals
        expected.append({k: plan.dims[k].rounded(v, digits) for k, v in trial.params.items()})
        study.tell(trial, _fake_score(expected[-1]))
    assert _stage1_configs(tmp_path / "c") == expected
    assert expected[0] != dict(study.trials[0].params)  # rounding changed TPE's floats


def test_a_batch_is_k_different_configurations_trained_as_one_population(s1_path, tmp_path,
                                                                         fake_trainers):
    tune_cell("s1", "ddpg", "base", s1_path, tmp_path / "c",
              TuneOptions(num_samples=7, batch=3, **JAX))
    configs = _stage1_configs(tmp_path / "c")
    assert len(configs) == 7
    for batch in (configs[0:3], configs[3:6]):
        assert len({json.dumps(c, sort_keys=True) for c in batch}) == 3
    tiny = get_scale("tiny")
    # stage 1: batches of 3, 3 and 1 (a population of one is a single run); stage 2: one
    assert fake_trainers.populations == [3, 3, tiny.top_k * len(tiny.seeds)]
    rows = [json.loads(x) for x in (tmp_path / "c" / "stage2.jsonl").read_text().splitlines()[1:]]
    assert {r["population"] for r in rows} == {tiny.top_k * len(tiny.seeds)}


def test_the_same_repetition_and_batch_give_the_same_configurations(s1_path, tmp_path,
                                                                    fake_trainers):
    for name, rep in (("a", 0), ("b", 0), ("c", 1)):
        tune_cell("s1", "ddpg", "base", s1_path, tmp_path / name,
                  TuneOptions(num_samples=6, batch=3, repetition=rep, **JAX))
    a, b, c = (_stage1_configs(tmp_path / n) for n in "abc")
    assert a == b and a != c


@pytest.mark.parametrize("kept", [3, 4])  # a whole batch done; one trial of batch 2 done
def test_an_interrupted_search_resumes_at_batch_granularity_as_if_never_stopped(
        s1_path, tmp_path, fake_trainers, kept):
    opts = TuneOptions(num_samples=7, batch=3, **JAX)
    tune_cell("s1", "ddpg", "base", s1_path, tmp_path / "whole", opts)
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "whole", cut)
    lines = (cut / "stage1.jsonl").read_text().splitlines()
    (cut / "stage1.jsonl").write_text("\n".join(lines[: 1 + kept]) + "\n")
    for name in ("stage1.csv", "stage2.jsonl", "stage2.csv", "winner.json"):
        (cut / name).unlink()
    shutil.rmtree(cut / "stage2")
    fake_trainers.clear()
    tune_cell("s1", "ddpg", "base", s1_path, cut, opts)
    assert _stage1_configs(cut) == _stage1_configs(tmp_path / "whole")
    rows = (cut / "stage1.jsonl").read_text().splitlines()
    assert rows[: 1 + kept] == lines[: 1 + kept]  # finished trials kept, not re-run
    tiny = get_scale("tiny")
    assert len(fake_trainers) == (7 - kept) + tiny.top_k * len(tiny.seeds)
    whole = json.loads((tmp_path / "whole" / "winner.json").read_text())
    again = json.loads((cut / "winner.json").read_text())
    assert again["hparams"] == whole["hparams"] and again["test_loss"] == whole["test_loss"]


def test_a_journal_the_sampler_would_not_propose_is_kept_as_history(s1_path, tmp_path,
                                                                    fake_trainers, capsys):
    opts = TuneOptions(num_samples=5, batch=2, **JAX)
    out = tmp_path / "c"
    tune_cell("s1", "ddpg", "base", s1_path, out, opts)
    lines = (out / "stage1.jsonl").read_text().splitlines()
    first, second = json.loads(lines[1]), json.loads(lines[2])
    # a score the search never saw (as after a retried trial), which reorders batch 1: TPE
    # depends on the ranking of the scores only
    first["val_loss"] = 5.0 if first["val_loss"] < second["val_loss"] else 0.5
    sealed = json.dumps(seal(first))  # the record of a retried trial, not a hand edit
    (out / "stage1.jsonl").write_text("\n".join([lines[0], sealed, *lines[2:4]]) + "\n")
    for name in ("stage1.csv", "stage2.jsonl", "stage2.csv", "winner.json"):
        (out / name).unlink()
    tune_cell("s1", "ddpg", "base", s1_path, out, opts)
    configs = _stage1_configs(out)
    assert len(configs) == 5 and configs[:3] == [json.loads(x)["config"] for x in lines[1:4]]
    assert "kept as history" in capsys.readouterr().err


def test_the_scale_can_make_the_default_hyper_parameters_trial_one(s1_path, tmp_path,
                                                                  fake_trainers):
    opts = TuneOptions(scale="quick", executor="local", quiet=True, backend="jax", num_samples=2)
    plan = plan_cell("s1", "ddpg", "base", s1_path, opts)
    assert get_scale("quick").enqueue_defaults
    defaults = {k: encode_choice(plan.spec.base_hparams[k]) for k in plan.dims}
    assert plan.first_config == defaults
    assert plan.fingerprint["scale"]["first_config"] == defaults
    tune_cell("s1", "ddpg", "base", s1_path, tmp_path / "c", opts)
    assert _stage1_configs(tmp_path / "c")[0] == defaults


def test_a_default_outside_the_search_space_is_not_enqueued(s1_path, tmp_path):
    space = tmp_path / "space.yaml"  # the default learning rate (0.0039512) lies below this range
    space.write_text("ddpg:\n  '*':\n    learning_rate: {loguniform: [1.0e-2, 5.0e-2]}\n"
                     "    tau: {loguniform: [1.0e-3, 1.0e-2]}\n")
    opts = TuneOptions(scale="quick", executor="local", quiet=True, space_path=str(space))
    plan = plan_cell("s1", "ddpg", "base", s1_path, opts)
    assert set(plan.dims) == {"learning_rate", "tau"}
    assert plan.first_config == {"tau": plan.spec.base_hparams["tau"]}


@pytest.mark.parametrize("batch", [0, -2])
def test_a_batch_below_one_is_refused_naming_batch(s1_path, batch):
    with pytest.raises(ConfigError, match="batch must be >= 1"):
        plan_cell("s1", "ds", "base", s1_path, TuneOptions(batch=batch, **{**JAX, "backend": None}))


def test_the_batch_is_part_of_the_cells_fingerprint(s1_path):
    one = plan_cell("s1", "ddpg", "base", s1_path, TuneOptions(batch=1, **JAX))
    two = plan_cell("s1", "ddpg", "base", s1_path, TuneOptions(batch=2, **JAX))
    assert one.fingerprint["scale"]["batch"] == 1 and two.fingerprint["scale"]["batch"] == 2
    assert one.spec.fingerprint != two.spec.fingerprint


def test_the_stage_tables_name_each_trials_population(s1_path, tmp_path, fake_trainers):
    tune_cell("s1", "ddpg", "base", s1_path, tmp_path / "c",
              TuneOptions(num_samples=4, batch=2, **JAX))
    table = pd.read_csv(tmp_path / "c" / "stage1.csv")
    assert list(table["population"]) == [2, 2, 2, 2]


def test_a_proposal_one_ulp_apart_trains_the_same_configuration_with_the_same_seed(s1_path):
    """TPE's floats move in the last bit with the CPU or the library (one ulp changed a whole
    search before): rounded to the scale's significant digits, every float hyper-parameter
    moved by one ulp up or down gives the same configuration, hence the same seed and, trained,
    the same losses."""
    import math

    from deepstock.tuning import Job, Search, run_jobs

    plan = plan_cell("s1", "ds", "base", s1_path, TuneOptions(scale="tiny", executor="local",
                                                              quiet=True, num_samples=3))
    search, unrounded_moved = Search(plan), 0
    for trial in search.ask(3):
        raw = dict(trial.params)
        floats = [k for k, v in raw.items() if isinstance(v, float)]
        assert floats
        config = search.proposal(raw)
        assert config != raw and config == {k: plan.dims[k].rounded(v, 6) for k, v in raw.items()}
        for direction in (math.inf, -math.inf):
            moved = {k: math.nextafter(v, direction) if k in floats else v
                     for k, v in raw.items()}
            assert search.proposal(moved) == config
            unrounded_moved += config_seed(decode_config(moved)) != config_seed(decode_config(raw))
    # unrounded, the authors' hash of the configuration moves with the last bit
    assert unrounded_moved > 0
    rows = [run_jobs(plan.spec, [Job(1, search.proposal(p))])[0] for p in (raw, moved)]
    assert rows[0]["status"] == "ok" and rows[0]["seed"] == rows[1]["seed"]
    assert (rows[0]["val_loss"], rows[0]["test_loss"]) == (rows[1]["val_loss"], rows[1]["test_loss"])
