"""Demand families as objects: what a setting's data, dynamics and benchmarks are.

A :class:`Family` bundles everything that differs between kinds of problem:

- its **built-in settings** (``ids``, ``builtin``: canonical id -> :class:`Setting`) and the
  **id pattern** (``canonical``: any spelling -> canonical id; ``reserved``: ids a custom
  setting may not take);
- its **generator** (``generate(setting, options) -> Dataset``) and one-line ``describe``;
- its **benchmarks** π* (names in :mod:`deepstock.benchmarks.run`'s solver table, the first
  being what ``deepstock benchmark --method auto`` computes);
- its **dynamics** (``backlog`` or ``lost_sales``, stored in every :class:`Setting` it builds
  and read by the simulator and every trainer), whether it defines the Coeff **features**
  (Coeff/Both need them), and the extra **fields of a custom-setting file** (``custom``).

The paper's three families (INDEP, AR(1), IID) are declared here; the lost-sales family lives
in :mod:`deepstock.problem.lost_sales`. Adding a family is one module plus one entry in
:data:`FAMILIES` plus its YAML defaults and search space (docs/architecture.md).

:mod:`deepstock.problem.settings` defines :class:`Setting` and reads this registry lazily (this module
imports it); nothing here runs at import beyond building the frozen declarations.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deepstock.errors import ConfigError
from deepstock.problem import generators, lost_sales
from deepstock.problem.settings import DataOptions, Setting
from deepstock.registry import IID_H, IID_ID_FORMAT, IID_N, IID_T, iid_setting_id

DYNAMICS = ("backlog", "lost_sales")


@dataclass(frozen=True)
class Family:
    """One demand family (see the module docstring)."""

    name: str
    generate: Callable[[Setting, DataOptions], Any]
    describe: Callable[[Setting], str]
    benchmarks: tuple[str, ...]
    ids: tuple[str, ...]
    builtin: Callable[[str], Setting]
    canonical: Callable[[str], str | None]
    reserved: Callable[[str], bool] = lambda s: False
    custom: Callable[[dict], dict] = lambda d: {}  # extra custom-setting fields -> Setting kwargs
    custom_fields: dict = field(default_factory=dict)  # their names and defaults
    dynamics: str = "backlog"
    features: bool = True  # defines the Coeff features φ (Coeff/Both read them)


# ------------------------------------------------------------------ the paper's families
#: Any spelling of a Setting 4 id (digits may carry leading zeros), from the registry's format.
_IID_ANY_RE = re.compile(IID_ID_FORMAT.format(n=r"(\d+)", t=r"(\d+)"), re.ASCII)
IID_TEST_PER_SIGMA = 100
_PAPER = {
    "s1": Setting("s1", "indep", T=31, n_train=10, n_val=10, n_test=100),
    "s2": Setting("s2", "ar1", T=31, n_train=10, n_val=10, n_test=100),
    "s3": Setting("s3", "ar1", T=31, n_train=5, n_val=5, n_test=100),
}
IID_IDS = tuple(iid_setting_id(n, t) for n in IID_N for t in IID_T)


def _paper_canonical(family: str) -> Callable[[str], str | None]:
    def canonical(s: str) -> str | None:
        return s if s in _PAPER and _PAPER[s].family == family else None
    return canonical


def _iid_builtin(setting_id: str) -> Setting:
    m = _IID_ANY_RE.fullmatch(setting_id)
    n, t = int(m.group(1)), int(m.group(2))
    return Setting(setting_id, "iid", T=t, n_train=n, n_val=n, n_test=IID_TEST_PER_SIGMA * n,
                   M=500.0, N=n, H=IID_H[IID_T.index(t)])


def _iid_canonical(s: str) -> str | None:
    m = _IID_ANY_RE.fullmatch(s)
    if not m:
        return None
    s = iid_setting_id(m.group(1).lstrip("0") or "0", m.group(2).lstrip("0") or "0")
    return s if s in IID_IDS else None


def _iid_custom(d: dict) -> dict:
    """IID custom settings: N = n_train distinct σ's, H = (T - 2) // 2 review cycles."""
    return {"N": d["n_train"], "H": (d["T"] - 2) // 2}


INDEP = Family("indep", generators.generate_indep, generators.describe_indep,
               ("dp_empirical", "dp_true"), ("s1",), _PAPER.__getitem__, _paper_canonical("indep"))
AR1 = Family("ar1", generators.generate_ar1, generators.describe_ar1, ("ar1_dp", "ds_on_test"),
             ("s2", "s3"), _PAPER.__getitem__, _paper_canonical("ar1"))
IID = Family("iid", generators.generate_iid, generators.describe_iid, ("critical_fractile",),
             IID_IDS, _iid_builtin, _iid_canonical,
             reserved=lambda s: bool(_IID_ANY_RE.fullmatch(s)), custom=_iid_custom)

LOST_SALES = Family("lost_sales", lost_sales.generate, lost_sales.describe, ("ls_dp",),
                    lost_sales.IDS, lost_sales.builtin, lost_sales.canonical,
                    reserved=lost_sales.reserved, custom=lost_sales.custom,
                    custom_fields=lost_sales.CUSTOM_FIELDS, dynamics="lost_sales", features=False)

#: Every family, in the order of the ids (Settings 1-4, then lost sales).
FAMILIES: dict[str, Family] = {f.name: f for f in (INDEP, AR1, IID, LOST_SALES)}


def register_family(family: Family, *, replace: bool = False) -> Family:
    """Add a family: its settings, generator, benchmarks and dynamics reach every consumer
    (CLI, workflow wildcards, summary). A name already registered is refused unless
    ``replace=True``; so is a built-in id another family already declares."""
    if not isinstance(family, Family):
        raise ConfigError(f"register_family needs a Family, got {type(family).__name__}")
    if family.name in FAMILIES and not replace:
        raise ConfigError(f"family {family.name!r} is already registered; pass replace=True")
    if family.dynamics not in DYNAMICS:
        raise ConfigError(f"family {family.name!r}: dynamics {family.dynamics!r} is not one of "
                          f"{list(DYNAMICS)}")
    taken = {s for f in FAMILIES.values() if f.name != family.name for s in f.ids}
    clash = sorted(taken & set(family.ids))
    if clash:
        raise ConfigError(f"family {family.name!r}: setting id {clash[0]!r} is already declared")
    FAMILIES[family.name] = family
    return family


def setting_ids() -> tuple[str, ...]:
    """Every built-in setting id, family by family, in registration order."""
    return tuple(s for f in FAMILIES.values() for s in f.ids)


def get_family(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(f"unknown family {name!r}; expected one of {list(FAMILIES)}") from None


def canonical_setting_id(setting_id: str) -> str | None:
    """The built-in id ``setting_id`` spells, ignoring case, blanks and leading zeros; or None."""
    if not isinstance(setting_id, str):
        return None
    s = setting_id.strip().lower()
    return next((c for f in FAMILIES.values() if (c := f.canonical(s)) is not None), None)


def builtin_setting(setting_id: str) -> Setting:
    """The Setting of a canonical built-in id."""
    return next(f.builtin(setting_id) for f in FAMILIES.values() if setting_id in f.ids)


def is_reserved_id(setting_id: str) -> bool:
    """Ids a custom setting may not take: a built-in in any spelling, a family pattern, ``all``."""
    if not isinstance(setting_id, str):
        return False
    s = setting_id.strip().lower()
    return s == "all" or canonical_setting_id(s) is not None or any(
        f.reserved(s) for f in FAMILIES.values())


def benchmark_methods() -> tuple[str, ...]:
    """``auto`` and every family's π* methods (the CLI's ``--method`` choices)."""
    return ("auto",) + tuple(dict.fromkeys(m for f in FAMILIES.values() for m in f.benchmarks))
