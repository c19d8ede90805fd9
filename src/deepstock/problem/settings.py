"""Experimental settings of the paper (spec §1, §5): ids, horizons, sizes and data options.

Setting ids are used everywhere (CLI, file names, Snakemake wildcards):
``s1`` (INDEP), ``s2``/``s3`` (AR(1)), ``s4_n{N}_t{T}`` (IID, N in {5,10,20}, T in {7,19,35,67,131}).
Ids are canonical: exactly one spelling per setting (lower case, no blanks, no leading zeros), so
that a table never counts one cell twice. Another spelling of a built-in id (``S1``, ``s4_n05_t7``)
is a ConfigError that names the canonical id.

Custom settings (:func:`setting_from_dict`) are bounded in size before anything is allocated: the
stored arrays (demand, features, coeff: 6 float64 values per trajectory and day) may take at most
8 GiB, or ``$DEEPSTOCK_MAX_DATASET_GB`` (:mod:`deepstock.limits`). The same bound applies when a
dataset is generated and when a dataset file is loaded.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Literal

from deepstock.errors import ConfigError
from deepstock.limits import DATASET_ENV, check_bytes, format_bytes  # noqa: F401
from deepstock.problem.losses import LossConfig

#: Fields a family may set beyond the paper's; left out of ``Setting.to_dict`` at their default,
#: so the paper's datasets keep their bytes (their ``setting_spec`` predates these fields).
FAMILY_FIELDS = {"dynamics": "backlog", "warmup": 0, "h": None, "p": None, "dist": None,
                 "mean": None}


@dataclass(frozen=True)
class Setting:
    """One experimental setting: dynamics constants and the split layout of its dataset.

    ``dynamics`` is the family's (backlog or lost sales) and is read by the simulator and every
    trainer; ``warmup`` days after the first R + L are simulated but not counted. The loss's
    unit costs are ``h`` (holding) and ``p`` (backlog or lost sale) when the family fixes them (lost
    sales: h = 1, p, Zipkin's units); None means the paper's normalized costs h = ``loss_h``,
    b = 1 - h (spec §3). ``dist`` and ``mean`` name the demand distribution where it has one.
    """

    id: str
    family: str
    T: int
    n_train: int
    n_val: int
    n_test: int
    R: int = 2
    L: int = 1
    M: float = 100.0
    N: int | None = None  # IID: number of distinct sigmas
    H: int | None = None  # IID: number of review cycles (T = 3 + 2H)
    dynamics: Literal["backlog", "lost_sales"] = "backlog"
    warmup: int = 0
    h: float | None = None
    p: float | None = None
    dist: str | None = None
    mean: float | None = None

    @property
    def first_counted(self) -> int:
        """The first day that enters every loss: R + L + warmup."""
        return self.R + self.L + self.warmup

    @property
    def n_counted_days(self) -> int:
        """Number of days that enter every loss: t = R+L+warmup ... T-1 (the mask is
        :func:`deepstock.problem.dynamics.counted_days`)."""
        return self.T - self.first_counted

    @property
    def lost_sales(self) -> bool:
        return self.dynamics == "lost_sales"

    def loss(self, loss_h: float) -> LossConfig:
        """The loss's unit costs: the setting's (h, p) where it fixes them, else the paper's
        normalized h = ``loss_h``, b = 1 - h."""
        if self.h is None:
            return LossConfig(h=float(loss_h))
        return LossConfig(h=float(self.h), b=float(self.p))

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items()
                if k not in FAMILY_FIELDS or v != FAMILY_FIELDS[k]}


def _families():
    """The family registry; :mod:`deepstock.problem.families` imports this module for Setting, so the
    lookup is made when a function needs it, not at import."""
    from deepstock.problem import families

    return families


def setting_ids() -> tuple[str, ...]:
    """Every built-in setting id, family by family (:func:`deepstock.problem.families.setting_ids`)."""
    return _families().setting_ids()


def canonical_setting_id(setting_id: str) -> str | None:
    """The built-in id that ``setting_id`` spells, ignoring case, blanks and leading zeros.

    ``canonical_setting_id("s4_n05_t7") == "s4_n5_t7"``; None when it spells no built-in id.
    """
    return _families().canonical_setting_id(setting_id)


def get_setting(setting_id: str) -> Setting:
    """Return the :class:`Setting` of a canonical id, or raise a ConfigError.

    A non-canonical spelling of a built-in id is refused with "did you mean" the canonical one;
    an unknown id lists the valid ids.
    """
    if is_builtin(setting_id):
        return _families().builtin_setting(setting_id)
    canonical = canonical_setting_id(setting_id)
    if canonical is not None:
        raise ConfigError(
            f"setting id {setting_id!r} is not canonical; did you mean {canonical!r}?"
        )
    raise ConfigError(
        f"unknown setting {setting_id!r}; valid ids: s1, s2, s3, s4_n{{N}}_t{{T}}, "
        "ls_{poisson|geometric}_l{L}_p{p} (run `deepstock data --list`)"
    )


@dataclass(frozen=True)
class DataOptions:
    """Options of dataset generation; defaults are the paper-exact choices (spec §5, §10)."""

    rng_mode: Literal["paper_exact", "fresh"] = "paper_exact"
    data_seed: int = 42
    s3_test: Literal["shared", "repo"] = "shared"
    indep_feature: Literal["half_t", "t"] = "half_t"
    indep_lower: Literal["clip_trunc", "truncnorm"] = "clip_trunc"
    iid_demand_days: Literal["odd", "all"] = "odd"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        choices = {
            "rng_mode": ("paper_exact", "fresh"),
            "s3_test": ("shared", "repo"),
            "indep_feature": ("half_t", "t"),
            "indep_lower": ("clip_trunc", "truncnorm"),
            "iid_demand_days": ("odd", "all"),
        }
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"data option {name}={value!r} is not one of {list(allowed)}")
        if not isinstance(self.data_seed, int) or self.data_seed < 0:
            raise ConfigError(f"data option data_seed={self.data_seed!r} must be an integer >= 0")
        if self.rng_mode == "paper_exact" and self.indep_lower != "clip_trunc":
            raise ConfigError("data option indep_lower='truncnorm' needs rng_mode='fresh'")


# --------------------------------------------------------------------------- custom settings
#: Keys of a custom setting file (docs/data-format.md, "Custom settings"); the rest are optional.
CUSTOM_REQUIRED = ("id", "family", "T", "n_train", "n_val", "n_test")
CUSTOM_OPTIONAL = {"R": 2, "L": 1, "M": 100.0, "options": {}}
_CUSTOM_ID_RE = re.compile(r"^[a-z0-9_]+$")


def is_builtin(setting_id: str) -> bool:
    """True exactly for the canonical ids of the built-in settings: those ``get_setting`` accepts."""
    return isinstance(setting_id, str) and setting_id in setting_ids()


def is_reserved_id(setting_id: str) -> bool:
    """True for ids a custom setting may not take: built-in ids in any spelling, any id of a
    family's pattern (``s4_n{N}_t{T}``, ``ls_...``, also outside the grids), and ``all``."""
    return _families().is_reserved_id(setting_id)


# --------------------------------------------------------------------------- size bound
MAX_DATASET_GB_ENV = DATASET_ENV
#: float64 values stored per trajectory and day: demand 1, features 1 (x_t), coeff 4.
VALUES_PER_DAY = 6


def check_dataset_bytes(nbytes: int, what: str, content: str = "demand/features/coeff") -> None:
    """ConfigError if ``nbytes`` (of ``content``) exceed the bound; ``what`` names the dataset."""
    check_bytes(nbytes, what, DATASET_ENV, content=content)


def dataset_bytes(setting: Setting) -> int:
    """Bytes of demand, features and coeff of a setting's n_train + n_val + n_test trajectories.

    Exact for custom settings; the built-ins store a fixed pool of about that size (spec §5).
    """
    rows = setting.n_train + setting.n_val + setting.n_test
    return rows * setting.T * VALUES_PER_DAY * 8


def _int_field(d: dict, key: str, minimum: int, what: str) -> int:
    value = d[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"setting field {key!r} must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(f"setting field {key}={value} must be {what}")
    return value


def setting_from_dict(d: dict) -> Setting:
    """Validate a user-defined setting (spec §5 families, custom sizes/horizon) into a Setting.

    Every problem is a one-line ConfigError naming the field. The ``options`` mapping (DataOptions
    fields) is validated too; get it with :func:`data_options_from_dict`.
    """
    if not isinstance(d, dict):
        raise ConfigError(f"a setting must be a mapping of key: value, got {type(d).__name__}")
    fam = _families().FAMILIES.get(d.get("family"))
    extra_fields = fam.custom_fields if fam is not None else {}
    known = list(CUSTOM_REQUIRED) + list(CUSTOM_OPTIONAL) + list(extra_fields)
    unknown = sorted(set(d) - set(known))
    if unknown:
        raise ConfigError(f"unknown setting field {unknown[0]!r} (known: {', '.join(known)})")
    missing = [k for k in CUSTOM_REQUIRED if k not in d]
    if missing:
        raise ConfigError(f"setting field {missing[0]!r} is missing")
    d = {**CUSTOM_OPTIONAL, **extra_fields, **d}
    sid = d["id"]
    if not isinstance(sid, str) or not _CUSTOM_ID_RE.match(sid):
        raise ConfigError(f"setting field 'id'={sid!r} must match [a-z0-9_]+")
    if is_reserved_id(sid):
        raise ConfigError(f"setting field 'id'={sid!r} clashes with a built-in setting id")
    if fam is None:
        raise ConfigError(f"setting field 'family'={d['family']!r} is not one of "
                          f"{list(_families().FAMILIES)}")
    family = fam.name
    R = _int_field(d, "R", 1, ">= 1 (review period)")
    L = _int_field(d, "L", 0, ">= 0 (lead time)")
    if isinstance(d["T"], bool) or not isinstance(d["T"], int):
        raise ConfigError(f"setting field 'T' must be an integer, got {d['T']!r}")
    T = d["T"]
    extra = fam.custom(d)  # the family's own fields, validated (each error names its field)
    first = R + L + extra.get("warmup", 0)
    if first >= T:
        raise ConfigError(
            f"setting field 'T': horizon T={T} must be >= "
            f"{'R + L + warmup' if 'warmup' in extra else 'R + L'} + 1 = {first + 1} "
            "(at least one order day and one counted day)"
        )
    M = d["M"]
    if isinstance(M, bool) or not isinstance(M, (int, float)):
        raise ConfigError(f"setting field 'M' must be a number, got {M!r}")
    from deepstock.registry import M_MAX

    if M > M_MAX:  # before isfinite: an int too large for a float is refused here too
        shown = f"{M:g}" if isinstance(M, float) or M < 10**20 else f"10^{len(str(M)) - 1}+"
        raise ConfigError(f"setting field M={shown} is above the order cap's maximum {M_MAX:g} "
                          "(deepstock.registry.M_MAX)")
    if not (M > 0 and math.isfinite(M)):
        raise ConfigError(f"setting field M={M} must be > 0 and finite (order cap)")
    sizes = {k: _int_field(d, k, 1, ">= 1") for k in ("n_train", "n_val", "n_test")}
    data_options_from_dict(d)  # validate the options now, naming the field
    setting = Setting(sid, family, T=T, R=R, L=L, M=float(M), **sizes, dynamics=fam.dynamics,
                      **extra)
    rows = sum(sizes.values())
    check_dataset_bytes(dataset_bytes(setting), f"setting {sid!r} ({rows} trajectories x {T} days)")
    return setting


#: Setting fields derived by :func:`setting_from_dict` (IID: N = n_train, H from T; the
#: family's dynamics).
DERIVED_FIELDS = ("N", "H", "dynamics")


def setting_from_spec(spec: dict) -> Setting:
    """Rebuild a Setting from its ``to_dict()`` (a dataset's ``meta["setting_spec"]``).

    A built-in id must carry exactly the built-in's fields; any other id is validated as a custom
    setting file is (:func:`setting_from_dict`), and its derived fields N, H must agree.
    """
    if not isinstance(spec, dict):
        raise ConfigError(f"a setting must be a mapping of key: value, got {type(spec).__name__}")
    sid = spec.get("id")
    if is_builtin(sid):
        builtin = get_setting(sid).to_dict()
        for key in sorted(set(builtin) | set(spec)):
            if key not in builtin or key not in spec or spec[key] != builtin[key]:
                raise ConfigError(
                    f"setting {sid!r}: field {key!r}={spec.get(key)!r} differs from the built-in "
                    f"of that id ({builtin.get(key)!r})"
                )
        return get_setting(sid)
    setting = setting_from_dict({k: v for k, v in spec.items() if k not in DERIVED_FIELDS})
    for key in DERIVED_FIELDS:
        if key in spec and spec[key] != getattr(setting, key):
            raise ConfigError(
                f"setting field {key!r}={spec[key]!r} does not match the value derived from the "
                f"other fields ({getattr(setting, key)!r})"
            )
    return setting


def data_options_from_dict(d: dict) -> DataOptions:
    """The ``options`` of a custom setting dict as DataOptions; ``rng_mode`` defaults to fresh."""
    raw = d.get("options") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"setting field 'options' must be a mapping, got {raw!r}")
    known = [f for f in DataOptions.__dataclass_fields__ if f != "extra"]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ConfigError(f"setting field 'options.{unknown[0]}' is unknown (known: {', '.join(known)})")
    values = {"rng_mode": "fresh", **raw}
    if isinstance(values.get("data_seed"), bool):
        raise ConfigError(f"setting field 'options.data_seed'={values['data_seed']!r} must be an integer")
    try:
        return DataOptions(**values)
    except ConfigError as exc:
        raise ConfigError(f"setting field 'options': {exc}") from None


def load_setting_file(path) -> tuple[Setting, DataOptions]:
    """Read a custom setting YAML file: its validated Setting and DataOptions."""
    from deepstock.io import read_yaml

    data = read_yaml(path, kind="setting file")
    try:
        return setting_from_dict(data), data_options_from_dict(data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
