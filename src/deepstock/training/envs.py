"""Gymnasium inventory environment for DDPG/PPO (spec §7.1) and batched SB3-policy evaluation.

One ``step`` is one ordering decision. The environment keeps a per-episode scalar state (the
pipeline I_t as a list of Python floats) for speed and advances it with the same one-day function
as the batched simulator, :func:`deepstock.problem.dynamics.advance_day`, and the same
:func:`deepstock.problem.losses.over_under`, rewarded by :func:`deepstock.problem.losses.window_reward`
(-mean c(E_u) in the authors' floating-point order); a parity test holds env and :func:`~deepstock.problem.dynamics.simulate`
to 1e-9. Actions are decoded by the shared mapping
:meth:`deepstock.training.regularizations.Regularization.decode` (spec §4).

- reset: pick a trajectory (train mode: uniform with the env RNG; eval mode: cycle in id order,
  restarted by ``reset(seed=...)``), I_0 = 0, simulate days 0..R-1 with q = 0, observe at t = R.
- step(a): decode q, simulate R days (q on the first), reward = -mean c(E_u) =
  -(h·Σover/|W| + b·Σunder/|W|) over W = [t+L, t+L+R) ∩ [R+L, T) (0 if empty); the last L days of W come from a q = 0 look-ahead
  that is rewound (exact: the next order arrives at t+R+L). When the new t has t >= T or
  t + L >= T, the remaining days are simulated with q = 0 and the episode terminates.
  ``truncated`` is always False. The return is -Σ_windows mean cost = -((T-R-L)/R)·ℓ for T = 31.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from deepstock.errors import ConfigError
from deepstock.problem.data import Dataset
from deepstock.problem.dynamics import Observation, Rollout, advance_day, order_days
from deepstock.problem.losses import DEFAULT_LOSS, LossConfig, over_under, window_reward
from deepstock.training.regularizations import (
    RegularizationParams,
    get_regularization,
    minmax_normalize,
)

ENV_ID = "deepstock/Inventory-v0"
MODES = ("train", "eval")


def rl_context(dataset: Dataset) -> np.ndarray:
    """Normalized RL context z [n, T, 1]: x_t min-max normalized per trajectory (spec §4)."""
    return minmax_normalize(np.asarray(dataset.x, dtype=np.float64), axis=1)[..., None]


def n_decisions(T: int, R: int, L: int) -> int:
    """Episode length: the number of useful order days (14 for T = 31, R = 2, L = 1)."""
    return int(order_days(T, R, L).sum())


def n_counted_decisions(T: int, R: int, L: int, warmup: int = 0) -> int:
    """Decisions whose reward window [max(t+L, R+L+warmup), min(t+L+R, T)) holds a counted day:
    the divisor that turns an episode return into minus the mean counted cost (every decision
    without warm-up, so :func:`n_decisions` then)."""
    t = np.flatnonzero(order_days(T, R, L))
    return int((np.maximum(t + L, R + L + warmup) < np.minimum(t + L + R, T)).sum())


class InventoryEnv(gym.Env):
    """One SKU trajectory per episode; one decision per order day (spec §7.1).

    ``dataset`` and ``split`` give the trajectories; ``reg`` one of none/base/coeff/both;
    ``mode`` "train" (uniform choice, seeded) or "eval" (cycle in id order; default for val/test).
    ``options={"index": k}`` in :meth:`reset` selects the k-th trajectory of the split.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(
        self,
        dataset: Dataset,
        split: str = "train",
        reg: str = "none",
        *,
        mode: str | None = None,
        reg_params: RegularizationParams | None = None,
        loss: LossConfig | None = None,
    ) -> None:
        super().__init__()
        mode = mode or ("train" if split == "train" else "eval")
        if mode not in MODES:
            raise ConfigError(f"env mode {mode!r} is not one of {list(MODES)}")
        st = dataset.setting
        self.setting = st
        self.split_name = split
        self.mode = mode
        self.reg = get_regularization(reg)
        self.reg_params = reg_params or RegularizationParams(M=st.M)
        self.loss = loss or st.loss(DEFAULT_LOSS.h)
        self.lost_sales = st.lost_sales  # the setting's dynamics
        self.T, self.R, self.L = st.T, st.R, st.L
        self.first = st.first_counted  # days before it (R + L + warm-up) earn no reward
        s = dataset.split(split)
        if len(s) == 0:
            raise ConfigError(f"split {split!r} of {st.id} is empty")
        self.index = np.asarray(s.index)
        self._demand: list[list[float]] = np.asarray(s.demand, dtype=np.float64).tolist()
        self._x: list[list[float]] = np.asarray(s.x, dtype=np.float64).tolist()
        self._phi = np.asarray(s.phi, dtype=np.float64)
        self._z = rl_context(dataset)[s.index] if self.reg.uses_coeff else None
        self.episode_length = n_decisions(self.T, self.R, self.L)
        self.counted_decisions = n_counted_decisions(self.T, self.R, self.L, st.warmup)
        dim = self.reg.input_dim(self.L, rl=True)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float32)
        if self.reg.uses_coeff:
            self.action_space = spaces.Box(0.0, 1.0, shape=(self.reg.output_dim,), dtype=np.float32)
        else:
            self.action_space = spaces.Box(0.0, float(self.reg_params.M), shape=(1,), dtype=np.float32)
        self._cursor = 0
        self._row = 0
        self._t = 0
        self._pipe: list[float] = [0.0] * (self.L + 1)
        self._cost_total = 0.0

    # ------------------------------------------------------------------ dynamics (spec §2)
    def _day(self, pipe: list[float], q: float, d: float) -> tuple[float, float]:
        """One day on ``pipe`` in place through the shared :func:`dynamics.advance_day`;
        returns the day's (overage, underage) (:func:`losses.over_under`)."""
        _, e, lam, pipe[:] = advance_day(pipe, q or None, d, self.lost_sales, 0.0)
        return over_under(e, lam, self.lost_sales)

    # ------------------------------------------------------------------ observation / decoding
    def _observation(self, t: int) -> Observation:
        """Observation of the current state; day index clamped to T-1 for the terminal state."""
        tt = min(t, self.T - 1)
        r = self._row
        if self._z is None:  # None/Base read only x_t and the pipeline
            return Observation(tt, np.array([self._x[r][tt]]), np.array([self._pipe]))
        return Observation(
            t=tt,
            x=np.array([self._x[r][tt]]),
            pipeline=np.array([self._pipe]),
            phi=self._phi[r, tt][None, :],
            index=self.index[r : r + 1],
            z=self._z[r, tt][None, :],
        )

    def _obs_vector(self, t: int) -> np.ndarray:
        """Network input (spec §4, RL): (x_t, I_t) or (z_t, I_t / M); tested equal to
        ``Regularization.network_input(..., rl=True)``."""
        tt = min(t, self.T - 1)
        if self._z is None:
            return np.array([self._x[self._row][tt], *self._pipe], dtype=np.float32)
        m = self.reg_params.M
        return np.array([self._z[self._row, tt, 0], *(p / m for p in self._pipe)], dtype=np.float32)

    def decode(self, action: np.ndarray) -> float:
        """Order q_t for the current state through the shared regularization mapping (spec §4)."""
        out = np.asarray(action, dtype=np.float64).reshape(1, -1)
        return float(self.reg.decode(out, self._observation(self._t), self.reg_params)[0])

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        n = len(self._demand)
        if options and "index" in options:
            row = int(options["index"])
            if not 0 <= row < n:
                raise ConfigError(f"trajectory index {row} outside split of size {n}")
        elif self.mode == "train":
            row = int(self.np_random.integers(n))
        else:
            if seed is not None:
                self._cursor = 0
            row = self._cursor % n
            self._cursor += 1
        self._row = row
        self._pipe = [0.0] * (self.L + 1)
        self._cost_total = 0.0
        dem = self._demand[row]
        for u in range(min(self.R, self.T)):  # warm-up: no orders (days < R+L are not counted)
            self._day(self._pipe, 0.0, dem[u])
        self._t = self.R
        return self._obs_vector(self._t), {"trajectory": int(self.index[row]), "t": self._t}

    def step(self, action):
        t, R, L, T = self._t, self.R, self.L, self.T
        q = self.decode(action)
        dem = self._demand[self._row]
        pipe = self._pipe
        w_lo, w_hi = max(t + L, self.first), min(t + L + R, T)  # reward window W (t >= R)
        over = under = 0.0
        days = 0

        def count(day: int, ou: tuple[float, float]) -> None:
            nonlocal over, under, days
            if w_lo <= day < w_hi:
                over, under, days = over + ou[0], under + ou[1], days + 1

        for u in range(t, min(t + R, T)):
            count(u, self._day(pipe, q if u == t else 0.0, dem[u]))
        t_new = t + R
        terminated = t_new >= T or t_new + L >= T
        ahead = pipe if terminated else list(pipe)  # a look-ahead is rewound: on a copy
        for u in range(t_new, T if terminated else min(t_new + L, T)):
            count(u, self._day(ahead, 0.0, dem[u]))  # q = 0; when terminated, all of W's rest
        reward = window_reward(over, under, days, self.loss) if days else 0.0
        cost = self.loss.h * over + self.loss.underage * under
        self._cost_total += cost
        self._t = t_new
        info: dict[str, Any] = {"order": q, "cost": cost, "days": days, "t": t,
                                "trajectory": int(self.index[self._row])}
        if terminated:
            info["episode_loss"] = self._cost_total / (T - self.first)
        return self._obs_vector(t_new), reward, terminated, False, info


