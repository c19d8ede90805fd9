"""Test-wide setup: the CLI's pinned numerics (deepstock.numerics), one torch thread, JAX's
runtime settings (deepstock.jaxrt.configure), local Ray."""

import os

from deepstock import numerics  # noqa: E402 - light: no numpy, torch or JAX

numerics.configure()  # the CLI's numerics (one thread, AVX2 kernels) before torch and XLA load
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import torch  # noqa: E402

torch.set_num_threads(1)

from deepstock import jaxrt  # noqa: E402

jaxrt.configure()  # as a JAX training does first (XLA flags, threefry), before any test's trace

import pytest  # noqa: E402

_CORES = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None


@pytest.fixture(autouse=True)
def _every_core_after_a_jax_test():
    """A JAX training pins its process to one core (deepstock.jaxrt); give the worker its cores
    back after each test, so the subprocesses later tests start (CLI, Snakemake) keep them. The
    next JAX training pins to the same claimed core again."""
    yield
    if _CORES is not None and os.sched_getaffinity(0) != _CORES:
        os.sched_setaffinity(0, _CORES)


@pytest.fixture
def failing_trials(monkeypatch):
    """Make trainings fail on purpose, in this process (the tuner's local executor).

    ``failing_trials("all")`` fails every training, ``failing_trials("first")`` the first one,
    ``failing_trials("first_nan")`` the first one with a non-finite validation loss. Returns the
    list of call numbers that failed.
    """
    import deepstock.trainers as trainers

    real = trainers.train
    failed: list[int] = []

    def install(mode: str) -> list[int]:
        calls = {"n": 0}

        def train(*args, **kwargs):
            calls["n"] += 1
            if mode == "all" or (mode in ("first", "first_nan") and calls["n"] == 1):
                failed.append(calls["n"])
                if mode == "first_nan":
                    raise FloatingPointError("injected NaN validation loss")
                raise RuntimeError("injected trial failure")
            return real(*args, **kwargs)

        monkeypatch.setattr(trainers, "train", train)
        return failed

    return install


@pytest.fixture
def fake_trainers(monkeypatch):
    """Replace every trainer (every method and backend) by an instant stand-in, in this process.

    The stand-in's losses depend on the learning rate and the seed only, its ``TrainResult``
    names the backend it was asked for, and each call is recorded as ``(method, backend,
    device)`` in the returned list; a backend's population trainer runs the stand-in per member
    and records its size in ``calls.populations``. Use it to exercise the plumbing of a backend whose trainer
    is not needed (or not installed), never to check training itself.
    """
    import pandas as pd

    import deepstock.trainers as trainers
    from deepstock.registry import get_method

    class Calls(list):
        populations: list[int]  # size of each population trained, in order

    calls = Calls()
    calls.populations = []

    def get_trainer(method, backend=None):
        name = get_method(method).backend(backend).name

        def trainer(dataset, reg, hparams, seed, *, device="auto", progress=False, **options):
            calls.append((method, name, device))
            val = 1.0 + hparams["learning_rate"] + seed * 1e-6
            return trainers.TrainResult(
                setting=dataset.setting.id, method=method, reg=reg, seed=seed,
                train_loss=val - 0.1, val_loss=val, test_loss=val + 0.1, best_val=val,
                iterations=1, wall_s=0.0, device=device,
                curve=pd.DataFrame({"iteration": [1], "val_loss": [val]}),
                config=dict(hparams), policy=lambda obs: None, backend=name)

        return trainer

    def get_population_trainer(method, backend=None):
        if get_method(method).backend(backend).population is None:
            return None

        def population(dataset, reg, hparams, seeds, **kwargs):
            calls.populations.append(len(hparams))
            one = get_trainer(method, backend)
            return [one(dataset, reg, h, s, **kwargs) for h, s in zip(hparams, seeds, strict=True)]

        return population

    monkeypatch.setattr(trainers, "get_trainer", get_trainer)
    monkeypatch.setattr(trainers, "get_population_trainer", get_population_trainer)
    return calls


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Setting 1's paper-exact dataset (``.npz``), once per test module."""
    from deepstock.generators import generate_dataset

    path = tmp_path_factory.mktemp("data") / "s1.npz"
    generate_dataset("s1").save(path)
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data):
    """A finished tiny Setting 1 DS-Base cell (2 configurations, then the top 1 x seeds 42, 43),
    once per test module."""
    from deepstock.cli import main

    out = tmp_path_factory.mktemp("cell") / "rep0"
    assert main(["tune", "s1", "--method", "ds", "--reg", "base", "--scale", "tiny", "--executor",
                 "local", "--quiet", "--data", str(data), "--out", str(out)]) == 0
    return out
