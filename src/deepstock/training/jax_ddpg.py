"""DDPG as stable-baselines3 runs it (spec §7.2-7.4), compiled with JAX for populations of agents.

Per environment step s = 1, 2, ... of every agent (SB3 ``OffPolicyAlgorithm.learn``):

- action: uniform on the box while s - 1 < ``learning_starts``, else the deterministic actor
  μ(o) = tanh(MLP(o)) in [-1, 1] (no action noise); the env gets low + (a + 1)/2 · (high - low);
  the replay buffer (``buffer_size`` rows, circular) keeps the observation, the scaled action,
  the float32 reward, the next observation (the terminal one at episode end) and the
  termination flag;
- training: when s is a multiple of ``train_freq`` and s > ``learning_starts``,
  ``gradient_steps`` updates, each on ``batch_size`` transitions drawn uniformly with
  replacement from the filled buffer:
  y = r + γ (1 - done) Q'(o', μ'(o')); critic loss = mean (Q(o, a) - y)²; one Adam step;
  actor loss = -mean Q(o, μ(o)) with the updated critic; one Adam step; Polyak averaging
  θ' <- τ θ + (1 - τ) θ' of both targets. Adam (torch defaults: β = (0.9, 0.999), ε = 1e-8) at
  the learning rate lr(p) of the SB3 linear schedule, p = s / ``total_steps`` (spec §7.3);
- networks: ReLU MLPs ``net_arch.pi`` and ``net_arch.qf`` with torch's default initialization;
  the critic reads (o, a); the online actor's last bias is shifted by atanh(2b₀ - 1) (spec §4).

The compiled unit advances every agent by n steps (a ``fori_loop`` whose length and start are
values, so chunks of any length share one program; agents lifted by ``over_active``); a
training period is a ``lax.cond`` on the shared step count. SB3 evaluates the policy at step e (a multiple of ``eval_freq``) before
storing and learning from that step's transition, i.e. the policy after the updates of steps
< e: the driver runs steps up to e - 1, evaluates, and the next chunk starts with step e.

Critic log (``train_ddpg(..., log_critic=True)``, Figure 3; a population of one): the compiled
program fills preallocated arrays of the agent state, as the SB3 backend's ``_LoggedDDPG`` logs:

- per gradient update: the critic loss mean (Q(o, a) - y)² of its batch (before the update), the
  learning rate and the step s it followed -> ``extras["critic_log"]`` with columns update
  (1, 2, ...), step, critic_loss, lr;
- per env step s <= ``critic_log_steps`` (default 10 000): the transition entering the replay
  buffer -> ``extras["replay_log"]`` with columns step, x (next observation's first input),
  onhand (next observation's on-hand × M for Coeff/Both, whose input divides by M), order,
  reward, done.

Both are trimmed to the updates and steps run. Without the log the program is unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd

from deepstock.errors import ConfigError
from deepstock.problem.data import Dataset
from deepstock.training import TrainResult, envs_jax, jaxrt
from deepstock.training.backends import Trainer
from deepstock.training.jax_common import (
    OPTIONS,
    Algorithm,
    Chunk,
    Setup,
    compile_chunk,
    init_population,
    linear_schedule,
    mlp,
    mlp_init,
    over_active,
    shift_last_bias,
    tanh,
    torch_linear,
    train_population,
)
from deepstock.training.jax_common import agent as agent_of
from deepstock.training.regularizations import get_regularization

#: Hyper-parameters that are values in the compiled program (any mix trains in one population).
VALUES = ("learning_rate", "lr_min", "lr_fraction", "gamma", "tau", "initial_action_bias",
          "learning_starts", "total_steps", "patience_evals", "min_evals")
_ARRAYS = ("learning_rate", "lr_min", "lr_fraction", "gamma", "tau", "initial_action_bias",
           "learning_starts", "total_steps")
#: Transitions the replay log keeps by default (the SB3 backend's ``critic_log_steps``).
CRITIC_LOG_STEPS = 10000


@dataclass(frozen=True)
class Shape:
    """What one compiled DDPG program is specialized to."""

    spec: envs_jax.EnvSpec
    pi: tuple[int, ...]
    qf: tuple[int, ...]
    batch_size: int
    buffer_size: int
    train_freq: int
    gradient_steps: int
    bias_on_target: bool
    batched: bool
    log: tuple[int, int] | None = None  # critic-log capacity (updates, transitions); None: no log

    @classmethod
    def of(cls, setup: Setup) -> Shape:
        c = setup.config
        return cls(setup.spec, tuple(c["net_arch"]["pi"]), tuple(c["net_arch"]["qf"]),
                   int(c["batch_size"]), int(c["buffer_size"]), int(c["train_freq"]),
                   int(c["gradient_steps"]), bool(c["ddpg_bias_on_target"]), setup.batched)


def bias_shift(b0):
    """Pre-tanh shift making the squashed output 2b₀ - 1 (3·(2b₀ - 1) when |2b₀ - 1| >= 0.99)."""
    v = 2.0 * b0 - 1.0
    return jnp.where(jnp.abs(v) >= 0.99, 3.0 * v, jnp.arctanh(jnp.clip(v, -0.99, 0.99)))


def actor_out(params, obs):
    """The deterministic actor in SB3's scaled action space [-1, 1]."""
    return tanh(mlp(params, obs))


