"""Hyper-parameters: defaults, validation, search spaces and compute scales (spec §7-§8).

Values live in YAML (``deepstock/conf/{hparams,search_spaces,scales}.yaml``); this module only
knows each key's type and admissible range, so a user edits YAML, never code. Every error is a
one-line :class:`~deepstock.errors.ConfigError` that names the key.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from deepstock.errors import ConfigError
from deepstock.io import read_yaml
from deepstock.settings import Setting, get_setting, is_builtin

METHODS = ("ds", "ddpg", "ppo")


@dataclass(frozen=True)
class Param:
    """Type and admissible range of one hyper-parameter."""

    kind: str  # float | int | bool | str | int_list | float_pair | net_arch
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None
    arch_keys: tuple[str, ...] = ()

    def check(self, key: str, value: Any) -> Any:
        """Return the value coerced to its type, or raise ConfigError naming ``key``."""
        k = self.kind
        if k == "float":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"hyper-parameter {key!r} must be a number, got {value!r}")
            value = float(value)
            if not math.isfinite(value):
                raise ConfigError(f"hyper-parameter {key!r} must be finite, got {value!r}")
        elif k == "int":
            if isinstance(value, bool) or not (
                isinstance(value, int) or (isinstance(value, float) and value.is_integer())
            ):
                raise ConfigError(f"hyper-parameter {key!r} must be an integer, got {value!r}")
            value = int(value)
        elif k == "bool":
            if not isinstance(value, bool):
                raise ConfigError(f"hyper-parameter {key!r} must be true or false, got {value!r}")
        elif k == "str":
            if value not in (self.choices or ()):
                raise ConfigError(
                    f"hyper-parameter {key!r} must be one of {list(self.choices or ())}, got {value!r}"
                )
            return value
        elif k == "int_list":
            if not isinstance(value, (list, tuple)) or not value or not all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value
            ):
                raise ConfigError(
                    f"hyper-parameter {key!r} must be a non-empty list of positive integers, got {value!r}"
                )
            return [int(v) for v in value]
        elif k == "float_pair":
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise ConfigError(f"hyper-parameter {key!r} must be a pair [low, high], got {value!r}")
            lo, hi = (Param("float").check(key, v) for v in value)
            if lo > hi:
                raise ConfigError(f"hyper-parameter {key!r} needs low <= high, got {value!r}")
            return [lo, hi]
        elif k == "net_arch":
            if not isinstance(value, dict) or set(value) != set(self.arch_keys):
                raise ConfigError(
                    f"hyper-parameter {key!r} must be a mapping with keys {list(self.arch_keys)}, got {value!r}"
                )
            return {a: Param("int_list").check(f"{key}.{a}", value[a]) for a in self.arch_keys}
        if self.low is not None and value < self.low:
            raise ConfigError(f"hyper-parameter {key!r}={value!r} is below its minimum {self.low}")
        if self.high is not None and value > self.high:
            raise ConfigError(f"hyper-parameter {key!r}={value!r} is above its maximum {self.high}")
        return value


_COMMON = {
    "learning_rate": Param("float", 1e-7, 1.0),
    "initial_action_bias": Param("float", 0.0, 1.0),
    "batch_size": Param("int", 1, 1_000_000),
    "M": Param("float", 1e-9, None),
    "patience": Param("int", 0, None),
    "checkpoint": Param("str", choices=("best", "last")),
    "coeff_scale": Param("float", 0.0, None),
    "coeff_clip": Param("float_pair"),
    "loss_h": Param("float", 0.0, 1.0),
}
_RL = {
    "lr_min": Param("float", 0.0, 1.0),
    "lr_fraction": Param("float", 1e-9, 1.0),
    "gamma": Param("float", 0.0, 1.0),
    "eval_freq": Param("int", 1, None),
    "total_steps": Param("int", 1, None),
    "min_evals": Param("int", 0, None),
}
SCHEMA: dict[str, dict[str, Param]] = {
    "ds": {
        **_COMMON,
        "neurons_per_hidden_layer": Param("int_list"),
        "scheduler_factor": Param("float", 1e-9, 1.0 - 1e-9),
        "epochs": Param("int", 1, None),
        "plateau_patience": Param("int", 0, None),
        "grad_clip": Param("float", 1e-12, None),
    },
    "ddpg": {
        **_COMMON,
        **_RL,
        "net_arch": Param("net_arch", arch_keys=("pi", "qf")),
        "tau": Param("float", 1e-9, 1.0),
        "buffer_size": Param("int", 1, None),
        "train_freq": Param("int", 1, None),
        "learning_starts": Param("int", 0, None),
        "gradient_steps": Param("int", 1, None),
        "ddpg_bias_on_target": Param("bool"),
    },
    "ppo": {
        **_COMMON,
        **_RL,
        "net_arch": Param("net_arch", arch_keys=("pi", "vf")),
        "n_steps": Param("int", 2, None),
        "gae_lambda": Param("float", 0.0, 1.0),
        "clip_range": Param("float", 1e-9, 1.0),
        "clip_end_ratio": Param("float", 0.0, 1.0),
        "ent_coef": Param("float", 0.0, None),
        "vf_coef": Param("float", 0.0, None),
        "n_epochs": Param("int", 1, None),
        "max_grad_norm": Param("float", 1e-12, None),
    },
}


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; expected one of {list(METHODS)}")


def _load_conf(name: str) -> dict:
    text = resources.files("deepstock.conf").joinpath(name).read_text()
    return yaml.safe_load(text)


def read_mapping(path: str | Path) -> dict:
    """Read a YAML mapping (key: value) from a user file; errors name the file."""
    data = read_yaml(path)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of key: value, got {type(data).__name__}")
    return data


def layer_selectors(setting_id: str | Setting, reg: str) -> list[str]:
    """Override layers, least to most specific: *, family, setting, family/reg, setting/reg.

    ``setting_id`` may be a :class:`Setting` (a custom setting takes its family's layers).
    """
    setting = setting_id if isinstance(setting_id, Setting) else get_setting(setting_id)
    fam, setting_id = setting.family, setting.id
    return ["*", fam, setting_id, f"{fam}/{reg}", f"{setting_id}/{reg}"]


def _layered(table: dict, method: str, setting_id: str | Setting, reg: str) -> dict:
    out: dict = {}
    for sel in layer_selectors(setting_id, reg):
        out.update(copy.deepcopy(table.get(method, {}).get(sel, {}) or {}))
    return out


def validate_hparams(method: str, values: dict, *, source: str = "hyper-parameters") -> dict:
    """Check every key and value of ``values`` against the method's schema."""
    _check_method(method)
    schema = SCHEMA[method]
    out = {}
    for key, value in values.items():
        if key not in schema:
            raise ConfigError(
                f"{source}: unknown key {key!r} for method {method!r} (known: {', '.join(sorted(schema))})"
            )
        out[key] = schema[key].check(key, value)
    return out


def default_hparams(method: str, setting_id: str | Setting, reg: str) -> dict:
    """The spec defaults of a (method, setting, regularization) cell.

    A custom :class:`Setting` gets its family's defaults with ``M`` set to the setting's cap.
    """
    _check_method(method)
    values = _layered(_load_conf("hparams.yaml"), method, setting_id, reg)
    if isinstance(setting_id, Setting) and not is_builtin(setting_id.id) and "M" in values:
        values["M"] = float(setting_id.M)
    return validate_hparams(method, values, source="hparams.yaml")


def resolve_hparams(
    method: str,
    setting_id: str | Setting,
    reg: str,
    overrides: dict | None = None,
    path: str | Path | None = None,
) -> dict:
    """Defaults, then a YAML file's values, then ``overrides``; fully validated."""
    values = default_hparams(method, setting_id, reg)
    if path is not None:
        values.update(validate_hparams(method, read_mapping(path), source=str(path)))
    if overrides:
        values.update(validate_hparams(method, overrides, source="overrides"))
    if method == "ds" and values["M"] <= 0:
        raise ConfigError("hyper-parameter 'M' must be positive")
    check_memory(method, values)
    return values


# ----------------------------------------------------------------------------- memory bound
MAX_TRAIN_GB_ENV = "DEEPSTOCK_MAX_TRAIN_GB"
DEFAULT_MAX_TRAIN_GB = 8.0  # GiB, as the dataset bound (deepstock.settings)
_IO_DIMS = (16, 8)  # bounds of any network's input and output width here (observations: < 16)


def _net_params(widths: list[int]) -> int:
    dims = [_IO_DIMS[0], *widths, _IO_DIMS[1]]
    return sum(a * b + b for a, b in zip(dims[:-1], dims[1:], strict=False))


def training_memory(method: str, values: dict) -> int:
    """An upper estimate (bytes) of what one training allocates, from the size keys alone.

    float32 networks with weights, gradients and two Adam moments (DDPG: actor, critic and their
    targets); the DDPG replay buffer (observation, next observation, action, reward, done);
    PPO's rollout buffer; one batch of activations per network.
    """
    if method == "ds":
        nets = [values.get("neurons_per_hidden_layer", [])]
    else:
        nets = [list(w) for w in values.get("net_arch", {}).values()]
        if method == "ddpg":
            nets = nets * 2
    params = sum(_net_params(w) for w in nets)
    batch = int(values.get("batch_size", 1)) * sum(sum(w) for w in nets)
    rows = int(values.get("buffer_size", 0)) if method == "ddpg" else int(values.get("n_steps", 0))
    return 4 * (4 * params + 3 * batch + rows * (2 * _IO_DIMS[0] + _IO_DIMS[1] + 4))


def max_train_bytes() -> int:
    """The bound in bytes: ``$DEEPSTOCK_MAX_TRAIN_GB`` GiB if set, else the default."""
    raw = os.environ.get(MAX_TRAIN_GB_ENV, "").strip()
    try:
        gib = float(raw) if raw else DEFAULT_MAX_TRAIN_GB
    except ValueError:
        gib = math.nan
    if not (math.isfinite(gib) and gib > 0):
        raise ConfigError(f"{MAX_TRAIN_GB_ENV}={raw!r} must be a positive number of GiB")
    return int(gib * 2**30)


def check_memory(method: str, values: dict) -> None:
    """Refuse, before anything is allocated, a configuration whose sizes exceed the memory bound."""
    from deepstock.settings import format_bytes

    need, limit = training_memory(method, values), max_train_bytes()
    if need > limit:
        raise ConfigError(
            f"hyper-parameters of {method} would need about {format_bytes(need)} (network widths, "
            f"batch_size, buffer_size/n_steps); the limit is {format_bytes(limit)} (set "
            f"{MAX_TRAIN_GB_ENV} to raise it)"
        )


# ----------------------------------------------------------------------------- search spaces
@dataclass(frozen=True)
class Dimension:
    """One searched hyper-parameter: uniform, loguniform or choice."""

    key: str
    dist: str
    args: tuple

    def to_tune(self):
        """The Ray Tune domain (choices of lists are encoded as strings for Optuna)."""
        from ray import tune

        if self.dist == "uniform":
            return tune.uniform(*self.args)
        if self.dist == "loguniform":
            return tune.loguniform(*self.args)
        return tune.choice([encode_choice(v) for v in self.args])

    def to_optuna(self):
        """The Optuna distribution, exactly as ``OptunaSearch.convert_search_space(to_tune())``."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution

        if self.dist == "uniform":
            return FloatDistribution(*self.args)
        if self.dist == "loguniform":
            return FloatDistribution(*self.args, log=True)
        return CategoricalDistribution([encode_choice(v) for v in self.args])


def encode_choice(value: Any) -> Any:
    """Optuna categoricals must be scalars: lists become their YAML flow text, e.g. '[64, 64]'."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return value


def decode_config(config: dict) -> dict:
    """Inverse of :func:`encode_choice` for a sampled configuration."""
    out = {}
    for k, v in config.items():
        out[k] = yaml.safe_load(v) if isinstance(v, str) and v.startswith("[") else v
    return out


def search_space(
    method: str, setting_id: str | Setting, reg: str, path: str | Path | None = None
) -> dict[str, Dimension]:
    """The validated stage-1 search space of a cell (Tables 3-5), from YAML."""
    _check_method(method)
    table = read_mapping(path) if path is not None else _load_conf("search_spaces.yaml")
    source = str(path) if path is not None else "search_spaces.yaml"
    raw = _layered(table, method, setting_id, reg)
    schema = SCHEMA[method]
    dims = {}
    for key, spec in raw.items():
        if key not in schema:
            raise ConfigError(f"{source}: unknown key {key!r} for method {method!r}")
        if not isinstance(spec, dict) or len(spec) != 1:
            raise ConfigError(
                f"{source}: {key!r} must be one of {{uniform: [lo, hi]}}, {{loguniform: [lo, hi]}}, {{choice: [...]}}"
            )
        (dist, args), = spec.items()
        if dist not in ("uniform", "loguniform", "choice"):
            raise ConfigError(f"{source}: {key!r} has unknown distribution {dist!r}")
        if not isinstance(args, list) or not args:
            raise ConfigError(f"{source}: {key!r} needs a non-empty list of values")
        if dist == "choice":
            args = [schema[key].check(key, v) for v in args]
        else:
            if len(args) != 2:
                raise ConfigError(f"{source}: {key!r} {dist} needs [low, high]")
            lo, hi = (schema[key].check(key, v) for v in args)
            if not lo < hi:
                raise ConfigError(f"{source}: {key!r} needs low < high, got {args}")
            if dist == "loguniform" and lo <= 0:
                raise ConfigError(f"{source}: {key!r} loguniform needs low > 0")
            args = [lo, hi]
        dims[key] = Dimension(key, dist, tuple(args))
    return dims


# ----------------------------------------------------------------------------- scales
@dataclass(frozen=True)
class Scale:
    """Budgets of the tuning protocol at one scale (spec §8; reductions in docs/scales.md)."""

    name: str
    num_samples: int
    n_startup_trials: int
    top_k: int
    seeds: tuple[int, ...]
    repetitions: int
    hparams: dict
    executor: str = "local"  # what ``--executor auto`` picks on one machine (docs/tuning.md)

    def budget(self, method: str) -> dict:
        return dict(self.hparams.get(method, {}))


SCALES = ("tiny", "quick", "paper")


def get_scale(name: str) -> Scale:
    table = _load_conf("scales.yaml")
    if name not in table:
        raise ConfigError(f"unknown scale {name!r}; expected one of {sorted(table)}")
    raw = dict(table[name])
    for method, values in raw.get("hparams", {}).items():
        validate_hparams(method, values, source=f"scales.yaml:{name}")
    executor = raw.get("executor", "local")
    if executor not in ("local", "ray"):
        raise ConfigError(f"scales.yaml:{name}: 'executor' must be 'local' or 'ray', got {executor!r}")
    return Scale(
        name=name,
        num_samples=int(raw["num_samples"]),
        n_startup_trials=int(raw["n_startup_trials"]),
        top_k=int(raw["top_k"]),
        seeds=tuple(int(s) for s in raw["seeds"]),
        repetitions=int(raw["repetitions"]),
        hparams=raw.get("hparams", {}),
        executor=executor,
    )
