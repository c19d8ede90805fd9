"""Setting 1 (INDEP) benchmark: exact finite-horizon dynamic program on integer on-hand (spec §6.1).

State i ∈ [lo, hi] (default [-100, 200]) is the on-hand inventory at the start of day t; with L = 1
the pipeline is empty when the policy looks, so i is also the inventory position. Actions
u ∈ {0..M} on useful order days, u = 0 otherwise. With p_t the day-t demand pmf:

    c_t(i) = Σ_d p_t(d)[h(i-d)⁺ + b(d-i)⁺]                 (t counted, else 0)
    V_T ≡ 0,  V_t(i) = c_t(i) + min_u Σ_d p_t(d) V_{t+1}(clamp(i - d + u))

ties broken by the smallest u. The optimum is a time-dependent base stock S_t (extracted as the
smallest minimizer of W_t(j) = Σ_d p_t(d) V_{t+1}(clamp(j - d)) over post-order positions j).
The loop is over days only; states × actions are numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepstock.errors import ConfigError, DataError, DeepstockError
from deepstock.problem.data import Dataset
from deepstock.problem.dynamics import Observation, Policy, counted_days, order_days
from deepstock.problem.losses import DEFAULT_LOSS, LossConfig

PMF_KINDS = ("empirical", "true")


@dataclass
class IndepDPSolution:
    """Solved DP: value table, optimal order table and the extracted base-stock levels."""

    lo: int
    hi: int
    M: int
    R: int
    L: int
    value: np.ndarray  # [T+1, n_states] V_t(i), V_T = 0
    orders: np.ndarray  # [T, n_states] optimal u per day and state (0 on non-order days)
    levels: np.ndarray  # [T] S_t on order days, NaN elsewhere
    is_base_stock: bool  # orders == clip(S_t - i, 0, M) on every order day and state

    @property
    def grid(self) -> np.ndarray:
        return np.arange(self.lo, self.hi + 1)

    @property
    def T(self) -> int:
        return self.orders.shape[0]

    def expected_loss(self, i0: int = 0) -> float:
        """V_0(i0) divided by the number of counted days (spec §6.1: V_0(0)/28)."""
        return float(self.value[0, i0 - self.lo] / counted_days(self.T, self.R, self.L).sum())

    def order_day_levels(self) -> list[int]:
        """S_t on the useful order days, e.g. S_2, S_4, ..., S_28 for Setting 1."""
        days = order_days(self.T, self.R, self.L)
        return [int(v) for v in self.levels[days]]

    def policy(self) -> Policy:
        """q = π_t(clamp(round(I_{t,0}), lo, hi)), the table lookup of spec §6.1."""
        table = self.orders.astype(np.float64)
        lo, hi = self.lo, self.hi

        def policy(obs: Observation) -> np.ndarray:
            i = np.clip(np.rint(np.asarray(obs.pipeline[:, 0], dtype=np.float64)), lo, hi)
            return table[obs.t, i.astype(np.int64) - lo]

        return policy


def indep_pmf(dataset: Dataset, kind: str = "empirical") -> np.ndarray:
    """Per-day demand pmf [T, d_max + 1] (spec §6.1).

    ``empirical``: the distribution of the training trajectories' demands on each day [C].
    ``true``: uniform on ℓ_t..ℓ_t+4 from the dataset parameter ``lower`` [P].
    """
    T = dataset.setting.T
    if kind == "empirical":
        d = dataset.split("train").demand
        if d.size == 0:
            raise DataError("INDEP DP: the training split is empty; no empirical pmf")
        if np.any(d < 0) or np.any(d != np.rint(d)):
            raise DataError("INDEP DP needs non-negative integer demands for the empirical pmf")
        d = d.astype(np.int64)
        pmf = np.zeros((T, int(d.max()) + 1))
        for t in range(T):
            pmf[t] = np.bincount(d[:, t], minlength=pmf.shape[1]) / d.shape[0]
        return pmf
    if kind == "true":
        if "lower" not in dataset.demand_params:
            raise DataError("INDEP DP pmf 'true' needs the dataset parameter 'lower' (ℓ_t)")
        lower = np.asarray(dataset.demand_params["lower"], dtype=np.float64).reshape(-1)
        if lower.shape[0] != T or np.any(lower < 0) or np.any(lower != np.rint(lower)):
            raise DataError(f"INDEP parameter 'lower' must be {T} non-negative integers")
        lower = lower.astype(np.int64)
        pmf = np.zeros((T, int(lower.max()) + 5))
        for t in range(T):
            pmf[t, lower[t] : lower[t] + 5] = 0.2
        return pmf
    raise ConfigError(f"indep_benchmark={kind!r} is not one of {list(PMF_KINDS)}")


def _first_min(a: np.ndarray, axis: int) -> np.ndarray:
    """Index of the smallest minimizer along ``axis``, treating values within 1e-12·scale as tied."""
    m = a.min(axis=axis, keepdims=True)
    tol = 1e-12 * max(1.0, float(np.abs(m).max()))
    return np.argmax(a <= m + tol, axis=axis)


def solve_indep_dp(
    pmf: np.ndarray,
    *,
    R: int = 2,
    L: int = 1,
    M: int = 100,
    lo: int = -100,
    hi: int = 200,
    loss: LossConfig = DEFAULT_LOSS,
    check_grid: bool = True,
) -> IndepDPSolution:
    """Backward induction of spec §6.1 for a pmf [T, D] over demands 0..D-1.

    With ``check_grid`` the states reachable from i = 0 under the optimal policy are propagated
    forward over the pmf support; a transition leaving [lo, hi] raises DeepstockError, because the
    clamp would then change the answer.
    """
    pmf, M = _checked_inputs(pmf, L=L, M=M, lo=lo, hi=hi, check_grid=check_grid)
    grid = np.arange(lo, hi + 1)
    is_order = order_days(pmf.shape[0], R, L)
    value, orders, levels = _backward(pmf, R=R, L=L, M=M, lo=lo, hi=hi, loss=loss)
    base = all(
        np.array_equal(orders[t], np.clip(levels[t] - grid, 0, M).astype(np.int64))
        for t in np.flatnonzero(is_order)
    )
    sol = IndepDPSolution(lo, hi, M, R, L, value, orders, levels, base)
    if check_grid:
        _check_reachable(sol, pmf)
    return sol


def _checked_inputs(pmf: np.ndarray, *, L: int, M: int, lo: int, hi: int,
                    check_grid: bool) -> tuple[np.ndarray, int]:
    """The pmf as float64 and M as int, or a one-line error before any work."""
    if L != 1:
        raise ConfigError(f"the INDEP DP assumes lead time L = 1 (empty pipeline), got L={L}")
    if int(M) != M or M < 0:
        raise ConfigError(f"the INDEP DP needs an integer order cap M >= 0, got {M}")
    pmf = np.asarray(pmf, dtype=np.float64)
    if not np.allclose(pmf.sum(1), 1.0):
        raise DataError("INDEP DP: every day's pmf must sum to 1")
    d_max = int(np.flatnonzero(pmf.any(axis=0)).max())
    if check_grid and d_max > hi - lo + int(M):  # any demand that large leaves the grid
        raise DeepstockError(f"INDEP DP grid [{lo}, {hi}] is too small for the demand range: a "
                             f"demand of {d_max} leaves it from every order-up-to level; widen "
                             "the grid")
    return pmf, int(M)


def _backward(pmf: np.ndarray, *, R: int, L: int, M: int, lo: int, hi: int,
              loss: LossConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Values V_t on the grid [T + 1, n], optimal orders [T, n] and order-up-to levels [T]."""
    T, D = pmf.shape
    h, b = loss.h, loss.underage
    grid = np.arange(lo, hi + 1)
    n = grid.size
    dvals = np.arange(D)
    # cost matrix [n, D]: c(i - d)
    e = grid[:, None] - dvals[None, :]
    cost = h * np.maximum(e, 0) + b * np.maximum(-e, 0)
    counted = counted_days(T, R, L)
    is_order = order_days(T, R, L)
    # post-order positions j = lo .. hi + M, next-state index clamp(j - d) - lo  [n + M, D]
    jgrid = np.arange(lo, hi + M + 1)
    nxt = np.clip(jgrid[:, None] - dvals[None, :], lo, hi) - lo
    window = np.arange(n)[:, None] + np.arange(M + 1)[None, :]  # [n, M+1] index into jgrid

    value = np.zeros((T + 1, n))
    orders = np.zeros((T, n), dtype=np.int64)
    levels = np.full(T, np.nan)
    for t in range(T - 1, -1, -1):
        p = pmf[t]
        stage = cost @ p if counted[t] else np.zeros(n)
        W = value[t + 1][nxt] @ p  # W(j) = Σ_d p(d) V_{t+1}(clamp(j - d))
        if is_order[t]:
            Wwin = W[window]
            u = _first_min(Wwin, axis=1)
            orders[t] = u
            value[t] = stage + Wwin[np.arange(n), u]
            levels[t] = jgrid[_first_min(W, axis=0)]
        else:
            value[t] = stage + W[:n]
    return value, orders, levels


def _check_reachable(sol: IndepDPSolution, pmf: np.ndarray) -> None:
    """Raise if a state reachable from I_0 = 0 under the policy would be clamped."""
    grid = sol.grid
    reach = grid == 0
    if not reach.any():
        raise DeepstockError(f"INDEP DP grid [{sol.lo}, {sol.hi}] does not contain I_0 = 0")
    for t in range(sol.T):
        support = np.flatnonzero(pmf[t] > 0)
        post = grid[reach] + sol.orders[t][reach]
        low, high = post.min() - support.max(), post.max() - support.min()
        if low < sol.lo or high > sol.hi:
            raise DeepstockError(
                f"INDEP DP grid [{sol.lo}, {sol.hi}] is too small for the demand range: the "
                f"on-hand after day {t} can reach {low}..{high}; widen the grid"
            )
        nxt = (post[:, None] - support[None, :]).ravel() - sol.lo
        reach = np.zeros_like(reach)
        reach[nxt] = True
