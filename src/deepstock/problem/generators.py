"""Synthetic demand datasets of Settings 1–4 (spec §5), with the paper-exact random streams.

Two modes (``DataOptions.rng_mode``):

- ``paper_exact`` (default): the authors' streams, spec §5.1–5.3. Legacy ``RandomState`` and
  ``default_rng`` are used exactly as their scripts call them, seeded with ``data_seed`` (42 gives
  the authors' datasets bit for bit).
- ``fresh``: one ``default_rng([data_seed, code])`` per family (code 1 INDEP, 2 AR(1), 3 IID) for
  every draw, in the same order (spec §5.5). Coeff noise continues that generator.

Custom settings (``settings.setting_from_dict``) reuse the family's distributions with their own
horizon, R and sizes, in ``fresh`` mode only: the pool is exactly n_train + n_val + n_test
consecutive trajectories, AR(1) drops 4R warm-up days, IID uses N = n_train distinct σ's (val and
test cycle through them in blocks, as the built-in layout does).

Coeff features φ_1..φ_4 (spec §5.4) are pandas rolling means over the whole generated series, so
they match the authors' ``groupby().transform(rolling)`` values bit for bit.
"""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

import numpy as np

from deepstock import __version__
from deepstock.errors import ConfigError
from deepstock.problem.data import Dataset
from deepstock.problem.settings import (
    DataOptions,
    Setting,
    check_dataset_bytes,
    dataset_bytes,
    get_setting,
    is_builtin,
    setting_from_spec,
)

FRESH_CODES = {"indep": 1, "ar1": 2, "iid": 3, "lost_sales": 4}

# INDEP constants (spec §5.1)
INDEP_N_SKUS = 120
INDEP_LOWER_MEAN, INDEP_LOWER_STD, INDEP_LOWER_CLIP = 10.0, 4.0, (0.0, 100.0)
INDEP_SPAN = 5
# AR(1) constants (spec §5.2)
AR1_POOL = 120
AR1_POOL_REPO = 110
AR1_PHI, AR1_MU, AR1_SIGMA = (0.3, 0.9), (5.0, 10.0), (2.0, 8.0)
AR1_WARMUP = 8  # 4R raw days dropped
# IID constants (spec §5.3)
IID_MEAN = 100.0
IID_SIGMA = (5.0, 20.0)
# Coeff noise (spec §5.4)
COEFF_NOISE_STD = 3.0



def _sizes(s: Setting) -> str:
    return f"splits {s.n_train}/{s.n_val}/{s.n_test} ({s.n_train + s.n_val + s.n_test} used)"


def describe_indep(s: Setting) -> str:
    return f"INDEP: D_t ~ U{{l_t..l_t+4}}, shared lower bounds, x_t = floor(t/2), T={s.T}; {_sizes(s)}"


def describe_ar1(s: Setting) -> str:
    text = f"AR(1) censored at 0, phi~U(.3,.9) mu~U(5,10) sigma~U(2,8), x_t = D_{{t-1}}, T={s.T}"
    if s.id == "s3":
        text += " (5 train SKUs; test SKUs 21-120, or 11-110 with --s3-test repo)"
    return f"{text}; {_sizes(s)}"


def describe_iid(s: Setting) -> str:
    return (f"IID N(100, sigma_k^2) on odd days t>=3, sigma_k~U(5,20), x_t = sigma_k, N={s.N}, "
            f"H={s.H}, T={s.T}; {_sizes(s)}")


# --------------------------------------------------------------------------- Coeff features
def coeff_features(series: np.ndarray, noise3: np.ndarray, noise4: np.ndarray) -> np.ndarray:
    """φ_1..φ_4 [n, len, 4] of demand series [n, len] (spec §5.4), raw; NaN at t = 0 kept.

    φ_1 = mean d[t-28..t-1], φ_2 = mean d[t-7..t-1], φ_3 = mean d[t-5..t+1] + η,
    φ_4 = mean d[t-26..t+1] + η′; windows truncated at the ends (pandas ``min_periods=1``).
    φ_3, φ_4 roll over the series shifted by -1 as the authors do, so d_0 never enters them: near
    the start their windows begin at day 1, not day 0.
    """
    import pandas as pd  # only the Coeff features need it: `deepstock --help` does not

    frame = pd.DataFrame(np.asarray(series, dtype=np.float64).T)  # days x SKUs
    lead = frame.shift(-1)
    cols = [
        frame.rolling(28, min_periods=1).mean().shift(1),
        frame.rolling(7, min_periods=1).mean().shift(1),
        lead.rolling(7, min_periods=1).mean(),
        lead.rolling(28, min_periods=1).mean(),
    ]
    out = np.stack([c.to_numpy(dtype=np.float64).T for c in cols], axis=-1)
    out[..., 2] = out[..., 2] + noise3
    out[..., 3] = out[..., 3] + noise4
    return out


