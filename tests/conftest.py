"""Test-wide setup: one BLAS/OpenMP thread (as the CLI does), one torch thread, local Ray."""

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import torch  # noqa: E402

torch.set_num_threads(1)

import pytest  # noqa: E402


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