def _register() -> None:
    if ENV_ID not in gym.registry:
        gym.register(id=ENV_ID, entry_point="deepstock.training.envs:InventoryEnv")


_register()


# ---------------------------------------------------------------------- batched evaluation
def network_policy(
    predict: Callable[[np.ndarray], np.ndarray],
    reg: str,
    reg_params: RegularizationParams,
    *,
    z: np.ndarray | None = None,
) -> Callable[[Observation], np.ndarray]:
    """Observation -> orders [n] from a batched action function (e.g. an SB3 deterministic predict).

    ``predict`` maps the float32 network inputs [n, d] (spec §4, RL version) to actions [n, k];
    the orders come from the shared decoder. For Coeff/Both without ``obs.z`` the normalized
    context ``z`` [n_dataset, T, 1] (see :func:`rl_context`) is looked up by ``obs.index``.
    """
    regularization = get_regularization(reg)

    def policy(obs: Observation) -> np.ndarray:
        if regularization.uses_coeff and obs.z is None:
            if z is None or obs.index is None:
                raise ConfigError(f"regularization {reg!r} needs the normalized context z")
            obs = Observation(obs.t, obs.x, obs.pipeline, obs.phi, obs.index, z[obs.index, obs.t])
        inp = np.asarray(regularization.network_input(obs, reg_params, rl=True), dtype=np.float32)
        actions = np.asarray(predict(inp), dtype=np.float64).reshape(inp.shape[0], -1)
        return np.asarray(regularization.decode(actions, obs, reg_params), dtype=np.float64)

    return policy


def window_returns(rollout: Rollout, loss: LossConfig = DEFAULT_LOSS,
                   lost_sales: bool | None = None) -> np.ndarray:
    """Per-trajectory episode return of the env (spec §7.1) computed from a batched rollout.

    Sum over useful order days t of the window rewards :func:`losses.window_reward` (the env's
    own arithmetic); equals -((T-R-L)/R)·ℓ when the windows are full.
    """
    lost_sales = rollout.lost_sales if lost_sales is None else lost_sales
    over, under = over_under(np.asarray(rollout.ending), np.asarray(rollout.lost), lost_sales)
    n, T = over.shape
    R, L = rollout.R, rollout.L
    total = np.zeros(n)
    for t in np.flatnonzero(order_days(T, R, L)):
        lo, hi = max(t + L, rollout.first_counted), min(t + L + R, T)
        if hi > lo:
            total += window_reward(over[:, lo:hi].sum(1), under[:, lo:hi].sum(1), hi - lo, loss)
    return total
