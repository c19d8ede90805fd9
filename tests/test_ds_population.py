"""DS populations (trainers.ds_population) held to the sequential trainer ``train_ds``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from deepstock.errors import ConfigError
from deepstock.hparams import resolve_hparams
from deepstock.training import ds_population
from deepstock.training.ds import train_ds
from deepstock.training.ds_population import train_ds_population
from tests.test_ds import FAST, tiny_dataset

torch.set_num_threads(1)

BASE = {**FAST, "batch_size": 1, "epochs": 6, "plateau_patience": 0}
#: Input order mixes two shape groups ([16, 16] and [8]); within the first group the learning
#: rates, scheduler factors, patiences and checkpoints differ, and agent 0 stops at epoch 3 of 6
#: (its last state is reported, so it must not change after it stops).
POPULATION = [
    ({"learning_rate": 0.03, "scheduler_factor": 0.5, "patience_epochs": 2, "checkpoint": "last"},
     1),
    ({"learning_rate": 0.01, "neurons_per_hidden_layer": [8]}, 3),
    ({"learning_rate": 0.03, "scheduler_factor": 0.2, "patience_epochs": 6}, 2),
    ({"learning_rate": 0.01, "scheduler_factor": 0.5, "patience_epochs": 6}, 1),
]
CURVE = ["train_loss", "val_loss", "batch_loss"]


@pytest.fixture(scope="module")
def noisy():
    rng = np.random.default_rng(5)
    return tiny_dataset(rng.integers(5, 16, size=(9, 31)).astype(float))


def complete(dataset, overrides: dict, base: dict = BASE) -> dict:
    return resolve_hparams("ds", dataset.setting, "base", overrides={**base, **overrides})


@pytest.fixture(scope="module")
def population(noisy):
    return [complete(noisy, o) for o, _ in POPULATION], [s for _, s in POPULATION]


@pytest.fixture(scope="module")
def sequential(noisy, population):
    configs, seeds = population
    return [train_ds(noisy, "base", c, s, device="cpu")
            for c, s in zip(configs, seeds, strict=True)]


def without_population(config: dict) -> dict:
    return {k: v for k, v in config.items() if k != "population"}


def test_a_looped_population_equals_sequential_runs_bit_for_bit(noisy):
    short = {"epochs": 4, "patience_epochs": 2}
    configs = [complete(noisy, {**short, "learning_rate": 0.03}),
               complete(noisy, {**short, "learning_rate": 0.01, "scheduler_factor": 0.2})]
    pairs = [(configs[0], 1), (configs[1], 2), (configs[0], 5)]
    seq = [train_ds(noisy, "base", c, s, device="cpu") for c, s in pairs]
    loop = train_ds_population(noisy, "base", [c for c, _ in pairs], [s for _, s in pairs],
                               device="cpu", population="sequential")
    assert len({r.val_loss for r in seq}) == 3  # three different runs
    for a, b in zip(seq, loop, strict=True):
        assert (a.seed, a.backend, a.iterations) == (b.seed, b.backend, b.iterations)
        assert (a.train_loss, a.val_loss, a.test_loss, a.best_val) == (
            b.train_loss, b.val_loss, b.test_loss, b.best_val)
        pd.testing.assert_frame_equal(a.curve, b.curve, check_exact=True)
        assert a.model_state.keys() == b.model_state.keys()
        assert all(torch.equal(a.model_state[k], b.model_state[k]) for k in a.model_state)
        assert a.extras == b.extras
        assert b.config["population"] == "sequential"
        assert without_population(a.config) == without_population(b.config)


def test_auto_population_on_the_cpu_runs_the_sequential_trainer(noisy, population, monkeypatch):
    calls = []
    monkeypatch.setattr(ds_population, "train_ds",
                        lambda dataset, reg, h, seed, **kw: calls.append((seed, kw)) or seed)
    configs, seeds = population
    assert train_ds_population(noisy, "base", configs, seeds, device="cpu") == seeds
    assert [s for s, _ in calls] == seeds
    assert all(kw["device"] == "cpu" for _, kw in calls)


def test_a_vmapped_population_matches_sequential_runs_in_input_order(noisy, population,
                                                                      sequential):
    configs, seeds = population
    vm = train_ds_population(noisy, "base", configs, seeds, device="cpu", population="vmap")
    # the scenario: agent 0 stops early, agents 2 and 3 cut their rates by their own factors
    assert [r.iterations for r in sequential] == [3, 6, 6, 6]
    assert sequential[2].curve["lr"].tolist()[-1] == pytest.approx(0.03 * 0.2)
    assert sequential[3].curve["lr"].tolist()[-1] == pytest.approx(0.01 * 0.5)
    assert [r.seed for r in vm] == seeds
    for a, b in zip(sequential, vm, strict=True):
        assert b.config["neurons_per_hidden_layer"] == a.config["neurons_per_hidden_layer"]
        assert without_population(a.config) == without_population(b.config)
        assert (a.iterations, a.backend, a.device) == (b.iterations, b.backend, b.device)
        assert list(a.curve.columns) == list(b.curve.columns)
        assert a.extras == b.extras
        assert a.curve["lr"].tolist() == b.curve["lr"].tolist()
        assert a.curve["skipped_steps"].tolist() == b.curve["skipped_steps"].tolist()
        # not bitwise: batched kernels (bmm under vmap) round differently from the single run's
        # addmm; over these epochs the curves agree to < 4e-5 relative
        np.testing.assert_allclose(b.curve[CURVE], a.curve[CURVE], rtol=1e-4)
        np.testing.assert_allclose([b.train_loss, b.val_loss, b.test_loss, b.best_val],
                                   [a.train_loss, a.val_loss, a.test_loss, a.best_val], rtol=1e-4)
        assert a.model_state.keys() == b.model_state.keys()
        for k in a.model_state:
            torch.testing.assert_close(b.model_state[k], a.model_state[k], rtol=1e-4, atol=1e-5)


def test_a_vmapped_agent_skips_its_non_finite_batches_alone():
    demand = np.full((6, 31), 10.0)
    demand[0, 5] = np.nan  # train trajectory 0 gives a NaN loss, in a different batch per seed
    ds = tiny_dataset(demand)
    configs = [complete(ds, {"epochs": 3, "patience_epochs": 3, "learning_rate": lr})
               for lr in (0.003, 0.01)]
    seq = [train_ds(ds, "base", c, s, device="cpu")
           for c, s in zip(configs, (1, 2), strict=True)]
    vm = train_ds_population(ds, "base", configs, [1, 2], device="cpu", population="vmap")
    for a, b in zip(seq, vm, strict=True):
        assert b.curve["skipped_steps"].tolist() == [1, 2, 3]
        assert np.isnan(b.train_loss) and np.isfinite(b.val_loss)
        np.testing.assert_allclose(b.curve["val_loss"], a.curve["val_loss"], rtol=1e-4)
        np.testing.assert_allclose(b.curve["batch_loss"], a.curve["batch_loss"], rtol=1e-4)


def test_a_vmapped_population_feeds_the_context_features_under_lost_sales(noisy):
    configs = [resolve_hparams("ds", noisy.setting, "both", overrides={
        **FAST, "epochs": 3, "learning_rate": lr, "coeff_scale": 1.0}) for lr in (0.01, 0.03)]
    noisy = dataclasses.replace(noisy, setting=dataclasses.replace(noisy.setting,
                                                                   dynamics="lost_sales"))
    seq = [train_ds(noisy, "both", c, s, device="cpu") for c, s in zip(configs, (0, 1), strict=True)]
    vm = train_ds_population(noisy, "both", configs, [0, 1], device="cpu", population="vmap")
    assert seq[0].curve["val_loss"].iloc[-1] != seq[1].curve["val_loss"].iloc[-1]
    for a, b in zip(seq, vm, strict=True):
        assert b.curve["val_loss"].notna().all()
        np.testing.assert_allclose(b.curve[CURVE], a.curve[CURVE], rtol=1e-4)
        np.testing.assert_allclose(b.test_loss, a.test_loss, rtol=1e-4)


@pytest.mark.parametrize("mode", ["sequential", "vmap"])
def test_a_population_needs_one_seed_per_configuration(noisy, population, mode):
    configs, _ = population
    with pytest.raises(ConfigError, match="one seed per configuration, got 4 configurations "
                                          "and 3 seeds") as err:
        train_ds_population(noisy, "base", configs, [1, 2, 3], device="cpu", population=mode)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="got 0 configurations"):
        train_ds_population(noisy, "base", [], [], device="cpu", population=mode)


def test_an_unknown_population_mode_is_refused_by_population_and_single_runs(noisy, population,
                                                                           monkeypatch):
    configs, seeds = population
    monkeypatch.setattr(ds_population, "_train_group", lambda *a, **k: pytest.fail("computed"))
    monkeypatch.setattr(ds_population, "train_ds", lambda *a, **k: pytest.fail("computed"))
    with pytest.raises(ConfigError, match=r"option 'population' must be one of \['auto', "
                                          r"'vmap', 'sequential'\], got 'jit'") as err:
        train_ds_population(noisy, "base", configs, seeds, device="cpu", population="jit")
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="option 'population'"):
        train_ds(noisy, "base", configs[0], 0, device="cpu", population="jit")
