"""Test-wide setup: the CLI's pinned numerics (deepstock.numerics), one torch thread, JAX's
runtime settings (deepstock.training.jaxrt.configure), local Ray."""

import os

from deepstock import numerics  # noqa: E402 - light: no numpy, torch or JAX

numerics.configure()  # the CLI's numerics (one thread, AVX2 kernels) before torch and XLA load
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import torch  # noqa: E402

torch.set_num_threads(1)

from deepstock.training import jaxrt  # noqa: E402

jaxrt.configure()  # as a JAX training does first (XLA flags, threefry), before any test's trace

import pytest  # noqa: E402

_CORES = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None


def pytest_configure(config):
    """Start XLA's CPU client on one core in each process that runs tests, before any test does.

    The client sizes its thread pool from the cores the process may use when it starts, and that
    decides bits (PPO's golden: 6.52217841 when JAX starts pinned, 6.52217845 when it starts on
    two cores); the CLI and the tuner's workers pin before JAX starts (jaxrt.setup), so a test
    worker must too, whatever test happens to touch JAX first. The cores come back at once."""
    controller = getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput")
    if controller or _CORES is None:
        return
    import jax

    jaxrt.pin()
    jax.devices("cpu")
    os.sched_setaffinity(0, _CORES)


@pytest.fixture(autouse=True)
def _every_core_after_a_jax_test():
    """A JAX training pins its process to one core (deepstock.training.jaxrt); give the worker its cores
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
    import dataclasses

    import deepstock.training.backends as backends

    real = backends.load_trainer
    failed: list[int] = []

    def install(mode: str) -> list[int]:
        calls = {"n": 0}

        def load(method, backend=None):
            trainer = real(method, backend)

            def train(*args, **kwargs):
                calls["n"] += 1
                if mode == "all" or (mode in ("first", "first_nan") and calls["n"] == 1):
                    failed.append(calls["n"])
                    if mode == "first_nan":
                        raise FloatingPointError("injected NaN validation loss")
                    raise RuntimeError("injected trial failure")
                return trainer.train(*args, **kwargs)

            return dataclasses.replace(trainer, train=train, population=None)

        monkeypatch.setattr(backends, "load_trainer", load)
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
    import dataclasses

    import pandas as pd

    import deepstock.training as trainers
    import deepstock.training.backends as backends
    from deepstock.registry import get_method

    class Calls(list):
        populations: list[int]  # size of each population trained, in order

    calls = Calls()
    calls.populations = []
    real_load = backends.load_trainer

    def stand_in(method, name):
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

    def load_trainer(method, backend=None):
        m = get_method(getattr(method, "name", method))
        b = backend if isinstance(backend, type(m.backend())) else m.backend(backend)
        real, one = real_load(m, b), stand_in(m.name, b.name)

        def population(dataset, reg, hparams, seeds, **kwargs):
            calls.populations.append(len(hparams))
            return [one(dataset, reg, h, s, **kwargs) for h, s in zip(hparams, seeds, strict=True)]

        return dataclasses.replace(real, train=one,
                                   population=None if real.population is None else population)

    monkeypatch.setattr(backends, "load_trainer", load_trainer)
    return calls


@pytest.fixture
def swap_train(monkeypatch):
    """``swap_train(make)``: every backend's train function becomes ``make(method, backend)``
    (the rest of its Trainer stays the real one), through the one loader
    (:func:`deepstock.training.backends.load_trainer`)."""
    import dataclasses

    import deepstock.training.backends as backends

    real = backends.load_trainer

    def swap(make):
        def load(method, backend=None):
            t = real(method, backend)
            m = getattr(method, "name", method)
            b = getattr(backend, "name", backend)
            return dataclasses.replace(t, train=make(m, b), population=None)

        monkeypatch.setattr(backends, "load_trainer", load)

    return swap


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Setting 1's paper-exact dataset (``.npz``), once per test module."""
    from deepstock.problem.generators import generate_dataset

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