def act(shape: Shape, params, obs):
    """Actions in the box [0, high] (SB3 ``predict``: unscale the tanh output)."""
    return 0.5 * (actor_out(params, obs) + 1.0) * shape.spec.action_high


def q_value(params, obs, action):
    return mlp(params, jnp.concatenate([obs, action], -1))[..., 0]


def init_agent(shape: Shape, data: envs_jax.EnvData, hp: dict, key) -> dict:
    """One agent: networks, targets (copies before the bias shift), Adam states, empty buffer."""
    spec = shape.spec
    d, k = spec.obs_dim, spec.action_dim
    ka, kc, ke, key = jax.random.split(key, 4)
    actor = mlp_init(ka, [d, *shape.pi, k], torch_linear)
    critic = mlp_init(kc, [d + k, *shape.qf, 1], torch_linear)
    shift = bias_shift(hp["initial_action_bias"])
    actor_t = shift_last_bias(actor, shift) if shape.bias_on_target else actor
    actor = shift_last_bias(actor, shift)
    env, obs = envs_jax.reset(spec, data, jax.random.randint(ke, (1,), 0, data.n))
    adam = optax.scale_by_adam()
    buffer = jnp.zeros((shape.buffer_size, 2 * d + k + 2))  # one row per transition
    kl, key = jax.random.split(key)
    learner = {"actor": actor, "critic": critic, "actor_t": actor_t, "critic_t": critic,
               "opt_a": adam.init(actor), "opt_c": adam.init(critic), "key": kl}
    return {"learner": learner, "buffer": buffer, "env": env, "obs": obs, "key": key}


def unpack(shape: Shape, rows) -> dict:
    """Transitions [n, 2d + k + 2] -> obs, act, rew, next, done (one gather per update)."""
    d, k = shape.spec.obs_dim, shape.spec.action_dim
    return {"obs": rows[:, :d], "act": rows[:, d:d + k], "rew": rows[:, d + k],
            "next": rows[:, d + k + 1:2 * d + k + 1], "done": rows[:, -1]}


def _adam_step(params, opt_state, grads, lr):
    updates, opt_state = optax.scale_by_adam().update(grads, opt_state, params)
    return jax.tree_util.tree_map(lambda p, u: p - lr * u, params, updates), opt_state


# ---------------------------------------------------------------------- critic log
def empty_logs(shape: Shape, k: int) -> dict:
    """The empty critic logs of k agents (stacked) of capacity ``shape.log`` (module docstring):
    per gradient update its (critic loss, lr) and the step it followed; per env step the
    transition's (x, on-hand input, order, reward, done); the numbers of updates and steps run."""
    updates, transitions = shape.log
    return {"critic": jnp.zeros((k, updates, 2)),
            "critic_step": jnp.zeros((k, updates), jnp.int32),
            "replay": jnp.zeros((k, transitions, 5)), "updates": jnp.zeros(k, jnp.int32),
            "steps": jnp.zeros(k, jnp.int32)}


