"""The inventory environment of spec §7.1 as pure JAX functions (gymnax style), batched over E envs.

State and data are explicit: :class:`EnvConstants` holds the static constants (T, R, L, lost sales,
the regularization and its parameters, the loss weight), :class:`EnvData` one split's arrays
(demand, context x, Coeff features φ and the normalized RL context z — parameters, not
constants, so one compiled program serves every dataset of a shape), :class:`EnvState` the
E episodes in flight. The days are advanced by the shared :func:`deepstock.problem.dynamics.advance_day`
and rewarded by the shared :func:`deepstock.problem.losses.window_reward`; orders are decoded and
network inputs built by the shared :class:`~deepstock.training.regularizations.Regularization` — the very code
:class:`deepstock.training.envs.InventoryEnv` runs, here on JAX arrays. A parity test holds the two
environments to 1e-9 in float64 on every trajectory of Settings 1, 2 and a Setting 4 cell.

- :func:`reset`: episode on dataset row ``row`` (I_0 = 0), days 0..R-1 with q = 0, t = R.
- :func:`step`: decode q; days t..t+R-1 with q on day t; then L days with q = 0 from t+R (the
  look-ahead, rewound unless the episode ends, when they are the remaining days); reward =
  -mean c(E_u) over the window W = [t+L, t+L+R) ∩ [R+L, T) (0 if empty); terminated when
  t+R >= T or t+R+L >= T. Days u >= T are never simulated (masked).
- :func:`observe`: the network input of the state at min(t, T-1) (spec §4, RL version).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from deepstock.problem.data import Dataset
from deepstock.problem.dynamics import Observation, advance_day
from deepstock.problem.losses import LossConfig, over_under, window_reward
from deepstock.training.envs import n_counted_decisions, n_decisions, rl_context
from deepstock.training.regularizations import RegularizationParams, get_regularization


@dataclass(frozen=True)
class EnvConstants:
    """Static constants of the environment (hashable: part of a compiled program's key)."""

    T: int
    R: int
    L: int
    reg: str
    reg_params: RegularizationParams
    loss: LossConfig
    lost_sales: bool = False
    warmup: int = 0  # uncounted days after R + L (the setting's)

    @property
    def episode_length(self) -> int:
        return n_decisions(self.T, self.R, self.L)

    @property
    def counted_decisions(self) -> int:
        """Decisions whose reward window holds a counted day (:func:`envs.n_counted_decisions`)."""
        return n_counted_decisions(self.T, self.R, self.L, self.warmup)

    @property
    def obs_dim(self) -> int:
        return get_regularization(self.reg).input_dim(self.L, rl=True)

    @property
    def action_dim(self) -> int:
        return get_regularization(self.reg).output_dim

    @property
    def action_high(self) -> float:
        """Upper bound of the action box (low is 0): M for None/Base, 1 for Coeff/Both."""
        return 1.0 if get_regularization(self.reg).uses_coeff else float(self.reg_params.M)


class EnvData(NamedTuple):
    """One split's arrays: demand [n, T], context x [n, T], φ [n, T, 4], z [n, T, 1]."""

    demand: jax.Array
    x: jax.Array
    phi: jax.Array
    z: jax.Array

    @property
    def n(self) -> int:
        return self.demand.shape[0]


class EnvState(NamedTuple):
    """E episodes in flight: dataset row [E], day t [E], pipeline [E, L+1], window cost sum [E]."""

    row: jax.Array
    t: jax.Array
    pipe: jax.Array
    cost_total: jax.Array


def env_constants(dataset: Dataset, reg: str, reg_params: RegularizationParams, loss: LossConfig) -> EnvConstants:
    """The constants of ``dataset``'s setting: horizon, R, L, dynamics and warm-up."""
    st = dataset.setting
    return EnvConstants(st.T, st.R, st.L, reg, reg_params, loss, st.lost_sales, st.warmup)


def env_data(dataset: Dataset, split: str, dtype=None) -> EnvData:
    """The arrays of ``split`` as device arrays (float32 unless x64 is enabled)."""
    s = dataset.split(split)
    z = rl_context(dataset)[s.index]
    dtype = dtype or (jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
    # rounded by numpy and copied to the default device: no program is compiled for this
    return EnvData(*(jax.device_put(np.asarray(a, dtype=np.float64).astype(dtype))
                     for a in (s.demand, s.x, s.phi, z)))


def _days(consts: EnvConstants, data: EnvData, row, pipe, first_day, n_days: int, q, window):
    """Advance ``pipe`` (a list of [E] columns) over days first_day + j, j < n_days, with the
    order q on day first_day (None = no order); days >= T are skipped. Returns the pipeline and
    the summed overage, underage and count of days inside ``window`` = (lo [E], hi [E])."""
    zero = jnp.zeros_like(pipe[0])
    over, under, count = zero, zero, zero
    for j in range(n_days):
        u = first_day + j
        live = u < consts.T
        d = data.demand[row, jnp.minimum(u, consts.T - 1)]
        _, e, lam, nxt = advance_day(pipe, q if j == 0 else None, d, consts.lost_sales, zero)
        o, un = over_under(e, lam, consts.lost_sales)
        inside = live & (u >= window[0]) & (u < window[1])
        over, under = over + jnp.where(inside, o, 0.0), under + jnp.where(inside, un, 0.0)
        count = count + inside
        pipe = [jnp.where(live, b, a) for a, b in zip(pipe, nxt, strict=True)]
    return pipe, over, under, count


def observation(consts: EnvConstants, data: EnvData, state: EnvState) -> Observation:
    """The shared :class:`Observation` of the state (day clamped to T-1 at the terminal state)."""
    tt = jnp.minimum(state.t, consts.T - 1)
    return Observation(t=tt, x=data.x[state.row, tt], pipeline=state.pipe,
                       phi=data.phi[state.row, tt], index=None, z=data.z[state.row, tt])


def observe(consts: EnvConstants, data: EnvData, state: EnvState) -> jax.Array:
    """Network input [E, obs_dim]: (x_t, I_t) or (z_t, I_t / M) (spec §4, RL version)."""
    obs = observation(consts, data, state)
    return get_regularization(consts.reg).network_input(obs, consts.reg_params, rl=True)


def reset(consts: EnvConstants, data: EnvData, row: jax.Array) -> tuple[EnvState, jax.Array]:
    """Episodes on dataset rows ``row`` [E]: warm-up days 0..R-1 with q = 0, observe at t = R."""
    dtype = data.demand.dtype
    row = jnp.asarray(row, dtype=jnp.int32)
    zero = jnp.zeros(row.shape, dtype)
    pipe = [zero] * (consts.L + 1)
    none = (jnp.zeros(row.shape, jnp.int32),) * 2
    pipe, _, _, _ = _days(consts, data, row, pipe, 0, consts.R, None, none)
    state = EnvState(row, jnp.full(row.shape, consts.R, jnp.int32), jnp.stack(pipe, 1), zero)
    return state, observe(consts, data, state)


def step(consts: EnvConstants, data: EnvData, state: EnvState, action: jax.Array):
    """One decision for every env: returns (state, obs, reward [E], terminated [E], info).

    ``action`` [E, action_dim] is in the action box (callers clip PPO samples, spec §7.4).
    ``info`` has the order q, the window cost and, at termination, the episode loss
    Σ window costs / (T - R - L). The state of a terminated env is its final state: callers
    reset it (:func:`auto_reset`).
    """
    reg = get_regularization(consts.reg)
    obs = observation(consts, data, state)
    q = reg.decode(action.astype(state.pipe.dtype), obs, consts.reg_params)
    t, R, L = state.t, consts.R, consts.L
    first = t + L if consts.warmup == 0 else jnp.maximum(t + L, R + L + consts.warmup)  # t >= R
    window = (first, jnp.minimum(t + L + R, consts.T))
    pipe = [state.pipe[:, i] for i in range(L + 1)]
    pipe, o1, u1, n1 = _days(consts, data, state.row, pipe, t, R, q, window)
    t_new = t + R
    ahead, o2, u2, n2 = _days(consts, data, state.row, pipe, t_new, L, None, window)
    over, under, days = o1 + o2, u1 + u2, n1 + n2
    reward = jnp.where(days > 0, window_reward(over, under, jnp.maximum(days, 1), consts.loss), 0.0)
    total = consts.loss.h * over + consts.loss.underage * under
    terminated = (t_new >= consts.T) | (t_new + L >= consts.T)
    pipe = [jnp.where(terminated, a, b) for a, b in zip(ahead, pipe, strict=True)]
    cost_total = state.cost_total + total
    new = EnvState(state.row, t_new, jnp.stack(pipe, 1), cost_total)
    info = {"order": q, "cost": total,
            "episode_loss": cost_total / (consts.T - consts.R - consts.L - consts.warmup)}
    return new, observe(consts, data, new), reward, terminated, info


def auto_reset(consts: EnvConstants, data: EnvData, state: EnvState, obs: jax.Array,
               done: jax.Array, key: jax.Array) -> tuple[EnvState, jax.Array]:
    """Replace every terminated env by a fresh episode on a uniformly drawn row (train env)."""
    row = jax.random.randint(key, done.shape, 0, data.n)
    fresh, fresh_obs = reset(consts, data, row)
    pick = lambda a, b: jnp.where(done.reshape(done.shape + (1,) * (a.ndim - 1)), a, b)  # noqa: E731
    return jax.tree_util.tree_map(pick, fresh, state), pick(fresh_obs, obs)


def episode_returns(consts: EnvConstants, data: EnvData, act) -> tuple[jax.Array, jax.Array]:
    """Deterministic episodes of ``act`` (obs [n, d] -> actions [n, k]) on every row of
    ``data``, in one batch: (returns [n], episode losses [n])."""
    state, obs = reset(consts, data, jnp.arange(data.n))

    def decide(carry, _):
        state, obs, ret = carry
        state, obs, reward, _, _ = step(consts, data, state, act(obs))
        return (state, obs, ret + reward), None

    ret = jnp.zeros(data.n, data.demand.dtype)
    (state, _, ret), _ = jax.lax.scan(decide, (state, obs, ret), None, consts.episode_length)
    return ret, state.cost_total / (consts.T - consts.R - consts.L)
