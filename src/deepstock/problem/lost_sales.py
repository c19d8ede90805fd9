"""The lost-sales family: Zipkin's (2008) benchmark with lead times, as DeepStock settings.

Built-in settings ``ls_{poisson|geometric}_l{L}_p{p}``, L in {1, 2, 3, 4}, p in {4, 9, 19, 39}:
i.i.d. integer demand with mean 5 (Poisson, or geometric on {0, 1, ...}: P(D = k) = (1-θ)θ^k,
θ = 5/6), holding cost h = 1 per unit left over, penalty p per lost unit, an order every period
(R = 1) arriving L periods later. In the simulator's terms (spec §2 with lost sales): the order
placed on day t joins the pipeline's last slot and is on hand at the start of day t + L, demand
is met from on-hand stock and the excess is lost; the day's cost is h·(left-over) + p·(lost)
(no rescaling: losses are Zipkin's average cost per period).

**Horizon.** Day 0 has no order (t < R), the first order is placed on day 1; the first L + 1 days
plus ``warmup`` = 20 more are simulated but not counted, then ``COUNTED`` = 100 days are: T =
1 + L + 20 + 100. Every trajectory starts empty (no stock, nothing on order): that is the
documented initial state, and the 20 uncounted days let the system forget it
(``speed/bench_lost_sales.py --sizing``: under the optimal policy the counted days' mean is then
within +0.03 … +0.56 % of the stationary cost; the test set's own check is the benchmark's
``L_star`` against ``expected_value``).

**Streams.** Each split has its own generator ``default_rng([data_seed, 4, dist, split])``
(dist 1 Poisson, 2 geometric; split 1 train, 2 val, 3 test) drawing [n, 125] demands of which
the first T are kept: the settings of one distribution share their demand paths (common random
numbers across L and p), and a larger test set does not change the training data.

**Order cap.** M = S̄, the backorder system's optimal base-stock level for the same (dist, L, h,
p): the optimal lost-sales policy never orders above S̄ − position (Morton 1971), so the exact
optimum stays feasible for None (order ≤ M) and Base (order-up-to level ≤ M).

There is no context feature (x_t = 0) and no Coeff feature: Coeff and Both are refused here.
"""

from __future__ import annotations

import functools
import re

import numpy as np

from deepstock.errors import ConfigError
from deepstock.problem.settings import DataOptions, Setting

DISTS = ("poisson", "geometric")
LEAD_TIMES = (1, 2, 3, 4)
PENALTIES = (4, 9, 19, 39)
MEAN = 5.0
H = 1.0
WARMUP = 20
COUNTED = 100
MAX_T = 1 + max(LEAD_TIMES) + WARMUP + COUNTED
#: train, val, test paths. Test: two standard errors of the optimal policy's simulated cost are
#: below 0.5 % of g* in every cell (largest at p = 39: tests/test_lost_sales.py).
SIZES = {"poisson": (200, 200, 5000), "geometric": (200, 200, 9000)}
_CODES = {"poisson": 1, "geometric": 2}
_SPLIT_CODES = {"train": 1, "val": 2, "test": 3}
_ID_RE = re.compile(r"ls_([a-z]+)_l(\d+)_p(\d+)", re.ASCII)
#: The largest lead time whose exact DP fits the default memory bound at mean 5 (issue 27).
MAX_DP_LEAD_TIME = 4


def setting_id(dist: str, L: int, p: int) -> str:
    return f"ls_{dist}_l{L}_p{p}"


IDS: tuple[str, ...] = tuple(setting_id(d, L, p) for d in DISTS for p in PENALTIES
                             for L in LEAD_TIMES)


def order_cap(dist: str, mean: float, h: float, p: float, L: int) -> float:
    """M = S̄, the backorder base-stock level (Morton's bound on the lost-sales optimum)."""
    from deepstock.benchmarks.lost_sales_dp import backorder_level, demand_pmf

    return float(backorder_level(demand_pmf(dist, mean), h, p, L))


@functools.cache  # M = S-bar costs a pmf and a convolution; get_setting is called per row
def builtin(sid: str) -> Setting:
    m = _ID_RE.fullmatch(sid)
    dist, L, p = m.group(1), int(m.group(2)), int(m.group(3))
    n_train, n_val, n_test = SIZES[dist]
    return Setting(sid, "lost_sales", T=1 + L + WARMUP + COUNTED, n_train=n_train, n_val=n_val,
                   n_test=n_test, R=1, L=L, M=order_cap(dist, MEAN, H, p, L),
                   dynamics="lost_sales", warmup=WARMUP, h=H, p=float(p), dist=dist, mean=MEAN)


