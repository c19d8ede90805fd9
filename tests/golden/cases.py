"""The golden cases: tiny trainings of every backend and a tiny two-stage tune on Setting 1.

Each case returns the numbers it pins (exact floats). ``python -m tests.golden.make`` records
them in ``tests/golden/goldens.json`` with the provenance of the recording; ``tests/test_golden.py``
reruns each case and compares bit for bit. Setting 1's paper-exact dataset is generated afresh
(its bits are held by tests/test_datasets.py).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from deepstock.hparams import get_scale
from deepstock.problem.generators import generate_dataset

SEED = 42


def _dataset():
    return generate_dataset("s1")


def _weights_sha256(state) -> str:
    """SHA-256 of the selected policy's weights, every tensor's bytes in key order (torch
    state_dict, an SB3 model's policy, or the JAX backend's numpy arrays)."""
    import hashlib

    import numpy as np

    if hasattr(state, "policy"):  # an SB3 model
        state = state.policy.state_dict()
    h = hashlib.sha256()
    for key in sorted(state):
        value = state[key]
        array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        h.update(key.encode() + np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def _losses(result) -> dict:
    return {"train_loss": result.train_loss, "val_loss": result.val_loss,
            "test_loss": result.test_loss, "best_val": result.best_val,
            "iterations": result.iterations, "weights_sha256": _weights_sha256(result.model_state)}


def _training(method: str, backend: str) -> Callable[[], dict]:
    def run() -> dict:
        from deepstock.training import train

        budget = get_scale("tiny").budget(method)
        return _losses(train(_dataset(), method, "base", budget, SEED, backend=backend,
                             device="cpu"))
    return run


def _tune() -> dict:
    from deepstock.tuning import TuneOptions, tune_cell

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "s1.npz"
        _dataset().save(data)
        w = tune_cell("s1", "ds", "base", data, Path(tmp) / "cell",
                      TuneOptions(scale="tiny", executor="local", quiet=True, device="cpu"))
    return {"test_loss": w["test_loss"], "val_loss": w["val_loss"],
            "reported_seed": w["reported_seed"], "searched": w["searched"],
            "stage2_val_losses": [c["val_losses"] for c in w["configs"]]}


CASES: dict[str, Callable[[], dict]] = {
    "ds-torch": _training("ds", "torch"),
    "ddpg-jax": _training("ddpg", "jax"),
    "ppo-jax": _training("ppo", "jax"),
    "ddpg-sb3": _training("ddpg", "sb3"),
    "ppo-sb3": _training("ppo", "sb3"),
    "tune-ds": _tune,
}
