"""DS trainer (spec §7.5), the training API (run folder, seeding) and ``deepstock train``."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch

from deepstock.cli import main
from deepstock.errors import ConfigError
from deepstock.problem.data import Dataset
from deepstock.problem.dynamics import simulate
from deepstock.problem.losses import trajectory_loss
from deepstock.problem.settings import get_setting
from deepstock.training import TrainResult, save_run, train
from deepstock.training.common import metrics_dict
from deepstock.training.policies import TorchPolicy, build_ds_network
from deepstock.training.regularizations import RegularizationParams, get_regularization

torch.set_num_threads(1)



def tiny_dataset(demand: np.ndarray) -> Dataset:
    """A hand-made Setting 1 shaped dataset: equal thirds train/val/test, x_t = t // 2."""
    n, T = demand.shape
    k = n // 3
    coeff = np.random.default_rng(0).uniform(0, 20, size=(n, T, 4))
    return Dataset(
        setting=get_setting("s1"), demand=demand,
        features=np.broadcast_to((np.arange(T) // 2)[None, :, None], (n, T, 1)).astype(float),
        coeff=coeff, ids=np.arange(1, n + 1), meta={"setting": "s1"},
        split_idx={"train": np.arange(k), "val": np.arange(k, 2 * k), "test": np.arange(2 * k, n)},
    )


FAST = {"batch_size": 1, "neurons_per_hidden_layer": [16, 16], "scheduler_factor": 0.5,
        "initial_action_bias": 0.6}


@pytest.fixture(scope="module")
def flat():
    """D = 10 every day: any policy's loss is >= 0.5 (hand-computed, see below), S=30 attains it."""
    return tiny_dataset(np.full((6, 31), 10.0))


@pytest.fixture(scope="module")
def noisy():
    rng = np.random.default_rng(5)
    return tiny_dataset(rng.integers(5, 16, size=(9, 31)).astype(float))


def test_gradient_reaches_every_parameter(noisy):
    for name in ("none", "base", "coeff", "both"):
        reg = get_regularization(name)
        net = build_ds_network(reg, 1, [8, 8], b0=0.3, M=100.0)
        s = noisy.split("train")
        f = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
        z = f(np.random.default_rng(0).uniform(size=s.phi.shape))
        ro = simulate(f(s.demand), TorchPolicy(net, reg, RegularizationParams()), R=2, L=1,
                      x=f(s.x), phi=f(s.phi) / 28, z=z)
        trajectory_loss(ro).mean().backward()
        for pname, p in net.named_parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all(), (name, pname)
            assert p.grad.abs().sum() > 0, (name, pname)


def test_ds_learns_flat_demand(flat):
    """Lower bound: each counted pair of days (odd t, t+1) ends at (e, e-10), cost >= 1 (at e=10),
    so ℓ >= 14/28 = 0.5 for every policy; the initial target ≈ 60 costs ≈ 3.5."""
    r = train(flat, "ds", "base", {**FAST, "learning_rate": 0.003, "epochs": 40, "patience_epochs": 40},
              3, device="cpu")
    first = r.curve["val_loss"].iloc[0]
    assert first > 2.5
    assert 0.5 - 1e-9 <= r.test_loss < 1.2
    assert r.iterations == 40 and len(r.curve) == 40
    assert r.method == "ds" and r.reg == "base" and r.device == "cpu" and r.seed == 3


def expected_stop(val: list[float], patience: int, epochs: int) -> int:
    """Independent re-statement of the rule: stop after `patience` epochs w/o strict improvement."""
    best, bad = float("inf"), 0
    for e, v in enumerate(val, 1):
        if v < best:
            best, bad = v, 0
        else:
            bad += 1
        if bad >= patience:
            return e
    return epochs


def expected_lrs(val: list[float], lr0: float, factor: float, patience: int) -> list[float]:
    """ReduceLROnPlateau(min) with PyTorch's defaults: rel threshold 1e-4, no cooldown."""
    lrs, lr, best, bad = [], lr0, float("inf"), 0
    for v in val:
        lrs.append(lr)
        if v < best * (1 - 1e-4):
            best, bad = v, 0
        else:
            bad += 1
        if bad > patience:
            lr, bad = lr * factor, 0
    return lrs


@pytest.mark.parametrize("checkpoint", ["best", "last"])
def test_early_stop_schedule_and_checkpoint(flat, checkpoint):
    hp = {**FAST, "learning_rate": 0.01, "epochs": 60, "patience_epochs": 5, "plateau_patience": 1,
          "checkpoint": checkpoint}
    r = train(flat, "ds", "none", hp, 3, device="cpu")
    val = r.curve["val_loss"].tolist()
    assert r.iterations == expected_stop(val, 5, 60) == len(val)
    assert r.iterations < 60  # this run does stop early
    np.testing.assert_allclose(r.curve["lr"], expected_lrs(val, 0.01, 0.5, 1), rtol=1e-12)
    # reported losses re-evaluate the selected state in float64 (training evaluates in float32)
    target = min(val) if checkpoint == "best" else val[-1]
    np.testing.assert_allclose(r.val_loss, target, rtol=1e-5)
    np.testing.assert_allclose(r.best_val, min(val), rtol=1e-5)
    if checkpoint == "best":
        assert r.best_val == r.val_loss


def test_non_finite_batches_are_skipped():
    demand = np.full((6, 31), 10.0)
    demand[0, 5] = np.nan  # train trajectory 0 gives a NaN loss
    ds = tiny_dataset(demand)
    r = train(ds, "ds", "base", {**FAST, "learning_rate": 0.003, "epochs": 3, "patience_epochs": 3}, 1,
              device="cpu")
    assert r.curve["skipped_steps"].tolist() == [1, 2, 3]
    assert np.isfinite(r.val_loss) and np.isnan(r.train_loss)
    assert all(torch.isfinite(v).all() for v in r.model_state.values())


def test_train_on_test_split_option(noisy):
    r = train(noisy, "ds", "base", {**FAST, "learning_rate": 0.01, "epochs": 3}, 0, device="cpu",
              train_split="test", val_split="test")
    assert r.train_loss == r.val_loss == r.test_loss
    assert r.config["train_split"] == "test"
    with pytest.raises(ConfigError, match="the torch ds trainer has no option 'trian_split'"):
        train(noisy, "ds", "base", {"epochs": 1}, 0, device="cpu", trian_split="test")


def test_same_seed_same_run_folder(noisy, tmp_path):
    hp = {**FAST, "learning_rate": 0.01, "epochs": 4, "batch_size": 2}
    for k in ("a", "b"):
        save_run(train(noisy, "ds", "base", hp, 7, device="cpu"), tmp_path / k)
    ma, mb = (json.loads((tmp_path / k / "metrics.json").read_text()) for k in ("a", "b"))
    assert ma.pop("wall_s") > 0 and mb.pop("wall_s") > 0
    assert ma == mb
    assert (tmp_path / "a" / "curve.csv").read_bytes() == (tmp_path / "b" / "curve.csv").read_bytes()
    other = train(noisy, "ds", "base", hp, 8, device="cpu")
    assert other.val_loss != ma["val_loss"]
    state = torch.load(tmp_path / "a" / "model.pt")
    assert state["body.4.bias"].shape == (1,)


@pytest.mark.parametrize("reg", ["coeff", "both"])
def test_coeff_regularizations_train(noisy, reg):
    # φ scaled by 1/K_c so that K_c Σ w φ stays inside [0, M] and gradients are not clipped away
    ds = dataclasses.replace(noisy, coeff=noisy.coeff / 28)
    r = train(ds, "ds", reg, {**FAST, "initial_action_bias": 0.0, "learning_rate": 0.01,
                                 "epochs": 3}, 0, device="cpu")
    assert r.model_state["body.4.bias"].shape == (5,)
    assert np.isfinite([r.train_loss, r.val_loss, r.test_loss]).all()
    assert r.curve["val_loss"].nunique() > 1  # the policy moved


def test_save_run_layout(tmp_path):
    res = TrainResult(
        setting="s1", method="ddpg", reg="base", seed=1, train_loss=1.0, val_loss=2.0,
        test_loss=3.0, best_val=1.5, iterations=10, wall_s=0.1, device="cpu",
        curve=pd.DataFrame({"step": [1, 2], "val": [2.0, 1.5]}), config={"a": 1},
        policy=lambda o: o, extras={"critic": pd.DataFrame({"loss": [0.5]}), "n": 3},
        model_state={"w": torch.ones(2)},
    )
    save_run(res, tmp_path / "run")
    files = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert files == ["critic.csv", "curve.csv", "metrics.json", "model.pt"]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m == metrics_dict(res)
    assert (m["test_loss"], m["best_val"], m["iterations"], m["extras"]) == (3.0, 1.5, 10, {"n": 3})
    assert "gap" not in json.dumps(m)


def test_dispatcher_errors(noisy):
    with pytest.raises(ConfigError, match="unknown method"):
        train(noisy, "a2c", "base", {}, 0)
    with pytest.raises(ConfigError, match="unknown regularization"):
        train(noisy, "ds", "basic", {}, 0)
    with pytest.raises(ConfigError, match="learning_rate"):
        train(noisy, "ds", "base", {"learning_rate": "fast"}, 0, device="cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu(noisy):
    hp = {**FAST, "learning_rate": 0.003, "epochs": 5}
    a = train(noisy, "ds", "base", hp, 2, device="cpu")
    b = train(noisy, "ds", "base", hp, 2, device="cuda")
    assert b.device == "cuda"
    np.testing.assert_allclose(b.curve["val_loss"], a.curve["val_loss"], rtol=1e-3)
    np.testing.assert_allclose([b.test_loss], [a.test_loss], rtol=1e-3)


# ------------------------------------------------------------------------------- CLI
@pytest.fixture()
def data_file(noisy, tmp_path):
    return str(noisy.save(tmp_path / "s1.npz"))


def test_cli_train_writes_run(data_file, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "s1", "--method", "ds", "--reg", "base", "--seed", "3", "--data", data_file,
               "--out", str(out), "--device", "cpu", "--set", "epochs=2",
               "--set", "neurons_per_hidden_layer=[8, 8]"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["iterations"] == 2 and m["seed"] == 3
    assert m["config"]["neurons_per_hidden_layer"] == [8, 8]
    assert m["config"]["learning_rate"] == 0.03107728177311676  # spec default of the DS-Base cell
    assert len(pd.read_csv(out / "curve.csv")) == 2
    assert "test" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("yaml_text", "needle"),
    [("learning_rate: fast\n", "learning_rate"), ("epocs: 3\n", "epocs"),
     ("neurons_per_hidden_layer: 64\n", "neurons_per_hidden_layer")],
)
def test_cli_yaml_errors_are_one_line(data_file, tmp_path, capsys, yaml_text, needle):
    y = tmp_path / "h.yaml"
    y.write_text(yaml_text)
    rc = main(["train", "s1", "--method", "ds", "--reg", "base", "--hparams", str(y),
               "--data", data_file, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and needle in err and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_cli_other_errors(data_file, tmp_path, capsys):
    base = ["train", "s2", "--method", "ds", "--reg", "base", "--data", data_file,
            "--out", str(tmp_path / "r")]
    assert main(base) == 2  # the file holds s1
    assert "s1" in capsys.readouterr().err
    base[1] = "s1"
    assert main([*base, "--log-critic"]) == 2
    assert "ddpg" in capsys.readouterr().err
    assert main([*base, "--set", "epochs"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
