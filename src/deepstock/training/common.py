"""Helpers shared by every trainer: seeding, device choice and run output (spec §7.5, §8).

Run folder layout written by :func:`save_run` (atomically: the folder holds its previous content
or the complete new run, never a mix; readers go through :func:`read_run`, which requires
``metrics.json``):

- ``metrics.json``  losses of the selected policy on train/val/test, ``best_val``, iterations,
  wall seconds, device, seed, the full resolved config, the package version and the provenance
  (commit, stack, CPU, numerics; :mod:`deepstock.provenance`) (no gaps);
- ``curve.csv``     per-epoch (DS) or per-evaluation (RL) history;
- ``model.pt``      torch ``state_dict`` (DS), ``model.zip`` (an SB3 model's own format), or
  ``model.npz``     the JAX backend's parameters (numpy arrays keyed ``actor/0/w`` ...);
- ``<key>.csv``     one file per pandas DataFrame found in ``extras`` (e.g. a critic-loss log).
"""

from __future__ import annotations

import io
import math
import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepstock.errors import DataError, DeepstockError
from deepstock.io import (
    check_folder_target,
    ensure_folder,
    read_json,
    write_bytes,
    write_csv,
    write_folder,
    write_json,
)

if TYPE_CHECKING:  # pragma: no cover
    from deepstock.training import TrainResult



class NoImprovementStopper:
    """SB3 ``StopTrainingOnNoModelImprovement`` semantics (spec §7.2), called once per evaluation.

    After evaluation k > ``min_evals`` the counter resets if the best improved since evaluation
    k-1 and increments otherwise; training stops when the counter exceeds ``patience``.
    """

    def __init__(self, patience: int, min_evals: int) -> None:
        self.patience, self.min_evals = int(patience), int(min_evals)
        self.n_evals = 0
        self.counter = 0
        self.last_best = -math.inf

    def update(self, best: float) -> bool:
        """Record the best value after an evaluation; return False when training should stop."""
        self.n_evals += 1
        keep_going = True
        if self.n_evals > self.min_evals:
            if best > self.last_best:
                self.counter = 0
            else:
                self.counter += 1
                keep_going = self.counter <= self.patience
        self.last_best = best
        return keep_going


def seed_everything(seed: int, *, threads: int | None = 1) -> None:
    """Seed Python, numpy and torch with the run seed; deterministic torch kernels (spec §7.5).

    ``threads`` sets ``torch.set_num_threads`` (one thread by default, spec §7.5); None leaves it.
    Deterministic algorithms are requested with ``warn_only`` so an op without a deterministic
    kernel warns instead of failing; cuBLAS gets the workspace setting it needs for determinism.
    """
    import torch

    seed = int(seed)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU."""
    import torch

    return bool(torch.cuda.is_available())


class NonFiniteMetric(DeepstockError):
    """A training's reported loss is NaN or infinite: the run fails, nothing is written."""


#: The losses a run reports (metrics.json); each must be finite.
LOSS_METRICS = ("train_loss", "val_loss", "test_loss", "best_val")


def check_finite_metrics(result: TrainResult) -> None:
    """One-line :class:`NonFiniteMetric` naming the run and the first loss that is NaN or
    infinite (a diverged training, an overflow); a run never reports one."""
    for key in LOSS_METRICS:
        value = getattr(result, key)
        try:
            finite = math.isfinite(float(value))
        except (TypeError, ValueError, OverflowError):
            finite = False
        if not finite:
            raise NonFiniteMetric(
                f"{result.setting} {result.method}-{result.reg} seed {result.seed}: the training "
                f"gave a non-finite {key} ({value!r}); the run is not saved (a diverged training "
                "or an overflow: check M, learning_rate and the data)")


