"""Tests of the losses and metrics of spec §3 against hand-computed numbers, and of a base-stock
evaluation on Setting 1 against an explicit simulation written here."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepstock.problem.dynamics import Rollout
from deepstock.problem.losses import (
    DEFAULT_LOSS,
    LossConfig,
    daily_cost,
    dataset_loss,
    loss_gap,
    stockout_rate,
    trajectory_loss,
    turnover_time,
)

torch.set_num_threads(1)


def make_rollout(ending, *, lost=None, sales=None, R=2, L=1) -> Rollout:
    """A rollout with the given per-day E_t (and λ_t, s_t); other fields are not used by §3."""
    e = np.atleast_2d(np.asarray(ending, dtype=np.float64))
    lost = np.zeros_like(e) if lost is None else np.atleast_2d(np.asarray(lost, dtype=np.float64))
    sales = np.ones_like(e) if sales is None else np.atleast_2d(np.asarray(sales, dtype=float))
    z = np.zeros_like(e)
    return Rollout(demand=sales + lost, orders=z, onhand=z, ending=e, lost=lost, sales=sales,
                   R=R, L=L)


# --------------------------------------------------------------------------- daily cost


def test_daily_cost_backlog_by_hand():
    # c(e) = 0.9·max(-e, 0) + 0.1·max(e, 0)
    ro = make_rollout([[-2.0, 0.0, 3.0, -0.5, 10.0]])
    np.testing.assert_allclose(daily_cost(ro), [[1.8, 0.0, 0.3, 0.45, 1.0]], atol=1e-15)


def test_daily_cost_torch_same_numbers():
    ro = make_rollout([[-2.0, 0.0, 3.0]])
    t = Rollout(*(torch.tensor(getattr(ro, k)) for k in
                  ("demand", "orders", "onhand", "ending", "lost", "sales")), R=2, L=1)
    np.testing.assert_allclose(daily_cost(t).numpy(), [[1.8, 0.0, 0.3]], atol=1e-15)


def test_daily_cost_torch_gradient():
    """dc/dE = h for E > 0, -b for E < 0; at E = 0 the clip form gives h - b (kept for DS)."""
    e = torch.tensor([[-2.0, 3.0, 0.0]], dtype=torch.float64, requires_grad=True)
    z = torch.zeros_like(e)
    ro = Rollout(demand=z, orders=z, onhand=z, ending=e, lost=z, sales=z, R=2, L=1)
    daily_cost(ro).sum().backward()
    np.testing.assert_allclose(e.grad.numpy(), [[-0.9, 0.1, 0.1 - 0.9]], atol=1e-15)


def test_b_is_one_minus_h_by_default_and_configurable():
    assert DEFAULT_LOSS.h == 0.1 and DEFAULT_LOSS.underage == pytest.approx(0.9)
    assert LossConfig(h=0.3).underage == pytest.approx(0.7)
    assert LossConfig(h=0.3, b=2.0).underage == 2.0
    ro = make_rollout([[-2.0, 4.0]])
    np.testing.assert_allclose(daily_cost(ro, LossConfig(h=0.3)), [[1.4, 1.2]], atol=1e-15)
    np.testing.assert_allclose(daily_cost(ro, LossConfig(h=0.3, b=2.0)), [[4.0, 1.2]], atol=1e-15)
    np.testing.assert_allclose(daily_cost(ro, LossConfig(h=0.0, b=1.0)), [[2.0, 0.0]], atol=1e-15)


def test_lost_sales_underage_uses_lambda():
    # lost sales: E >= 0, cost = b·λ + h·E; a day with E = 0 and λ = 0 costs nothing
    ro = make_rollout([[0.0, 2.0, 0.0, 5.0]], lost=[[3.0, 0.0, 0.0, 0.0]])
    np.testing.assert_allclose(daily_cost(ro, lost_sales=True), [[2.7, 0.2, 0.0, 0.5]], atol=1e-15)
    # the backlog formula would ignore λ here
    np.testing.assert_allclose(daily_cost(ro), [[0.0, 0.2, 0.0, 0.5]], atol=1e-15)


# --------------------------------------------------------------------------- trajectory loss


def test_trajectory_loss_counts_days_from_r_plus_l_only():
    # R=2, L=1: days 0..2 ignored even with huge costs; days 3..5 cost 0.1, 0.9, 0.2 -> 0.4
    ro = make_rollout([[100.0, -100.0, 50.0, 1.0, -1.0, 2.0]])
    assert trajectory_loss(ro)[0] == pytest.approx(0.4, abs=1e-12)
    # R=1, L=0: every day from t = 1: (90 + 5 + 0.1 + 0.9 + 0.2) / 5
    ro = make_rollout([[100.0, -100.0, 50.0, 1.0, -1.0, 2.0]], R=1, L=0)
    assert trajectory_loss(ro)[0] == pytest.approx(96.2 / 5, abs=1e-12)
    # R=2, L=3: only day 5
    ro = make_rollout([[100.0, -100.0, 50.0, 1.0, -1.0, 2.0]], R=2, L=3)
    assert trajectory_loss(ro)[0] == pytest.approx(0.2, abs=1e-12)


def test_trajectory_loss_per_trajectory_then_plain_mean():
    ro = make_rollout([[0, 0, 0, 1.0, 1.0, 1.0], [0, 0, 0, -2.0, -2.0, 4.0]])
    per = trajectory_loss(ro)
    np.testing.assert_allclose(per, [0.1, (1.8 + 1.8 + 0.4) / 3], atol=1e-12)
    assert dataset_loss(per) == pytest.approx((0.1 + 4.0 / 3) / 2, abs=1e-12)


def test_trajectory_loss_lost_sales_and_torch():
    ro = make_rollout([[9.0, 9.0, 9.0, 0.0, 3.0]], lost=[[9.0, 9.0, 9.0, 2.0, 0.0]])
    assert trajectory_loss(ro, lost_sales=True)[0] == pytest.approx((1.8 + 0.3) / 2, abs=1e-12)
    cfg = LossConfig(h=0.25)
    tro = Rollout(*(torch.tensor(getattr(ro, k)) for k in
                    ("demand", "orders", "onhand", "ending", "lost", "sales")), R=2, L=1)
    got = trajectory_loss(tro, cfg, lost_sales=True)
    assert isinstance(got, torch.Tensor)
    assert float(got[0]) == pytest.approx((0.75 * 2 + 0.25 * 3) / 2, abs=1e-12)


# --------------------------------------------------------------------------- metrics


def test_stockout_rate_counts_zero_ending_as_stockout():
    # counted days 3..6 (R=2, L=1): E = 0, 1, -2, 3 -> stockouts on 2 of 4 days
    ro = make_rollout([[-5.0, -5.0, -5.0, 0.0, 1.0, -2.0, 3.0], [9.0, 9, 9, 1, 1, 1, 1]])
    np.testing.assert_allclose(stockout_rate(ro), [0.5, 0.0])


def test_turnover_time_by_hand():
    # counted days 3..4: mean E = 10, mean s = 5 -> 10 / (5 + 1e-6)
    ro = make_rollout(
        [[0, 0, 0, 8.0, 12.0], [0, 0, 0, 100.0, 100.0], [0, 0, 0, -6.0, -2.0],
         [0, 0, 0, 3.0, 1.0], [7, 7, 7, 0.0, 0.0]],
        sales=[[1, 1, 1, 4.0, 6.0], [1, 1, 1, 1.0, 1.0], [1, 1, 1, 2.0, 2.0],
               [1, 1, 1, 0.0, 0.0], [1, 1, 1, 0.0, 0.0]],
    )
    tt = turnover_time(ro)
    assert tt[0] == pytest.approx(10.0 / (5.0 + 1e-6), rel=1e-12)
    assert tt[1] == 28.0  # capped: 100 days of stock
    assert tt[2] == pytest.approx(-4.0 / (2.0 + 1e-6), rel=1e-12)  # negative under backlog
    assert tt[3] == 28.0  # zero sales with positive inventory
    assert tt[4] == 0.0  # zero sales and zero inventory: 0 / 1e-6
    assert turnover_time(ro, cap=5.0)[1] == 5.0 and turnover_time(ro, cap=5.0)[0] < 5.0


def test_loss_gap_by_hand():
    assert loss_gap(1.1, 1.0) == pytest.approx(10.0)
    assert loss_gap(0.8670, 0.8670) == 0.0
    assert loss_gap(0.75, 1.0) == pytest.approx(-25.0)  # validation gaps can be negative
    assert loss_gap(3.0, 2.0) == pytest.approx(50.0)


# --------------------------------------------------------------------------- Setting 1


def explicit_s1_base_stock_loss(demand: np.ndarray, S: float, M: float = 100.0) -> float:
    """Base-stock S on R = 2, L = 1 backlog data, written out per SKU and day (spec §2-3)."""
    T = demand.shape[1]
    losses = []
    for d in demand:
        onhand, arriving_tomorrow, costs = 0.0, 0.0, []
        for t in range(T):
            if t >= 2 and t % 2 == 0 and t + 1 <= T - 1:
                arriving_tomorrow += min(max(S - (onhand + arriving_tomorrow), 0.0), M)
            end = onhand - d[t]
            if t >= 3:
                costs.append(0.9 * max(-end, 0.0) + 0.1 * max(end, 0.0))
            onhand, arriving_tomorrow = end + arriving_tomorrow, 0.0
        losses.append(sum(costs) / len(costs))
    return float(np.mean(losses))


@pytest.mark.parametrize("S", [18.0, 26.0, 31.5])
def test_setting1_base_stock_through_evaluate_policy(S):
    generators = pytest.importorskip("deepstock.problem.generators")
    from deepstock.problem.evaluation import base_stock_policy, evaluate_policy

    ds = generators.generate_dataset("s1")
    test = ds.split("test")
    # the rows simulated are SKUs 21..120; SKU 21 is the spec §5.1 fixture
    assert test.ids.tolist() == list(range(21, 121))
    assert test.demand[0].tolist() == [13, 11, 12, 18, 12, 10, 17, 14, 10, 13, 11, 9, 12, 3, 3, 10,
                                       6, 12, 9, 8, 18, 13, 14, 6, 10, 11, 7, 13, 11, 12, 9]
    ev = evaluate_policy(base_stock_policy(S, ds.setting.M), ds, "test")
    assert ev.per_trajectory.shape == (100,)
    assert ev.loss == pytest.approx(explicit_s1_base_stock_loss(test.demand, S), abs=1e-12)
    val = ds.split("val")
    ev = evaluate_policy(base_stock_policy(S, ds.setting.M), ds, "val")
    assert ev.loss == pytest.approx(explicit_s1_base_stock_loss(val.demand, S), abs=1e-12)
