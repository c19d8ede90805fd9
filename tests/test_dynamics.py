"""Tests of the shared simulator (spec §2): hand-computed days, a pure-Python reference loop,
numpy/torch parity, gradients, the order-day mask, initial pipelines and argument checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepstock.problem.dynamics import Observation, Rollout, counted_days, order_days, simulate
from deepstock.problem.losses import LossConfig, daily_cost, trajectory_loss

torch.set_num_threads(1)

M = 100.0


def base_stock(S, M: float = M):
    """numpy base-stock policy q = clip(S - tot(I_t), 0, M) (spec §4, Base)."""
    S = np.asarray(S, dtype=np.float64)

    def policy(obs: Observation):
        return np.clip(S - np.asarray(obs.pipeline).sum(1), 0.0, M)

    return policy


def constant(q: float):
    def policy(obs: Observation):
        return np.full(obs.pipeline.shape[0], q)

    return policy


def row(a) -> list[float]:
    return [float(v) for v in np.asarray(a)[0]]


# --------------------------------------------------------------------------- hand-computed cases


def test_hand_r2_l1_backlog_literal():
    """T=7, R=2, L=1, S=10, backlog; worked out day by day:

    day 0: I=(0,0)  no order, on-hand 0,  D=3 -> E=-3;  I_1=(-3+0, 0)
    day 1: I=(-3,0) no order, on-hand -3, D=4 -> E=-7;  I_2=(-7, 0)
    day 2: order day, tot=-7 -> q=17, I=(-7,17); on-hand -7, D=5 -> E=-12; I_3=(-12+17, 0)=(5,0)
    day 3: on-hand 5, D=2 -> E=3;   I_4=(3,0)
    day 4: order day, tot=3 -> q=7, I=(3,7); on-hand 3, D=6 -> E=-3; I_5=(-3+7,0)=(4,0)
    day 5: on-hand 4, D=1 -> E=3;   I_6=(3,0)
    day 6: 6+L > T-1, no order; on-hand 3, D=4 -> E=-1
    loss over days 3..6: (0.1*3 + 0.9*3 + 0.1*3 + 0.9*1) / 4 = 1.05
    """
    demand = np.array([[3.0, 4, 5, 2, 6, 1, 4]])
    seen = []

    def policy(obs):
        seen.append((obs.t, row(obs.pipeline), float(obs.position[0])))
        return base_stock(10.0)(obs)

    ro = simulate(demand, policy, R=2, L=1)
    assert seen == [(2, [-7.0, 0.0], -7.0), (4, [3.0, 0.0], 3.0)]
    assert row(ro.orders) == [0, 0, 17, 0, 7, 0, 0]
    assert row(ro.onhand) == [0, -3, -7, 5, 3, 4, 3]
    assert row(ro.ending) == [-3, -7, -12, 3, -3, 3, -1]
    assert row(ro.lost) == [0] * 7
    assert row(ro.sales) == [3, 4, 5, 2, 6, 1, 4]
    assert trajectory_loss(ro)[0] == pytest.approx(1.05, abs=1e-12)


def test_hand_r2_l1_lost_sales_literal():
    """Same demand, lost sales:

    day 0: on-hand 0, D=3 -> E=0, λ=3       day 1: on-hand 0, D=4 -> E=0, λ=4
    day 2: tot=0 -> q=10; on-hand 0, D=5 -> E=0, λ=5; I_3=(0+10,0)
    day 3: on-hand 10, D=2 -> E=8           day 4: tot=8 -> q=2; on-hand 8, D=6 -> E=2; I_5=(4,0)
    day 5: on-hand 4, D=1 -> E=3            day 6: on-hand 3, D=4 -> E=0, λ=1
    loss over days 3..6 (underage b·λ): (0.8 + 0.2 + 0.3 + 0.9) / 4 = 0.55
    """
    demand = np.array([[3.0, 4, 5, 2, 6, 1, 4]])
    ro = simulate(demand, base_stock(10.0), R=2, L=1, lost_sales=True)
    assert row(ro.orders) == [0, 0, 10, 0, 2, 0, 0]
    assert row(ro.onhand) == [0, 0, 0, 10, 8, 4, 3]
    assert row(ro.ending) == [0, 0, 0, 8, 2, 3, 0]
    assert row(ro.lost) == [3, 4, 5, 0, 0, 0, 1]
    assert row(ro.sales) == [0, 0, 0, 2, 6, 1, 3]
    assert trajectory_loss(ro, lost_sales=True)[0] == pytest.approx(0.55, abs=1e-12)


def test_hand_r1_l0_backlog_and_lost_sales():
    """R=1, L=0, S=4: orders on days 1..4 land in on-hand the same day.

    backlog: day 0 E=0-2=-2; day 1 q=4-(-2)=6, on-hand 4, E=-1; day 2 q=5, on-hand 4, E=3;
             day 3 q=1, on-hand 4, E=0; day 4 q=4, on-hand 4, E=1.
    lost:    day 0 E=0, λ=2; day 1 q=4, on-hand 4, E=0, λ=1; day 2 q=4, E=3;
             day 3 q=1, on-hand 4, D=4 -> E=0, λ=0; day 4 q=4, E=1.
    """
    demand = np.array([[2.0, 5, 1, 4, 3]])
    ro = simulate(demand, base_stock(4.0), R=1, L=0)
    assert row(ro.orders) == [0, 6, 5, 1, 4]
    assert row(ro.onhand) == [0, 4, 4, 4, 4]
    assert row(ro.ending) == [-2, -1, 3, 0, 1]
    # counted days t >= 1: costs 0.9, 0.3, 0, 0.1
    assert trajectory_loss(ro)[0] == pytest.approx(1.3 / 4, abs=1e-12)

    ro = simulate(demand, base_stock(4.0), R=1, L=0, lost_sales=True)
    assert row(ro.orders) == [0, 4, 4, 1, 4]
    assert row(ro.onhand) == [0, 4, 4, 4, 4]
    assert row(ro.ending) == [0, 0, 3, 0, 1]
    assert row(ro.lost) == [2, 1, 0, 0, 0]
    assert row(ro.sales) == [0, 4, 1, 4, 3]


def test_hand_r7_l3_initial_pipeline():
    """R=7, L=3, T=20, D=2 every day, q=10 on order days 7 and 14, I_0=(5,1,2,3).

    backlog on-hand: d0 5; d1 3+1=4; d2 2+2=4; d3 2+3=5; then -2 a day: 3,1,-1,-3 (d4..d7);
    order of day 7 arrives day 10: d8 -5, d9 -7, d10 -9+10=1, d11 -1, d12 -3, d13 -5, d14 -7,
    d15 -9, d16 -11, d17 -13+10=-3, d18 -5, d19 -7.
    lost sales on-hand: 5,4,4,5,3,1,0,0,0,0,10,8,6,4,2,0,0,10,8,6 (λ=1 on day 5, 2 on days 6-9,
    15, 16).
    """
    T = 20
    demand = np.full((1, T), 2.0)
    init = np.array([[5.0, 1, 2, 3]])
    seen = []

    def policy(obs):
        seen.append((obs.t, row(obs.pipeline)))
        return constant(10.0)(obs)

    ro = simulate(demand, policy, R=7, L=3, initial=init)
    assert seen == [(7, [-3.0, 0, 0, 0]), (14, [-7.0, 0, 0, 0])]
    onhand = [5, 4, 4, 5, 3, 1, -1, -3, -5, -7, 1, -1, -3, -5, -7, -9, -11, -3, -5, -7]
    assert row(ro.onhand) == onhand
    assert row(ro.ending) == [v - 2 for v in onhand]
    assert row(ro.orders) == [10 if t in (7, 14) else 0 for t in range(T)]

    ro = simulate(demand, constant(10.0), R=7, L=3, initial=init, lost_sales=True)
    onhand = [5, 4, 4, 5, 3, 1, 0, 0, 0, 0, 10, 8, 6, 4, 2, 0, 0, 10, 8, 6]
    assert row(ro.onhand) == onhand
    assert row(ro.ending) == [max(v - 2, 0) for v in onhand]
    lost = [0, 0, 0, 0, 0, 1, 2, 2, 2, 2, 0, 0, 0, 0, 0, 2, 2, 0, 0, 0]
    assert row(ro.lost) == lost
    assert row(ro.sales) == [2 - v for v in lost]


# --------------------------------------------------------------------------- reference loop


def reference_simulate(demand, order_fn, R, L, lost_sales, initial):
    """Plain per-trajectory loop from the spec's text (§2), keyed by absolute arrival days.

    ``order_fn(i, t, pipeline_list) -> q``. Returns lists of per-day orders/on-hand/ending/lost.
    """
    T = len(demand)
    onhand = float(initial[0])
    arriving = {ell: float(initial[ell]) for ell in range(1, L + 1)}  # day -> quantity
    out = {"orders": [], "onhand": [], "ending": [], "lost": [], "pipes": []}
    for t in range(T):
        q = 0.0
        if t >= R and t % R == 0 and t + L <= T - 1:
            pipe = [onhand] + [arriving.get(t + ell, 0.0) for ell in range(1, L + 1)]
            out["pipes"].append((t, pipe))
            q = float(order_fn(t, pipe))
            if L == 0:
                onhand += q
            else:
                arriving[t + L] = arriving.get(t + L, 0.0) + q
        d = float(demand[t])
        if lost_sales:
            end, lost = max(onhand - d, 0.0), max(d - onhand, 0.0)
        else:
            end, lost = onhand - d, 0.0
        for key, v in (("orders", q), ("onhand", onhand), ("ending", end), ("lost", lost)):
            out[key].append(v)
        onhand = end + arriving.pop(t + 1, 0.0)
    return out


@pytest.mark.parametrize("lost_sales", [False, True])
@pytest.mark.parametrize("R,L", [(1, 0), (2, 1), (2, 0), (3, 2), (7, 3), (1, 4), (4, 1)])
@pytest.mark.parametrize("kind", ["base_stock", "noise", "base_stock_noise"])
def test_batched_equals_reference_loop(R, L, lost_sales, kind):
    rng = np.random.default_rng(1000 * R + 10 * L + lost_sales + len(kind))
    n, T = 12, 23
    demand = rng.integers(0, 15, size=(n, T)).astype(np.float64)
    initial = rng.integers(-5, 12, size=(n, L + 1)).astype(np.float64)
    S = rng.uniform(0.0, 70.0, size=n)
    noise = rng.uniform(0.0, 30.0, size=(n, T))

    def q_of(i, t, position):
        if kind == "base_stock":
            return min(max(S[i] - position, 0.0), M)
        if kind == "noise":
            return noise[i, t]
        return min(max(S[i] - position + noise[i, t] - 15.0, 0.0), M)

    def batched(obs):
        pos = np.asarray(obs.pipeline).sum(1)
        return np.array([q_of(i, obs.t, pos[i]) for i in range(n)])

    ro = simulate(demand, batched, R=R, L=L, lost_sales=lost_sales, initial=initial)
    for i in range(n):
        ref = reference_simulate(
            demand[i], lambda t, pipe, i=i: q_of(i, t, sum(pipe)), R, L, lost_sales, initial[i]
        )
        for key in ("orders", "onhand", "ending", "lost"):
            np.testing.assert_allclose(getattr(ro, key)[i], ref[key], rtol=0, atol=1e-9)
        np.testing.assert_allclose(ro.sales[i], demand[i] - np.array(ref["lost"]), atol=1e-9)
    assert all(a.shape == (n, T) for a in (ro.orders, ro.onhand, ro.ending, ro.lost, ro.sales))


def test_observations_match_reference_pipeline():
    """The policy sees I_t before ordering, x_t, phi_t, z_t and the dataset index."""
    rng = np.random.default_rng(7)
    n, T, R, L = 4, 15, 2, 2
    demand = rng.integers(0, 9, size=(n, T)).astype(np.float64)
    x = rng.normal(size=(n, T))
    phi = rng.normal(size=(n, T, 4))
    z = rng.normal(size=(n, T, 3))
    index = np.array([5, 1, 9, 3])
    initial = rng.integers(0, 5, size=(n, L + 1)).astype(np.float64)
    seen = []

    def policy(obs):
        seen.append(obs)
        return np.full(n, 6.0)

    simulate(demand, policy, R=R, L=L, x=x, phi=phi, z=z, index=index, initial=initial)
    assert [o.t for o in seen] == [2, 4, 6, 8, 10, 12]
    for i in range(n):
        ref = reference_simulate(demand[i], lambda t, p: 6.0, R, L, False, initial[i])
        for obs, (t, pipe) in zip(seen, ref["pipes"], strict=True):
            assert obs.t == t
            np.testing.assert_allclose(obs.pipeline[i], pipe)
            assert obs.position[i] == pytest.approx(sum(pipe))
            np.testing.assert_allclose(obs.state[i], [x[i, t], *pipe])
            np.testing.assert_allclose(obs.phi[i], phi[i, t])
            np.testing.assert_allclose(obs.z[i], z[i, t])
            np.testing.assert_array_equal(obs.index, index)


def test_observation_state_and_position_by_hand():
    pipe = np.array([[1.0, 2.0, 3.0, 4.0], [-5.0, 0.0, 0.5, 7.0]])
    for lib in (np, torch):
        p = pipe if lib is np else torch.tensor(pipe)
        x = np.array([9.0, 8.0]) if lib is np else torch.tensor([9.0, 8.0], dtype=torch.float64)
        obs = Observation(t=4, x=x, pipeline=p)
        assert [float(v) for v in obs.position] == [10.0, 2.5]
        assert np.asarray(obs.state).tolist() == [[9, 1, 2, 3, 4], [8, -5, 0, 0.5, 7]]
    one = Observation(t=1, x=np.zeros(1), pipeline=np.array([[3.0]]))
    assert one.position.tolist() == [3.0] and one.state.shape == (1, 2)


# --------------------------------------------------------------------------- numpy vs torch


@pytest.mark.parametrize("lost_sales", [False, True])
@pytest.mark.parametrize("R,L", [(2, 1), (1, 0), (7, 3)])
def test_numpy_equals_torch(R, L, lost_sales):
    rng = np.random.default_rng(3)
    n, T = 64, 31
    demand = rng.gamma(4.0, 3.0, size=(n, T))
    initial = rng.uniform(0, 10, size=(n, L + 1))
    S = rng.uniform(0, 60, size=n)
    x = rng.normal(size=(n, T))

    def pol_np(obs):
        return np.clip(S + 0.5 * obs.x - obs.position, 0.0, M)

    St = torch.tensor(S)

    def pol_t(obs):
        assert isinstance(obs.pipeline, torch.Tensor) and isinstance(obs.state, torch.Tensor)
        return (St + 0.5 * obs.x - obs.position).clamp(0.0, M)

    a = simulate(demand, pol_np, R=R, L=L, x=x, lost_sales=lost_sales, initial=initial)
    b = simulate(
        torch.tensor(demand), pol_t, R=R, L=L, x=torch.tensor(x), lost_sales=lost_sales,
        initial=torch.tensor(initial),
    )
    for key in ("demand", "orders", "onhand", "ending", "lost", "sales"):
        tb = getattr(b, key)
        assert isinstance(tb, torch.Tensor) and tb.dtype == torch.float64
        np.testing.assert_allclose(getattr(a, key), tb.numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(
        trajectory_loss(a, lost_sales=lost_sales),
        trajectory_loss(b, lost_sales=lost_sales).numpy(), atol=1e-6,
    )


# --------------------------------------------------------------------------- gradients


def _order_leaf_rollout(demand, R, L, lost_sales, q0):
    """Simulate with one leaf tensor of orders per useful order day; returns (rollout, leaves)."""
    leaves = {}

    def policy(obs):
        q = torch.tensor(q0[:, obs.t], requires_grad=True)
        leaves[obs.t] = q
        return q

    ro = simulate(torch.tensor(demand), policy, R=R, L=L, lost_sales=lost_sales)
    return ro, leaves


@pytest.mark.parametrize("R,L", [(2, 1), (1, 0), (3, 2)])
def test_backlog_gradient_jacobian_by_hand(R, L):
    """Backlog: E_s = ... + q_t for every s >= t + L, so dc(E_s)/dq_t = c'(E_s) there
    (h if E_s > 0, -b if E_s < 0) and 0 before the arrival and across trajectories."""
    rng = np.random.default_rng(11)
    n, T = 3, 13
    demand = rng.uniform(0.5, 9.5, size=(n, T))  # continuous: no ties at E = 0
    q0 = rng.uniform(0.0, 14.0 * R, size=(n, T))  # a bit above the demand of one period
    ro, leaves = _order_leaf_rollout(demand, R, L, False, q0)
    E = ro.ending.detach().numpy()
    assert (E > 0).any() and (E < 0).any()
    cost = daily_cost(ro)
    h, b = 0.1, 0.9
    for t, q in leaves.items():
        for i in range(n):
            for s in range(T):
                (g,) = torch.autograd.grad(cost[i, s], q, retain_graph=True, allow_unused=True)
                g = np.zeros(n) if g is None else g.numpy()
                want = np.zeros(n)
                if s >= t + L:
                    want[i] = h if E[i, s] > 0 else -b
                np.testing.assert_allclose(g, want, atol=1e-12, err_msg=f"t={t} i={i} s={s}")


@pytest.mark.parametrize("lost_sales", [False, True])
def test_trajectory_loss_gradient_matches_finite_differences(lost_sales):
    """dℓ/dq_t from autograd equals central finite differences of the numpy simulator."""
    rng = np.random.default_rng(5)
    n, T, R, L = 4, 31, 2, 1
    demand = rng.uniform(2.0, 14.0, size=(n, T))
    q0 = rng.uniform(0.0, 16.0, size=(n, T))
    ro, leaves = _order_leaf_rollout(demand, R, L, lost_sales, q0)
    trajectory_loss(ro, lost_sales=lost_sales).sum().backward()
    assert sorted(leaves) == list(range(2, 29, 2))

    def loss_np(qtab):
        r = simulate(demand, lambda o: qtab[:, o.t].copy(), R=R, L=L, lost_sales=lost_sales)
        return np.asarray(trajectory_loss(r, lost_sales=lost_sales))

    eps = 1e-6
    nonzero = 0
    for t, q in leaves.items():
        assert q.grad is not None and torch.isfinite(q.grad).all()
        up, dn = q0.copy(), q0.copy()
        up[:, t] += eps
        dn[:, t] -= eps
        fd = (loss_np(up) - loss_np(dn)) / (2 * eps)
        np.testing.assert_allclose(q.grad.numpy(), fd, atol=1e-6, err_msg=f"t={t}")
        nonzero += int((np.abs(fd) > 1e-3).sum())
    assert nonzero > n * len(leaves) // 2  # most orders do matter


def test_gradient_zero_where_order_cannot_matter():
    """An order cannot change any cost before it arrives, nor another trajectory's loss; under
    lost sales an order arriving into a stockout that it cannot end still lowers λ (grad -b)."""
    n, T, R, L = 2, 9, 2, 3
    demand = np.full((n, T), 5.0)
    q0 = np.zeros((n, T))
    q0[:, 2] = 3.0  # arrives day 5
    ro, leaves = _order_leaf_rollout(demand, R, L, True, q0)
    assert sorted(leaves) == [2, 4]  # t + L <= 8
    cost = daily_cost(ro, lost_sales=True)
    (g,) = torch.autograd.grad(cost[0, :5].sum(), leaves[2], retain_graph=True)
    np.testing.assert_array_equal(g.numpy(), [0.0, 0.0])
    # day 5: on-hand 3 < D=5 -> E=0, λ=2; the order reduces λ one for one
    (g,) = torch.autograd.grad(cost[0, 5], leaves[2], retain_graph=True)
    np.testing.assert_allclose(g.numpy(), [-0.9, 0.0])
    # the order of day 2 is consumed on day 5; days 6..8 are stockouts that it cannot reach
    (g,) = torch.autograd.grad(cost[0, 6:].sum(), leaves[2], retain_graph=True)
    np.testing.assert_array_equal(g.numpy(), [0.0, 0.0])
    (g,) = torch.autograd.grad(trajectory_loss(ro, lost_sales=True)[1], leaves[4])
    assert g[0] == 0.0 and g[1] < 0.0


def test_gradient_flows_to_policy_parameter():
    """A base-stock level S with requires_grad gets a finite, non-zero gradient through the
    clipped orders and the pipeline (the DS objective, spec §7.5)."""
    rng = np.random.default_rng(2)
    demand = torch.tensor(rng.uniform(5.0, 15.0, size=(16, 31)))
    S = torch.tensor(5.0, dtype=torch.float64, requires_grad=True)
    ro = simulate(demand, lambda o: (S - o.position).clamp(0.0, M), R=2, L=1)
    trajectory_loss(ro).mean().backward()
    assert torch.isfinite(S.grad) and S.grad < 0  # S = 5 is far too low: raising it helps


# --------------------------------------------------------------------------- masks and checks


def test_order_days_mask_t31_r2_l1():
    mask = order_days(31, 2, 1)
    assert mask.shape == (31,) and mask.sum() == 14
    assert np.flatnonzero(mask).tolist() == list(range(2, 29, 2))
    assert counted_days(31, 2, 1).sum() == 28 and counted_days(31, 2, 1)[3]
    assert not counted_days(31, 2, 1)[2]
    assert np.flatnonzero(order_days(5, 1, 0)).tolist() == [1, 2, 3, 4]
    assert np.flatnonzero(order_days(20, 7, 3)).tolist() == [7, 14]
    assert np.flatnonzero(order_days(20, 7, 6)).tolist() == [7]  # 14 + 6 > 19


def test_policy_called_on_order_days_only():
    calls = []

    def policy(obs):
        calls.append(obs.t)
        return np.full(3, 1.0)

    ro = simulate(np.ones((3, 31)), policy, R=2, L=1)
    assert calls == list(range(2, 29, 2))
    assert (ro.orders[:, calls] == 1.0).all()
    assert ro.orders.sum() == 3 * 14


def test_initial_pipeline_honoured_torch_and_numpy():
    """I_0 = (4, 6): 4 on hand at day 0, 6 arriving on day 1; no orders (zero policy)."""
    init = np.array([[4.0, 6.0]])
    demand = np.array([[1.0, 2, 3, 4, 5]])
    for lib in (np, torch):
        d = demand if lib is np else torch.tensor(demand)
        i0 = init if lib is np else torch.tensor(init)
        ro = simulate(d, lambda o: o.x * 0.0, R=2, L=1, initial=i0)
        assert row(ro.onhand) == [4, 9, 7, 4, 0]
        assert row(ro.ending) == [3, 7, 4, 0, -5]


def test_default_initial_is_zero():
    ro = simulate(np.array([[1.0, 1.0, 1.0]]), constant(0.0), R=1, L=1)
    assert row(ro.onhand) == [0, -1, -2]


@pytest.mark.parametrize("R,L", [(0, 1), (-1, 1), (2, -1)])
def test_bad_r_or_l_raises(R, L):
    with pytest.raises(ValueError, match="R >= 1 and L >= 0"):
        simulate(np.ones((2, 5)), constant(0.0), R=R, L=L)


def test_rollout_type_and_numpy_outputs_are_independent():
    """Outputs are fresh arrays: writing into one does not touch the others or the demand."""
    demand = np.arange(12.0).reshape(2, 6)
    ro = simulate(demand, constant(2.0), R=2, L=1)
    assert isinstance(ro, Rollout) and (ro.R, ro.L) == (2, 1)
    before = {k: getattr(ro, k).copy() for k in ("orders", "onhand", "ending", "lost", "sales")}
    ro.sales[:] = -1.0
    ro.lost[:] = -1.0
    np.testing.assert_array_equal(demand, np.arange(12.0).reshape(2, 6))
    for k in ("orders", "onhand", "ending"):
        np.testing.assert_array_equal(getattr(ro, k), before[k])


def test_numpy_output_dtypes():
    """Integer demand gives float64 records; float32 demand and state stay float32."""
    ro = simulate(np.full((2, 7), 2, dtype=np.int64), constant(3.0), R=2, L=1)
    assert ro.ending.dtype == np.float64
    assert row(ro.ending) == [-2, -4, -6, -5, -7, -6, -8]  # orders of 3 on days 2, 4 arrive +1
    ro = simulate(np.ones((2, 7), dtype=np.float32), lambda o: o.x + 1, R=2, L=1)
    assert ro.ending.dtype == np.float32 and ro.orders.dtype == np.float32


def test_float32_torch_keeps_dtype():
    d = torch.ones((2, 7), dtype=torch.float32)
    ro = simulate(d, lambda o: torch.full((2,), 3.0), R=2, L=1)
    assert ro.ending.dtype == torch.float32


def test_loss_config_used_in_gradient_sign():
    """With h = 0.5 = b the per-day gradient is ±0.5."""
    demand = np.array([[2.0, 2.0, 2.0, 2.0, 2.0]])
    q0 = np.zeros((1, 5))
    q0[0, 2] = 5.0
    ro, leaves = _order_leaf_rollout(demand, 2, 1, False, q0)
    cost = daily_cost(ro, LossConfig(h=0.5))
    # day 3: E = (-6) + 5 - 2 = -3 (backlog of days 0-2 not yet covered) -> dc/dq = -0.5
    assert float(ro.ending.detach()[0, 3]) == -3.0
    (g,) = torch.autograd.grad(cost[0, 3], leaves[2])
    assert float(g[0]) == -0.5