def log_transition(log: dict, s, next_obs, order, reward, done) -> dict:
    """``log`` with the transition of step s + 1 in row s (dropped past the capacity)."""
    if not log["replay"].shape[0]:
        return log
    row = jnp.stack([next_obs[0, 0], next_obs[0, 1], order[0], reward[0],
                     done[0].astype(reward.dtype)])
    return {**log, "replay": log["replay"].at[s].set(row, mode="drop"), "steps": s + 1}


def log_updates(shape: Shape, log: dict, losses, lr, s, trained) -> dict:
    """``log`` with the critic losses [gradient_steps] of the updates after step s appended when
    they happened (``trained``; else written past the count, to be overwritten)."""
    n = log["updates"]
    idx = n + jnp.arange(shape.gradient_steps)
    entries = jnp.stack([losses, jnp.broadcast_to(lr, losses.shape)], 1)
    return {**log, "critic": log["critic"].at[idx].set(entries, mode="drop"),
            "critic_step": log["critic_step"].at[idx].set(s, mode="drop"),
            "updates": n + jnp.where(trained, shape.gradient_steps, 0)}


def log_frames(shape: Shape, log: dict) -> dict[str, pd.DataFrame]:
    """One agent's critic log as the SB3 backend's ``critic_log`` and ``replay_log`` DataFrames
    (same columns and dtypes), trimmed to the updates and steps run."""
    log = jax.device_get(log)
    n, rows = int(log["updates"]), min(int(log["steps"]), shape.log[1])
    scale = shape.spec.params.M if get_regularization(shape.spec.reg).uses_coeff else 1.0
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


# ---------------------------------------------------------------------- one agent's steps
def env_step(shape: Shape, data: envs_jax.EnvData, agent: dict, hp: dict, s) -> dict:
    """Step s + 1 of one agent: act, step the env, store (and log) the transition, reset a
    finished episode."""
    spec = shape.spec
    key, k_act, k_reset = jax.random.split(agent["key"], 3)
    random = jax.random.uniform(k_act, (1, spec.action_dim), minval=-1.0, maxval=1.0)
    policy = actor_out(agent["learner"]["actor"], agent["obs"])
    scaled = jnp.where(s < hp["learning_starts"], random, policy)
    action = 0.5 * (scaled + 1.0) * spec.action_high
    env, obs, reward, done, info = envs_jax.step(spec, data, agent["env"], action)
    row = jnp.concatenate([agent["obs"][0], scaled[0], reward, obs[0],
                           done.astype(reward.dtype)])
    out = {**agent, "buffer": agent["buffer"].at[s % shape.buffer_size].set(row)}
    if shape.log:
        out["log"] = log_transition(agent["log"], s, obs, info["order"], reward, done)
    env, obs = envs_jax.auto_reset(spec, data, env, obs, done, k_reset)
    return {**out, "env": env, "obs": obs, "key": key}


def update_and_loss(learner: dict, buf: dict, hp: dict, lr) -> tuple[dict, jax.Array]:
    """One TD3-style update on the batch ``buf`` with one critic and no target noise (SB3 DDPG
    ``train``), and the critic loss of the batch before it; the learner's random key is left as
    it is."""
    next_q = q_value(learner["critic_t"], buf["next"], actor_out(learner["actor_t"], buf["next"]))
    target = jax.lax.stop_gradient(buf["rew"] + (1.0 - buf["done"]) * hp["gamma"] * next_q)

    def critic_loss(critic):
        return jnp.mean((q_value(critic, buf["obs"], buf["act"]) - target) ** 2)

    def actor_loss(actor, critic):
        return -jnp.mean(q_value(critic, buf["obs"], actor_out(actor, buf["obs"])))

    loss, grads = jax.value_and_grad(critic_loss)(learner["critic"])
    critic, opt_c = _adam_step(learner["critic"], learner["opt_c"], grads, lr)
    actor, opt_a = _adam_step(learner["actor"], learner["opt_a"],
                              jax.grad(actor_loss)(learner["actor"], critic), lr)
    tau = hp["tau"]
    polyak = lambda p, t: tau * p + (1.0 - tau) * t  # noqa: E731
    return {**learner, "actor": actor, "critic": critic, "opt_a": opt_a, "opt_c": opt_c,
            "actor_t": jax.tree_util.tree_map(polyak, actor, learner["actor_t"]),
            "critic_t": jax.tree_util.tree_map(polyak, critic, learner["critic_t"])}, loss


