"""The `deepstock` command: every subcommand has --help, start-up stays light, and `--backend`
is checked against the registry before any compute and reaches the trainer and metrics.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from deepstock.cli import COMMANDS, main
from deepstock.errors import ConfigError
from deepstock.problem.generators import generate_dataset


@pytest.fixture(scope="module")
def s1_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "s1.npz"
    generate_dataset("s1").save(path)
    return path


@pytest.mark.parametrize("command", [c.__name__.rsplit(".", 1)[1] for c in COMMANDS])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: deepstock " + command in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 1
    assert "COMMAND" in capsys.readouterr().out


def test_parser_does_not_import_torch_pandas_or_ray():
    """`deepstock data` and `--help` must not pay torch/pandas/ray start-up (Snakemake runs many)."""
    code = (
        "import sys; from deepstock.cli import build_parser; build_parser(); "
        "heavy = [m for m in ('torch', 'pandas', 'ray', 'stable_baselines3') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("command", ["train", "tune"])
def test_a_backend_the_method_lacks_is_one_line_naming_the_option_before_any_compute(
        command, tmp_path, capsys):
    out = tmp_path / "out"
    argv = [command, "s1", "--method", "ds", "--reg", "base", "--backend", "jax",
            "--data", str(tmp_path / "missing.npz"), "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1, err
    assert "--backend jax" in err and "'torch'" in err  # the option and what the method offers
    assert "missing.npz" not in err and not out.exists()  # refused before the data is read


@pytest.mark.parametrize("command", ["train", "tune"])
def test_a_backend_no_method_declares_is_refused_by_the_parser_naming_the_option(
        command, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "s1", "--method", "ppo", "--reg", "base", "--backend", "tensorflow",
              "--data", "d.npz", "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--backend" in last and "tensorflow" in last and "sb3" in last


@pytest.mark.parametrize(("method", "extra", "expected"), [
    ("ddpg", ["--backend", "sb3", "--set", "total_steps=300", "--set", "learning_starts=100",
              "--set", "eval_freq=100"], "sb3"),
    ("ds", ["--set", "epochs=1"], "torch"),  # no --backend: the method's default
])
def test_train_records_the_backend_that_trained_in_metrics_json(
        s1_path, tmp_path, capsys, method, extra, expected):
    out = tmp_path / "run"
    assert main(["train", "s1", "--method", method, "--reg", "base", "--device", "cpu",
                 "--data", str(s1_path), "--out", str(out), *extra]) == 0
    assert json.loads((out / "metrics.json").read_text())["backend"] == expected
    assert f"cpu, {expected})" in capsys.readouterr().out


def _winner(path: Path, backend: str | None) -> Path:
    winner = {"method": "ddpg", "hparams": {"learning_rate": 0.001}, "reported_seed": 7}
    if backend is not None:
        winner["backend"] = backend
    path.write_text(json.dumps(winner))
    return path


@pytest.mark.parametrize(("stored", "option", "expected"), [
    ("jax", [], "jax"),                   # the winner's backend
    ("jax", ["--backend", "sb3"], "sb3"),  # an explicit --backend wins
    (None, [], "sb3"),                    # a winner.json without one: the method's default
])
def test_retraining_a_winner_uses_its_backend_unless_told_otherwise(
        s1_path, tmp_path, monkeypatch, stored, option, expected):
    import dataclasses

    import deepstock.training.backends as backends

    asked: list[str | None] = []

    real = backends.load_trainer

    def capturing(method, backend=None):
        asked.append(getattr(backend, "name", backend))

        def trainer(*args, **kwargs):
            raise ConfigError("captured")
        return dataclasses.replace(real(method, backend), train=trainer)

    monkeypatch.setattr(backends, "load_trainer", capturing)
    assert main(["train", "s1", "--method", "ddpg", "--reg", "base", *option,
                 "--from-winner", str(_winner(tmp_path / "w.json", stored)),
                 "--data", str(s1_path), "--out", str(tmp_path / "run")]) == 2
    assert set(asked) == {expected}  # the one loader, for the flags and the job


def test_a_winner_of_a_backend_the_method_lacks_is_one_line_naming_the_file(
        s1_path, tmp_path, capsys):
    winner = _winner(tmp_path / "w.json", "torch")
    assert main(["train", "s1", "--method", "ddpg", "--reg", "base", "--from-winner",
                 str(winner), "--data", str(s1_path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "--from-winner" in err and "backend torch" in err
