"""Exact long-run average cost of the lost-sales inventory system with lead time L ≥ 1.

The classic single-item model of Zipkin (2008), "Old and new methods for lost-sales inventory
systems", Operations Research 56(5), with his conventions (review period R = 1, h = 1 there).

Timing of period t (what happens, in this order):

1. the order placed in period t − L arrives; the on-hand stock becomes x_0;
2. the state x = (x_0, x_1, ..., x_{L-1}) is observed: x_0 = on-hand after the arrival, x_l =
   the order that will arrive at the start of period t + l (l = 1..L-1, placed in t − L + l);
3. an order q ≥ 0 is placed (after the arrival, before demand); it arrives at the start of t + L;
4. the demand D_t (i.i.d., integer ≥ 0) is met from x_0; the excess (D_t − x_0)⁺ is lost;
5. the period cost is h·(x_0 − D_t)⁺ + p·(D_t − x_0)⁺.

The next state is x' = (x_1 + (x_0 − D)⁺, x_2, ..., x_{L-1}, q). For L = 1 the state is the
on-hand stock alone and x' = (x_0 − D)⁺ + q: what is ordered now is on hand next period. The
inventory position (before ordering) is Σ_l x_l. With c(y) = E[h (y − D)⁺ + p (D − y)⁺] the
average-cost Bellman equation is

    g + V(x) = c(x_0) + min_{q ≥ 0} Σ_d P(D = d) V(x_1 + (x_0 − d)⁺, x_2, ..., x_{L-1}, q).

**Bound.** The DP runs on X_cap = {x ∈ ℕ^L : Σx ≤ cap} with orders q ≤ cap − Σx (the position
after ordering is at most cap); X_cap is closed under the dynamics. The cap is S̄ + margin, where
S̄ = min{S : P(D_1 + ... + D_{L+1} ≤ S) ≥ p/(p+h)} is the optimal base-stock level of the
backorder system with the same h, p. Morton (1971, "The near-myopic nature of the
lagged-proportional-cost inventory problem with lost sales", Oper. Res. 19(7)) shows that the
optimal lost-sales order never brings the position above that level, q*(x) ≤ (S̄ − Σx)⁺ (also
stated in Zipkin 2008), so the cap never binds. This is not taken on trust: every result records
``max_position`` = max (Σx + q*(x)) over the states that order, which must be below ``cap`` (and
is ≤ S̄ in all 32 Zipkin settings), and :func:`cap_is_slack` re-solves with a larger cap. A
state above the cap (position > S̄) orders nothing.

**Solver.** Relative value iteration from V_0 = 0: δ_n = T V_n − V_n, then
V_{n+1} = V_n + τ δ_n, shifted so that V_{n+1}(0) = 0. For any V, min δ ≤ g* ≤ max δ (Odoni 1969;
Puterman 1994, §8.5), so stopping when max δ_n − min δ_n < tol gives g* to within tol; the
midpoint is reported with both bounds. τ = 0.9 (default) is the aperiodicity transformation
(Schweitzer 1971; Puterman §8.5.4): it has the same gain and relative values, and it converges
where a policy's chain is periodic (e.g. deterministic demand), where τ = 1 would oscillate.

**Vectorization.** For a post-order vector z = (x_0, x_1, r, q), r = (x_2..x_{L-1}), put
s = x_0 + x_1 and y = x_1 + (x_0 − d)⁺. Then

    W(z) = Σ_{y = x_1+1}^{s} P(D = s − y) V(y, r, q) + P(D ≥ x_0) V(x_1, r, q),

a suffix sum over y. For each s the pairs with x_0 + x_1 = s are one [tails, s+1] array whose
rows are contiguous runs of V (states are stored with x_0 varying fastest), so T costs O(1) per
state-order pair; the only Python loop is over s = 0..cap. For L = 1 read x_1 := q and r, q empty.

**Base stock** S orders q = (S − Σx)⁺; from Σx ≤ S the position after ordering is always S. It
is evaluated exactly by the same iteration on X_S with the single action q = S − Σx. Its average
cost is convex in S (Janakiraman & Roundy 2004, Oper. Res. 52(5)), so a local search from S̄
finds the best level.

Demand pmfs are truncated at the first K with P(D > K) < ``tail``; entry K carries P(D ≥ K).
Memory is about 48 bytes per state-order pair; a ConfigError is raised before any work when an
input would need more than ``memory_limit`` (2 GiB by default).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import poisson

from deepstock.errors import ConfigError

DISTRIBUTIONS = ("poisson", "geometric")
DEFAULT_MEMORY_LIMIT = 2 * 2**30  # bytes
BYTES_PER_PAIR = 48  # W, its index, and the per-block temporaries (float64 / int64)
BYTES_PER_STATE = 64
MAX_PMF_LENGTH = 1_000_000
DEFAULT_TOL = 1e-9
DEFAULT_DAMPING = 0.9  # τ of the aperiodicity transformation


# ------------------------------------------------------------------------------------ inputs
def demand_pmf(dist: str, mean: float, tail: float = 1e-12) -> np.ndarray:
    """P(D = k), k = 0..K, for ``poisson`` or ``geometric`` (P(D = k) = (1-θ)θ^k, θ = μ/(1+μ)).

    K is the first k with P(D > k) < ``tail``; entry K carries P(D ≥ K), so the pmf sums to 1.
    """
    if dist not in DISTRIBUTIONS:
        raise ConfigError(f"dist={dist!r} is not one of {list(DISTRIBUTIONS)}")
    if not (isinstance(mean, numbers.Real) and math.isfinite(mean) and mean > 0):
        raise ConfigError(f"demand mean must be a finite number > 0, got mean={mean!r}")
    if not (isinstance(tail, numbers.Real) and 0 < tail < 1):
        raise ConfigError(f"tail must be in (0, 1), got tail={tail!r}")
    theta = mean / (1.0 + mean)
    if dist == "poisson":
        sf = lambda k: poisson.sf(k, mean)  # noqa: E731  P(D > k)
        guess = float(poisson.isf(tail, mean)) if mean < MAX_PMF_LENGTH else math.inf
    else:
        sf = lambda k: theta ** (k + 1)  # noqa: E731
        guess = math.log(tail) / math.log(theta) - 1 if mean < MAX_PMF_LENGTH else math.inf
    if not guess < MAX_PMF_LENGTH:  # also NaN
        raise ConfigError(f"demand mean={mean} needs a pmf longer than {MAX_PMF_LENGTH} entries")
    K = max(int(guess), 0)
    while sf(K) >= tail:
        K += 1
    while K > 0 and sf(K - 1) < tail:
        K -= 1
    k = np.arange(K + 1)
    pmf = poisson.pmf(k, mean) if dist == "poisson" else (1.0 - theta) * theta**k
    pmf[K] = sf(K - 1) if K > 0 else 1.0  # P(D ≥ K)
    return pmf / pmf.sum()


def _checked(pmf: np.ndarray, h: float, p: float, L: int) -> np.ndarray:
    """The pmf as float64, or a one-line ConfigError naming the bad field."""
    if not (isinstance(L, (int, np.integer)) and L >= 1):
        raise ConfigError(f"lead time L must be an integer >= 1, got L={L!r}")
    if not (math.isfinite(h) and h >= 0):
        raise ConfigError(f"holding cost h must be finite and >= 0, got h={h!r}")
    if not (math.isfinite(p) and p > 0):
        raise ConfigError(f"lost-sales penalty p must be finite and > 0, got p={p!r}")
    pmf = np.asarray(pmf, dtype=np.float64)
    if pmf.ndim != 1 or pmf.size == 0 or np.any(pmf < 0) or abs(pmf.sum() - 1.0) > 1e-9:
        raise ConfigError("pmf must be a 1-D array of probabilities P(D = 0..K) summing to 1")
    if pmf[0] >= 1.0:  # D ≡ 0: every stock level is absorbing, no single average cost
        raise ConfigError("pmf must give positive demand a positive probability (mean > 0)")
    if pmf.size > MAX_PMF_LENGTH:
        raise ConfigError(f"pmf has {pmf.size} entries, more than {MAX_PMF_LENGTH}")
    return pmf


def backorder_level(pmf: np.ndarray, h: float, p: float, L: int) -> int:
    """S̄ = min{S : P(D_1 + ... + D_{L+1} ≤ S) ≥ p/(p+h)}: Morton's bound on the position."""
    pmf = _checked(pmf, h, p, L)
    ratio = p / (p + h)
    single = np.cumsum(pmf)
    # union bound: P(sum > (L+1)a) ≤ (L+1) P(D > a), so S̄ ≤ (L+1)a; convolve that far only
    a = int(np.searchsorted(single, 1.0 - (1.0 - ratio) / (L + 1) - 1e-15))
    n = min((L + 1) * max(a, 1) + 1, (L + 1) * (pmf.size - 1) + 1)
    total = pmf[:n]
    for _ in range(L):
        total = np.convolve(total, pmf[:n])[:n]
    return int(min(np.searchsorted(np.cumsum(total), ratio - 1e-12), n - 1))