def update(learner: dict, buf: dict, hp: dict, lr) -> dict:
    """The learner after :func:`update_and_loss`."""
    return update_and_loss(learner, buf, hp, lr)[0]


def gradient_step(shape: Shape, learner: dict, buffer: dict, hp: dict, size,
                  lr) -> tuple[dict, jax.Array]:
    """Draw ``batch_size`` stored transitions uniformly with replacement, then
    :func:`update_and_loss`: the new learner and the batch's critic loss."""
    key, k = jax.random.split(learner["key"])
    idx = jax.random.randint(k, (shape.batch_size,), 0, size)
    new, loss = update_and_loss(learner, unpack(shape, buffer[idx]), hp, lr)
    return {**new, "key": key}, loss


def train_period(shape: Shape, learner: dict, buffer: dict, hp: dict, s, losses: bool = False):
    """The learner after the ``gradient_steps`` updates following step s, if s >
    ``learning_starts`` (else unchanged); the replay buffer is only read. ``losses``: (learner,
    the updates' critic losses [gradient_steps], their learning rate)."""
    size = jnp.minimum(s, shape.buffer_size)
    lr = linear_schedule(hp["learning_rate"], hp["lr_min"], hp["lr_fraction"],
                         s / hp["total_steps"])
    if losses:
        new, out = jax.lax.scan(lambda a, _: gradient_step(shape, a, buffer, hp, size, lr),
                                learner, length=shape.gradient_steps)
    else:
        new = jax.lax.fori_loop(0, shape.gradient_steps,
                                lambda _, a: gradient_step(shape, a, buffer, hp, size, lr)[0],
                                learner)
    learner = jax.tree_util.tree_map(lambda a, b: jnp.where(s > hp["learning_starts"], a, b),
                                     new, learner)
    return (learner, out, lr) if losses else learner


def run_steps(shape: Shape, agent: dict, hp: dict, data: envs_jax.EnvData, s0, n) -> dict:
    """Steps s0 + 1 .. s0 + n of one agent, training periods (and the critic log) included."""
    logs = shape.log is not None

    def train(a, s):
        return train_period(shape, a["learner"], a["buffer"], hp, s, logs)

    def idle(a):
        if not logs:
            return a["learner"]
        none = jnp.zeros(shape.gradient_steps, hp["learning_rate"].dtype)
        return a["learner"], none, none[0]

    def body(i, agent):
        s = s0 + i
        agent = env_step(shape, data, agent, hp, s)
        if shape.train_freq == 1:  # every step trains: no conditional around the replay buffer
            out = train(agent, s + 1)
        else:  # the log stays out of the conditional (a branch would copy it)
            core = {k: v for k, v in agent.items() if k != "log"}
            out = jax.lax.cond((s + 1) % shape.train_freq == 0, lambda a: train(a, s + 1),
                               idle, core)
        if not logs:
            return {**agent, "learner": out}
        learner, losses, lr = out
        trained = ((s + 1) % shape.train_freq == 0) & (s + 1 > hp["learning_starts"])
        return {**agent, "learner": learner,
                "log": log_updates(shape, agent["log"], losses, lr, s + 1, trained)}

    return jax.lax.fori_loop(0, n, body, agent)


def advance_population(shape: Shape, agents: dict, hp: dict, data: envs_jax.EnvData, s0, n,
                       active) -> dict:
    """:func:`run_steps` for every active agent of the population (stacked on axis 0)."""
    return over_active(lambda a, h, d, s, m: run_steps(shape, a, h, d, s, m), shape.batched,
                       3)(agents, hp, active, data, s0, n)


