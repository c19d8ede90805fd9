"""The experiment's axes, declared once: methods, regularizations and the settings grid.

Everything that enumerates an axis derives it from here: the CLI's choices, the workflow's
wildcards and the check of its configuration's values (:func:`check_workflow_axes`), the
hyper-parameter schema, the trainers' dispatch and devices, and the tables' and figures'
columns, labels, colours and markers.

- A **method** (:class:`Method`) names its label, colour and marker, its hyper-parameter schema
  (key -> :class:`Param`), its stopping rule (``stopping``: the patience key and its unit), its
  training backends (:class:`Backend`: trainer function and whether it runs on a GPU), and the
  regularizations and setting families it supports. Table columns follow :data:`METHODS` order,
  the paper's (DDPG, PPO, DS).
- A **regularization** is a :class:`~deepstock.training.regularizations.Regularization` (the mapping from
  network output to order, with its label, colour and marker): :func:`register_regularization`
  adds one, and every consumer sees it — CLI, trainers, summary, tables and figures.
- The **settings grid**: Settings 1-3 and Setting 4's (N, H) grid, T = 3 + 2H.

Adding a method or a regularization is one entry here (plus, for a method, its trainer and its
YAML defaults and search space); see README "Extending".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from deepstock.errors import ConfigError
from deepstock.training.regularizations import Regularization


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
            try:
                value = float(value)
            except OverflowError:
                raise ConfigError(f"hyper-parameter {key!r} must be finite, got an integer "
                                  "beyond a float's range") from None
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


# ----------------------------------------------------------------------------- hyper-parameters
#: Upper bound of the order cap ``M`` (units per order), as a hyper-parameter and as a custom
#: setting's field (deepstock.problem.settings.setting_from_dict): 10^4 times the paper's largest (500).
#: Far above it the networks' float32 outputs, SB3's gymnasium boxes, the JAX losses (M² grows
#: past float32) and the INDEP DP's grid (M + 1 order sizes) overflow or cannot be allocated;
#: a larger value is a one-line ConfigError before any compute.
M_MAX = 1e6

_COMMON = {
    "learning_rate": Param("float", 1e-7, 1.0),
    "initial_action_bias": Param("float", 0.0, 1.0),
    "batch_size": Param("int", 1, 1_000_000),
    "M": Param("float", 1e-9, M_MAX),  # the order cap: (0, M_MAX]
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
    "patience_evals": Param("int", 0, None),
    "min_evals": Param("int", 0, None),
}
DS_SCHEMA = {
    **_COMMON,
    "neurons_per_hidden_layer": Param("int_list"),
    "scheduler_factor": Param("float", 1e-9, 1.0 - 1e-9),
    "epochs": Param("int", 1, None),
    "patience_epochs": Param("int", 1, None),
    "plateau_patience": Param("int", 0, None),
    "grad_clip": Param("float", 1e-12, None),
}
DDPG_SCHEMA = {
    **_COMMON,
    **_RL,
    "net_arch": Param("net_arch", arch_keys=("pi", "qf")),
    "tau": Param("float", 1e-9, 1.0),
    "buffer_size": Param("int", 1, None),
    "train_freq": Param("int", 1, None),
    "learning_starts": Param("int", 0, None),
    "gradient_steps": Param("int", 1, None),
    "ddpg_bias_on_target": Param("bool"),
}
PPO_SCHEMA = {
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
}


# ----------------------------------------------------------------------------- methods
@dataclass(frozen=True)
class Backend:
    """One implementation of methods: the module that holds its code and where it runs.

    ``module`` defines ``TRAINERS``, a mapping method name -> :class:`deepstock.training.
    backends.Trainer` (train, population, options, capabilities, GPU probe); it is imported in
    one place only, :func:`deepstock.training.backends.load_trainer`, when a training needs it
    (DS never loads stable-baselines3, the RL methods never load the DS trainer).
    """

    name: str
    module: str
    gpu: bool  # False: every device request resolves to the CPU
    auto_gpu: bool = True  # what device 'auto' means when gpu: CUDA when present (True) or CPU


@dataclass(frozen=True)
class Stopping:
    """An early-stopping rule: the patience key and what it counts."""

    key: str
    unit: str


@dataclass(frozen=True)
class Method:
    """One training method of the comparison."""

    name: str
    label: str
    color: str
    marker: str
    schema: dict[str, Param]
    stopping: Stopping
    iterations: str  # what TrainResult.iterations counts
    backends: dict[str, Backend]
    default_backend: str
    memory: Callable[[dict], int]  # upper estimate (bytes) of one training, from its sizes
    regs: tuple[str, ...] | None = None  # None: every registered regularization
    families: tuple[str, ...] | None = None  # None: every family

    def backend(self, name: str | None = None) -> Backend:
        name = name or self.default_backend
        if name not in self.backends:
            raise ConfigError(f"method {self.name!r} has no backend {name!r}; expected one of "
                              f"{sorted(self.backends)}")
        return self.backends[name]


def _rl_backends(method: str) -> dict[str, Backend]:
    """An RL method's two backends: SB3 (the reference) and the compiled JAX one."""
    return {"sb3": Backend("sb3", "deepstock.training.sb3", gpu=False),
            "jax": Backend("jax", f"deepstock.training.jax_{method}", gpu=True, auto_gpu=False)}


