"""Evaluate any policy on a dataset split through the shared simulator, in one batched rollout."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepstock.data import Dataset, Split
from deepstock.dynamics import Observation, Policy, Rollout, simulate
from deepstock.losses import DEFAULT_LOSS, LossConfig, stockout_rate, trajectory_loss, turnover_time


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


def rollout_split(
    policy: Policy, split: Split, *, R: int, L: int, lost_sales: bool = False
) -> Rollout:
    return simulate(
        split.demand, policy, R=R, L=L, x=split.x, phi=split.phi, lost_sales=lost_sales,
        index=split.index,
    )


def evaluate_policy(
    policy: Policy,
    dataset: Dataset,
    split: str = "test",
    *,
    loss: LossConfig = DEFAULT_LOSS,
    lost_sales: bool = False,
) -> Evaluation:
    """Per-trajectory and mean loss of ``policy`` on one split of ``dataset``."""
    s = dataset.split(split)
    st = dataset.setting
    ro = rollout_split(policy, s, R=st.R, L=st.L, lost_sales=lost_sales)
    return Evaluation(split, np.asarray(trajectory_loss(ro, loss, lost_sales)), ro)


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
