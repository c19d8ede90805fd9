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

The file reads in execution order: the networks, one agent's initialization, one environment
step, one update, the training period, one step of the algorithm (environment step, then the
training period that ends there), the compiled chunk (a ``fori_loop`` over steps whose start and
length are values, so chunks of any length share one program; the population lifted by
``jax_common.over_active``), and the training loop (:func:`train_group`): SB3 evaluates the policy
at step e (a multiple of ``eval_freq``) before storing and learning from that step's
transition, i.e. the policy after the updates of steps < e, so the loop runs the steps up to
e - 1, evaluates (``jax_common.Validation``), and the next chunk starts with step e.

Each step returns, beside the agent, its trace (the transition entering the replay buffer, the
updates' critic losses and learning rate); the plain chunk drops it, and the critic log of
Figure 3 (:mod:`deepstock.training.jax_critic_log`) is a wrapper around the step that records
it, so logging never changes the training.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepstock.errors import ConfigError
from deepstock.problem.data import Dataset
from deepstock.training import TrainResult, envs_jax, jax_critic_log, jaxrt
from deepstock.training.backends import Trainer
from deepstock.training.jax_common import (
    OPTIONS,
    Setup,
    Validation,
    budget,
    compile_chunk,
    init_population,
    linear_schedule,
    mlp,
    mlp_init,
    over_active,
    shift_last_bias,
    tanh,
    torch_linear,
    train_groups,
)
from deepstock.training.jax_common import agent as agent_of

#: Hyper-parameters that are values in the compiled program (any mix trains in one population).
VALUES = ("learning_rate", "lr_min", "lr_fraction", "gamma", "tau", "initial_action_bias",
          "learning_starts", "total_steps", "patience_evals", "min_evals")
ARRAYS = ("learning_rate", "lr_min", "lr_fraction", "gamma", "tau", "initial_action_bias",
           "learning_starts", "total_steps")
#: Transitions the replay log keeps by default (the SB3 backend's ``critic_log_steps``).
CRITIC_LOG_STEPS = 10000


@dataclass(frozen=True)
class Shape:
    """What one compiled DDPG program is specialized to."""

    consts: envs_jax.EnvConstants
    pi: tuple[int, ...]
    qf: tuple[int, ...]
    batch_size: int
    buffer_size: int
    train_freq: int
    gradient_steps: int
    bias_on_target: bool
    batched: bool

    @classmethod
    def of(cls, setup: Setup) -> Shape:
        c = setup.config
        return cls(setup.consts, tuple(c["net_arch"]["pi"]), tuple(c["net_arch"]["qf"]),
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
    return 0.5 * (actor_out(params, obs) + 1.0) * shape.consts.action_high


def q_value(params, obs, action):
    return mlp(params, jnp.concatenate([obs, action], -1))[..., 0]


def init_agent(shape: Shape, data: envs_jax.EnvData, hp: dict, key) -> dict:
    """One agent: networks, targets (copies before the bias shift), Adam states, empty buffer."""
    consts = shape.consts
    d, k = consts.obs_dim, consts.action_dim
    ka, kc, ke, key = jax.random.split(key, 4)
    actor = mlp_init(ka, [d, *shape.pi, k], torch_linear)
    critic = mlp_init(kc, [d + k, *shape.qf, 1], torch_linear)
    shift = bias_shift(hp["initial_action_bias"])
    actor_t = shift_last_bias(actor, shift) if shape.bias_on_target else actor
    actor = shift_last_bias(actor, shift)
    env, obs = envs_jax.reset(consts, data, jax.random.randint(ke, (1,), 0, data.n))
    adam = optax.scale_by_adam()
    buffer = jnp.zeros((shape.buffer_size, 2 * d + k + 2))  # one row per transition
    kl, key = jax.random.split(key)
    learner = {"actor": actor, "critic": critic, "actor_t": actor_t, "critic_t": critic,
               "opt_a": adam.init(actor), "opt_c": adam.init(critic), "key": kl}
    return {"learner": learner, "buffer": buffer, "env": env, "obs": obs, "key": key}


# ---------------------------------------------------------------------- one agent's steps
def env_step(shape: Shape, data: envs_jax.EnvData, agent: dict, hp: dict, s) -> tuple[dict, dict]:
    """Environment step s + 1 of one agent: act, step the env, store the transition, reset a
    finished episode; and the transition (next observation before the reset, order, reward,
    done)."""
    consts = shape.consts
    key, k_act, k_reset = jax.random.split(agent["key"], 3)
    random = jax.random.uniform(k_act, (1, consts.action_dim), minval=-1.0, maxval=1.0)
    policy = actor_out(agent["learner"]["actor"], agent["obs"])
    scaled = jnp.where(s < hp["learning_starts"], random, policy)
    action = 0.5 * (scaled + 1.0) * consts.action_high
    env, obs, reward, done, info = envs_jax.step(consts, data, agent["env"], action)
    row = jnp.concatenate([agent["obs"][0], scaled[0], reward, obs[0],
                           done.astype(reward.dtype)])
    buffer = agent["buffer"].at[s % shape.buffer_size].set(row)
    transition = {"next_obs": obs, "order": info["order"], "reward": reward, "done": done}
    env, obs = envs_jax.auto_reset(consts, data, env, obs, done, k_reset)
    return {**agent, "buffer": buffer, "env": env, "obs": obs, "key": key}, transition


def unpack(shape: Shape, rows) -> dict:
    """Transitions [n, 2d + k + 2] -> obs, act, rew, next, done (one gather per update)."""
    d, k = shape.consts.obs_dim, shape.consts.action_dim
    return {"obs": rows[:, :d], "act": rows[:, d:d + k], "rew": rows[:, d + k],
            "next": rows[:, d + k + 1:2 * d + k + 1], "done": rows[:, -1]}


def _adam_step(params, opt_state, grads, lr):
    updates, opt_state = optax.scale_by_adam().update(grads, opt_state, params)
    return jax.tree_util.tree_map(lambda p, u: p - lr * u, params, updates), opt_state


def update(learner: dict, buf: dict, hp: dict, lr) -> tuple[dict, jax.Array]:
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


def gradient_step(shape: Shape, learner: dict, buffer: dict, hp: dict, size,
                  lr) -> tuple[dict, jax.Array]:
    """Draw ``batch_size`` stored transitions uniformly with replacement, then :func:`update`:
    the new learner and the batch's critic loss."""
    key, k = jax.random.split(learner["key"])
    idx = jax.random.randint(k, (shape.batch_size,), 0, size)
    new, loss = update(learner, unpack(shape, buffer[idx]), hp, lr)
    return {**new, "key": key}, loss


def train_period(shape: Shape, learner: dict, buffer: dict, hp: dict, s):
    """The ``gradient_steps`` updates following step s if s > ``learning_starts`` (else the
    learner unchanged; the replay buffer is only read): the learner, the updates' critic losses
    [gradient_steps] and their learning rate lr(s / ``total_steps``)."""
    size = jnp.minimum(s, shape.buffer_size)
    lr = linear_schedule(hp["learning_rate"], hp["lr_min"], hp["lr_fraction"],
                         s / hp["total_steps"])
    new, losses = jax.lax.scan(lambda a, _: gradient_step(shape, a, buffer, hp, size, lr),
                               learner, length=shape.gradient_steps)
    learner = jax.tree_util.tree_map(lambda a, b: jnp.where(s > hp["learning_starts"], a, b),
                                     new, learner)
    return learner, losses, lr


def step(shape: Shape, data: envs_jax.EnvData, agent: dict, hp: dict, s) -> tuple[dict, dict]:
    """Step s + 1 of one agent: the environment step, then the training period if one ends
    there; and its trace (the transition, the updates' critic losses and learning rate, and
    whether they happened)."""
    agent, transition = env_step(shape, data, agent, hp, s)
    if shape.train_freq == 1:  # every step trains: no conditional around the replay buffer
        learner, losses, lr = train_period(shape, agent["learner"], agent["buffer"], hp, s + 1)
    else:
        none = jnp.zeros(shape.gradient_steps, hp["learning_rate"].dtype)
        learner, losses, lr = jax.lax.cond(
            (s + 1) % shape.train_freq == 0,
            lambda a: train_period(shape, a["learner"], a["buffer"], hp, s + 1),
            lambda a: (a["learner"], none, none[0]), agent)
    trained = ((s + 1) % shape.train_freq == 0) & (s + 1 > hp["learning_starts"])
    return {**agent, "learner": learner}, {**transition, "losses": losses, "lr": lr,
                                           "trained": trained}


def chunk_of(body):
    """The compiled unit of a step function ``body`` (:func:`step` or a wrapper of it): steps
    s0 + 1 .. s0 + n of every active agent of the population (stacked on axis 0), each trace
    dropped."""
    def chunk(shape: Shape, agents: dict, hp: dict, data: envs_jax.EnvData, s0, n, active):
        def steps(agent, h, d, start, count):
            return jax.lax.fori_loop(0, count, lambda i, a: body(shape, d, a, h, start + i)[0],
                                     agent)

        return over_active(steps, shape.batched, 3)(agents, hp, active, data, s0, n)

    return chunk


#: The compiled units: plain, and recording the critic log.
CHUNK = chunk_of(step)
LOGGED_CHUNK = chunk_of(jax_critic_log.recording(step))


# ---------------------------------------------------------------------- the training loop
def train_group(setup: Setup, *, progress: bool = False,
                critic_log_steps: int | None = None) -> list[TrainResult]:
    """Train the population of ``setup`` (one shape group) to the end; with the critic log of
    its first ``critic_log_steps`` transitions unless None (module docstring)."""
    started = time.perf_counter()
    shape = Shape.of(setup)
    eval_freq = int(setup.config["eval_freq"])
    total = budget(setup.configs, shape.train_freq)  # whole training periods
    agents, hp = init_population(setup, init_agent, shape, ARRAYS)
    chunk = CHUNK
    if critic_log_steps is not None:
        chunk, agents = LOGGED_CHUNK, {**agents, "log": jax_critic_log.empty(
            setup, len(setup.configs), shape.gradient_steps * (total // shape.train_freq),
            max(0, min(int(critic_log_steps), total)))}
    program, compile_s = compile_chunk(chunk, shape, agents, hp, setup.train, np.int32(0),
                                       np.int32(1), np.ones(len(setup.configs), bool))
    val = Validation(setup, act, shape, total=total, started=started, compile_seconds=compile_s,
                     progress=progress)

    def run(agents, start: int, n: int):
        return program(agents, hp, setup.train, np.int32(start), np.int32(n), val.active)

    val.start(agents["learner"]["actor"])
    done = 0  # steps run completely (stored and learnt from)
    for event in range(eval_freq, total + 1, eval_freq):
        if not val.active.any():
            break
        agents, done = run(agents, done, event - 1 - done), event - 1
        val.reached(event, [event], agents["learner"]["actor"])
    if val.active.any() and done < total:
        agents, done = run(agents, done, total - done), total
        val.reached(total, [], agents["learner"]["actor"])
    val.finish()
    logs = None if critic_log_steps is None else (
        lambda k: jax_critic_log.frames(setup, agent_of(agents, k)["log"]))
    return val.results(agents["learner"]["actor"], logs)


def train_ddpg_population(dataset: Dataset, reg: str, hparams: Sequence[dict],
                          seeds: Sequence[int], *, device: str = "cpu", progress: bool = False,
                          **options: Any) -> list[TrainResult]:
    """Train K DDPG agents (configuration k with seed k); one compiled program per shape
    group. Returns the K results in input order, each as :func:`train_ddpg` would return it
    (without the critic log, which needs a population of one)."""
    if options.pop("log_critic", False):
        raise ConfigError("--log-critic trains one DDPG agent, not a population (train_ddpg)")
    return train_groups("ddpg", train_group, VALUES, dataset, reg, hparams, seeds,
                        device=device, progress=progress, options=options)


def train_ddpg(dataset: Dataset, reg: str, hparams: dict, seed: int, *, device: str = "cpu",
               progress: bool = False, log_critic: bool = False,
               critic_log_steps: int = CRITIC_LOG_STEPS, **options: Any) -> TrainResult:
    """Train one DDPG agent (a population of one). ``log_critic``: with the critic log
    (:mod:`deepstock.training.jax_critic_log`) as ``extras["critic_log"]`` and
    ``extras["replay_log"]``, the latter holding the first ``critic_log_steps`` transitions
    (``save_run`` writes both as CSVs)."""
    if not log_critic:
        return train_ddpg_population(dataset, reg, [hparams], [seed], device=device,
                                     progress=progress, **options)[0]

    def logged(setup: Setup, *, progress: bool) -> list[TrainResult]:
        return train_group(setup, progress=progress, critic_log_steps=critic_log_steps)

    return train_groups("ddpg", logged, VALUES, dataset, reg, [hparams], [seed], device=device,
                        progress=progress, options=options)[0]


#: The jax backend's DDPG: one compiled agent or a population in one program.
TRAINERS = {"ddpg": Trainer(train_ddpg, train_ddpg_population, {**OPTIONS, "log_critic": False},
                         frozenset({"critic_log"}), gpu_available=jaxrt.gpu_available)}
