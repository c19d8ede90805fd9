"""Evaluate any policy on a dataset split through the shared simulator, in one batched rollout."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepstock.problem.data import Dataset, Split
from deepstock.problem.dynamics import Observation, Policy, Rollout, simulate
from deepstock.problem.losses import (
    DEFAULT_LOSS,
    LossConfig,
    stockout_rate,
    trajectory_loss,
    turnover_time,
)
from deepstock.problem.settings import Setting


@dataclass
class Evaluation:
    split: str
    per_trajectory: np.ndarray  # [n]
    rollout: Rollout

    @property
    def loss(self) -> float:
        return float(self.per_trajectory.mean())

    def metrics(self) -> dict[str, float]:
        return {
            "loss": self.loss,
            "stockout_rate": float(stockout_rate(self.rollout).mean()),
            "turnover_time": float(turnover_time(self.rollout).mean()),
        }


def rollout_split(policy: Policy, split: Split, setting: Setting) -> Rollout:
    """One vectorized rollout of ``policy`` over every trajectory of ``split`` under the
    setting's R, L, dynamics (backlog or lost sales) and warm-up: the shared simulator."""
    return simulate(
        split.demand, policy, R=setting.R, L=setting.L, x=split.x, phi=split.phi,
        lost_sales=setting.lost_sales, index=split.index, warmup=setting.warmup,
    )


def simulate_split(policy: Policy, dataset: Dataset, split: str) -> Rollout:
    """:func:`rollout_split` of the split named ``split`` of ``dataset``."""
    return rollout_split(policy, dataset.split(split), dataset.setting)


def evaluate_policy(
    policy: Policy,
    dataset: Dataset,
    split: str = "test",
    *,
    loss: LossConfig | None = None,
) -> Evaluation:
    """Per-trajectory and mean loss of ``policy`` on one split of ``dataset``; ``loss`` None:
    the setting's unit costs, or the paper's default h = 0.1 where it fixes none."""
    loss = loss or dataset.setting.loss(DEFAULT_LOSS.h)
    ro = simulate_split(policy, dataset, split)
    return Evaluation(split, np.asarray(trajectory_loss(ro, loss)), ro)


def evaluate_all(policy: Policy, dataset: Dataset, **kw) -> dict[str, Evaluation]:
    return {name: evaluate_policy(policy, dataset, name, **kw) for name in ("train", "val", "test")}


def base_stock_policy(levels, M: float, *, per_day: bool = False) -> Policy:
    """Base-stock policy q = clip(S - tot(I_t), 0, M).

    ``levels`` is a scalar, an array [n] aligned with the simulated batch (one level per
    trajectory), or with ``per_day=True`` an array [T] of time-dependent levels S_t.
    """
    s_arr = np.asarray(levels, dtype=np.float64)

    def policy(obs: Observation) -> np.ndarray:
        s = s_arr[obs.t] if per_day else s_arr
        return np.clip(s - obs.position, 0.0, M)

    return policy
