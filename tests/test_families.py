"""A new demand family is one Family object (plus a benchmark solver): declared inside this test,
it runs data -> benchmark -> train -> tune (tiny) -> summary -> report like the built-ins."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from deepstock.benchmarks import run as benchmarks
from deepstock.cli import main
from deepstock.errors import ConfigError
from deepstock.problem import families
from deepstock.problem.data import Dataset
from deepstock.problem.evaluation import base_stock_policy, evaluate_policy
from deepstock.problem.generators import dataset_meta, split_rows
from deepstock.problem.settings import Setting, get_setting

TOY = Setting("toy1", "toy", T=24, n_train=6, n_val=6, n_test=30, R=1, L=1, M=20.0)


def _generate(setting: Setting, options) -> Dataset:
    """Poisson(4) demand, seeded by the data seed; no context, no Coeff features."""
    n = setting.n_train + setting.n_val + setting.n_test
    demand = np.random.default_rng([options.data_seed, 99]).poisson(4.0, (n, setting.T))
    return Dataset(setting, demand.astype(float), np.zeros((n, setting.T, 1)),
                   np.zeros((n, setting.T, 4)), np.arange(1, n + 1),
                   split_rows(setting.n_train, setting.n_val, 2 * setting.n_train,
                              setting.n_test),
                   meta=dataset_meta(setting, "toy", {"mean": 4.0}, options))


def _base_stock(dataset: Dataset, opts) -> benchmarks.BenchmarkResult:
    """π*: order up to 9 (the toy's stand-in benchmark)."""
    per = {s: evaluate_policy(base_stock_policy(9.0, 20.0), dataset, s, loss=opts.loss)
           .per_trajectory for s in ("train", "val", "test")}
    losses = {s: float(v.mean()) for s, v in per.items()}
    return benchmarks.BenchmarkResult("toy1", "toy_base_stock", losses, {}, None,
                                      {"level": 9.0}, {}, 0.0, per)


@pytest.fixture
def toy(monkeypatch):
    family = families.Family(
        "toy", _generate, lambda s: f"toy Poisson(4), T={s.T}", ("toy_base_stock",), ("toy1",),
        builtin=lambda sid: TOY, canonical=lambda s: s if s == "toy1" else None,
        features=False)
    monkeypatch.setattr(families, "FAMILIES", dict(families.FAMILIES))
    monkeypatch.setitem(benchmarks.SOLVERS, "toy_base_stock", benchmarks.Solver(_base_stock))
    return families.register_family(family)


def test_a_family_declared_in_a_test_runs_the_whole_pipeline(toy, tmp_path, capsys):
    res = tmp_path / "results"
    data = res / "data" / "toy1.npz"
    assert "toy1" in families.setting_ids() and get_setting("toy1") == TOY
    assert main(["data", "toy1", "--out", str(data)]) == 0
    assert main(["benchmark", "toy1", "--data", str(data),
                 "--out", str(res / "benchmarks" / "toy1.json")]) == 0
    bench = json.loads((res / "benchmarks" / "toy1.json").read_text())
    assert bench["method"] == "toy_base_stock" and bench["L_star"] > 0
    assert main(["train", "toy1", "--method", "ppo", "--reg", "base", "--backend", "sb3",
                 "--seed", "1", "--set", "total_steps=256", "--set", "n_steps=128",
                 "--set", "batch_size=64", "--set", "eval_freq=128", "--data", str(data),
                 "--out", str(tmp_path / "run")]) == 0
    for reg in ("none", "base"):
        assert main(["tune", "toy1", "--method", "ds", "--reg", reg, "--scale", "tiny",
                     "--executor", "local", "--quiet", "--data", str(data),
                     "--out", str(res / "toy1" / "ds" / reg / "rep0")]) == 0
    assert main(["report", "summary", "--results", str(res)]) == 0
    summary = pd.read_csv(res / "summary.csv")
    rows = summary[summary["setting"] == "toy1"]
    assert sorted(rows["reg"]) == ["base", "none"] and set(rows["family"]) == {"toy"}
    assert np.isfinite(rows["test_gap"]).all()
    assert rows["benchmark_method"].eq("toy_base_stock").all()
    assert main(["report", "tables", "--summary", str(res / "summary.csv"),
                 "--out", str(res / "tables")]) == 0
    capsys.readouterr()


def test_a_family_cannot_take_a_registered_name_or_another_familys_setting_id(toy):
    with pytest.raises(ConfigError, match="family 'toy' is already registered"):
        families.register_family(toy)
    clash = families.Family("toy2", _generate, str, (), ("s1",), builtin=lambda s: TOY,
                            canonical=lambda s: None)
    with pytest.raises(ConfigError, match="setting id 's1' is already declared"):
        families.register_family(clash)


def test_coeff_is_refused_on_the_toy_family_because_it_declares_no_features(toy):
    from deepstock.hparams import resolve_hparams

    with pytest.raises(ConfigError, match="'both' reads the Coeff features, which 'toy'"):
        resolve_hparams("ds", "toy1", "both")