def state_space_size(L: int, cap: int, *, base_stock: bool = False) -> tuple[int, int]:
    """(states, state-order pairs) of X_cap: C(cap+L, L) and C(cap+L+1, L+1) (one per state for
    a base-stock evaluation)."""
    states = math.comb(cap + L, L)
    return states, (states if base_stock else math.comb(cap + L + 1, L + 1))


def memory_estimate(L: int, cap: int, *, base_stock: bool = False) -> int:
    """Bytes the DP on X_cap needs, about 48 per state-order pair and 64 per state."""
    states, pairs = state_space_size(L, cap, base_stock=base_stock)
    return BYTES_PER_PAIR * pairs + BYTES_PER_STATE * states


def check_fits(L: int, cap: int, memory_limit: int = DEFAULT_MEMORY_LIMIT,
               *, base_stock: bool = False) -> None:
    """Raise a one-line ConfigError when the DP on X_cap would need more than ``memory_limit``."""
    need = memory_estimate(L, cap, base_stock=base_stock)
    if need > memory_limit:
        states, pairs = state_space_size(L, cap, base_stock=base_stock)
        raise ConfigError(
            f"lost-sales DP with L={L}, cap={cap} needs {states:.3g} states, {pairs:.3g} "
            f"state-order pairs, about {need / 2**30:.3g} GiB; over memory_limit="
            f"{memory_limit / 2**30:.3g} GiB")