def canonical(s: str) -> str | None:
    m = _ID_RE.fullmatch(s)
    if not m:
        return None
    c = setting_id(m.group(1), int(m.group(2).lstrip("0") or 0), int(m.group(3).lstrip("0") or 0))
    return c if c in IDS else None


def reserved(s: str) -> bool:
    return bool(_ID_RE.fullmatch(s))


CUSTOM_FIELDS = {"dist": "poisson", "mean": MEAN, "h": H, "p": None, "warmup": WARMUP}


def _number(d: dict, key: str, low: float, strict: bool) -> float:
    v = d[key]
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and (
        v > low if strict else v >= low)
    if not ok:
        raise ConfigError(f"setting field {key!r}={v!r} must be a finite number "
                          f"{'>' if strict else '>='} {low:g}")
    return float(v)


def custom(d: dict) -> dict:
    """A custom lost-sales setting's own fields (other distributions, means, h, p, warm-up)."""
    if d.get("R", 1) != 1:
        raise ConfigError(f"setting field 'R'={d['R']!r} must be 1 for lost sales (an order "
                          "every period, as the exact DP assumes)")
    if d["dist"] not in DISTS:
        raise ConfigError(f"setting field 'dist'={d['dist']!r} is not one of {list(DISTS)}")
    if d["p"] is None:
        raise ConfigError("setting field 'p' is missing (the lost-sales penalty per unit)")
    w = d["warmup"]
    if isinstance(w, bool) or not isinstance(w, int) or w < 0:
        raise ConfigError(f"setting field 'warmup'={w!r} must be an integer >= 0")
    mean = _number(d, "mean", 0.0, True)
    if mean > 1000:
        raise ConfigError(f"setting field 'mean'={mean:g} is above 1000: the exact DP's state "
                          "space grows like mean^L and would not fit in memory")
    return {"dist": d["dist"], "mean": mean, "h": _number(d, "h", 0.0, False),
            "p": _number(d, "p", 0.0, True), "warmup": w}


def _draws(rng: np.random.Generator, dist: str, mean: float, n: int, T: int) -> np.ndarray:
    width = max(T, MAX_T)
    if dist == "poisson":
        d = rng.poisson(mean, size=(n, width))
    else:
        d = rng.geometric(1.0 / (1.0 + mean), size=(n, width)) - 1  # support {0, 1, ...}
    return d[:, :T].astype(np.float64)


def generate(setting: Setting, options: DataOptions):
    """Train, val and test demand paths, each split from its own stream (module docstring)."""
    from deepstock.problem.data import Dataset
    from deepstock.problem.generators import dataset_meta, split_rows

    sizes = {"train": setting.n_train, "val": setting.n_val, "test": setting.n_test}
    blocks = [_draws(np.random.default_rng([options.data_seed, 4, _CODES[setting.dist],
                                            _SPLIT_CODES[s]]), setting.dist, setting.mean, n,
                     setting.T) for s, n in sizes.items()]
    demand = np.concatenate(blocks)
    n, T = demand.shape
    parameters = {"dist": setting.dist, "mean": setting.mean, "h": setting.h, "p": setting.p,
                  "warmup": setting.warmup, "initial_state": "empty",
                  "streams": "default_rng([data_seed, 4, dist, split])"}
    return Dataset(
        setting=setting, demand=demand, features=np.zeros((n, T, 1)),
        coeff=np.zeros((n, T, 4)), ids=np.arange(1, n + 1, dtype=np.int64),
        split_idx=split_rows(setting.n_train, setting.n_val, setting.n_train + setting.n_val,
                          setting.n_test),
        demand_params={}, meta=dataset_meta(setting, "lost_sales", parameters, options))


def describe(s: Setting) -> str:
    return (f"lost sales, {s.dist} demand mean {s.mean:g}, L={s.L}, h={s.h:g}, p={s.p:g}, R=1, "
            f"M={s.M:g}, {s.warmup} warm-up + {s.n_counted_days} counted days; splits "
            f"{s.n_train}/{s.n_val}/{s.n_test}")
