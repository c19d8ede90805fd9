"""Exact lost-sales DP with lead time (deepstock.benchmarks.lost_sales_dp) against Zipkin (2008)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.stats import poisson

from deepstock.benchmarks.lost_sales_dp import (
    base_stock_cost,
    best_base_stock,
    cap_is_slack,
    check_fits,
    demand_pmf,
    memory_estimate,
    one_step_expectation,
    optimal_policy,
    simulate_policy,
    state_space_size,
)
from deepstock.errors import ConfigError

PENALTIES = (4, 9, 19, 39)
LEADS = (1, 2, 3, 4)
# Zipkin (2008), Table 3 (paper/literature/zipkin2008.yaml): rows p, columns L = 1..4
ZIPKIN_TABLE3 = yaml.safe_load(
    (Path(__file__).resolve().parents[1] / "paper" / "literature" / "zipkin2008.yaml").read_text()
)["poisson_mean_5"]
ZIPKIN_OPTIMAL = {p: tuple(v) for p, v in ZIPKIN_TABLE3["optimal"].items()}
ZIPKIN_BASE_STOCK = {p: tuple(v) for p, v in ZIPKIN_TABLE3["best_base_stock"].items()}
# the one cell whose exact best base-stock cost does not round to Zipkin's figure: S = 20 costs
# 4.974996 (rounds to 4.97), S = 21 costs 4.977911; Zipkin prints 4.98 (0.005004 away)
BASE_STOCK_ROUNDING = {(4, 3)}

_PMF: dict[str, np.ndarray] = {}


def pmf(dist: str = "poisson") -> np.ndarray:
    if dist not in _PMF:
        _PMF[dist] = demand_pmf(dist, 5.0)
    return _PMF[dist]


def test_the_optimal_cost_equals_zipkins_table_3_to_two_decimals_for_every_poisson_cell():
    for p, L in itertools.product(PENALTIES, LEADS):
        sol = optimal_policy(pmf(), 1.0, p, L)
        assert sol.upper - sol.lower < 1e-9
        assert round(sol.average_cost, 2) == ZIPKIN_OPTIMAL[p][L - 1], (p, L, sol.average_cost)


def test_the_best_base_stock_cost_is_within_a_cent_of_zipkins_table_3_for_every_poisson_cell():
    for p, L in itertools.product(PENALTIES, LEADS):
        res = best_base_stock(pmf(), 1.0, p, L)
        his = ZIPKIN_BASE_STOCK[p][L - 1]
        assert res.average_cost < his + 0.01, (p, L, res.average_cost)
        assert abs(res.average_cost - his) <= 0.01, (p, L, res.average_cost)
        if (p, L) not in BASE_STOCK_ROUNDING:
            assert round(res.average_cost, 2) == his, (p, L, res.average_cost)
        # the level is a local minimum with both neighbours evaluated
        assert res.costs[res.level] == res.average_cost
        assert all(res.costs[s] >= res.average_cost for s in (res.level - 1, res.level + 1))


def test_the_zipkin_cell_that_differs_by_rounding_has_its_best_levels_on_both_sides_of_498():
    res = best_base_stock(pmf(), 1.0, 4, 3)
    assert res.level == 20
    assert 4.9749 < res.costs[20] < 4.9750 < res.costs[21] < 4.98


def test_the_local_search_for_the_base_stock_level_agrees_with_a_full_scan_over_s():
    for p, L in ((4, 3), (9, 2), (39, 1)):
        res = best_base_stock(pmf(), 1.0, p, L)
        scan = {S: base_stock_cost(pmf(), 1.0, p, L, S)[0] for S in range(0, res.backorder_level + 4)}
        assert min(scan, key=scan.get) == res.level
        assert scan[res.level] == pytest.approx(res.average_cost, abs=1e-9)


def test_a_two_point_demand_with_lead_time_one_has_the_hand_computed_optimal_cost_five_sixths():
    # D ∈ {0, 1} with probability 1/2 each, h = 1, p = 3, L = 1; state x = on-hand after the
    # arrival, next x' = (x - D)⁺ + q. c(0) = p/2 = 3/2, c(x) = x - 1/2 for x ≥ 1.
    # Policy "order 1 iff x = 0": 0 -> 1; 1 -> 0 or 1 (1/2 each). Stationary π(0) = 1/3,
    # π(1) = 2/3, so g = 3/2·1/3 + 1/2·2/3 = 5/6. Bellman check with V(1) = 0:
    #   x = 0: g + V(0) = c(0) + V(1)                     -> V(0) = 3/2 - 5/6 = 2/3
    #   x = 1: g + V(1) = c(1) + (V(0) + V(1))/2 = 1/2 + 1/3 = 5/6 ✓
    #   x = 2 (q = 0): g + V(2) = c(2) + (V(1) + V(2))/2  -> V(2) = 2(3/2 - 5/6) = 4/3
    # and the other orders are worse: at x = 1, q = 1 gives c(1) + (V(1) + V(2))/2 = 7/6 > 5/6;
    # at x = 0, q = 0 gives 3/2 + 2/3 and q = 2 gives 3/2 + 4/3, both > 3/2 = g + V(0).
    # The optimal policy is the base stock S = 1, so the best base stock costs 5/6 as well.
    two_point = np.array([0.5, 0.5])
    sol = optimal_policy(two_point, 1.0, 3.0, 1, tol=1e-13)
    assert sol.average_cost == pytest.approx(5 / 6, abs=1e-12)
    assert sol.order(np.array([[0], [1], [2]])).tolist() == [1, 0, 0]
    relative = sol.value(np.array([[0], [1], [2]])) - sol.value(np.array([[1]]))
    assert relative == pytest.approx([2 / 3, 0.0, 4 / 3], abs=1e-10)
    res = best_base_stock(two_point, 1.0, 3.0, 1, tol=1e-13)
    assert (res.level, res.average_cost) == (1, pytest.approx(5 / 6, abs=1e-12))


@pytest.mark.parametrize(("dist", "p", "L"), [("poisson", 19, 3), ("geometric", 39, 2)])
def test_raising_the_cap_leaves_the_optimal_cost_unchanged_and_the_cap_never_binds(dist, p, L):
    first, raised = cap_is_slack(pmf(dist), 1.0, p, L, extra=5)
    assert raised.cap == first.cap + 5
    assert abs(raised.average_cost - first.average_cost) <= 1e-9
    # no state orders up to the cap, and Morton's bound (position ≤ S̄) holds
    assert first.max_position < first.cap and not first.binds
    assert first.max_position <= first.backorder_level
    assert raised.max_position == first.max_position
    inside = first.states
    assert np.array_equal(raised.order(inside), first.order(inside))


def test_the_simulated_optimal_policy_matches_the_exact_cost_within_three_standard_errors():
    sol = optimal_policy(pmf(), 1.0, 9, 2)  # Zipkin 6.09
    rng = np.random.default_rng(2008)
    burn_in, means = 100, []
    for _ in range(4):  # 4 × 5 000 paths × 2 000 periods
        demands = rng.poisson(5.0, size=(5_000, 2_000)).astype(np.int32)
        costs = simulate_policy(sol.order, demands, 2, 1.0, 9.0, initial_state=np.array([5, 5]))
        means.append(costs[:, burn_in:].mean(axis=1))
    path_means = np.concatenate(means)
    se = path_means.std(ddof=1) / np.sqrt(path_means.size)
    assert abs(path_means.mean() - sol.average_cost) < 3 * se, (path_means.mean(), se)
    assert se < 0.005


def _brute_one_step(state, q, pmf_, h, p, L):
    out: dict[tuple[int, ...], float] = {}
    cost = 0.0
    for d, prob in enumerate(pmf_):
        x0 = int(state[0])
        left, lost = max(x0 - d, 0), max(d - x0, 0)
        cost += prob * (h * left + p * lost)
        nxt = [left + q] if L == 1 else [state[1] + left, *state[2:], q]
        out[tuple(nxt)] = out.get(tuple(nxt), 0.0) + prob
    return cost, out


@pytest.mark.parametrize(("state", "q", "L"), [((3,), 4, 1), ((0,), 0, 1), ((2, 7), 1, 2),
                                               ((6, 0, 3), 5, 3), ((0, 4, 1, 2), 0, 4)])
def test_the_one_step_expectation_equals_a_brute_force_enumeration_over_demands(state, q, L):
    for dist in ("poisson", "geometric"):
        cost, nxt, probs = one_step_expectation(np.array(state), q, pmf(dist), 1.0, 9.0, L)
        want_cost, want = _brute_one_step(state, q, pmf(dist), 1.0, 9.0, L)
        assert cost == pytest.approx(want_cost, rel=1e-12)
        got = {tuple(int(v) for v in row): pr for row, pr in zip(nxt, probs, strict=True)}
        assert got.keys() == want.keys()
        assert all(got[k] == pytest.approx(want[k], abs=1e-15) for k in want)
        assert probs.sum() == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(("dist", "p", "L"), [("poisson", 9, 3), ("geometric", 4, 2)])
def test_the_value_table_satisfies_the_bellman_equation_against_one_step_expectations(dist, p, L):
    sol = optimal_policy(pmf(dist), 1.0, p, L, tol=1e-11)
    rng = np.random.default_rng(5)
    for i in rng.choice(sol.states.shape[0], size=25, replace=False):
        x = sol.states[i]
        q_values = []
        for q in range(sol.cap - int(x.sum()) + 1):
            cost, nxt, probs = one_step_expectation(x, q, pmf(dist), 1.0, p, L)
            q_values.append(cost + probs @ sol.value(nxt))
        assert min(q_values) == pytest.approx(sol.average_cost + sol.values[i], abs=1e-8)
        assert int(np.argmin(q_values)) == sol.orders[i]


def _dense_lead_one(pmf_: np.ndarray, h: float, p: float, n: int = 80) -> float:
    """Plain value iteration on on-hand 0..n-1, an order loop, no suffix sums."""
    x, d = np.arange(n), np.arange(pmf_.size)
    cost = (h * np.maximum(x[:, None] - d, 0) + p * np.maximum(d - x[:, None], 0)) @ pmf_
    left = np.maximum(x[:, None] - d, 0)
    V = np.zeros(n)
    for _ in range(2_000):
        W = np.stack([V[np.minimum(left + q, n - 1)] @ pmf_ for q in range(n)], axis=1)
        TV = cost + W.min(1)
        delta, V = TV - V, TV - TV[0]
        if delta.max() - delta.min() < 1e-11:
            return 0.5 * (delta.max() + delta.min())
    raise AssertionError("no convergence")


@pytest.mark.parametrize("dist", ["poisson", "geometric"])
def test_lead_time_one_matches_an_independent_one_dimensional_value_iteration(dist):
    for p in PENALTIES:
        sol = optimal_policy(pmf(dist), 1.0, p, 1, tol=1e-11)
        assert sol.average_cost == pytest.approx(_dense_lead_one(pmf(dist), 1.0, p), abs=1e-9)


def test_geometric_cells_are_self_consistent_across_penalties_and_lead_times():
    table = {}
    for p, L in itertools.product(PENALTIES, (1, 2, 3)):
        sol = optimal_policy(pmf("geometric"), 1.0, p, L)
        res = best_base_stock(pmf("geometric"), 1.0, p, L)
        assert sol.average_cost <= res.average_cost + 1e-9
        assert sol.max_position < sol.cap
        table[p, L] = sol.average_cost
    for p, L in table:  # more expensive with a longer lead time and a larger penalty
        assert (p, L + 1) not in table or table[p, L] < table[p, L + 1]
        assert p == 39 or table[p, L] < table[{4: 9, 9: 19, 19: 39}[p], L]


@pytest.mark.parametrize("dist", ["poisson", "geometric"])
def test_the_demand_pmf_is_truncated_where_the_tail_is_below_the_threshold_and_sums_to_one(dist):
    for tail in (1e-6, 1e-12):
        f = demand_pmf(dist, 5.0, tail=tail)
        K = f.size - 1
        assert f.sum() == pytest.approx(1.0, abs=1e-14)
        assert (np.arange(K + 1) @ f) == pytest.approx(5.0, abs=100 * tail)
        theta = 5 / 6
        if dist == "geometric":
            exact, above = (1 - theta) * theta ** np.arange(K + 1), theta ** np.arange(1, K + 2)
        else:
            exact, above = poisson.pmf(np.arange(K + 1), 5.0), poisson.sf(np.arange(K + 1), 5.0)
        assert f[:K] == pytest.approx(exact[:K], rel=1e-12)
        assert f[K] == pytest.approx(exact[K] + above[K], rel=1e-9)  # carries P(D ≥ K)
        assert above[K] < tail <= above[K - 1]  # P(D > K) < tail ≤ P(D > K - 1): the first K


@pytest.mark.parametrize(("call", "field"), [
    (lambda: demand_pmf("normal", 5.0), "dist="),
    (lambda: demand_pmf("poisson", 0.0), "mean="),
    (lambda: demand_pmf("geometric", -1.0), "mean="),
    (lambda: optimal_policy(demand_pmf("poisson", 5.0), 1.0, 0.0, 2), "p="),
    (lambda: optimal_policy(demand_pmf("poisson", 5.0), -1.0, 4.0, 2), "h="),
    (lambda: optimal_policy(demand_pmf("poisson", 5.0), 1.0, 4.0, 0), "L="),
    (lambda: best_base_stock(demand_pmf("poisson", 5.0), 1.0, -4.0, 1), "p="),
    (lambda: optimal_policy(np.array([0.5, 0.6]), 1.0, 4.0, 1), "pmf"),
    (lambda: optimal_policy(np.array([1.0, 0.0]), 1.0, 4.0, 1), "pmf"),
    (lambda: optimal_policy(demand_pmf("poisson", 5.0), 1.0, 4.0, 1, damping=0.0), "damping="),
    (lambda: optimal_policy(demand_pmf("poisson", 5.0), 1.0, 4.0, 1, tol=0.0), "tol="),
    (lambda: best_base_stock(demand_pmf("poisson", 5.0), 1.0, 4.0, 1, max_iter=0), "max_iter="),
    (lambda: demand_pmf("poisson", 1e13), "mean="),
    (lambda: optimal_policy(demand_pmf("poisson", 50.0), 1.0, 39.0, 5), "memory_limit="),
    (lambda: optimal_policy(demand_pmf("poisson", 5.0), 1.0, 39.0, 4, memory_limit=2**20),
     "memory_limit="),
])
def test_bad_inputs_raise_a_one_line_config_error_naming_the_field(call, field):
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        call()
    assert time.perf_counter() - t0 < 1.0  # refused before any DP work
    message = str(err.value)
    assert "\n" not in message and field in message, message


def test_the_memory_error_names_the_limit_and_the_memory_the_dp_would_need():
    with pytest.raises(ConfigError) as err:
        check_fits(5, 340)
    message = str(err.value)
    need = memory_estimate(5, 340) / 2**30
    assert f"{need:.3g} GiB" in message and "memory_limit=2 GiB" in message, message


def test_a_deterministic_demand_whose_base_stock_chain_is_periodic_still_converges():
    # D ≡ 2, L = 1, S = 3: the on-hand goes 3 -> 1 -> 2 -> 1 -> 2 ... (orders 0, 2, 1, 2, ...),
    # a period-2 cycle on which undamped value iteration (damping=1) oscillates for ever; the
    # period costs alternate p·1 = 9 (one unit lost at on-hand 1) and 0, so g = 4.5
    two = np.array([0.0, 0.0, 1.0])
    assert base_stock_cost(two, 1.0, 9.0, 1, 3)[0] == pytest.approx(4.5, abs=1e-9)
    with pytest.raises(ConfigError, match="max_iter="):
        base_stock_cost(two, 1.0, 9.0, 1, 3, damping=1.0, max_iter=1_000)
    res = best_base_stock(two, 1.0, 9.0, 1)
    assert res.level == 4 and res.average_cost == pytest.approx(0.0, abs=1e-9)
    assert optimal_policy(two, 1.0, 9.0, 2).average_cost == pytest.approx(0.0, abs=1e-9)


def test_state_space_size_counts_the_states_and_state_order_pairs_of_the_grid():
    sol = optimal_policy(pmf(), 1.0, 9, 3)
    states, pairs = state_space_size(3, sol.cap)
    assert states == sol.states.shape[0]
    assert pairs == sum(sol.cap - int(x.sum()) + 1 for x in sol.states)
    assert state_space_size(3, sol.cap, base_stock=True) == (states, states)
    assert np.all(sol.states >= 0) and np.all(sol.states.sum(1) <= sol.cap)
    assert len({tuple(x) for x in sol.states.tolist()}) == states