def _check_solver(tol: float, max_iter: int, damping: float) -> None:
    """One-line ConfigError for a bad iteration setting."""
    if not (isinstance(tol, numbers.Real) and tol > 0):
        raise ConfigError(f"tol must be > 0, got tol={tol!r}")
    if not (isinstance(max_iter, numbers.Integral) and max_iter >= 1):
        raise ConfigError(f"max_iter must be an integer >= 1, got max_iter={max_iter!r}")
    if not (isinstance(damping, numbers.Real) and 0 < damping <= 1):
        raise ConfigError(f"damping must be in (0, 1], got damping={damping!r}")


def _planned_cap(pmf: np.ndarray, h: float, p: float, L: int, cap: int | None, margin: int,
                 memory_limit: int) -> int:
    """The cap to use, after a memory check (a cheap lower bound first, then the exact cap)."""
    pmf = _checked(pmf, h, p, L)
    if cap is None:
        low = int(np.searchsorted(np.cumsum(pmf), p / (p + h) - 1e-12))  # S̄ ≥ one period's
        check_fits(L, low + margin, memory_limit)
        cap = backorder_level(pmf, h, p, L) + margin
    if int(cap) != cap or cap < 0:
        raise ConfigError(f"cap must be an integer >= 0, got cap={cap!r}")
    check_fits(L, int(cap), memory_limit)
    return int(cap)


# ------------------------------------------------------------------------------ state space
def _compositions(k: int, cap: int) -> np.ndarray:
    """All vectors in ℕ^k with sum ≤ cap, [n, k], the last column varying fastest."""
    rows = np.zeros((1, 0), dtype=np.int64)
    sums = np.zeros(1, dtype=np.int64)
    for _ in range(k):
        room = cap - sums + 1
        parent = np.repeat(np.arange(rows.shape[0]), room)
        val = np.arange(parent.size) - np.repeat(np.cumsum(room) - room, room)
        rows = np.column_stack([rows[parent], val])
        sums = sums[parent] + val
    return rows


