"""The trainer interface of a backend, the one place backends are loaded, and the typed job.

- :class:`Trainer`: what a backend module offers for one method, declared in the module's
  ``TRAINERS`` mapping (method name -> Trainer): the training function, the population trainer
  (K agents in one program, or None), the options it accepts with their defaults, its
  capabilities (``critic_log``: DDPG's Figure 3 log) and its GPU probe.
- :func:`load_trainer`: imports the backend's module (:attr:`deepstock.registry.Backend.module`)
  the first time a training needs it — the only dynamic import of trainer code.
- :func:`resolve_device`: the one device resolver of every training.
- :class:`TrainJob`: one training resolved once — setting, method, regularization and backend
  objects, the device, the complete validated hyper-parameters and the backend's options. The
  entry points build it (:func:`make_job`; ``deepstock train``, ``deepstock tune``'s trials,
  ``trainers.train``, the DS-on-test benchmark) and everything downstream receives it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from deepstock.errors import ConfigError
from deepstock.problem.settings import Setting
from deepstock.registry import (
    Backend,
    CheckedHParams,
    Method,
    checked_hparams,
    get_method,
    get_regularization,
)
from deepstock.training.regularizations import Regularization

DEVICES = ("auto", "cpu", "cuda")
#: Train option ``population`` of every backend with a population trainer: how K agents run.
#: ``sequential``: one after another, each its single run bit for bit (DS: K calls of its
#: single trainer; JAX: ``lax.map`` of the single-agent program); ``vmap``: one batched program
#: (the GPU's throughput; rounds differently from single runs); ``auto``: ``vmap`` on a GPU,
#: ``sequential`` on a CPU.
POPULATION_MODES = ("auto", "vmap", "sequential")


@dataclass(frozen=True)
class Trainer:
    """One backend's implementation of one method (see the module docstring).

    ``train(dataset, reg, hparams, seed, *, device, progress, **options) -> TrainResult``;
    ``population(dataset, reg, [hparams], [seeds], *, device, progress, **options)`` -> results
    in input order, each what ``train`` gives for its pair (tested per backend).
    """

    train: Callable[..., Any]
    population: Callable[..., list] | None
    options: Mapping[str, Any]  # option name -> default
    capabilities: frozenset[str] = frozenset()
    gpu_available: Callable[[], bool] = lambda: False


def load_trainer(method: str | Method, backend: str | Backend | None = None) -> Trainer:
    """The :class:`Trainer` of ``method`` on ``backend`` (None: the method's default)."""
    m = method if isinstance(method, Method) else get_method(method)
    b = backend if isinstance(backend, Backend) else m.backend(backend)
    try:
        trainers = importlib.import_module(b.module).TRAINERS
    except ImportError as exc:  # a backend whose code or library is not installed
        raise ConfigError(f"the {b.name} backend of {m.name} cannot be loaded ({b.module}): "
                          f"{exc}") from None
    if m.name not in trainers:
        raise ConfigError(f"backend {b.name!r} ({b.module}) has no trainer for {m.name!r}")
    return trainers[m.name]


def resolve_device(method: str | Method, requested: str = "auto",
                   backend: str | Backend | None = None) -> str:
    """The device a training runs on, resolved once: CPU for CPU-only backends (SB3's small
    MLPs, spec §7.1); otherwise ``requested``, with 'auto' = CUDA when the backend's GPU probe
    finds one and the backend is ``auto_gpu`` (DS), else CPU (JAX: one agent is fastest on a CPU
    core; populations ask for ``cuda``). 'cuda' without a GPU is a one-line ConfigError."""
    if requested not in DEVICES:
        raise ConfigError(f"device {requested!r} is not one of {list(DEVICES)}")
    m = method if isinstance(method, Method) else get_method(method)
    b = backend if isinstance(backend, Backend) else m.backend(backend)
    if not b.gpu or requested == "cpu" or (requested == "auto" and not b.auto_gpu):
        return "cpu"
    present = bool(load_trainer(m, b).gpu_available())
    if requested == "cuda" and not present:
        raise ConfigError(f"device 'cuda' was asked for, but the {b.name} backend finds no GPU")
    return "cuda" if present else "cpu"


@dataclass(frozen=True)
class TrainJob:
    """One training, resolved once (see the module docstring); ``hparams`` are complete and
    validated, ``options`` the backend's, checked against :attr:`Trainer.options`."""

    setting: Setting
    method: Method
    reg: Regularization
    backend: Backend
    trainer: Trainer
    device: str
    hparams: CheckedHParams
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def with_hparams(self, values: Mapping[str, Any]) -> TrainJob:
        """The same job with other complete hyper-parameters (a tuning trial's), validated."""
        return replace(self, hparams=_checked(self.method.name, values))

    def train(self, dataset, seed: int, *, progress: bool = False):
        """Train on ``dataset`` (of this job's setting) with ``seed``; a TrainResult."""
        return self.trainer.train(dataset, self.reg.name, self.hparams, seed,
                                  device=self.device, progress=progress, **self.options)

    def train_population(self, dataset, configs: Sequence[Mapping[str, Any]],
                         seeds: Sequence[int], *, progress: bool = False) -> list:
        """Configuration k (complete, validated: :meth:`with_hparams`) with seed k, in input
        order: one program where the backend has a population trainer, else one by one."""
        jobs = [self.with_hparams(c) for c in configs]
        if self.trainer.population is None or len(jobs) == 1:
            return [j.train(dataset, s, progress=progress)
                    for j, s in zip(jobs, seeds, strict=True)]
        return self.trainer.population(dataset, self.reg.name, [j.hparams for j in jobs],
                                       list(seeds), device=self.device, progress=progress,
                                       **self.options)


def _checked(method: str, values: Mapping[str, Any]) -> CheckedHParams:
    """``values`` checked (schema and memory model) unless they already are: once per trial."""
    from deepstock.hparams import check_memory

    if isinstance(values, CheckedHParams) and values.method == method:
        return values
    checked = checked_hparams(method, values)
    check_memory(method, dict(checked))
    return checked


def make_job(setting: Setting, method: str, reg: str, hparams: Mapping[str, Any], *,
             backend: str | None = None, device: str = "auto",
             options: Mapping[str, Any] | None = None) -> TrainJob:
    """Resolve a training once: objects for the method, regularization and backend, the device,
    the complete hyper-parameters (validated here, the caller resolves them with
    :func:`deepstock.hparams.resolve_hparams`) and the backend's options (unknown ones are a
    one-line ConfigError naming them and the backend)."""
    m = get_method(method)
    b = m.backend(backend)
    trainer = load_trainer(m, b)
    options = dict(options or {})
    unknown = sorted(set(options) - set(trainer.options))
    if unknown:
        raise ConfigError(f"the {b.name} {m.name} trainer has no option {unknown[0]!r} "
                          f"(its options: {sorted(trainer.options)})")
    return TrainJob(setting, m, get_regularization(reg), b, trainer,
                    resolve_device(m, device, b), _checked(m.name, hparams),
                    MappingProxyType(options))


# ----------------------------------------------------------------------------- a run's config
def complete_config(method: str, hparams: Mapping[str, Any], options: Mapping[str, Any],
                    defaults: Mapping[str, Any]) -> dict:
    """The complete, checked hyper-parameters plus a backend's run options: ``defaults`` are
    its options and their values (trainers hold no hyper-parameter defaults); an unknown option,
    or a ``population`` mode outside :data:`POPULATION_MODES`, is a one-line ConfigError."""
    import copy

    unknown = set(options) - set(defaults)
    if unknown:
        raise ConfigError(f"unknown {method} option(s) {sorted(unknown)}; expected "
                          f"{sorted(defaults)}")
    if "population" in defaults and options.get("population", "auto") not in POPULATION_MODES:
        raise ConfigError(f"option 'population' must be one of {list(POPULATION_MODES)}, got "
                          f"{options['population']!r}")
    checked = checked_hparams(method, hparams)  # no second check of a job's CheckedHParams
    return {**copy.deepcopy(dict(checked)), **defaults, **options}


# ----------------------------------------------------------------------------- the shared tail
def selected_result(dataset, method: str, reg: str, seed: int, cfg: dict, policy, loss, *,
                    best_val: float | None = None, **fields: Any):
    """The tail every trainer shares: the selected policy (its checkpoint restored by the
    caller, spec §7.2/§7.5) evaluated through the one simulator on the configured training and
    validation splits and on the test set, as a TrainResult. ``best_val`` None: that validation
    loss (checkpoint 'best' selects on it); ``fields``: the rest of the TrainResult."""
    from deepstock.problem.evaluation import evaluate_policy
    from deepstock.training import TrainResult

    losses = {name: evaluate_policy(policy, dataset, split, loss=loss).loss
              for name, split in (("train", cfg["train_split"]), ("val", cfg["val_split"]),
                                  ("test", "test"))}
    return TrainResult(
        setting=dataset.setting.id, method=method, reg=reg, seed=int(seed),
        train_loss=losses["train"], val_loss=losses["val"], test_loss=losses["test"],
        best_val=losses["val"] if best_val is None else best_val, config=cfg, policy=policy,
        **fields)


def rl_extras(*, best_step: int, n_evals: int, stopped_early: bool, eval_seconds: float,
              learn_seconds: float, steps: int, episode_length: int) -> dict[str, Any]:
    """The run record both RL backends keep: selection, stopping and where the time went."""
    return {
        "best_step": int(best_step), "n_evals": int(n_evals),
        "stopped_early": bool(stopped_early), "eval_seconds": float(eval_seconds),
        "learn_seconds": float(learn_seconds),
        "eval_share": float(eval_seconds / learn_seconds) if learn_seconds > 0 else 0.0,
        "steps_per_s": float(steps / learn_seconds) if learn_seconds > 0 else 0.0,
        "episode_length": int(episode_length),
    }