# ----------------------------------------------------------------------------- memory model
_IO_DIMS = (16, 8)  # bounds of any network's input and output width here (observations: < 16)


def _net_params(widths: list[int]) -> int:
    dims = [_IO_DIMS[0], *widths, _IO_DIMS[1]]
    return sum(a * b + b for a, b in zip(dims[:-1], dims[1:], strict=False))


def _memory(nets: list[list[int]], batch_size: int, rows: int) -> int:
    """float32 networks with weights, gradients and two Adam moments; one batch of activations
    per network; ``rows`` buffer rows (observation, next observation, action, reward, done)."""
    params = sum(_net_params(w) for w in nets)
    batch = batch_size * sum(sum(w) for w in nets)
    return 4 * (4 * params + 3 * batch + rows * (2 * _IO_DIMS[0] + _IO_DIMS[1] + 4))


def ds_memory(v: dict) -> int:
    """DS: one network, no buffer."""
    return _memory([v.get("neurons_per_hidden_layer", [])], int(v.get("batch_size", 1)), 0)


def ddpg_memory(v: dict) -> int:
    """DDPG: actor, critic and their targets; the replay buffer."""
    nets = [list(w) for w in v.get("net_arch", {}).values()] * 2
    return _memory(nets, int(v.get("batch_size", 1)), int(v.get("buffer_size", 0)))


def ppo_memory(v: dict) -> int:
    """PPO: actor and critic; the rollout buffer of n_steps rows."""
    nets = [list(w) for w in v.get("net_arch", {}).values()]
    return _memory(nets, int(v.get("batch_size", 1)), int(v.get("n_steps", 0)))


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("ddpg", "DDPG", "#4C72B0", "s", DDPG_SCHEMA,
               Stopping("patience_evals", "evaluations"), "env steps",
               _rl_backends("ddpg"), "sb3", ddpg_memory),
        Method("ppo", "PPO", "#55A868", "^", PPO_SCHEMA,
               Stopping("patience_evals", "evaluations"), "env steps",
               _rl_backends("ppo"), "sb3", ppo_memory),
        Method("ds", "DS", "#C44E52", "o", DS_SCHEMA,
               Stopping("patience_epochs", "epochs"), "epochs",
               {"torch": Backend("torch", "deepstock.training.ds_population", gpu=True)}, "torch",
               ds_memory),
    )
}


