"""Setting 4 (IID) benchmark: the critical-fractile base stock S_k = μ + z σ_k (spec §6.2).

The policy is Base with a per-SKU target: q = clip(S_k - tot(I_t), 0, M). With demand only on
odd days t >= 3 each order faces exactly one draw D ~ max(0, N(μ, σ_k²)), so the per-trajectory
loss is the mean of c(S_k - D_t) over the odd counted days, and its expectation is the
censored-normal newsvendor cost of :func:`expected_newsvendor_cost`.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from deepstock.errors import ConfigError, DataError
from deepstock.problem.data import Dataset
from deepstock.problem.dynamics import Observation, Policy
from deepstock.problem.losses import DEFAULT_LOSS, LossConfig

IID_MEAN = 100.0  # hard-coded demand mean of the authors' generator (spec §5.3)
AUTHORS_Z = 1.282  # the authors' constant (spec §6.2, §10)
Z_CHOICES = ("1.282", "exact")


def fractile_z(iid_z: str | float = "1.282", loss: LossConfig = DEFAULT_LOSS) -> float:
    """``1.282`` (authors, default) or ``exact`` = Φ⁻¹(b/(b+h)) (= Φ⁻¹(0.9)); a float is used as is."""
    if isinstance(iid_z, (int, float)) and not isinstance(iid_z, bool):
        return float(iid_z)
    if iid_z == "1.282":
        return AUTHORS_Z
    if iid_z == "exact":
        b, h = loss.underage, loss.h
        return float(norm.ppf(b / (b + h)))
    raise ConfigError(f"iid_z={iid_z!r} is not one of {list(Z_CHOICES)} or a number")


def sku_sigmas(dataset: Dataset) -> np.ndarray:
    """σ_k of every dataset row (parameter ``sigma`` [n])."""
    sigma = dataset.demand_params.get("sigma")
    if sigma is None:
        raise DataError("the IID benchmark needs the dataset parameter 'sigma' (σ_k per SKU)")
    sigma = np.asarray(sigma, dtype=np.float64).reshape(-1)
    if sigma.shape[0] != dataset.demand.shape[0] or np.any(~np.isfinite(sigma)) or np.any(sigma < 0):
        raise DataError(f"dataset parameter 'sigma' must be {dataset.demand.shape[0]} values >= 0")
    return sigma


def critical_fractile_levels(
    sigma: np.ndarray, z: float, mean: float = IID_MEAN
) -> np.ndarray:
    """S_k = μ + z σ_k (spec §6.2)."""
    return mean + z * np.asarray(sigma, dtype=np.float64)


def row_level_policy(levels: np.ndarray, M: float) -> Policy:
    """Base stock with one target per *dataset row*: q = clip(S[row] - tot(I_t), 0, M).

    Rows come from ``obs.index`` (set by the evaluation helpers), so one policy serves every split.
    """
    levels = np.asarray(levels, dtype=np.float64)

    def policy(obs: Observation) -> np.ndarray:
        if obs.index is None:
            raise ValueError("row_level_policy needs obs.index (the dataset rows)")
        return np.clip(levels[obs.index] - np.asarray(obs.position), 0.0, M)

    return policy


def expected_newsvendor_cost(
    level: np.ndarray | float,
    sigma: np.ndarray | float,
    mean: float = IID_MEAN,
    loss: LossConfig = DEFAULT_LOSS,
) -> np.ndarray:
    """E[c(S - D)] with D = max(0, X), X ~ N(μ, σ²), for S >= 0.

    Uncensored: E[c(S - X)] = h(S - μ) + (b + h) σ [φ(z) - z(1 - Φ(z))], z = (S - μ)/σ. Censoring
    moves X <= 0 to 0, which adds h·E[X; X <= 0] = h[μ Φ(-μ/σ) - σ φ(μ/σ)].
    """
    S = np.asarray(level, dtype=np.float64)
    s = np.asarray(sigma, dtype=np.float64)
    h, b = loss.h, loss.underage
    z = (S - mean) / s
    uncensored = h * (S - mean) + (b + h) * s * (norm.pdf(z) - z * norm.sf(z))
    return uncensored + h * (mean * norm.cdf(-mean / s) - s * norm.pdf(mean / s))
