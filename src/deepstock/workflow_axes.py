"""The workflow configuration's axis values, checked against the registries before any job.

The JSON schema (workflow/schemas/config.schema.yaml) checks the structure; the Snakefile calls
:func:`check_workflow_axes` right after it, so a value outside the registries is a one-line
ConfigError naming the key before any job runs. It sits above the registries (method,
regularization and family), which do not import it.
"""

from __future__ import annotations

from typing import Any

from deepstock.errors import ConfigError
from deepstock.hparams import SCALES
from deepstock.problem import lost_sales
from deepstock.problem.families import IID_IDS, get_family
from deepstock.problem.settings import get_setting
from deepstock.registry import (
    EXECUTORS,
    METHODS,
    REGULARIZATIONS,
    TABLE_SETTINGS,
    check_supported,
)

#: Groups a ``settings`` entry may name for a whole grid: ``s4`` (Setting 4), ``ls`` (lost sales).
GROUPS: dict[str, tuple[str, ...]] = {"s4": IID_IDS, "ls": lost_sales.IDS}
#: What the workflow's ``settings`` list may name: Settings 1-3, a group, or one cell of a group.
WORKFLOW_SETTINGS: tuple[str, ...] = (
    *TABLE_SETTINGS.values(), *GROUPS, *(s for ids in GROUPS.values() for s in ids))


def expand_settings(settings: list[str]) -> list[str]:
    """The setting ids a ``settings`` list names, groups expanded, in order, without repeats."""
    return list(dict.fromkeys(s for entry in settings for s in GROUPS.get(entry, (entry,))))


def _one_of(key: str, value: Any, allowed) -> None:
    if value not in allowed:
        raise ConfigError(f"config {key}: {value!r} is not one of {list(allowed)}")


def _check_cells(methods_key: str, regs_key: str, config: dict, families: set[str]) -> None:
    methods, regs = config.get(methods_key) or (), config.get(regs_key) or ()
    for m in methods:
        _one_of(methods_key, m, METHODS)
    for r in regs:
        _one_of(regs_key, r, REGULARIZATIONS)
    for m, r, fam in ((m, r, f) for m in methods for r in regs for f in sorted(families)):
        try:
            check_supported(m, r, get_family(fam))
        except ConfigError as err:
            raise ConfigError(f"config {methods_key} x {regs_key}: {err}") from None


def check_workflow_axes(config: dict) -> None:
    """Scale, settings, methods, regularizations (each method supporting each on its settings'
    families), backends and executor of a workflow configuration."""
    _one_of("scale", config.get("scale"), SCALES)
    settings = list(config.get("settings") or ())
    for s in settings:
        _one_of("settings", s, WORKFLOW_SETTINGS)
    ids = expand_settings(settings)
    iid = {"iid"} & {get_setting(s).family for s in ids}
    _check_cells("methods", "regs", config, {get_setting(s).family for s in ids} - iid)
    _check_cells("s4_methods", "s4_regs", config, iid)
    ls = config.get("lost_sales") or {}
    for s in ls.get("settings") or ():
        _one_of("lost_sales.settings", s, ("ls", *lost_sales.IDS))
    if ls.get("settings"):
        _check_cells("lost_sales.methods", "lost_sales.regs", {
            "lost_sales.methods": ls.get("methods"), "lost_sales.regs": ls.get("regs")},
            {"lost_sales"})
    for m, b in (config.get("backends") or {}).items():
        _one_of("backends", m, METHODS)
        _one_of(f"backends.{m}", b, METHODS[m].backends)
    _one_of("tuning.executor", (config.get("tuning") or {}).get("executor", "auto"), EXECUTORS)
