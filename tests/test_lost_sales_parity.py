"""The one simulator's lost-sales path (review period 1, lead time L) against a hand-computed
multi-period case, the exact DP's one-step expectation and the DP's own reference simulation
(deepstock.benchmarks.lost_sales_dp, Zipkin's conventions)."""

from __future__ import annotations

import numpy as np
import pytest

from deepstock.benchmarks import lost_sales_dp as dp
from deepstock.problem.dynamics import advance_day, simulate
from deepstock.problem.losses import LossConfig, daily_cost, trajectory_loss

H, P = 1.0, 4.0
ZIPKIN = LossConfig(h=H, b=P)  # cost h·(on-hand left) + p·(lost units), no rescaling


def test_a_hand_computed_four_day_lost_sales_case():
    """L = 2, on-hand 3 with 2 arriving tomorrow, order 3 on every order day, demand 4, 1, 5, 2.

    day 0 (no order: warm-up t < R): 3 on hand, demand 4 -> 0 left, 1 lost: cost 4·1 = 4
    day 1 (order 3, due day 3): 0 + 2 arrives = 2, demand 1 -> 1 left: cost 1
    day 2 (no order: t + L > T - 1): 1 on hand, demand 5 -> 4 lost: cost 16
    day 3: 0 + 3 arrives = 3, demand 2 -> 1 left: cost 1; counted days t >= R + L = 3: loss 1
    """
    demand = np.array([[4.0, 1.0, 5.0, 2.0]])
    ro = simulate(demand, lambda obs: np.full(1, 3.0), R=1, L=2, lost_sales=True,
                  initial=np.array([[3.0, 2.0, 0.0]]))
    assert ro.onhand.tolist() == [[3.0, 2.0, 1.0, 3.0]]
    assert ro.lost.tolist() == [[1.0, 0.0, 4.0, 0.0]]
    assert ro.ending.tolist() == [[0.0, 1.0, 0.0, 1.0]]
    assert ro.orders.tolist() == [[0.0, 3.0, 0.0, 0.0]]
    assert np.asarray(daily_cost(ro, ZIPKIN, lost_sales=True)).tolist() == [[4.0, 1.0, 16.0, 1.0]]
    assert np.asarray(trajectory_loss(ro, ZIPKIN, lost_sales=True)).tolist() == [1.0]


@pytest.mark.parametrize("L", [1, 2, 3])
@pytest.mark.parametrize("dist", ["poisson", "geometric"])
def test_one_simulated_day_has_the_dps_one_step_expectation(L, dist):
    """From state x and order q, the shared one-day function over every demand value, weighted
    by the pmf, gives the DP's expected period cost and next-state distribution."""
    pmf = dp.demand_pmf(dist, 5.0)
    rng = np.random.default_rng(L)
    for _ in range(5):
        x, q = rng.integers(0, 9, size=L), int(rng.integers(0, 9))
        cost, states, probs = dp.one_step_expectation(x, q, pmf, H, P, L)
        d = np.arange(pmf.size, dtype=float)
        pipe = [np.full_like(d, float(v)) for v in x] + [np.full_like(d, float(q))]
        _, e, lam, nxt = advance_day(pipe, None, d, True, np.zeros_like(d))
        day_cost = np.asarray(daily_cost(_Day(e, lam), ZIPKIN, lost_sales=True))
        assert pmf @ day_cost == pytest.approx(cost, rel=1e-12, abs=1e-12)
        sim_next = np.column_stack(nxt[:L]).astype(np.int64)  # (I_0', ..., I_{L-1}')
        got = {tuple(s): 0.0 for s in states.tolist()}
        for s, w in zip(map(tuple, sim_next.tolist()), pmf, strict=True):
            got[s] += w
        assert sorted(got) == sorted(map(tuple, states.tolist()))
        np.testing.assert_allclose([got[tuple(s)] for s in states.tolist()], probs, atol=1e-15)
        assert np.all(nxt[L] == 0)  # nothing ordered yet for the next day


class _Day:
    """One day's (E, λ) in the shape daily_cost reads."""

    def __init__(self, e, lam):
        self.ending, self.lost = e, lam


@pytest.mark.parametrize("L", [1, 2, 4])
def test_the_optimal_policy_costs_the_same_day_by_day_in_both_simulators(L):
    """The DP's optimal policy on 200 Poisson(5) paths of 60 days: the one simulator (R = 1, no
    order on day 0, pipeline state) and the DP's reference simulation give equal daily costs."""
    pmf = dp.demand_pmf("poisson", 5.0)
    sol = dp.optimal_policy(pmf, H, P, L)
    rng = np.random.default_rng(7)
    demand = rng.poisson(5.0, size=(200, 60)).astype(float)
    start = np.tile(np.arange(L, dtype=float), (200, 1))  # a documented non-zero start

    def ours(obs):
        return sol.order(np.rint(obs.pipeline[:, :L]).astype(np.int64)).astype(float)

    ro = simulate(demand, ours, R=1, L=L, lost_sales=True,
                  initial=np.column_stack([start, np.zeros(200)]))
    calls = []

    def theirs(x):  # no order on day 0 (our warm-up day t < R = 1)
        calls.append(1)
        return sol.order(x) if len(calls) > 1 else np.zeros(len(x), dtype=np.int64)

    ref = dp.simulate_policy(theirs, demand.astype(np.int64), L, H, P, start.astype(np.int64))
    ours_cost = np.asarray(daily_cost(ro, ZIPKIN, lost_sales=True))
    # our last L days place no order (it could not arrive in the horizon): same costs until T
    np.testing.assert_array_equal(ours_cost, ref)