class _Lookup:
    """Row index of integer vectors in a table, by a mixed-radix key (radix cap + 1)."""

    def __init__(self, table: np.ndarray, cap: int):
        self.radix = (cap + 1) ** np.arange(table.shape[1], dtype=np.int64)
        keys = table @ self.radix
        self.order = np.argsort(keys, kind="stable")
        self.keys = keys[self.order]

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        keys = np.asarray(rows, dtype=np.int64) @ self.radix
        pos = np.minimum(np.searchsorted(self.keys, keys), self.keys.size - 1)
        if not np.array_equal(self.keys[pos], keys):
            raise ValueError("lost-sales DP: a state is outside the table (negative or Σx > cap)")
        return self.order[pos]


@dataclass(frozen=True)
class _Block:
    """State-order pairs with x_0 + x_1 = s: rows = next-state tails, columns j = x_1 = 0..s."""

    s: int
    base: np.ndarray  # [n, 1] index of V(0, tail); V(y, tail) = V[base + y]
    pair: np.ndarray  # [n, s+1] flat pair index of (x_0, x_1) = (s - j, j)
    prob: np.ndarray  # [s+1] P(D = s - y), y = 0..s
    tail: np.ndarray  # [s+1] P(D ≥ s - j)


@dataclass(frozen=True)
class _Grid:
    """X_cap, its state-order pairs (orders of one state contiguous) and the blocks of T."""

    L: int
    cap: int
    states: np.ndarray  # [N, L], x_0 varying fastest within a tail (x_1..x_{L-1})
    first: np.ndarray  # [N] flat index of the state's first pair
    qmin: np.ndarray  # [N] order of the first pair (0, or cap - Σx for base stock)
    n_pairs: int
    blocks: tuple[_Block, ...]


def _build_grid(pmf: np.ndarray, L: int, cap: int, base_stock: bool) -> _Grid:
    """Enumerate X_cap (all orders q ≤ cap − Σx, or only q = cap − Σx for ``base_stock``)."""
    tails = _compositions(L - 1, cap)  # (x_1, ..., x_{L-1})
    room = cap - tails.sum(1) + 1
    base = np.cumsum(room) - room  # V(x_0, tail) = V[base[tail] + x_0]
    tail_of = np.repeat(np.arange(tails.shape[0]), room)
    states = np.column_stack([np.arange(tail_of.size) - base[tail_of], tails[tail_of]])
    pos = states.sum(1)
    qmin = cap - pos if base_stock else np.zeros_like(pos)
    n_orders = cap - pos - qmin + 1
    first = np.cumsum(n_orders) - n_orders
    find_tail = _Lookup(tails, cap)
    at_least = 1.0 - np.concatenate([[0.0], np.cumsum(pmf)])  # P(D ≥ k), k = 0..K+1
    blocks = []
    for s in range(cap + 1):
        room_left = cap - s - tails.sum(1)
        t = tails[room_left == 0] if base_stock else tails[room_left >= 0]  # (x_2.., q)
        x_idx, q = _block_states(s, t, L, base, find_tail)
        back = s - np.arange(s + 1)  # s − y for y = 0..s, and x_0 = s − j for j = 0..s
        prob = np.where(back < pmf.size, pmf[np.minimum(back, pmf.size - 1)], 0.0)
        blocks.append(_Block(s, base[find_tail(t)][:, None], first[x_idx] + q - qmin[x_idx],
                             prob, np.maximum(at_least[np.minimum(back, pmf.size)], 0.0)))
    return _Grid(L, cap, states, first, qmin, int(first[-1] + n_orders[-1]), tuple(blocks))


