"""The lost-sales family end to end: settings, datasets, benchmark JSON, trainers, report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from deepstock.benchmarks import run_benchmark
from deepstock.cli import main
from deepstock.errors import ConfigError
from deepstock.hparams import get_scale, resolve_hparams
from deepstock.problem import lost_sales
from deepstock.problem.evaluation import evaluate_policy
from deepstock.problem.families import get_family, setting_ids
from deepstock.problem.generators import generate_dataset
from deepstock.problem.settings import get_setting, setting_from_dict
from deepstock.reports import lost_sales as report
from deepstock.training import train

ROOT = Path(__file__).resolve().parents[1]
ZIPKIN = yaml.safe_load((ROOT / "paper/literature/zipkin2008.yaml").read_text())["poisson_mean_5"]


def test_the_family_declares_zipkins_32_settings_with_lost_sales_dynamics():
    ids = [s for s in setting_ids() if s.startswith("ls_")]
    assert ids == list(lost_sales.IDS) and len(ids) == 32
    st = get_setting("ls_geometric_l3_p19")
    assert (st.family, st.dynamics, st.R, st.L, st.h, st.p, st.dist, st.mean) == (
        "lost_sales", "lost_sales", 1, 3, 1.0, 19.0, "geometric", 5.0)
    assert st.first_counted == 1 + 3 + 20 and st.n_counted_days == 100
    assert get_family("lost_sales").features is False
    with pytest.raises(ConfigError, match="did you mean 'ls_poisson_l2_p9'"):
        get_setting("ls_poisson_l02_p9")


def test_a_datasets_demand_has_the_distributions_mean_and_the_splits_share_no_stream():
    d = generate_dataset("ls_geometric_l1_p4")
    assert set(np.unique(d.demand)) >= {0.0, 1.0, 20.0} and np.all(d.demand == np.round(d.demand))
    assert abs(d.demand.mean() - 5.0) < 0.05  # 9 400 x 122 draws: SE ~ 0.02
    p = generate_dataset("ls_poisson_l4_p39")
    assert abs(p.demand.var() - 5.0) < 0.1  # Poisson: variance = mean
    same_stream = generate_dataset("ls_poisson_l1_p4")  # other L: the same paths, shorter
    np.testing.assert_array_equal(same_stream.demand, p.demand[:, : same_stream.setting.T])
    assert not np.array_equal(p.split("train").demand[:5], p.split("val").demand[:5])


@pytest.mark.parametrize("sid", [s for s in lost_sales.IDS if "poisson" in s])
def test_the_benchmark_json_gives_zipkins_optimum_and_base_stock_and_l_star_within_half_a_percent(
        sid):
    st = get_setting(sid)
    res = run_benchmark(generate_dataset(sid)).to_json()
    row = lost_sales.PENALTIES.index(int(st.p))
    assert res["method"] == "ls_dp" and res["L_star"] == res["test_loss"]
    assert round(res["expected_value"], 2) == ZIPKIN["optimal"][int(st.p)][st.L - 1]
    base = res["policy"]["base_stock"]["average_cost"]
    assert abs(base - ZIPKIN["best_base_stock"][int(st.p)][st.L - 1]) <= 0.01 + 1e-9
    assert abs(res["L_star"] / res["expected_value"] - 1) < 0.005, row
    assert res["policy"]["max_position"] < res["policy"]["cap"]  # the bound does not bind
    assert res["policy"]["test_standard_error"] < 0.0025 * res["expected_value"]


@pytest.mark.parametrize("sid", [s for s in lost_sales.IDS if "geometric" in s])
def test_geometric_l_star_is_within_half_a_percent_of_the_exact_optimum(sid):
    res = run_benchmark(generate_dataset(sid)).to_json()
    assert abs(res["L_star"] / res["expected_value"] - 1) < 0.005
    assert res["policy"]["test_standard_error"] < 0.0025 * res["expected_value"]


def test_the_simulated_loss_counts_zipkins_cost_per_period_without_rescaling():
    d = generate_dataset("ls_poisson_l1_p4")
    never = evaluate_policy(lambda obs: np.zeros(obs.pipeline.shape[0]), d, "test")
    np.testing.assert_allclose(never.loss, 4.0 * d.split("test").demand[:, 22:].mean(), rtol=1e-12)


@pytest.mark.parametrize(("method", "backend"), [("ds", "torch"), ("ddpg", "sb3"), ("ppo", "sb3"),
                                                 ("ddpg", "jax"), ("ppo", "jax")])
def test_every_trainer_trains_on_a_lost_sales_setting_in_its_units(method, backend, tmp_path):
    d = generate_dataset("ls_poisson_l2_p9")
    r = train(d, method, "base", get_scale("tiny").budget(method), 42, backend=backend,
              device="cpu")
    again = evaluate_policy(r.policy, d, "test").loss  # the setting's costs and dynamics
    assert np.isfinite(r.test_loss) and r.test_loss == pytest.approx(again, rel=1e-6)
    assert r.test_loss > 6.0936 * 0.99  # no policy beats the optimum by more than test noise
    # the selection metric is the mean counted cost too: the warm-up's decisions are not counted
    assert r.best_val == pytest.approx(r.val_loss, rel=1e-4)


def test_coeff_is_refused_before_training_on_lost_sales():
    with pytest.raises(ConfigError, match="'coeff' reads the Coeff features"):
        resolve_hparams("ppo", "ls_poisson_l1_p4", "coeff")


@pytest.mark.parametrize(("fields", "message"), [
    ({"p": 0}, "setting field 'p'=0 must be a finite number > 0"),
    ({"p": -3}, "setting field 'p'=-3 must be a finite number > 0"),
    ({"mean": 5000}, "setting field 'mean'=5000 is above 1000"),
    ({"dist": "normal"}, "setting field 'dist'='normal' is not one of"),
    ({"warmup": -1}, "setting field 'warmup'=-1 must be an integer >= 0"),
    ({"R": 2}, "setting field 'R'=2 must be 1 for lost sales"),
])
def test_a_bad_custom_lost_sales_setting_is_one_line_naming_the_field(fields, message):
    d = {"id": "mine", "family": "lost_sales", "T": 60, "n_train": 4, "n_val": 4, "n_test": 4,
         "R": 1, "L": 2, "p": 9, **fields}
    with pytest.raises(ConfigError) as err:
        setting_from_dict(d)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_lead_time_whose_exact_dp_does_not_fit_is_refused_before_any_compute(tmp_path, capsys):
    f = tmp_path / "long.yaml"
    f.write_text(yaml.safe_dump({"id": "long", "family": "lost_sales", "T": 60, "n_train": 4,
                                 "n_val": 4, "n_test": 4, "R": 1, "L": 8, "p": 39, "warmup": 5}))
    data = tmp_path / "long.npz"
    assert main(["data", "--setting-file", str(f), "--out", str(data)]) == 0
    capsys.readouterr()
    assert main(["benchmark", "long", "--data", str(data), "--out", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "lost-sales DP with L=8" in err and "GiB" in err
    assert not (tmp_path / "b.json").exists()


def test_a_custom_lost_sales_setting_benchmarks_with_its_own_mean_and_costs(tmp_path, capsys):
    f = tmp_path / "mine.yaml"
    f.write_text(yaml.safe_dump({"id": "mine", "family": "lost_sales", "T": 80, "n_train": 10,
                                 "n_val": 10, "n_test": 400, "R": 1, "L": 2, "dist": "poisson",
                                 "mean": 3.0, "h": 2.0, "p": 10.0, "M": 30.0}))
    assert main(["data", "--setting-file", str(f), "--out", str(tmp_path / "m.npz")]) == 0
    assert main(["benchmark", "mine", "--data", str(tmp_path / "m.npz"),
                 "--out", str(tmp_path / "m.json")]) == 0
    b = json.loads((tmp_path / "m.json").read_text())
    assert {k: b["options"][k] for k in ("dist", "mean", "h", "p")} == {
        "dist": "poisson", "mean": 3.0, "h": 2.0, "p": 10.0}
    assert abs(b["L_star"] / b["expected_value"] - 1) < 0.05


def test_the_report_table_pairs_each_cell_with_its_l_star_and_zipkins_base_stock_gap(tmp_path):
    sid = "ls_poisson_l2_p9"
    (tmp_path / "benchmarks").mkdir()
    bench = run_benchmark(generate_dataset(sid)).to_json()
    (tmp_path / "benchmarks" / f"{sid}.json").write_text(json.dumps(bench))
    rows = pd.DataFrame([
        {"setting": sid, "method": m, "reg": r, "repetition": 0, "test_loss": loss,
         "val_loss": loss, "seed_ids": "[42, 43, 44]",
         "seed_val_losses": json.dumps([loss, loss + 0.01, loss + 0.02]),
         "seed_test_losses": json.dumps([loss, loss + 0.01, loss + 0.02])}
        for m, r, loss in (("ds", "none", 6.12), ("ds", "base", 6.15))])
    table = report.lost_sales_table(rows, report.read_benchmarks(tmp_path, [sid]),
                                    report.zipkin_gaps(ROOT / "paper/literature/zipkin2008.yaml"))
    assert list(table["reg"]) == ["base", "none"]
    none = table[table["reg"] == "none"].iloc[0]
    assert none["gap"] == pytest.approx(100 * (6.12 - bench["L_star"]) / bench["L_star"])
    assert none["zipkin_base_stock_gap"] == pytest.approx(100 * (6.32 - 6.09) / 6.09)
    assert none["base_stock_gap"] == pytest.approx(
        100 * (bench["policy"]["base_stock"]["average_cost"] / bench["expected_value"] - 1))
    assert none["ci_low"] <= none["gap"] <= none["ci_high"] and none["ci_kind"] == "seed"
    md = report.to_markdown(table)
    assert md.count("\n") == 3 and "DS-None" in md and "| poisson | 2 | 9 |" in md
    text = report.takeaways(rows)
    assert "- DS (1 settings): +0.0300" in text
    paths = report.figure(table, tmp_path / "fig" / "lost_sales")
    assert [p.suffix for p in paths] == [".png", ".pdf"] and all(p.stat().st_size for p in paths)


def test_single_runs_are_reported_by_their_median_validation_seed_and_compared_over_settings(
        tmp_path):
    def run(s, reg, seed, val, test):
        d = tmp_path / s / f"ds-{reg}" / f"s{seed}"
        d.mkdir(parents=True)
        (d / "metrics.json").write_text(json.dumps({
            "setting": s, "method": "ds", "reg": reg, "seed": seed, "val_loss": val,
            "test_loss": test}))

    settings = [f"ls_poisson_l{L}_p9" for L in (1, 2, 3, 4)]
    for i, s in enumerate(settings):
        run(s, "none", 42, 6.0 + i, 6.0 + i)
        run(s, "base", 42, 6.1 + i, 6.1 + i + (0.2 if i == 0 else 0.0))
    run(settings[0], "none", 43, 5.0, 7.0)  # lower validation, worse test
    run(settings[0], "none", 44, 9.0, 9.0)
    rows = report.rows_from_runs(tmp_path)
    assert len(rows) == 8
    first = rows[(rows["setting"] == settings[0]) & (rows["reg"] == "none")].iloc[0]
    assert first["reported_seed"] == 42 and first["test_loss"] == 6.0  # median by validation
    assert json.loads(first["seed_ids"]) == [43, 42, 44]
    text = report.takeaways(rows)
    line = next(t for t in text.splitlines() if t.startswith("- DS"))
    assert "bootstrap over the 4 settings" in line and "Base lower in 0 of 4 settings" in line
    assert "Base hurts" in line  # +0.1 in every setting (+0.3 in one): the interval is above 0
