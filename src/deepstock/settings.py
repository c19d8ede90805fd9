"""Experimental settings of the paper (spec §1, §5): ids, horizons, sizes and data options.

Setting ids are used everywhere (CLI, file names, Snakemake wildcards):
``s1`` (INDEP), ``s2``/``s3`` (AR(1)), ``s4_n{N}_t{T}`` (IID, N in {5,10,20}, T in {7,19,35,67,131}).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Literal

from deepstock.errors import ConfigError

Family = Literal["indep", "ar1", "iid"]

IID_N = (5, 10, 20)
IID_H = (2, 8, 16, 32, 64)
IID_T = tuple(3 + 2 * h for h in IID_H)
IID_TEST_PER_SIGMA = 100


@dataclass(frozen=True)
class Setting:
    """One experimental setting: dynamics constants and the split layout of its dataset."""

    id: str
    family: Family
    T: int
    n_train: int
    n_val: int
    n_test: int
    R: int = 2
    L: int = 1
    M: float = 100.0
    N: int | None = None  # IID: number of distinct sigmas
    H: int | None = None  # IID: number of review cycles (T = 3 + 2H)

    @property
    def counted_days(self) -> int:
        """Number of days that enter every loss: t = R+L ... T-1."""
        return self.T - self.R - self.L

    def to_dict(self) -> dict:
        return asdict(self)


def iid_setting_id(n: int, t: int) -> str:
    return f"s4_n{n}_t{t}"


SETTING_IDS: tuple[str, ...] = ("s1", "s2", "s3") + tuple(
    iid_setting_id(n, t) for n in IID_N for t in IID_T
)

_IID_RE = re.compile(r"^s4_n(\d+)_t(\d+)$")


def get_setting(setting_id: str) -> Setting:
    """Return the :class:`Setting` for an id, or raise a ConfigError listing the valid ids."""
    if setting_id == "s1":
        return Setting("s1", "indep", T=31, n_train=10, n_val=10, n_test=100)
    if setting_id == "s2":
        return Setting("s2", "ar1", T=31, n_train=10, n_val=10, n_test=100)
    if setting_id == "s3":
        return Setting("s3", "ar1", T=31, n_train=5, n_val=5, n_test=100)
    m = _IID_RE.match(setting_id)
    if m:
        n, t = int(m.group(1)), int(m.group(2))
        if n in IID_N and t in IID_T:
            return Setting(
                setting_id, "iid", T=t, n_train=n, n_val=n, n_test=IID_TEST_PER_SIGMA * n,
                M=500.0, N=n, H=(t - 3) // 2,
            )
    raise ConfigError(
        f"unknown setting {setting_id!r}; valid ids: s1, s2, s3, s4_n{{N}}_t{{T}} with "
        f"N in {list(IID_N)} and T in {list(IID_T)} (run `deepstock data --list`)"
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
