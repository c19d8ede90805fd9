"""Custom (user-defined) settings: validation, generation, file round trip, CLI and DS training."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from deepstock.cli import main
from deepstock.errors import ConfigError, DataError
from deepstock.problem.data import load_dataset
from deepstock.problem.evaluation import base_stock_policy, evaluate_policy
from deepstock.problem.generators import generate_dataset
from deepstock.problem.settings import DataOptions, Setting, load_setting_file, setting_from_dict

torch.set_num_threads(1)

FRESH = DataOptions(rng_mode="fresh", data_seed=7)


def spec(**kw) -> dict:
    base = {"id": "my_set", "family": "indep", "T": 61, "R": 2, "L": 1, "M": 80,
            "n_train": 4, "n_val": 3, "n_test": 6}
    return {**base, **kw}


def write_yaml(path, d: dict):
    path.write_text(yaml.safe_dump(d))
    return str(path)


# --------------------------------------------------------------------------- validation
def test_valid_dict_gives_setting():
    s = setting_from_dict(spec(options={"data_seed": 3}))
    assert s == Setting("my_set", "indep", T=61, n_train=4, n_val=3, n_test=6, R=2, L=1, M=80.0)
    assert s.n_counted_days == 58
    # optional R, L, M take their defaults; IID: N = n_train distinct sigmas
    d = {k: v for k, v in spec(family="iid", T=9).items() if k not in ("R", "L", "M")}
    s = setting_from_dict(d)
    assert (s.R, s.L, s.M, s.N, s.H) == (2, 1, 100.0, 4, 3)


BAD = [
    ({"colour": 1}, "'colour'"),
    ({"n_val": None}, "'n_val'"),  # replaced below by a missing key
    ({"T": -3}, "horizon T=-3 must be"),
    ({"T": 0}, "horizon T=0 must be"),
    ({"T": 3}, "horizon T=3 must be >= R + L + 1 = 4"),
    ({"T": 31.0}, "'T' must be an integer"),
    ({"T": "31"}, "'T' must be an integer"),
    ({"R": 0}, "R=0 must be >= 1"),
    ({"L": -1}, "L=-1 must be >= 0"),
    ({"M": 0}, "M=0 must be > 0"),
    ({"M": -5.5}, "M=-5.5 must be > 0"),
    ({"M": "big"}, "'M' must be a number"),
    ({"n_train": 0}, "n_train=0 must be >= 1"),
    ({"n_val": -2}, "n_val=-2 must be >= 1"),
    ({"n_test": 0}, "n_test=0 must be >= 1"),
    ({"n_test": True}, "'n_test' must be an integer"),
    ({"id": "s1"}, "clashes with a built-in"),
    ({"id": "s4_n5_t7"}, "clashes with a built-in"),
    ({"id": "s4_n7_t9"}, "clashes with a built-in"),
    ({"id": "My-Set"}, "'id'='My-Set' must match [a-z0-9_]+"),
    ({"id": ""}, "must match"),
    ({"family": "poisson"}, "'family'='poisson' is not one of"),
    ({"options": {"seed": 1}}, "'options.seed' is unknown"),
    ({"options": {"rng_mode": "exact"}}, "rng_mode='exact'"),
    ({"options": {"data_seed": -1}}, "data_seed=-1"),
    ({"options": [1]}, "'options' must be a mapping"),
]


def _bad_dict(change: dict) -> dict:
    d = spec(**change)
    if change == {"n_val": None}:
        del d["n_val"]
    return d


@pytest.mark.parametrize("change,needle", BAD)
def test_validation_errors_name_the_field(change, needle):
    with pytest.raises(ConfigError) as err:
        setting_from_dict(_bad_dict(change))
    msg = str(err.value)
    assert needle in msg and "\n" not in msg
    if change == {"n_val": None}:
        assert "missing" in msg


@pytest.mark.parametrize("change,needle", BAD)
def test_cli_validation_errors_one_line_exit_2(change, needle, tmp_path, capsys):
    f = write_yaml(tmp_path / "s.yaml", _bad_dict(change))
    out = tmp_path / "x.npz"
    assert main(["data", "--setting-file", f, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and needle in err and "Traceback" not in err
    assert not out.exists()


def test_cli_file_errors(tmp_path, capsys):
    out = str(tmp_path / "x.npz")
    assert main(["data", "--setting-file", str(tmp_path / "nope.yaml"), "--out", out]) == 2
    assert "setting file not found" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("id: [unclosed\n")
    assert main(["data", "--setting-file", str(tmp_path / "bad.yaml"), "--out", out]) == 2
    assert "invalid YAML" in capsys.readouterr().err
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    assert main(["data", "--setting-file", str(tmp_path / "list.yaml"), "--out", out]) == 2
    assert "must be a mapping" in capsys.readouterr().err
    good = write_yaml(tmp_path / "good.yaml", spec())
    assert main(["data", "s1", "--setting-file", good, "--out", out]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["data", "--setting-file", good, "--out", out, "--rng-mode", "paper_exact"]) == 2
    assert "use rng_mode: fresh" in capsys.readouterr().err


def test_paper_exact_only_for_builtins():
    s = setting_from_dict(spec())
    with pytest.raises(ConfigError, match="rng_mode: fresh"):
        generate_dataset(s, DataOptions())
    with pytest.raises(ConfigError, match="differs from the built-in"):
        generate_dataset(Setting("s1", "indep", T=41, n_train=10, n_val=10, n_test=100))


# --------------------------------------------------------------------------- generation
def test_indep_custom_shapes_and_distribution():
    s = setting_from_dict(spec(R=3, T=61, n_train=4, n_val=3, n_test=6))
    d = generate_dataset(s, FRESH)
    assert d.demand.shape == (13, 61) and d.features.shape == (13, 61, 1)
    assert d.coeff.shape == (13, 61, 4) and np.isfinite(d.coeff).all()
    assert d.ids.tolist() == list(range(1, 14))
    assert d.split_idx["train"].tolist() == [0, 1, 2, 3]
    assert d.split_idx["val"].tolist() == [4, 5, 6]
    assert d.split_idx["test"].tolist() == [7, 8, 9, 10, 11, 12]
    lower = d.demand_params["lower"]
    assert lower.shape == (61,)
    assert ((d.demand >= lower) & (d.demand <= lower + 4)).all()  # U{l_t..l_t+4}, spec §5.1
    assert (d.demand == np.round(d.demand)).all()
    assert d.x[5].tolist() == [t // 3 for t in range(61)]  # x_t = floor(t / R)


def test_indep_custom_is_prefix_of_builtin_fresh_stream():
    """Same family stream (spec §5.5): lower bounds then SKU-major integers, so with T=31 the
    custom pool equals the first rows of Setting 1 in fresh mode."""
    s = setting_from_dict(spec(T=31, n_train=2, n_val=2, n_test=3))
    np.testing.assert_array_equal(generate_dataset(s, FRESH).demand,
                                  generate_dataset("s1", FRESH).demand[:7])


def test_ar1_custom_prefix_warmup_and_features():
    s = setting_from_dict(spec(family="ar1", T=31, n_train=3, n_val=2, n_test=4))
    d = generate_dataset(s, FRESH)
    ref = generate_dataset("s2", FRESH)
    assert d.demand.shape == (9, 31)
    np.testing.assert_array_equal(d.demand, ref.demand[:9])  # per-SKU sequential draws
    np.testing.assert_array_equal(d.demand_params["phi"], ref.demand_params["phi"][:9])
    assert d.split_idx["test"].tolist() == [5, 6, 7, 8]
    # R = 3: 4R = 12 warm-up days dropped; x_t is the previous raw day
    s3 = setting_from_dict(spec(family="ar1", T=20, R=3, L=0, n_train=2, n_val=1, n_test=2))
    d3 = generate_dataset(s3, FRESH)
    assert d3.demand.shape == (5, 20) and d3.meta["parameters"]["warmup_dropped"] == 12
    np.testing.assert_array_equal(d3.x[:, 1:], d3.demand[:, :-1])
    assert (d3.demand >= 0).all()
    assert ((d3.demand_params["phi"] >= 0.3) & (d3.demand_params["phi"] <= 0.9)).all()


def test_iid_custom_sigma_layout_and_days():
    s = setting_from_dict(spec(family="iid", T=11, n_train=3, n_val=4, n_test=7, M=500))
    d = generate_dataset(s, FRESH)
    sig = d.demand_params["sigma"][:3]
    k = [0, 1, 2, 0, 1, 2, 0, 0, 0, 0, 1, 1, 1, 2]  # train, val cycling, test in blocks of 3
    np.testing.assert_array_equal(d.demand_params["sigma"], sig[k])
    np.testing.assert_array_equal(d.x, np.repeat(sig[k][:, None], 11, axis=1))
    assert d.split_idx["val"].tolist() == [3, 4, 5, 6]
    assert d.split_idx["test"].tolist() == list(range(7, 14))
    drawn = [3, 5, 7, 9]  # odd t >= 3 (spec §5.3)
    other = [t for t in range(11) if t not in drawn]
    assert (d.demand[:, other] == 0).all() and (d.demand[:, drawn] > 0).all()


def test_iid_custom_equal_to_builtin_layout_gives_builtin_arrays():
    s = setting_from_dict(spec(id="n5_h2", family="iid", T=7, n_train=5, n_val=5, n_test=500, M=500))
    a, b = generate_dataset(s, FRESH), generate_dataset("s4_n5_t7", FRESH)
    for key in ("demand", "features", "coeff"):
        np.testing.assert_array_equal(getattr(a, key), getattr(b, key))
    assert {k: v.tolist() for k, v in a.split_idx.items()} == \
        {k: v.tolist() for k, v in b.split_idx.items()}


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    f = write_yaml(tmp_path / "s.yaml", spec(family="ar1", options={"data_seed": 11}))
    paths = [tmp_path / f"{i}.npz" for i in range(3)]
    assert main(["data", "--setting-file", f, "--out", str(paths[0])]) == 0
    assert main(["data", "--setting-file", f, "--out", str(paths[1])]) == 0
    assert main(["data", "--setting-file", f, "--out", str(paths[2]), "--data-seed", "12"]) == 0
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert paths[0].read_bytes() != paths[2].read_bytes()
    assert load_dataset(paths[2]).meta["seed"] == 12  # a given flag overrides the file


def test_load_round_trip(tmp_path):
    f = write_yaml(tmp_path / "s.yaml", spec(family="iid", T=13, M=300, options={"data_seed": 5}))
    setting, options = load_setting_file(f)
    assert options.rng_mode == "fresh" and options.data_seed == 5
    d = generate_dataset(setting, options)
    path = d.save(tmp_path / "d.npz")
    back = load_dataset(path, expect_setting="my_set")
    assert back.setting == setting
    assert back.meta["setting_spec"] == setting.to_dict()
    np.testing.assert_array_equal(back.demand, d.demand)
    with pytest.raises(DataError, match="'my_set'"):
        load_dataset(path, expect_setting="s1")


def test_load_rejects_custom_without_spec(tmp_path):
    d = generate_dataset(setting_from_dict(spec()), FRESH)
    del d.meta["setting_spec"]
    path = d.save(tmp_path / "d.npz")
    with pytest.raises(DataError, match="setting_spec"):
        load_dataset(path)


def test_builtin_meta_has_spec_and_loads_via_get_setting(tmp_path):
    d = generate_dataset("s4_n5_t7")
    assert d.meta["setting_spec"]["M"] == 500.0 and d.meta["setting_spec"]["N"] == 5
    assert load_dataset(d.save(tmp_path / "b.npz")).setting.id == "s4_n5_t7"


# --------------------------------------------------------------------------- simulator, DS
def test_evaluation_on_custom_horizon():
    """T = 61, R = 2, L = 1: orders only on even days 2..58 (t + L <= T - 1, spec §2)."""
    s = setting_from_dict(spec(T=61, n_train=2, n_val=2, n_test=3))
    ev = evaluate_policy(base_stock_policy(40.0, s.M), generate_dataset(s, FRESH), "test")
    assert ev.per_trajectory.shape == (3,) and np.isfinite(ev.per_trajectory).all()
    orders = np.asarray(ev.rollout.orders)
    allowed = [t for t in range(61) if t >= 2 and t % 2 == 0 and t <= 59]
    assert allowed[-1] == 58
    assert (orders[:, [t for t in range(61) if t not in allowed]] == 0).all()
    assert (orders[:, allowed] > 0).any()


def test_custom_with_builtin_layout_evaluates_like_builtin():
    """A custom INDEP setting with Setting 1's horizon and splits is Setting 1 in fresh mode."""
    s = setting_from_dict(spec(T=31, M=100, n_train=10, n_val=10, n_test=100))
    a, b = generate_dataset(s, FRESH), generate_dataset("s1", FRESH)
    pol = base_stock_policy(25.0, 100.0)
    np.testing.assert_array_equal(evaluate_policy(pol, a).per_trajectory,
                                  evaluate_policy(pol, b).per_trajectory)