def _block_states(s: int, t: np.ndarray, L: int, base: np.ndarray, find_tail: _Lookup
                  ) -> tuple[np.ndarray, np.ndarray]:
    """State index and order [n, s+1] of the pairs with x_0 + x_1 = s, x_1 = j, and next-state
    tail t = (x_2, ..., x_{L-1}, q); for L = 1, x = (s − j) and q = j."""
    j = np.arange(s + 1)
    if L == 1:
        return (s - j)[None, :], j[None, :]
    n = t.shape[0]
    x_tail = np.concatenate([np.broadcast_to(j[None, :, None], (n, s + 1, 1)),
                             np.broadcast_to(t[:, None, :-1], (n, s + 1, L - 2))], axis=2)
    x_idx = base[find_tail(x_tail)] + (s - j)
    return x_idx, np.broadcast_to(t[:, -1:], x_idx.shape)


# ------------------------------------------------------------------------------------ solver
def _period_cost(pmf: np.ndarray, h: float, p: float, n: int) -> np.ndarray:
    """c(y) = E[h (y − D)⁺ + p (D − y)⁺] for y = 0..n-1."""
    y = np.arange(n)[:, None]
    d = np.arange(pmf.size)[None, :]
    return (h * np.maximum(y - d, 0) + p * np.maximum(d - y, 0)) @ pmf


def _post_order_values(grid: _Grid, V: np.ndarray) -> np.ndarray:
    """W(z) = E V(next state) for every state-order pair z, by one suffix sum per block."""
    W = np.empty(grid.n_pairs)
    for b in grid.blocks:
        if b.base.size == 0:
            continue
        Vb = V[b.base + np.arange(b.s + 1)]  # V(y, tail), y = 0..s
        suffix = np.cumsum((Vb * b.prob)[:, ::-1], axis=1)[:, ::-1]  # Σ_{y' ≥ y} P(s−y')V(y')
        Wb = Vb * b.tail  # P(D ≥ x_0) V(x_1, tail)
        Wb[:, :-1] += suffix[:, 1:]
        W[b.pair] = Wb
    return W


def _first_minimizers(grid: _Grid, W: np.ndarray, best: np.ndarray) -> np.ndarray:
    """The smallest order attaining min_q W(x, q) in every state (ties within 1e-12·scale)."""
    counts = np.diff(np.append(grid.first, grid.n_pairs))
    q = np.arange(grid.n_pairs) - np.repeat(grid.first - grid.qmin, counts)
    tie = 1e-12 * max(1.0, float(np.abs(best).max()))
    is_min = W - np.repeat(best, counts) <= tie
    cand = np.where(is_min, q, np.iinfo(np.int64).max)
    return np.minimum.reduceat(cand, grid.first)


def _relative_value_iteration(grid: _Grid, cost: np.ndarray, tol: float, max_iter: int,
                              damping: float) -> tuple[np.ndarray, float, float, int]:
    """Iterate V ← V + τ(T V − V), V(0) = 0, until span(T V − V) < tol.

    Returns (V, lower, upper, iterations) with lower ≤ g* ≤ upper, from the last T V − V.
    """
    V = np.zeros(grid.states.shape[0])
    span = math.inf
    for n in range(1, max_iter + 1):
        delta = cost + np.minimum.reduceat(_post_order_values(grid, V), grid.first) - V
        lower, upper = float(delta.min()), float(delta.max())
        span = upper - lower
        if span < tol:
            return V, lower, upper, n
        V = V + damping * delta
        V -= V[0]
    raise ConfigError(f"lost-sales DP: max_iter={max_iter} iterations left the span at "
                      f"{span:.3g} > tol={tol:g}")


@dataclass(frozen=True)
class LostSalesSolution:
    """Optimal average cost g* ∈ [lower, upper] and the optimal order for every x ∈ X_cap."""

    average_cost: float  # (lower + upper) / 2, within tol of g*
    lower: float  # min_x (T V − V)(x) ≤ g*
    upper: float  # max_x (T V − V)(x) ≥ g*
    L: int
    h: float
    p: float
    cap: int  # X_cap = {Σx ≤ cap}, orders with Σx + q ≤ cap
    backorder_level: int  # S̄ (Morton's bound)
    states: np.ndarray  # [N, L] (x_0, ..., x_{L-1})
    orders: np.ndarray  # [N] q*(x), the smallest minimizer
    values: np.ndarray  # [N] relative values V(x), V(0) = 0
    iterations: int
    max_position: int  # max Σx + q*(x) over states that order; < cap: the cap never binds
    lookup: _Lookup

    @property
    def binds(self) -> bool:
        return self.max_position >= self.cap

    def order(self, states: np.ndarray) -> np.ndarray:
        """q*(x) for states [n, L]; 0 above the cap (position > S̄, Morton's bound)."""
        states = np.asarray(states, dtype=np.int64)
        inside = states.sum(-1) <= self.cap
        out = np.zeros(states.shape[:-1], dtype=np.int64)
        out[inside] = self.orders[self.lookup(states[inside])]
        return out

    def value(self, states: np.ndarray) -> np.ndarray:
        """V(x) for states [n, L] inside X_cap."""
        return self.values[self.lookup(np.asarray(states, dtype=np.int64))]