def check_complete(method: str, config: dict) -> dict:
    """Validate a trainer's hyper-parameters: every key of the method's schema, each in range.

    Trainers call this and hold no defaults: a missing key is a one-line ConfigError that points
    to ``deepstock.hparams.resolve_hparams``, the one place defaults are resolved.
    """
    schema = get_method(method).schema
    missing = sorted(set(schema) - set(config))
    if missing:
        raise ConfigError(f"{method} hyper-parameters lack {missing}; a trainer takes the complete "
                          "set that deepstock.hparams.resolve_hparams (or trainers.train) returns")
    unknown = sorted(set(config) - set(schema))
    if unknown:
        raise ConfigError(f"unknown {method} hyper-parameter {unknown[0]!r}")
    return {key: schema[key].check(key, value) for key, value in config.items()}


class CheckedHParams(Mapping):
    """Complete hyper-parameters that :func:`check_complete` accepted for ``method``
    (read-only; built by :func:`checked_hparams` only). A trainer given one does not check it
    again: a tuning trial is validated once, when its job is made."""

    __slots__ = ("method", "_values")

    def __init__(self, method: str, values: Mapping[str, Any], _token: object = None) -> None:
        if _token is not _CHECKED:
            raise TypeError("CheckedHParams are made by registry.checked_hparams")
        self.method, self._values = method, MappingProxyType(dict(values))

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"CheckedHParams({self.method!r}, {dict(self._values)!r})"


_CHECKED = object()


def checked_hparams(method: str, config: Mapping[str, Any]) -> CheckedHParams:
    """``config`` checked by :func:`check_complete` (unless it already is, for ``method``)."""
    if isinstance(config, CheckedHParams) and config.method == method:
        return config
    return CheckedHParams(method, check_complete(method, dict(config)), _CHECKED)


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r}; expected one of {list(METHODS)}") from None


def backend_names() -> list[str]:
    """Every method's backend names, in registry order (the CLI's ``--backend`` choices)."""
    return list(dict.fromkeys(b for m in METHODS.values() for b in m.backends))


#: How a tuning cell runs its trials (deepstock.tuning.resolve_executor).
EXECUTORS: tuple[str, ...] = ("auto", "ray", "local")


# ----------------------------------------------------------------------------- regularizations
REGULARIZATIONS: dict[str, Regularization] = {}


def register_regularization(reg: Regularization, *, replace: bool = False) -> Regularization:
    """Add a regularization to every axis (CLI, trainers, summary, tables, figures).

    Names and labels are unique: a name already registered is refused unless ``replace=True``
    is asked for explicitly (the new one then takes the old one's place and name, so results
    recorded as ``reg: <name>`` are of the new mapping), and a label (``Regularization.title``,
    compared case-insensitively) that another regularization carries is always refused — a label
    names a table column and a legend entry. Either is a one-line ConfigError.
    """
    if not isinstance(reg, Regularization):
        raise ConfigError(f"register_regularization needs a Regularization, got "
                          f"{type(reg).__name__}")
    if not reg.name.isidentifier() or reg.name != reg.name.lower():
        raise ConfigError(f"regularization name {reg.name!r} must be a lower-case identifier")
    old = REGULARIZATIONS.get(reg.name)
    if old is not None and not replace:
        raise ConfigError(f"regularization {reg.name!r} is already registered (label "
                          f"{old.title!r}); choose another name, or pass replace=True to "
                          "replace it")
    clash = next((r for r in REGULARIZATIONS.values()
                  if r.name != reg.name and r.title.casefold() == reg.title.casefold()), None)
    if clash is not None:
        raise ConfigError(f"regularization {reg.name!r}: label {reg.title!r} is already that of "
                          f"regularization {clash.name!r}; labels name table columns and legend "
                          "entries and must be unique")
    REGULARIZATIONS[reg.name] = reg
    return reg


for _reg in (
    Regularization("none", subtract_position=False, uses_coeff=False, label="None",
                   color="#4C72B0", marker="o"),
    Regularization("base", subtract_position=True, uses_coeff=False, label="Base",
                   color="#DD8452", marker="s"),
    Regularization("coeff", subtract_position=False, uses_coeff=True, label="Coeff",
                   color="#55A868", marker="^"),
    Regularization("both", subtract_position=True, uses_coeff=True, label="Both",
                   color="#8172B3", marker="D"),
):
    register_regularization(_reg)