def test_ds_trains_on_custom_setting_via_cli(tmp_path, capsys):
    f = write_yaml(tmp_path / "s.yaml", spec(id="indep_long", T=41, M=70, n_train=6, n_val=4,
                                             n_test=8, options={"data_seed": 1}))
    data = tmp_path / "d.npz"
    assert main(["data", "--setting-file", f, "--out", str(data)]) == 0
    assert "indep_long" in capsys.readouterr().out
    out = tmp_path / "run"
    rc = main(["train", "indep_long", "--method", "ds", "--reg", "base", "--seed", "2",
               "--data", str(data), "--out", str(out), "--device", "cpu",
               "--set", "epochs=3", "--set", "neurons_per_hidden_layer=[8]"])
    assert rc == 0, capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert m["iterations"] == 3
    assert m["config"]["M"] == 70.0  # a custom setting's cap, not the family default
    assert m["config"]["learning_rate"] == 0.03107728177311676  # INDEP family default of the DS-Base cell
    assert np.isfinite([m["test_loss"]]).all()
    # a built-in id against the custom file is refused, one line
    assert main(["train", "s1", "--method", "ds", "--reg", "base", "--data", str(data),
                 "--out", str(tmp_path / "r2")]) == 2
    assert "indep_long" in capsys.readouterr().err


