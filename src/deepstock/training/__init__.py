"""The training API shared by DS, DDPG, PPO, the tuning code and ``deepstock train``.

``train(dataset, method, reg, hparams, seed)`` resolves the complete hyper-parameters
(:func:`deepstock.hparams.resolve_hparams`: ``hparams`` are overrides of the cell's defaults),
builds the typed :class:`~deepstock.training.backends.TrainJob` once and trains it;
``train_population(dataset, method, reg, [hparams...], [seed...])`` trains configuration k with
seed k, in one program where the backend has a population trainer, and returns the K results
in order. ``save_run`` writes a result to a run folder atomically and ``read_run`` reads a
complete one back (see :mod:`deepstock.training.common`).

Every backend module declares ``TRAINERS`` (method -> :class:`~deepstock.training.backends.
Trainer`) and is imported by :func:`~deepstock.training.backends.load_trainer` only, when a
training needs it (DS never loads stable-baselines3). Every trainer has the signature
``fn(dataset, reg, hparams, seed, *, device, progress, **options) -> TrainResult``, seeds itself
with :func:`seed_everything`, and reports the losses of the *selected* policy (best-val
checkpoint by default, spec §7.2/§7.5) on the full splits through the shared simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deepstock.training.common import read_run, save_run, seed_everything

if TYPE_CHECKING:  # annotations only: importing the package (registry does) stays light
    import pandas as pd

    from deepstock.problem.data import Dataset

__all__ = ["TrainResult", "read_run", "save_run", "seed_everything", "train", "train_population"]


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
    model_state: Any = None  # torch state_dict, SB3 model, or a dict of numpy arrays (JAX)
    backend: str = ""  # the registry backend that trained it (sb3 | jax | torch)


def train(
    dataset: Dataset,
    method: str,
    reg: str,
    hparams: dict,
    seed: int,
    *,
    device: str = "auto",
    progress: bool = False,
    backend: str | None = None,
    **options: Any,
) -> TrainResult:
    """Train ``method`` with regularization ``reg`` on ``dataset`` and return the selected policy.

    ``hparams`` are overrides of the cell's defaults, resolved here by
    :func:`deepstock.hparams.resolve_hparams` exactly as ``deepstock train`` resolves them:
    ``train(dataset, "ddpg", "base", {})`` is the default configuration of every method.
    ``backend`` picks the method's implementation (registry; None = its default).
    """
    from deepstock.hparams import resolve_hparams
    from deepstock.training.backends import make_job

    config = resolve_hparams(method, dataset.setting, reg, overrides=hparams)
    job = make_job(dataset.setting, method, reg, config, backend=backend, device=device,
                   options=options)
    return job.train(dataset, seed, progress=progress)


def train_population(
    dataset: Dataset,
    method: str,
    reg: str,
    hparams: list[dict],
    seeds: list[int],
    *,
    device: str = "auto",
    progress: bool = False,
    backend: str | None = None,
    **options: Any,
) -> list[TrainResult]:
    """Train configuration k (overrides, resolved as :func:`train` does) with seed k; results in
    input order, each equal to what :func:`train` returns for that pair (tested per backend)."""
    from deepstock.hparams import resolve_hparams
    from deepstock.training.backends import make_job

    configs = [resolve_hparams(method, dataset.setting, reg, overrides=h) for h in hparams]
    job = make_job(dataset.setting, method, reg, configs[0], backend=backend, device=device,
                   options=options)
    return job.train_population(dataset, configs, seeds, progress=progress)
