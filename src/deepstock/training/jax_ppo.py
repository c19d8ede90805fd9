"""PPO as stable-baselines3 runs it (spec §7.2-7.4), compiled with JAX for populations of agents.

One iteration of every agent (SB3 ``OnPolicyAlgorithm.learn``):

- **collect** ``n_steps`` transitions with the current policy: a ~ N(μ(o), exp(log σ)²) per
  action dimension (μ = ``action_net`` on the Tanh MLP ``net_arch.pi``, log σ a free parameter
  initialized to 0), the env gets clip(a, low, high), the buffer keeps the unclipped a, its
  log-probability, the value V(o) (Tanh MLP ``net_arch.vf`` + ``value_net``), the float32 reward
  and whether o starts an episode; then V of the last next observation;
- **GAE(λ)**: δ_t = r_t + γ V_{t+1} (1 - start_{t+1}) - V_t, A_t = δ_t + γλ (1 - start_{t+1})
  A_{t+1} (the last step uses the last value and its done flag); returns R_t = A_t + V_t;
- **optimize**: ``n_epochs`` epochs, each over a fresh random permutation in minibatches of
  ``batch_size`` (a last partial minibatch included): advantages normalized per minibatch
  ((A - mean) / (std + 1e-8), unbiased std, skipped for a single sample); loss = -mean
  min(A ρ, A clip(ρ, 1 ± ε)) + ``ent_coef`` · (-mean entropy) + ``vf_coef`` · mean (R - V)²,
  ρ = exp(log π - log π_old); gradients clipped to global norm ``max_grad_norm`` (torch:
  scale by max / (norm + 1e-6) when larger); Adam (β = (0.9, 0.999), ε = 1e-5). The learning
  rate and ε follow SB3's linear schedules of p = steps / ``total_steps`` at the end of the
  rollout (spec §7.3).

Initialization: orthogonal weights (gain √2 in both MLPs, 0.01 ``action_net``, 1
``value_net``), zero biases, then the ``action_net`` bias = low + b₀ (high - low) (spec §4).

The file reads in execution order: the policy, one agent's initialization, the rollout, GAE, the
loss, the epochs of updates, the compiled chunk and the training loop (:func:`train_group`). The
chunk runs c iterations (a ``fori_loop`` whose length is a value; the population lifted by
``jax_common.over_active``). SB3 evaluates at every step count divisible by ``eval_freq`` while
collecting, i.e. the policy that collects the rollout holding the event, before training on it:
a chunk trains the pending rollout (if any), then runs c - 1 whole iterations and collects the
c-th rollout, which the next chunk trains; the loop evaluates (``jax_common.Validation``) between
chunks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from deepstock.problem.data import Dataset
from deepstock.training import TrainResult, envs_jax, jaxrt
from deepstock.training.backends import Trainer
from deepstock.training.jax_common import (
    OPTIONS,
    Setup,
    Validation,
    budget,
    compile_chunk,
    init_population,
    linear_schedule,
    mlp_init,
    orthogonal_linear,
    over_active,
    tanh,
    train_groups,
)

VALUES = ("learning_rate", "lr_min", "lr_fraction", "gamma", "gae_lambda", "clip_range",
          "clip_end_ratio", "ent_coef", "vf_coef", "max_grad_norm", "initial_action_bias",
          "total_steps", "patience_evals", "min_evals")
ARRAYS = ("learning_rate", "lr_min", "lr_fraction", "gamma", "gae_lambda", "clip_range",
           "clip_end_ratio", "ent_coef", "vf_coef", "max_grad_norm", "initial_action_bias",
           "total_steps")
_LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class Shape:
    """What one compiled PPO program is specialized to."""

    consts: envs_jax.EnvConstants
    pi: tuple[int, ...]
    vf: tuple[int, ...]
    n_steps: int
    batch_size: int
    n_epochs: int
    batched: bool

    @classmethod
    def of(cls, setup: Setup) -> Shape:
        c = setup.config
        return cls(setup.consts, tuple(c["net_arch"]["pi"]), tuple(c["net_arch"]["vf"]),
                   int(c["n_steps"]), int(c["batch_size"]), int(c["n_epochs"]), setup.batched)

    @property
    def n_minibatches(self) -> int:
        return -(-self.n_steps // self.batch_size)


# ---------------------------------------------------------------------- policy
def init_params(shape: Shape, hp: dict, key) -> dict:
    consts = shape.consts
    d, k = consts.obs_dim, consts.action_dim
    kp, kv, km, kh = jax.random.split(key, 4)
    hidden = lambda gain: lambda kk, a, b: orthogonal_linear(kk, a, b, gain)  # noqa: E731
    w_mu, _ = orthogonal_linear(km, shape.pi[-1] if shape.pi else d, k, 0.01)
    w_v, b_v = orthogonal_linear(kh, shape.vf[-1] if shape.vf else d, 1, 1.0)
    return {"pi": mlp_init(kp, [d, *shape.pi], hidden(math.sqrt(2.0))),
            "vf": mlp_init(kv, [d, *shape.vf], hidden(math.sqrt(2.0))),
            "mu": (w_mu, jnp.full((k,), hp["initial_action_bias"] * consts.action_high)),
            "v": (w_v, b_v), "log_std": jnp.zeros((k,))}


def _trunk(layers, x):
    for w, b in layers:
        x = tanh(x @ w + b)
    return x


def mean_action(params: dict, obs):
    w, b = params["mu"]
    return _trunk(params["pi"], obs) @ w + b


def value(params: dict, obs):
    w, b = params["v"]
    return (_trunk(params["vf"], obs) @ w + b)[..., 0]


def log_prob(params: dict, mean, action):
    log_std = params["log_std"]
    z = (action - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z ** 2 - log_std - 0.5 * _LOG_2PI, axis=-1)


def entropy(params: dict):
    return jnp.sum(0.5 + 0.5 * _LOG_2PI + params["log_std"])


def act(shape: Shape, params: dict, obs):
    """Deterministic action: the Gaussian mean clipped to the box (SB3 ``predict``)."""
    return jnp.clip(mean_action(params, obs), 0.0, shape.consts.action_high)


# ---------------------------------------------------------------------- one agent
def init_agent(shape: Shape, data: envs_jax.EnvData, hp: dict, key) -> dict:
    kp, ke, key = jax.random.split(key, 3)
    params = init_params(shape, hp, kp)
    env, obs = envs_jax.reset(shape.consts, data, jax.random.randint(ke, (1,), 0, data.n))
    n, d, k = shape.n_steps, shape.consts.obs_dim, shape.consts.action_dim
    rollout = {"obs": jnp.zeros((n, d)), "act": jnp.zeros((n, k)), "rew": jnp.zeros(n),
               "start": jnp.zeros(n), "value": jnp.zeros(n), "logp": jnp.zeros(n),
               "last_value": jnp.zeros(()), "last_done": jnp.zeros(())}
    return {"params": params, "opt": optax.scale_by_adam(eps=1e-5).init(params),
            "rollout": rollout, "env": env, "obs": obs, "start": jnp.ones(()), "key": key}


def collect(shape: Shape, data: envs_jax.EnvData, agent: dict) -> dict:
    """``n_steps`` environment steps with the current stochastic policy (module docstring)."""
    consts, params = shape.consts, agent["params"]

    def one(carry, _):
        env, obs, start, key = carry
        key, k_act, k_reset = jax.random.split(key, 3)
        mean = mean_action(params, obs)
        a = mean + jnp.exp(params["log_std"]) * jax.random.normal(k_act, mean.shape)
        env, nxt, reward, done, _ = envs_jax.step(consts, data, env, jnp.clip(a, 0.0, consts.action_high))
        record = {"obs": obs[0], "act": a[0], "rew": reward[0], "start": start,
                  "value": value(params, obs)[0], "logp": log_prob(params, mean, a)[0]}
        env, nxt = envs_jax.auto_reset(consts, data, env, nxt, done, k_reset)
        return (env, nxt, done[0].astype(reward.dtype), key), record

    carry = (agent["env"], agent["obs"], agent["start"], agent["key"])
    (env, obs, start, key), rollout = jax.lax.scan(one, carry, None, shape.n_steps)
    rollout = {**rollout, "last_value": value(params, obs)[0], "last_done": start}
    return {**agent, "rollout": rollout, "env": env, "obs": obs, "start": start, "key": key}


def advantages(rollout: dict, gamma, lam):
    """GAE(λ) advantages and returns of one rollout (SB3 ``compute_returns_and_advantage``)."""
    next_value = jnp.append(rollout["value"][1:], rollout["last_value"])
    next_live = 1.0 - jnp.append(rollout["start"][1:], rollout["last_done"])
    delta = rollout["rew"] + gamma * next_value * next_live - rollout["value"]

    def back(gae, x):
        d, live = x
        gae = d + gamma * lam * live * gae
        return gae, gae

    _, adv = jax.lax.scan(back, jnp.zeros(()), (delta, next_live), reverse=True)
    return adv, adv + rollout["value"]


def _masked_mean(x, mask):
    return jnp.sum(x * mask) / jnp.sum(mask)


def minibatch_loss(params: dict, batch: dict, mask, clip, hp: dict):
    """PPO loss of one (possibly partial, ``mask``-ed) minibatch."""
    count = jnp.sum(mask)
    adv = batch["adv"]
    mean = _masked_mean(adv, mask)
    std = jnp.sqrt(jnp.sum(mask * (adv - mean) ** 2) / jnp.maximum(count - 1.0, 1.0))
    adv = jnp.where(count > 1, (adv - mean) / (std + 1e-8), adv)
    ratio = jnp.exp(log_prob(params, mean_action(params, batch["obs"]), batch["act"])
                    - batch["logp"])
    surrogate = jnp.minimum(adv * ratio, adv * jnp.clip(ratio, 1.0 - clip, 1.0 + clip))
    value_loss = _masked_mean((batch["ret"] - value(params, batch["obs"])) ** 2, mask)
    return (-_masked_mean(surrogate, mask) - hp["ent_coef"] * entropy(params)
            + hp["vf_coef"] * value_loss)


def optimize(shape: Shape, agent: dict, hp: dict, s) -> dict:
    """``n_epochs`` epochs of minibatch updates on the collected rollout, s = steps at its end."""
    rollout = agent["rollout"]
    adv, ret = advantages(rollout, hp["gamma"], hp["gae_lambda"])
    data = {"obs": rollout["obs"], "act": rollout["act"], "logp": rollout["logp"],
            "adv": adv, "ret": ret}
    p = s / hp["total_steps"]
    lr = linear_schedule(hp["learning_rate"], hp["lr_min"], hp["lr_fraction"], p)
    clip = linear_schedule(hp["clip_range"], hp["clip_range"] * hp["clip_end_ratio"],
                           hp["lr_fraction"], p)
    n, bs, nb = shape.n_steps, shape.batch_size, shape.n_minibatches
    mask = (jnp.arange(nb * bs) < n).astype(jnp.float32).reshape(nb, bs)
    adam = optax.scale_by_adam(eps=1e-5)

    def update(state, idx_mask):
        params, opt = state
        idx, m = idx_mask
        batch = jax.tree_util.tree_map(lambda a: a[idx], data)
        grads = jax.grad(minibatch_loss)(params, batch, m, clip, hp)
        norm = optax.tree.norm(grads)
        scale = jnp.minimum(hp["max_grad_norm"] / (norm + 1e-6), 1.0)
        updates, opt = adam.update(jax.tree_util.tree_map(lambda g: g * scale, grads), opt, params)
        return (jax.tree_util.tree_map(lambda q, u: q - lr * u, params, updates), opt), None

    def epoch(state, key):
        perm = jax.random.permutation(key, n)
        idx = jnp.concatenate([perm, jnp.zeros(nb * bs - n, perm.dtype)]).reshape(nb, bs)
        state, _ = jax.lax.scan(update, state, (idx, mask))
        return state, None

    key, *keys = jax.random.split(agent["key"], shape.n_epochs + 1)
    (params, opt), _ = jax.lax.scan(epoch, (agent["params"], agent["opt"]), jnp.stack(keys))
    return {**agent, "params": params, "opt": opt, "key": key}


# ---------------------------------------------------------------------- the compiled chunk
def iterations(shape: Shape, agent: dict, hp: dict, data: envs_jax.EnvData, s0, c,
               optimize_first) -> dict:
    """One agent: optimize on the pending rollout (ending at step s0) if ``optimize_first``,
    then c - 1 iterations of collect + optimize, then collect the c-th rollout (left pending).
    The loop body holds one :func:`optimize` and one :func:`collect` (iteration i optimizes on
    the rollout ending at s0 + i n_steps, then collects), so each is compiled once."""

    def body(i, agent):
        s = s0 + i * shape.n_steps
        agent = jax.lax.cond((i > 0) | optimize_first, lambda a: optimize(shape, a, hp, s),
                             lambda a: a, agent)
        return jax.lax.cond(i < c, lambda a: collect(shape, data, a), lambda a: a, agent)

    return jax.lax.fori_loop(0, jnp.maximum(c, 1), body, agent)


def chunk(shape: Shape, agents: dict, hp: dict, data: envs_jax.EnvData, s0, c, optimize_first,
          active) -> dict:
    """The compiled unit: :func:`iterations` for every active agent of the population (stacked
    on axis 0)."""
    return over_active(lambda a, h, d, s, k, f: iterations(shape, a, h, d, s, k, f),
                       shape.batched, 4)(agents, hp, active, data, s0, c, optimize_first)


# ---------------------------------------------------------------------- the training loop
def events_in(start: int, end: int, eval_freq: int) -> list[int]:
    """The evaluation events (multiples of ``eval_freq``) in the steps start + 1 .. end."""
    first = (start // eval_freq + 1) * eval_freq
    return list(range(first, end + 1, eval_freq))


def rollouts_to_event(steps: int, n_steps: int, eval_freq: int, total: int) -> int:
    """Rollouts to collect from ``steps``: up to the first one holding an event, or the end."""
    c = 1
    while steps + c * n_steps < total and not events_in(steps + (c - 1) * n_steps,
                                                        steps + c * n_steps, eval_freq):
        c += 1
    return c


def train_group(setup: Setup, *, progress: bool = False) -> list[TrainResult]:
    """Train the population of ``setup`` (one shape group) to the end (module docstring)."""
    started = time.perf_counter()
    shape = Shape.of(setup)
    n, eval_freq = shape.n_steps, int(setup.config["eval_freq"])
    total = budget(setup.configs, n)  # whole rollouts
    agents, hp = init_population(setup, init_agent, shape, ARRAYS)
    program, compile_s = compile_chunk(chunk, shape, agents, hp, setup.train, np.int32(0),
                                       np.int32(1), np.bool_(False),
                                       np.ones(len(setup.configs), bool))
    val = Validation(setup, act, shape, total=total, started=started, compile_seconds=compile_s,
                     progress=progress)

    def run(agents, steps: int, c: int):
        return program(agents, hp, setup.train, np.int32(steps), np.int32(c),
                       np.bool_(steps > 0), val.active)

    val.start(agents["params"])
    steps = 0
    while val.active.any() and steps < total:
        c = rollouts_to_event(steps, n, eval_freq, total)
        agents, steps = run(agents, steps, c), steps + c * n
        val.reached(steps, events_in(steps - n, steps, eval_freq), agents["params"])
    if val.active.any():
        agents = run(agents, steps, 0)  # optimize on the last rollout
    val.finish()
    return val.results(agents["params"])


def train_ppo_population(dataset: Dataset, reg: str, hparams: Sequence[dict],
                         seeds: Sequence[int], *, device: str = "cpu", progress: bool = False,
                         **options: Any) -> list[TrainResult]:
    """Train K PPO agents (configuration k with seed k); one compiled program per shape
    group. Returns the K results in input order, each as :func:`train_ppo` would return it."""
    return train_groups("ppo", train_group, VALUES, dataset, reg, hparams, seeds, device=device,
                        progress=progress, options=options)


def train_ppo(dataset: Dataset, reg: str, hparams: dict, seed: int, *, device: str = "cpu",
              progress: bool = False, log_critic: bool = False, **options: Any) -> TrainResult:
    """Train one PPO agent (a population of one); ``log_critic`` is ignored (DDPG only)."""
    return train_ppo_population(dataset, reg, [hparams], [seed], device=device,
                                progress=progress, **options)[0]


#: The jax backend's PPO: one compiled agent or a population in one program.
TRAINERS = {"ppo": Trainer(train_ppo, train_ppo_population, OPTIONS,
                         frozenset(), gpu_available=jaxrt.gpu_available)}
