"""Losses and metrics of spec §3, on a :class:`~deepstock.problem.dynamics.Rollout` (numpy or torch)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepstock.problem.dynamics import Array, Rollout, counted_days, positive_part


@dataclass(frozen=True)
class LossConfig:
    """Underage/overage weights: h = ``loss_alpha`` (0.1) and b = 1 - h (0.9) by default [C]."""

    h: float = 0.1
    b: float | None = None  # None -> 1 - h

    @property
    def underage(self) -> float:
        return 1.0 - self.h if self.b is None else self.b


DEFAULT_LOSS = LossConfig()


def cost(e: Array, lost: Array, loss: LossConfig = DEFAULT_LOSS, lost_sales: bool = False) -> Array:
    """c(E) = b·max(-E, 0) + h·max(E, 0), or b·λ + h·max(E, 0) under lost sales (spec §3);
    elementwise on arrays, tensors or Python floats.

    numpy backlog uses max(h·E, -b·E), equal for h, b >= 0 (one term is zero) with fewer
    temporaries; torch keeps the clip form so its subgradient at E = 0 stays h - b."""
    b, h = loss.underage, loss.h
    if not lost_sales and isinstance(e, np.ndarray) and b >= 0 and h >= 0:
        return np.maximum(h * e, -b * e)
    under = lost if lost_sales else positive_part(-e)
    return b * under + h * positive_part(e)


def over_under(e: Array, lost: Array, lost_sales: bool = False) -> tuple[Array, Array]:
    """The day's overage max(E, 0) and underage: max(-E, 0) under backlog, λ under lost sales."""
    return positive_part(e), (lost if lost_sales else positive_part(-e))


def window_reward(over: Array, under: Array, days: Array, loss: LossConfig = DEFAULT_LOSS) -> Array:
    """The RL reward of one decision's window W of ``days`` counted days (spec §7.1):
    r = -(h·(Σ_W over)/|W| + b·(Σ_W under)/|W|), b = 1 - h.

    This is -mean_W c(E_u), written in the authors' order of floating-point operations
    (``calc_loss`` of their ``rl/inv_env.py``: each sum divided by the window length, then
    weighted): -(Σ c)/|W| equals it only to a few float64 ulps, and SB3 stores rewards as float32,
    where about one reward in 1 000 then rounds one ulp apart and the training diverges from
    theirs (docs/choices.md, "The reward's floating-point order")."""
    return -(loss.h * (over / days) + loss.underage * (under / days))


def daily_cost(rollout: Rollout, loss: LossConfig = DEFAULT_LOSS,
               lost_sales: bool | None = None) -> Array:
    """c(E_t) = b·max(-E_t, 0) + h·max(E_t, 0) per day [n, T]; b·λ_t replaces underage under lost
    sales (spec §3). ``lost_sales`` None: the dynamics the rollout was simulated under."""
    lost_sales = rollout.lost_sales if lost_sales is None else lost_sales
    return cost(rollout.ending, rollout.lost, loss, lost_sales)


def trajectory_loss(
    rollout: Rollout, loss: LossConfig = DEFAULT_LOSS, lost_sales: bool | None = None
) -> Array:
    """ℓ(π; τ): mean daily cost over counted days t >= R + L + warmup, one value per trajectory
    [n] (spec §3). ``lost_sales`` None: the dynamics the rollout was simulated under."""
    lost_sales = rollout.lost_sales if lost_sales is None else lost_sales
    first = rollout.first_counted
    e, lost = rollout.ending[:, first:], rollout.lost[:, first:]
    return cost(e, lost, loss, lost_sales).mean(1)


def dataset_loss(per_trajectory: Array) -> float:
    """L(π; D): plain mean over trajectories of the per-trajectory losses."""
    return float(per_trajectory.mean())


def stockout_rate(rollout: Rollout) -> np.ndarray:
    """Share of counted days with E_t <= 0, per trajectory (a day ending at 0 is a stockout)."""
    T = rollout.ending.shape[1]
    c = counted_days(T, rollout.R, rollout.L, rollout.warmup)
    return np.asarray(rollout.ending)[:, c].__le__(0).mean(1)


def turnover_time(rollout: Rollout, cap: float = 28.0) -> np.ndarray:
    """min(mean(E_t) / (mean(s_t) + 1e-6), cap) over counted days, per trajectory (no lower clip)."""
    T = rollout.ending.shape[1]
    c = counted_days(T, rollout.R, rollout.L, rollout.warmup)
    e = np.asarray(rollout.ending)[:, c].mean(1)
    s = np.asarray(rollout.sales)[:, c].mean(1)
    return np.minimum(e / (s + 1e-6), cap)


def loss_gap(loss_value: float, benchmark: float) -> float:
    """Gap(%) = 100 (L - L*) / L*; L* is the benchmark's test-set loss."""
    return 100.0 * (loss_value - benchmark) / benchmark
