"""Hyper-parameters: defaults, validation, search spaces and compute scales (spec §7-§8).

Values live in YAML (``deepstock/conf/{hparams,search_spaces,scales}.yaml``); this module only
knows each key's type and admissible range, so a user edits YAML, never code. Every error is a
one-line :class:`~deepstock.errors.ConfigError` that names the key.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from deepstock.errors import ConfigError
from deepstock.io import read_yaml
from deepstock.limits import TRAIN_ENV, check_bytes
from deepstock.problem.families import get_family
from deepstock.problem.settings import Setting, get_setting
from deepstock.registry import Param, check_supported, get_method


def schema_of(method: str) -> dict[str, Param]:
    return get_method(method).schema


def _load_conf(name: str) -> dict:
    """A packaged YAML file, parsed once per process; callers copy what they keep."""
    return copy.deepcopy(_parsed_conf(name))


@functools.cache
def _parsed_conf(name: str) -> dict:
    return yaml.safe_load(resources.files("deepstock.conf").joinpath(name).read_text())


#: The packaged YAML files a tuning cell reads (defaults, search spaces, budgets).
CONF_FILES: tuple[str, ...] = ("hparams.yaml", "search_spaces.yaml", "scales.yaml")


def conf_paths() -> dict[str, str]:
    """{name: path} of the packaged YAML files this process reads (the installed package's, an
    editable install's source tree included)."""
    return {name: str(resources.files("deepstock.conf").joinpath(name)) for name in CONF_FILES}


def conf_digest() -> str:
    """'hparams.yaml=<sha> search_spaces.yaml=<sha> scales.yaml=<sha>': a digest of each packaged
    YAML file's parsed content (comments and layout do not count). The workflow passes it as a
    parameter of the rules that tune, so that Snakemake reruns their cells when a value changes."""
    import hashlib
    import json

    parts = []
    for name, path in conf_paths().items():
        raw = Path(path).read_text()
        try:
            text = json.dumps(yaml.safe_load(raw), sort_keys=True, default=str)
        except (TypeError, yaml.YAMLError):  # keys of mixed types, broken YAML: the bytes
            text = raw
        parts.append(f"{name}={hashlib.sha256(text.encode()).hexdigest()[:16]}")
    return " ".join(parts)


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
    schema = schema_of(method)
    out = {}
    for key, value in values.items():
        if key not in schema:
            raise ConfigError(
                f"{source}: unknown key {key!r} for method {method!r} (known: {', '.join(sorted(schema))})"
            )
        out[key] = schema[key].check(key, value)
    return out


def _as_setting(setting: str | Setting) -> Setting:
    return setting if isinstance(setting, Setting) else get_setting(setting)


def default_hparams(method: str, setting: str | Setting, reg: str) -> dict:
    """Layer 1 of :func:`resolve_hparams`: the setting's order cap ``M``, then the YAML layers
    ``*`` -> family -> setting -> family/reg -> setting/reg of ``conf/hparams.yaml``."""
    setting = _as_setting(setting)
    values = {"M": float(setting.M),
              **_layered(_load_conf("hparams.yaml"), method, setting, reg)}
    return validate_hparams(method, values, source="hparams.yaml")


def resolve_hparams(
    method: str,
    setting: str | Setting,
    reg: str,
    overrides: dict | None = None,
    path: str | Path | None = None,
    *,
    scale: Scale | None = None,
    notes: list[str] | None = None,
) -> dict:
    """The complete, validated hyper-parameters of one training: the one place they are resolved.

    Layers, each overriding the ones before:

    1. defaults: the setting's ``M``, then ``conf/hparams.yaml`` (``*`` -> family -> setting ->
       family/reg -> setting/reg);
    2. the scale's budget (``conf/scales.yaml``; tuning only);
    3. the user's YAML file (``--hparams``);
    4. ``overrides`` (``--set``, a winner's hyper-parameters, a Python call's dict).

    Where a user layer replaces a value of the scale's budget, a one-line note is appended to
    ``notes``. Every trainer receives this complete dict: ``train(..., {})`` is the defaults.
    """
    setting = _as_setting(setting)
    check_supported(method, reg, get_family(setting.family))
    values = default_hparams(method, setting, reg)
    budget = validate_hparams(method, scale.budget(method), source=f"scale {scale.name}") \
        if scale is not None else {}
    values.update(budget)
    users = []
    if path is not None:
        users.append((str(path), validate_hparams(method, read_mapping(path), source=str(path))))
    if overrides:
        users.append(("overrides", validate_hparams(method, overrides, source="overrides")))
    for source, layer in users:
        for key, value in layer.items():
            if key in budget and value != budget[key] and notes is not None:
                notes.append(f"{source} sets {key}={value!r} over the {scale.name} scale's "
                             f"budget {budget[key]!r}")
        values.update(layer)
    check_memory(method, values)
    return values


# ----------------------------------------------------------------------------- memory bound
def training_memory(method: str, values: dict) -> int:
    """An upper estimate (bytes) of what one training allocates, from the size keys alone
    (the method's own model, :attr:`deepstock.registry.Method.memory`)."""
    return get_method(method).memory(values)


def check_memory(method: str, values: dict) -> None:
    """Refuse, before anything is allocated, a configuration whose sizes exceed the memory bound."""
    check_bytes(training_memory(method, values), f"hyper-parameters of {method}", TRAIN_ENV,
                content="network widths, batch_size and buffer_size/n_steps")


# ----------------------------------------------------------------------------- search spaces
@dataclass(frozen=True)
class Dimension:
    """One searched hyper-parameter: uniform, loguniform or choice."""

    key: str
    dist: str
    args: tuple

    def contains(self, value: Any) -> bool:
        """Whether ``value`` (decoded) is a point of this dimension."""
        if self.dist == "choice":
            return encode_choice(value) in [encode_choice(v) for v in self.args]
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok and self.args[0] <= value <= self.args[1]

    def to_tune(self):
        """The Ray Tune domain (choices of lists are encoded as strings for Optuna)."""
        from ray import tune

        if self.dist == "uniform":
            return tune.uniform(*self.args)
        if self.dist == "loguniform":
            return tune.loguniform(*self.args)
        return tune.choice([encode_choice(v) for v in self.args])

    def rounded(self, value: Any, digits: int) -> Any:
        """A proposed value as a trial trains it: a float dimension's value rounded to ``digits``
        significant digits and kept inside [low, high]; a choice as it is.

        TPE's floats depend on the CPU's and the library's last-bit arithmetic; rounded, a
        proposal that moved by an ulp is the same configuration with the same seed
        (docs/choices.md, "Trial seeds")."""
        if self.dist == "choice":
            return value
        return min(max(float(f"{float(value):.{digits}g}"), self.args[0]), self.args[1])

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
    schema = schema_of(method)
    table = read_mapping(path) if path is not None else _load_conf("search_spaces.yaml")
    source = str(path) if path is not None else "search_spaces.yaml"
    raw = _layered(table, method, setting_id, reg)
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
    batch: int = 1  # stage-1 configurations asked (and trained) at a time (docs/tuning.md)
    enqueue_defaults: bool = False  # stage-1 trial 1 = the default hyper-parameters
    significant_digits: int = 6  # TPE's float proposals are rounded to this many (Dimension.rounded)

    def budget(self, method: str) -> dict:
        return dict(self.hparams.get(method, {}))


#: The scales conf/scales.yaml declares, in its order (the CLI's and the workflow's choices).
SCALES: tuple[str, ...] = tuple(_parsed_conf("scales.yaml"))


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
    batch = raw.get("batch", 1)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"scales.yaml:{name}: 'batch' must be an integer >= 1, got {batch!r}")
    enqueue = raw.get("enqueue_defaults", False)
    if not isinstance(enqueue, bool):
        raise ConfigError(f"scales.yaml:{name}: 'enqueue_defaults' must be true or false, got "
                          f"{enqueue!r}")
    digits = raw.get("significant_digits", 6)
    if isinstance(digits, bool) or not isinstance(digits, int) or not 1 <= digits <= 17:
        raise ConfigError(f"scales.yaml:{name}: 'significant_digits' must be an integer in "
                          f"[1, 17], got {digits!r}")
    return Scale(
        name=name,
        batch=batch,
        significant_digits=digits,
        enqueue_defaults=enqueue,
        num_samples=int(raw["num_samples"]),
        n_startup_trials=int(raw["n_startup_trials"]),
        top_k=int(raw["top_k"]),
        seeds=tuple(int(s) for s in raw["seeds"]),
        repetitions=int(raw["repetitions"]),
        hparams=raw.get("hparams", {}),
        executor=executor,
    )