def get_regularization(name: str) -> Regularization:
    try:
        return REGULARIZATIONS[name]
    except KeyError:
        raise ConfigError(
            f"unknown regularization {name!r}; expected one of {list(REGULARIZATIONS)}"
        ) from None


def check_supported(method: str, reg: str, family) -> None:
    """One-line ConfigError unless ``method`` supports the regularization on the setting
    ``family`` (a :class:`deepstock.problem.families.Family`): the method's own lists, and Coeff
    features where the regularization reads them."""
    m, r = get_method(method), get_regularization(reg)
    if m.regs is not None and r.name not in m.regs:
        raise ConfigError(f"method {method!r} does not support regularization {reg!r} "
                          f"(supported: {list(m.regs)})")
    if m.families is not None and family.name not in m.families:
        raise ConfigError(f"method {method!r} does not support {family.name!r} settings "
                          f"(supported: {list(m.families)})")
    if r.uses_coeff and not family.features:
        raise ConfigError(f"regularization {reg!r} reads the Coeff features, which "
                          f"{family.name!r} settings do not define; use one of "
                          f"{[n for n, g in REGULARIZATIONS.items() if not g.uses_coeff]}")


def regs_of(method: str) -> tuple[str, ...]:
    """The regularizations a method supports, in registry order."""
    allowed = get_method(method).regs
    return tuple(r for r in REGULARIZATIONS if allowed is None or r in allowed)


# ----------------------------------------------------------------------------- settings grid
#: Settings 1-3 of Tables 6-8 (ids) and the table each one fills.
TABLE_SETTINGS: dict[str, str] = {"table6": "s1", "table7": "s2", "table8": "s3"}
#: Setting 4 (Table 9, Figure 4): N distinct sigmas x H review cycles, T = 3 + 2H.
IID_N: tuple[int, ...] = (5, 10, 20)
IID_H: tuple[int, ...] = (2, 8, 16, 32, 64)
IID_T: tuple[int, ...] = tuple(3 + 2 * h for h in IID_H)
#: The paper's Table 9 cells: (method, reg) tuned on Setting 4.
TABLE9_CELL = ("ds", "base")
#: Figure 3's cell: the method whose critic is logged and the setting it is retrained on, and
#: the regularizations it compares (the paper's).
FIGURE3_SETTING, FIGURE3_METHOD = "s1", "ddpg"
#: The paper's Tables 6-8 columns, in its order; other regularizations follow them.
PAPER_REGS: tuple[str, ...] = ("none", "base")
#: The paper's methods (Tables 6-8), and the RL ones whose search Figure 2 measures against DS.
PAPER_METHODS: tuple[str, ...] = ("ddpg", "ppo", "ds")
PAPER_RL: tuple[str, ...] = ("ddpg", "ppo")


#: How a Setting 4 id is spelled: :func:`iid_setting_id` fills it in, :data:`IID_ID_PATTERN`
#: matches it.
IID_ID_FORMAT = "s4_n{n}_t{t}"
#: The regular expression of a canonical Setting 4 id (no leading zeros), any N and T.
IID_ID_PATTERN = IID_ID_FORMAT.format(n=r"[1-9]\d*", t=r"[1-9]\d*")


def iid_setting_id(n: int, t: int) -> str:
    """The canonical id of Setting 4's cell (N, T), e.g. ``s4_n5_t7``."""
    return IID_ID_FORMAT.format(n=n, t=t)


def table_columns(present: set[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    """(method, reg) columns of Tables 6-8: the paper's, then any other pair in ``present``,
    each in registry order."""
    paper = [(m, r) for m in METHODS for r in PAPER_REGS]
    extra = [(m, r) for m in METHODS for r in regs_of(m)
             if (m, r) in (present or set()) and (m, r) not in paper]
    return paper + extra


def regs_present(present: set[str] | None = None) -> list[str]:
    """The paper's regularizations, then any other present one, in registry order."""
    return [r for r in REGULARIZATIONS if r in PAPER_REGS or r in (present or set())]