def optimal_policy(pmf: np.ndarray, h: float, p: float, L: int, *, cap: int | None = None,
                   margin: int = 1, tol: float = DEFAULT_TOL, max_iter: int = 100_000,
                   damping: float = DEFAULT_DAMPING,
                   memory_limit: int = DEFAULT_MEMORY_LIMIT) -> LostSalesSolution:
    """Solve the average-cost lost-sales DP exactly on X_cap (cap = S̄ + margin by default)."""
    pmf = _checked(pmf, h, p, L)
    _check_solver(tol, max_iter, damping)
    cap = _planned_cap(pmf, h, p, L, cap, margin, memory_limit)
    grid = _build_grid(pmf, L, cap, base_stock=False)
    cost = _period_cost(pmf, h, p, cap + 1)[grid.states[:, 0]]
    V, lower, upper, n = _relative_value_iteration(grid, cost, tol, max_iter, damping)
    W = _post_order_values(grid, V)
    orders = _first_minimizers(grid, W, np.minimum.reduceat(W, grid.first))
    lookup = _Lookup(grid.states, cap)
    return LostSalesSolution(
        average_cost=0.5 * (lower + upper), lower=lower, upper=upper, L=L, h=float(h),
        p=float(p), cap=cap, backorder_level=backorder_level(pmf, h, p, L), states=grid.states,
        orders=orders, values=V, iterations=n,
        max_position=int((grid.states.sum(1) + orders)[orders > 0].max(initial=0)),
        lookup=lookup)


def check_problem(pmf: np.ndarray, h: float, p: float, L: int, *, margin: int = 1,
                  memory_limit: int = DEFAULT_MEMORY_LIMIT) -> int:
    """The default cap S̄ + margin, or a one-line ConfigError (bad field, or the memory the DP
    would need) before any allocation."""
    return _planned_cap(pmf, h, p, L, None, margin, memory_limit)


def pipeline_policy(sol: LostSalesSolution) -> Callable:
    """The optimal policy as a simulator policy: the state is the pipeline's first L slots
    (on hand after the arrival, then the orders due in 1..L-1 days; the last slot is where
    today's order goes), q*(x) in float64."""

    def policy(obs) -> np.ndarray:
        x = np.rint(np.asarray(obs.pipeline)[:, : sol.L]).astype(np.int64)
        return sol.order(x).astype(np.float64)

    return policy


def cap_is_slack(pmf: np.ndarray, h: float, p: float, L: int, *, extra: int = 5,
                 tol: float = 1e-11, **kwargs) -> tuple[LostSalesSolution, LostSalesSolution]:
    """Solve with the default cap and with cap + ``extra``; equal costs (and max_position < cap)
    show the bound does not bind."""
    first = optimal_policy(pmf, h, p, L, tol=tol, **kwargs)
    return first, optimal_policy(pmf, h, p, L, cap=first.cap + extra, tol=tol, **kwargs)


# -------------------------------------------------------------------------------- base stock
@dataclass(frozen=True)
class BaseStockResult:
    """Best order-up-to level S on the inventory position and its exact average cost."""

    level: int
    average_cost: float
    lower: float
    upper: float
    costs: dict[int, float]  # every level evaluated (S − 1 and S + 1 included)
    backorder_level: int  # S̄, where the search starts
    iterations: int  # all evaluations together