def metrics_dict(result: TrainResult, run: dict | None = None) -> dict[str, Any]:
    """The content of ``metrics.json`` (JSON-ready; gaps are computed by the report, not here),
    with the provenance of the process that writes it (:func:`deepstock.provenance.record`;
    ``run`` adds the executor and batch of a tuning cell, else a plain ``train``). A non-finite
    loss is a one-line :class:`NonFiniteMetric` (:func:`check_finite_metrics`)."""
    from deepstock import __version__, provenance

    check_finite_metrics(result)
    plain_extras = {
        k: v for k, v in result.extras.items() if not hasattr(v, "to_csv") and _jsonable(v)
    }
    return {
        "setting": result.setting,
        "method": result.method,
        "reg": result.reg,
        "seed": int(result.seed),
        "train_loss": float(result.train_loss),
        "val_loss": float(result.val_loss),
        "test_loss": float(result.test_loss),
        "best_val": float(result.best_val),
        "iterations": int(result.iterations),
        "wall_s": float(result.wall_s),
        "device": result.device,
        "backend": result.backend,
        "config": result.config,
        "extras": plain_extras,
        "version": __version__,
        "provenance": provenance.record(backend=result.backend,
                                        **(run or {"executor": "train", "batch": 1})),
    }


def _jsonable(v: Any) -> bool:
    return isinstance(v, (str, int, float, bool, list, dict, tuple, type(None), np.generic))


RUN_MARKER = "metrics.json"
_RUN_NAMES = (RUN_MARKER, "model.pt", "model.zip", "model.npz")


def is_run_file(name: str) -> bool:
    """Whether ``name`` is a file :func:`save_run` writes (or a temp file of an interrupted write)."""
    return name in _RUN_NAMES or name.endswith(".csv") or (
        name.startswith(".") and name.endswith(".tmp"))


def save_run(result: TrainResult, out_dir: str | os.PathLike, run: dict | None = None) -> Path:
    """Write the run folder ``out_dir`` atomically (layout in the module docstring).

    Everything is written into a hidden sibling folder, then swapped in with
    :func:`deepstock.io.write_folder`: ``out_dir`` holds either its previous content or the
    complete new run, never a mix. An existing ``out_dir`` holding files :func:`save_run` does
    not write, a symbolic link or a non-folder there is refused with a one-line DataError.
    """
    check_finite_metrics(result)  # before anything is written
    write_folder(out_dir, lambda tmp: _write_run_files(result, tmp, run), owned=is_run_file)
    return Path(out_dir)


def _write_run_files(result: TrainResult, out: Path, run: dict | None = None) -> None:
    write_csv(out / "curve.csv", result.curve)
    for key, value in result.extras.items():
        if hasattr(value, "to_csv"):
            write_csv(out / f"{key}.csv", value)
    state = result.model_state
    if state is not None:
        buf = io.BytesIO()
        if hasattr(state, "save") and not isinstance(state, dict):  # SB3 model
            state.save(buf)
            write_bytes(out / "model.zip", buf.getvalue())
        elif isinstance(state, dict) and all(isinstance(v, np.ndarray) for v in state.values()):
            np.savez(buf, **state)  # JAX parameters
            write_bytes(out / "model.npz", buf.getvalue())
        else:
            import torch

            torch.save(state, buf)
            write_bytes(out / "model.pt", buf.getvalue())
    write_json(out / RUN_MARKER, metrics_dict(result, run))


def read_run(run_dir: str | os.PathLike) -> dict:
    """``metrics.json`` of a complete run folder; a folder without it is a one-line DataError."""
    path = Path(run_dir) / RUN_MARKER
    if not path.is_file():
        raise DataError(f"{run_dir} is not a complete run folder (no {RUN_MARKER})")
    metrics = read_json(path)
    if not isinstance(metrics, dict):
        raise DataError(f"{path}: expected a JSON object")
    return metrics


def check_run_dir(out_dir: str | os.PathLike) -> None:
    """Refuse now, with the one-line DataError :func:`save_run` would give, a bad ``out_dir``."""
    path = Path(os.path.abspath(out_dir))
    check_folder_target(path, is_run_file)
    ensure_folder(path.parent, path)


def shape_key(config: dict, value_keys: Sequence[str]) -> tuple:
    """What must be equal for two configurations to train in one population program: every key
    but ``value_keys`` (the hyper-parameters a population carries as per-agent values)."""
    return tuple(sorted((k, repr(v)) for k, v in config.items() if k not in value_keys))


def group_by_shape(configs: Sequence[dict], value_keys: Sequence[str]) -> list[list[int]]:
    """Indices of ``configs`` grouped by :func:`shape_key`, in first-seen order."""
    groups: dict[tuple, list[int]] = {}
    for i, cfg in enumerate(configs):
        groups.setdefault(shape_key(cfg, value_keys), []).append(i)
    return list(groups.values())
