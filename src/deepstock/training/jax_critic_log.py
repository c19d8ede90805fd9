"""The critic log of Figure 3 for the JAX DDPG: a wrapper around its step, not a branch in it.

:func:`recording` turns DDPG's step function ``step(shape, data, agent, hp, s) -> (agent,
trace)`` into one that carries preallocated log arrays in ``agent["log"]`` and fills them from
the trace, as the SB3 backend's ``_LoggedDDPG`` logs (a population of one):

- per gradient update: the critic loss mean (Q(o, a) - y)² of its batch (before the update), the
  learning rate and the step s it followed -> ``critic_log`` with columns update (1, 2, ...),
  step, critic_loss, lr;
- per env step s <= the capacity (``critic_log_steps``, default 10 000): the transition entering
  the replay buffer -> ``replay_log`` with columns step, x (next observation's first input),
  onhand (next observation's on-hand × M for Coeff/Both, whose input divides by M), order,
  reward, done.

Both are trimmed to the updates and steps run (:func:`frames`). The wrapped step computes the
same agent as the plain one: logging never changes the training (a test holds it bit for bit).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from deepstock.training.regularizations import get_regularization


def empty(setup, k: int, updates: int, transitions: int) -> dict:
    """The empty logs of k agents (stacked, on the population's device) with room for
    ``updates`` gradient updates and ``transitions`` env steps (module docstring), and the
    numbers of updates and steps run."""
    with jax.default_device(setup.device):
        return {"critic": jnp.zeros((k, updates, 2)),
                "critic_step": jnp.zeros((k, updates), jnp.int32),
                "replay": jnp.zeros((k, transitions, 5)), "updates": jnp.zeros(k, jnp.int32),
                "steps": jnp.zeros(k, jnp.int32)}


def _transition(log: dict, s, trace: dict) -> dict:
    """``log`` with the transition of step s + 1 in row s (dropped past the capacity)."""
    if not log["replay"].shape[0]:
        return log
    obs, reward = trace["next_obs"], trace["reward"]
    row = jnp.stack([obs[0, 0], obs[0, 1], trace["order"][0], reward[0],
                     trace["done"][0].astype(reward.dtype)])
    return {**log, "replay": log["replay"].at[s].set(row, mode="drop"), "steps": s + 1}


def _updates(log: dict, s, trace: dict) -> dict:
    """``log`` with the critic losses of the updates after step s appended when they happened
    (``trace["trained"]``; else written past the count, to be overwritten)."""
    losses, n = trace["losses"], log["updates"]
    idx = n + jnp.arange(losses.shape[0])
    entries = jnp.stack([losses, jnp.broadcast_to(trace["lr"], losses.shape)], 1)
    return {**log, "critic": log["critic"].at[idx].set(entries, mode="drop"),
            "critic_step": log["critic_step"].at[idx].set(s, mode="drop"),
            "updates": n + jnp.where(trace["trained"], losses.shape[0], 0)}


def recording(step: Callable) -> Callable:
    """``step`` that also records its trace in ``agent["log"]`` (the log stays out of the step:
    a conditional inside it would copy the log)."""
    def logged(shape, data, agent: dict, hp: dict, s) -> tuple[dict, dict]:
        core, trace = step(shape, data, {k: v for k, v in agent.items() if k != "log"}, hp, s)
        log = _updates(_transition(agent["log"], s, trace), s + 1, trace)
        return {**core, "log": log}, trace

    return logged


def frames(setup, log: dict) -> dict[str, pd.DataFrame]:
    """One agent's log as the SB3 backend's ``critic_log`` and ``replay_log`` DataFrames (same
    columns and dtypes), trimmed to the updates and steps run."""
    log = jax.device_get(log)
    n, rows = int(log["updates"]), min(int(log["steps"]), log["replay"].shape[0])
    scale = setup.reg_params.M if get_regularization(setup.reg).uses_coeff else 1.0
    critic = np.asarray(log["critic"][:n], np.float64)
    replay = np.asarray(log["replay"][:rows], np.float64)
    return {
        "critic_log": pd.DataFrame({"update": np.arange(1, n + 1, dtype=np.int64),
                                    "step": np.asarray(log["critic_step"][:n], np.int64),
                                    "critic_loss": critic[:, 0], "lr": critic[:, 1]}),
        "replay_log": pd.DataFrame({"step": np.arange(1, rows + 1, dtype=np.int64),
                                    "x": replay[:, 0], "onhand": replay[:, 1] * scale,
                                    "order": replay[:, 2], "reward": replay[:, 3],
                                    "done": replay[:, 4] > 0.5}),
    }
