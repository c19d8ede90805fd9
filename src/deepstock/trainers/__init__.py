"""The training API shared by DS, DDPG, PPO, the tuning code and ``deepstock train``.

``train(dataset, method, reg, hparams, seed)`` dispatches to the trainer registered in
``TRAINERS`` (imported lazily, so DS never loads stable-baselines3) and returns a
:class:`TrainResult`; ``save_run`` writes it to a run folder (see :mod:`deepstock.trainers.common`).

Every trainer has the signature
``fn(dataset, reg, hparams, seed, *, device, progress, **options) -> TrainResult``, seeds itself
with :func:`seed_everything`, and reports the losses of the *selected* policy (best-val
checkpoint by default, spec §7.2/§7.5) on the full splits through the shared simulator.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from deepstock.data import Dataset
from deepstock.errors import ConfigError
from deepstock.trainers.common import resolve_device, save_run, seed_everything

__all__ = ["TRAINERS", "TrainResult", "get_trainer", "resolve_device", "save_run",
           "seed_everything", "train"]


@dataclass
class TrainResult:
    """Outcome of one training run (one setting, method, regularization and seed)."""

    setting: str
    method: str
    reg: str
    seed: int
    train_loss: float  # selected policy, full split, shared simulator
    val_loss: float
    test_loss: float
    best_val: float  # tuning metric: min val loss seen (= val_loss when checkpoint='best')
    iterations: int  # epochs (DS) or env steps (RL)
    wall_s: float
    device: str
    curve: pd.DataFrame  # per-epoch / per-evaluation history
    config: dict  # full resolved hparams + options
    policy: Callable  # numpy Observation -> orders [n]
    extras: dict = field(default_factory=dict)  # method-specific payload (DataFrames -> CSV)
    model_state: Any = None  # torch state_dict or SB3 model


TRAINERS: dict[str, str] = {
    "ds": "deepstock.trainers.ds:train_ds",
    "ddpg": "deepstock.trainers.sb3:train_ddpg",
    "ppo": "deepstock.trainers.sb3:train_ppo",
}


def get_trainer(method: str) -> Callable[..., TrainResult]:
    """Import and return the trainer function of ``method`` (ConfigError if unknown)."""
    try:
        target = TRAINERS[method]
    except KeyError:
        raise ConfigError(f"unknown method {method!r}; expected one of {sorted(TRAINERS)}") from None
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def train(
    dataset: Dataset,
    method: str,
    reg: str,
    hparams: dict,
    seed: int,
    *,
    device: str = "auto",
    progress: bool = False,
    **options: Any,
) -> TrainResult:
    """Train ``method`` with regularization ``reg`` on ``dataset`` and return the selected policy."""
    from deepstock.regularizations import get_regularization

    get_regularization(reg)  # validate early, one-line ConfigError
    fn = get_trainer(method)
    return fn(dataset, reg, hparams, seed, device=device, progress=progress, **options)
