"""Sizes are bounded before allocation: a one-line error that says how much memory it would take."""

from __future__ import annotations

import pytest

from deepstock.cli import main
from deepstock.hparams import resolve_hparams, training_memory
from deepstock.problem.generators import generate_dataset


@pytest.fixture(scope="module")
def s1_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "s1.npz"
    generate_dataset("s1").save(path)
    return path


@pytest.mark.parametrize(
    ("method", "setting"),
    [("ds", "neurons_per_hidden_layer=[100000,100000]"),
     ("ddpg", "net_arch={pi: [100000, 100000], qf: [64, 64]}"),
     ("ddpg", "buffer_size=1000000000000"),
     ("ppo", "n_steps=100000000000")],
)
def test_a_training_too_big_for_memory_is_refused_saying_how_many_gb(
    s1_path, tmp_path, capsys, method, setting
):
    rc = main(["train", "s1", "--method", method, "--reg", "base", "--set", setting,
               "--data", str(s1_path), "--out", str(tmp_path / "run")])
    assert rc == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "iB" in err and "DEEPSTOCK_MAX_TRAIN_GB" in err
    assert not (tmp_path / "run").exists()


def test_the_memory_bound_is_an_environment_setting(monkeypatch):
    hp = resolve_hparams("ddpg", "s1", "base")
    need = training_memory("ddpg", hp)
    assert 1e6 < need < 1e8  # the paper's defaults: a few MB
    monkeypatch.setenv("DEEPSTOCK_MAX_TRAIN_GB", str(need / 2 / 2**30))
    with pytest.raises(Exception, match="would need"):
        resolve_hparams("ddpg", "s1", "base")


def test_every_default_configuration_fits_the_default_bound():
    for method in ("ds", "ddpg", "ppo"):
        for setting in ("s1", "s2", "s3", "s4_n20_t131"):
            for reg in ("none", "base", "coeff", "both"):
                assert training_memory(method, resolve_hparams(method, setting, reg)) < 1e8