def test_custom_setting_benchmark_and_tuning_through_the_cli(tmp_path):
    """A custom INDEP setting runs through `deepstock benchmark` (exact DP) and `deepstock tune`."""
    cfg = write_yaml(tmp_path / "long.yaml", spec(id="indep_long", family="indep", T=41,
                                                  n_train=20, n_val=10, n_test=30))
    data = tmp_path / "long.npz"
    assert main(["data", "--setting-file", str(cfg), "--out", str(data)]) == 0
    assert main(["benchmark", "indep_long", "--data", str(data), "--out",
                 str(tmp_path / "b.json"), "--quiet"]) == 0
    bench = json.loads((tmp_path / "b.json").read_text())
    assert bench["method"] == "dp_empirical" and len(bench["policy"]["levels"]) == 19
    # order days t = 2, 4, ..., 38 (t + L <= T - 1 = 40): 19 time-dependent levels
    assert bench["setting"] == "indep_long" and bench["test_loss"] > 0
    assert main(["tune", "indep_long", "--method", "ds", "--reg", "base", "--scale", "tiny",
                 "--executor", "local", "--data", str(data), "--out", str(tmp_path / "cell"),
                 "--quiet"]) == 0
    winner = json.loads((tmp_path / "cell" / "winner.json").read_text())
    assert winner["setting"] == "indep_long" and winner["hparams"]["M"] == 80.0  # the setting's cap