class _Schedule:
    """Where SB3 evaluates: after step e - 1 for every multiple e of ``eval_freq`` (module doc)."""

    def __init__(self, eval_freq: int, train_freq: int, total_steps: int) -> None:
        self.eval_freq = eval_freq
        self.total = math.ceil(total_steps / train_freq) * train_freq  # whole training periods
        self.done = 0  # steps run completely (stored and learnt from)

    def advance(self, steps: int) -> tuple[int, Chunk]:
        """Steps to run now, and the chunk they end, given the last reported step count."""
        event = (steps // self.eval_freq + 1) * self.eval_freq
        if event <= self.total:
            n, self.done = event - 1 - self.done, event - 1
            return n, Chunk(event, [event])
        n, self.done = self.total - self.done, self.total
        return n, Chunk(self.total, [])

    def finish(self) -> int:
        n, self.done = self.total - self.done, self.total
        return n


def build(setup: Setup, critic_log_steps: int | None = None) -> Algorithm:
    """The compiled population of ``setup`` (one shape group); with a critic log keeping the
    first ``critic_log_steps`` transitions unless None (module docstring)."""
    started = time.perf_counter()
    shape = plain = Shape.of(setup)
    cfg = setup.config
    schedule = _Schedule(int(cfg["eval_freq"]), shape.train_freq,
                         int(max(c["total_steps"] for c in setup.configs)))
    agents, hp = init_population(setup, init_agent, plain, _ARRAYS)
    if critic_log_steps is not None:
        updates = shape.gradient_steps * (schedule.total // shape.train_freq)
        shape = dataclasses.replace(
            shape, log=(updates, max(0, min(int(critic_log_steps), schedule.total))))
        with jax.default_device(setup.device):
            agents = {**agents, "log": empty_logs(shape, len(setup.configs))}
    compiled, compile_s = compile_chunk(advance_population, shape, agents, hp, setup.train,
                                        np.int32(0), np.int32(1),
                                        np.ones(len(setup.configs), bool))

    def run(agents, n: int, active):
        return compiled(agents, hp, setup.train, np.int32(schedule.done - n), np.int32(n),
                        active)

    def advance(agents, steps: int, active):
        n, chunk = schedule.advance(steps)
        return run(agents, n, active), chunk

    def finish(agents, steps: int, active):
        n = schedule.finish()
        return run(agents, n, active) if n else agents

    def logs(agents, k: int) -> dict:
        return log_frames(shape, agent_of(agents, k)["log"])

    return Algorithm("ddpg", plain, agents, advance, finish,
                     actor=lambda a: a["learner"]["actor"], act=act, total=schedule.total,
                     compile_seconds=compile_s, started=started,
                     logs=logs if shape.log else None)


def train_ddpg_population(dataset: Dataset, reg: str, hparams: Sequence[dict],
                          seeds: Sequence[int], *, device: str = "cpu", progress: bool = False,
                          **options: Any) -> list[TrainResult]:
    """Train K DDPG agents (configuration k with seed k); one compiled program per shape
    group. Returns the K results in input order, each as :func:`train_ddpg` would return it
    (without the critic log, which needs a population of one)."""
    if options.pop("log_critic", False):
        raise ConfigError("--log-critic trains one DDPG agent, not a population (train_ddpg)")
    return train_population("ddpg", build, VALUES, dataset, reg, hparams, seeds, device=device,
                            progress=progress, options=options)


def train_ddpg(dataset: Dataset, reg: str, hparams: dict, seed: int, *, device: str = "cpu",
               progress: bool = False, log_critic: bool = False,
               critic_log_steps: int = CRITIC_LOG_STEPS, **options: Any) -> TrainResult:
    """Train one DDPG agent (a population of one). ``log_critic``: with the critic log (module
    docstring) as ``extras["critic_log"]`` and ``extras["replay_log"]``, the latter holding the
    first ``critic_log_steps`` transitions (``save_run`` writes both as CSVs)."""
    if not log_critic:
        return train_ddpg_population(dataset, reg, [hparams], [seed], device=device,
                                     progress=progress, **options)[0]
    return train_population("ddpg", functools.partial(build, critic_log_steps=critic_log_steps),
                            VALUES, dataset, reg, [hparams], [seed], device=device,
                            progress=progress, options=options)[0]


#: The jax backend's DDPG: one compiled agent or a population in one program.
TRAINERS = {"ddpg": Trainer(train_ddpg, train_ddpg_population, {**OPTIONS, "log_critic": False},
                         frozenset({"critic_log"}), gpu_available=jaxrt.gpu_available)}