def _coeff_noise(rng, n: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """η for all SKUs (ascending id), then η′ for all SKUs: normal(0, 3) of the series length."""
    noise3 = rng.normal(0.0, COEFF_NOISE_STD, size=(n, length))
    noise4 = rng.normal(0.0, COEFF_NOISE_STD, size=(n, length))
    return noise3, noise4


def _nan_to_zero(coeff: np.ndarray) -> np.ndarray:
    """NaN at t = 0 (φ_1, φ_2) is never used; set it to 0 (spec §5.4)."""
    return np.where(np.isnan(coeff), 0.0, coeff)


def _fresh_rng(options: DataOptions, family: str) -> np.random.Generator:
    return np.random.default_rng([options.data_seed, FRESH_CODES[family]])


def split_rows(n_train: int, n_val: int, test_start: int, n_test: int) -> dict[str, np.ndarray]:
    return {
        "train": np.arange(0, n_train, dtype=np.int64),
        "val": np.arange(n_train, n_train + n_val, dtype=np.int64),
        "test": np.arange(test_start, test_start + n_test, dtype=np.int64),
    }


def dataset_meta(setting: Setting, generator: str, parameters: dict, options: DataOptions) -> dict:
    return {
        "setting": setting.id,
        "setting_spec": setting.to_dict(),
        "generator": generator,
        "parameters": parameters,
        "data_options": asdict(options),
        "seed": options.data_seed,
        "rng_mode": options.rng_mode,
        "version": __version__,
    }


# --------------------------------------------------------------------------- INDEP (spec §5.1)
def _indep_lower(options: DataOptions, rng, T: int) -> np.ndarray:
    lo, hi = INDEP_LOWER_CLIP
    if options.indep_lower == "truncnorm":
        from scipy.stats import truncnorm

        a, b = (lo - INDEP_LOWER_MEAN) / INDEP_LOWER_STD, (hi - INDEP_LOWER_MEAN) / INDEP_LOWER_STD
        raw = truncnorm.rvs(
            a, b, loc=INDEP_LOWER_MEAN, scale=INDEP_LOWER_STD, size=T, random_state=rng
        )
    else:
        raw = rng.normal(INDEP_LOWER_MEAN, INDEP_LOWER_STD, size=T)
    return np.clip(raw, lo, hi).astype(np.int64)


def generate_indep(setting: Setting, options: DataOptions) -> Dataset:
    """INDEP: shared ℓ_t, D_t ~ DiscreteUniform{ℓ_t..ℓ_t+4}, x_t = ⌊t/2⌋ (or t) (spec §5.1)."""
    n, T, seed = _pool(setting, INDEP_N_SKUS), setting.T, options.data_seed
    if options.rng_mode == "paper_exact":
        lower = _indep_lower(options, np.random.RandomState(seed), T)
        demand_rng = np.random.default_rng(seed)
        noise_rng = np.random.RandomState(seed)  # re-seeded after the demands
    else:
        demand_rng = noise_rng = _fresh_rng(options, "indep")
        lower = _indep_lower(options, demand_rng, T)
    lows = np.tile(lower, n)  # SKU-major flattening
    demand = demand_rng.integers(lows, lows + INDEP_SPAN).reshape(n, T).astype(np.float64)
    coeff = _nan_to_zero(coeff_features(demand, *_coeff_noise(noise_rng, n, T)))
    t = np.arange(T, dtype=np.float64)
    x = np.floor_divide(t, setting.R) if options.indep_feature == "half_t" else t
    features = np.broadcast_to(x, (n, T))[..., None].copy()
    parameters = {
        "n_skus": n,
        "lower_mean": INDEP_LOWER_MEAN,
        "lower_std": INDEP_LOWER_STD,
        "lower_clip": list(INDEP_LOWER_CLIP),
        "lower_method": options.indep_lower,
        "span": INDEP_SPAN,
        "feature": options.indep_feature,
        "coeff_noise_std": COEFF_NOISE_STD,
    }
    return Dataset(
        setting=setting,
        demand=demand,
        features=features,
        coeff=coeff,
        ids=np.arange(1, n + 1, dtype=np.int64),
        split_idx=split_rows(setting.n_train, setting.n_val, setting.n_train + setting.n_val,
                          setting.n_test),
        demand_params={"lower": lower},
        meta=dataset_meta(setting, "indep", parameters, options),
    )


# --------------------------------------------------------------------------- AR(1) (spec §5.2)
def ar1_draws(rng, n: int, raw_days: int) -> dict[str, np.ndarray]:
    """Per-SKU draws in the authors' order: φ, μ, σ, d_0 normal(μ, σ), then normal(0, σ) × rest.

    ``rng`` is a legacy RandomState (its cached Gaussian carries across SKUs, spec §5.2) or a
    Generator; the per-SKU vectorized ε draw equals the authors' scalar calls.
    """
    phi, mu, sigma = np.empty(n), np.empty(n), np.empty(n)
    first, eps = np.empty(n), np.empty((n, raw_days - 1))
    for k in range(n):
        phi[k] = rng.uniform(*AR1_PHI)
        mu[k] = rng.uniform(*AR1_MU)
        sigma[k] = rng.uniform(*AR1_SIGMA)
        first[k] = rng.normal(mu[k], sigma[k])
        eps[k] = rng.normal(0.0, sigma[k], size=raw_days - 1)
    return {"phi": phi, "mu": mu, "sigma": sigma, "first": first, "eps": eps}


def _pos(v: np.ndarray) -> np.ndarray:
    """Python's ``max(0, v)``: v if v > 0 else 0."""
    return np.where(v > 0, v, 0.0)


def ar1_series(draws: dict[str, np.ndarray]) -> np.ndarray:
    """Raw censored AR(1) paths [n, raw_days]: d_j = max(0, φ d_{j-1} + (1-φ) μ + ε_j)."""
    phi, mu, eps = draws["phi"], draws["mu"], draws["eps"]
    d = np.empty((phi.shape[0], eps.shape[1] + 1))
    d[:, 0] = _pos(draws["first"])
    for j in range(1, d.shape[1]):
        d[:, j] = _pos(phi * d[:, j - 1] + (1 - phi) * mu + eps[:, j - 1])
    return d


def generate_ar1(setting: Setting, options: DataOptions) -> Dataset:
    """AR(1) pool (120 SKUs, or 110 for ``s3_test: repo``), 8 warm-up days dropped (spec §5.2)."""
    T = setting.T
    warmup = AR1_WARMUP if is_builtin(setting.id) else 4 * setting.R
    raw_days = T + warmup
    repo = setting.id == "s3" and options.s3_test == "repo"
    n = _pool(setting, AR1_POOL_REPO if repo else AR1_POOL)
    if options.rng_mode == "paper_exact":
        rng = np.random.RandomState(options.data_seed)
    else:
        rng = _fresh_rng(options, "ar1")
    draws = ar1_draws(rng, n, raw_days)
    raw = ar1_series(draws)
    coeff_raw = coeff_features(raw, *_coeff_noise(rng, n, raw_days))  # stream continued
    x_raw = np.concatenate([np.full((n, 1), np.nan), raw[:, :-1]], axis=1)  # previous raw day
    keep = slice(warmup, None)
    test_start = 20 if setting.id == "s3" and not repo else setting.n_train + setting.n_val
    parameters = {
        "pool": n,
        "phi_range": list(AR1_PHI),
        "mu_range": list(AR1_MU),
        "sigma_range": list(AR1_SIGMA),
        "raw_days": raw_days,
        "warmup_dropped": warmup,
        "s3_test": options.s3_test if setting.id == "s3" else None,
        "coeff_noise_std": COEFF_NOISE_STD,
    }
    return Dataset(
        setting=setting,
        demand=np.ascontiguousarray(raw[:, keep]),
        features=np.ascontiguousarray(x_raw[:, keep])[..., None],
        coeff=_nan_to_zero(np.ascontiguousarray(coeff_raw[:, keep])),
        ids=np.arange(1, n + 1, dtype=np.int64),
        split_idx=split_rows(setting.n_train, setting.n_val, test_start, setting.n_test),
        demand_params={k: draws[k] for k in ("phi", "mu", "sigma")},
        meta=dataset_meta(setting, "ar1", parameters, options),
    )


# --------------------------------------------------------------------------- IID (spec §5.3)
def iid_demand_days(T: int, mode: str) -> np.ndarray:
    """Days carrying a demand draw: odd t >= 3 (authors' code) or every day (``all``)."""
    t = np.arange(T)
    return (t >= 2) & (t % 2 == 1) if mode == "odd" else np.ones(T, dtype=bool)


def generate_iid(setting: Setting, options: DataOptions) -> Dataset:
    """IID: σ_k ~ U(5, 20); train σ_1..σ_N, val the same, test 100 × each σ_k (spec §5.3)."""
    N, T, seed = setting.N, setting.T, options.data_seed
    assert N is not None
    if options.rng_mode == "paper_exact":
        sig = np.random.RandomState(seed).uniform(*IID_SIGMA, size=N)
        demand_rng = np.random.default_rng(seed)
        noise_rng = np.random.RandomState(seed)  # re-seeded after the σ's
    else:
        demand_rng = noise_rng = _fresh_rng(options, "iid")
        sig = demand_rng.uniform(*IID_SIGMA, size=N)
    sigma = np.concatenate([sig, np.resize(sig, setting.n_val), _blocks(sig, setting.n_test)])
    n = sigma.shape[0]
    days = iid_demand_days(T, options.iid_demand_days)
    demand = np.zeros((n, T))
    draws = demand_rng.normal(IID_MEAN, sigma[:, None], size=(n, int(days.sum())))
    demand[:, days] = _pos(draws)
    coeff = _nan_to_zero(coeff_features(demand, *_coeff_noise(noise_rng, n, T)))
    parameters = {
        "N": N,
        "H": setting.H,
        "mean": IID_MEAN,
        "sigma_range": list(IID_SIGMA),
        "test_per_sigma": -(-setting.n_test // N),
        "demand_days": options.iid_demand_days,
        "coeff_noise_std": COEFF_NOISE_STD,
    }
    return Dataset(
        setting=setting,
        demand=demand,
        features=np.repeat(sigma[:, None], T, axis=1)[..., None],
        coeff=coeff,
        ids=np.arange(1, n + 1, dtype=np.int64),
        split_idx=split_rows(N, setting.n_val, N + setting.n_val, setting.n_test),
        demand_params={"sigma": sigma},
        meta=dataset_meta(setting, "iid", parameters, options),
    )


# --------------------------------------------------------------------------- entry points
def _pool(setting: Setting, builtin_pool: int) -> int:
    """Trajectories generated: the paper's fixed pool, or exactly the splits of a custom setting."""
    if is_builtin(setting.id):
        return builtin_pool
    return setting.n_train + setting.n_val + setting.n_test


def _blocks(sig: np.ndarray, n_test: int) -> np.ndarray:
    """Test σ's: each σ_k repeated in a consecutive block (100 each for the built-ins, spec §5.3)."""
    per = -(-n_test // sig.shape[0])  # ceil
    return np.repeat(sig, per)[:n_test]


def generate_dataset(setting: str | Setting, options: DataOptions | None = None) -> Dataset:
    """Generate the dataset of a setting id or a custom :class:`Setting` (spec §5).

    Raises ConfigError for an unknown or non-canonical id, for a Setting that a custom setting
    file could not hold (or a built-in id with other fields), for a dataset over the size bound
    (checked before any allocation), and for ``paper_exact`` with a custom setting.
    """
    options = options or DataOptions()
    if not isinstance(options, DataOptions):
        raise ConfigError(f"options must be DataOptions, not {type(options).__name__}")
    if isinstance(setting, Setting):
        setting_from_spec(setting.to_dict())  # what a setting file could not hold is refused
        if not is_builtin(setting.id) and options.rng_mode != "fresh":
            raise ConfigError(
                f"custom setting {setting.id!r}: rng_mode={options.rng_mode!r} is for the paper's "
                "settings only; use rng_mode: fresh"
            )
    else:
        setting = get_setting(setting)
    check_dataset_bytes(dataset_bytes(setting), f"setting {setting.id!r} ({setting.T} days)")
    from deepstock.problem.families import (
        get_family,  # the families import this module's generators
    )

    return get_family(setting.family).generate(setting, options)


def write_dataset(
    setting_id: str | Setting, path: str | os.PathLike, options: DataOptions | None = None
) -> Path:
    """Generate and save one dataset atomically; same options give identical bytes."""
    return generate_dataset(setting_id, options).save(path)


def describe(setting_id: str) -> str:
    """One-line description of a setting for ``deepstock data --list`` (its family's)."""
    from deepstock.problem.families import get_family

    s = get_setting(setting_id)
    return get_family(s.family).describe(s)