def base_stock_cost(pmf: np.ndarray, h: float, p: float, L: int, S: int, *,
                    tol: float = DEFAULT_TOL, max_iter: int = 100_000,
                    damping: float = DEFAULT_DAMPING, memory_limit: int = DEFAULT_MEMORY_LIMIT
                    ) -> tuple[float, float, float, int]:
    """(cost, lower, upper, iterations) of q = (S − Σx)⁺, by value iteration on X_S."""
    pmf = _checked(pmf, h, p, L)
    _check_solver(tol, max_iter, damping)
    S = _planned_cap(pmf, h, p, L, S, 0, memory_limit)
    grid = _build_grid(pmf, L, S, base_stock=True)
    cost = _period_cost(pmf, h, p, S + 1)[grid.states[:, 0]]
    _, lower, upper, n = _relative_value_iteration(grid, cost, tol, max_iter, damping)
    return 0.5 * (lower + upper), lower, upper, n


def best_base_stock(pmf: np.ndarray, h: float, p: float, L: int, *, tol: float = DEFAULT_TOL,
                    **kwargs) -> BaseStockResult:
    """Best S by a local search from S̄ (the cost is convex in S, Janakiraman & Roundy 2004)."""
    pmf = _checked(pmf, h, p, L)
    start = backorder_level(pmf, h, p, L)
    done: dict[int, tuple[float, float, float, int]] = {}

    def cost(S: int) -> float:
        if S not in done:
            done[S] = base_stock_cost(pmf, h, p, L, S, tol=tol, **kwargs)
        return done[S][0]

    step = -1 if start > 0 and cost(start - 1) < cost(start) else 1
    S = start
    while S + step >= 0 and cost(S + step) < cost(S):
        S += step
    for neighbour in (S - 1, S + 1):
        if neighbour >= 0:
            cost(neighbour)
    best = done[S]
    return BaseStockResult(S, best[0], best[1], best[2], {k: v[0] for k, v in sorted(done.items())},
                           start, sum(v[3] for v in done.values()))


# ------------------------------------------------------------------------ one step, simulation
def one_step_expectation(state: np.ndarray, order: int, pmf: np.ndarray, h: float, p: float,
                         L: int) -> tuple[float, np.ndarray, np.ndarray]:
    """(E[period cost], next states [k, L], their probabilities [k]) from state x and order q."""
    pmf = _checked(pmf, h, p, L)
    x = np.asarray(state, dtype=np.int64).reshape(L)
    d = np.arange(pmf.size)
    left = np.maximum(x[0] - d, 0)
    cost = float(pmf @ (h * left + p * np.maximum(d - x[0], 0)))
    first = (x[1] if L > 1 else order) + left
    ys, where = np.unique(first, return_inverse=True)
    probs = np.bincount(where.reshape(-1), weights=pmf, minlength=ys.size)
    rest = np.broadcast_to(np.append(x[2:], order)[: L - 1], (ys.size, L - 1))
    return cost, np.column_stack([ys, rest]).astype(np.int64), probs


def simulate_policy(policy_fn: Callable[[np.ndarray], np.ndarray], demands: np.ndarray, L: int,
                    h: float, p: float, initial_state: np.ndarray) -> np.ndarray:
    """Per-period costs [n_paths, n_periods] of a policy on demand paths [n_paths, n_periods].

    ``policy_fn`` maps states [n_paths, L] to orders [n_paths]; the timing is the module's.
    """
    D = np.asarray(demands)
    n, T = D.shape
    x = np.array(np.broadcast_to(np.asarray(initial_state, dtype=np.int64), (n, L)))
    costs = np.empty((n, T))
    for t in range(T):
        q = np.asarray(policy_fn(x), dtype=np.int64)
        if np.any(q < 0):
            raise ValueError("simulate_policy: the policy returned a negative order")
        d = D[:, t]
        left = np.maximum(x[:, 0] - d, 0)
        costs[:, t] = h * left + p * np.maximum(d - x[:, 0], 0)
        nxt = np.empty_like(x)
        nxt[:, : L - 1] = x[:, 1:]
        nxt[:, L - 1] = q
        nxt[:, 0] += left
        x = nxt
    return costs
