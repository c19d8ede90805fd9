"""What the compiled DDPG and PPO share: networks, schedules, populations and validation.

A **population** is K agents of one algorithm trained in one compiled program: the agent state
(parameters, optimizer, buffers, environment, random key) and the value hyper-parameters (learning
rate, gamma, tau, clip range, ... as float arrays) carry a leading axis K, and the single-agent
chunk is lifted over it by :func:`over_agents`: ``jax.vmap`` on a GPU, ``lax.map`` on a CPU (``sequential``: each
agent then runs exactly the single-agent program: a population member equals its single run bit
for bit). Training chunks are lifted by :func:`over_active`, which also takes the mask of agents
still training: under ``lax.map`` a stopped agent is skipped (``lax.cond``), so on a CPU a
population costs the sum of its agents' steps, not K times the longest; under ``vmap`` it is
computed and discarded. Shapes (network widths, batch, buffer, n_steps, ...) are shared by the group and
compiled once. ``deepstock train`` is a population of K = 1.

Each algorithm's module holds its own training loop (``train_group``), in execution order, as
CleanRL and PureJaxRL do; what the loops share is here: a population's :class:`Setup` (checked
configurations, the split arrays on the device), its stacked initialization, the compile cache,
and :class:`Validation`, SB3's evaluation callback on the host (spec §7.2): at each evaluation
event (a step count divisible by ``eval_freq``) the deterministic policies are evaluated on the
whole validation split in one batched program (:func:`deepstock.training.envs_jax.episode_returns`),
each agent's SB3 ``StopTrainingOnNoModelImprovement`` counter is updated, its best-return
parameters are kept, and an agent that stops is frozen (the chunks' mask leaves its state
unchanged). A loop ends when every agent has stopped or reached ``total_steps``; the selected
policy of each agent (best or last) is then evaluated on the train/val/test splits by the shared
simulator, like SB3's. Configuration has two carriers, as in gymnax: the algorithm's static
``Shape`` (compiled in) and the value hyper-parameters ``hp`` (arrays [K]); the host loop reads
only ``eval_freq`` and ``total_steps`` from the configurations.

Initializations (SB3 defaults): DDPG layers as torch ``nn.Linear`` (weights and biases
U(±1/√fan_in)); PPO orthogonal weights (gain √2 hidden, 0.01 action, 1 value) and zero biases.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from deepstock.errors import ConfigError
from deepstock.problem.data import Dataset
from deepstock.problem.losses import LossConfig
from deepstock.registry import get_regularization
from deepstock.training import TrainResult, envs_jax, jaxrt
from deepstock.training.backends import (
    complete_config,
    resolve_device,
    rl_extras,
    selected_result,
)
from deepstock.training.common import NoImprovementStopper, group_by_shape
from deepstock.training.envs import network_policy, rl_context
from deepstock.training.regularizations import RegularizationParams

#: ``population`` (:data:`deepstock.training.backends.POPULATION_MODES`): ``sequential`` is
#: ``lax.map`` (each agent runs exactly the single-agent program, so a population member equals
#: its single run bit for bit; on one CPU core vmap adds only ~15 % throughput).
OPTIONS: dict[str, Any] = {"train_split": "train", "val_split": "val",
                           "population": "auto"}

Params = list  # [(W [in, out], b [out]), ...]


# ---------------------------------------------------------------------- networks
def torch_linear(key, n_in: int, n_out: int):
    """A torch ``nn.Linear`` default initialization: W, b ~ U(-1/√n_in, 1/√n_in)."""
    kw, kb = jax.random.split(key)
    bound = 1.0 / math.sqrt(n_in)
    return (jax.random.uniform(kw, (n_in, n_out), minval=-bound, maxval=bound),
            jax.random.uniform(kb, (n_out,), minval=-bound, maxval=bound))


def orthogonal_linear(key, n_in: int, n_out: int, gain: float):
    """SB3's ``ActorCriticPolicy`` initialization: orthogonal weights with ``gain``, zero bias."""
    w = jax.nn.initializers.orthogonal(scale=gain)(key, (n_in, n_out))
    return w, jnp.zeros((n_out,))


def mlp_init(key, sizes: Sequence[int], layer: Callable) -> Params:
    """Layers sizes[0] -> sizes[1] -> ... initialized by ``layer(key, n_in, n_out)``."""
    keys = jax.random.split(key, len(sizes) - 1)
    return [layer(k, a, b) for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True)]


@jax.custom_jvp
def tanh(x):
    """tanh that saturates like torch's float32 tanh, with torch's derivative 1 - tanh².

    XLA's float32 tanh returns exactly ±1 from |x| ≈ 7.9, where torch's still differs from ±1
    (up to |x| ≈ 9): there torch's gradient is tiny but not zero, and Adam, which normalizes
    gradient magnitudes, turns it into full-size steps out of saturation, while XLA's zero
    gradient leaves a saturated DDPG actor stuck. For |x| >= 7.5 this computes
    1 - 2 / (exp(2|x|) + 1), rounded to float32 like torch's result.
    """
    a = jnp.abs(x)
    tail = jnp.sign(x) * (1.0 - 2.0 / (jnp.exp(2.0 * jnp.minimum(a, 40.0)) + 1.0))
    return jnp.where(a >= 7.5, tail, jnp.tanh(x))


@tanh.defjvp
def _tanh_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    y = tanh(x)
    return y, (1.0 - y * y) * dx


def mlp(params: Params, x, hidden=jax.nn.relu):
    """Hidden activation after every layer but the last (no output activation)."""
    for w, b in params[:-1]:
        x = hidden(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def shift_last_bias(params: Params, shift) -> Params:
    """``params`` with ``shift`` added to the last layer's bias."""
    w, b = params[-1]
    return [*params[:-1], (w, b + shift)]


def linear_schedule(start, end, end_fraction, progress):
    """SB3 ``LinearSchedule`` of the progress p (spec §7.3): start + p·(end-start)/end_fraction
    while p <= end_fraction, then end."""
    return jnp.where(progress > end_fraction, end,
                     start + progress * (end - start) / end_fraction)


# ---------------------------------------------------------------------- configurations
def jax_config(method: str, hparams: dict, options: dict) -> dict:
    """The complete, checked hyper-parameters plus the run options (trainers hold no defaults)."""
    return complete_config(method, hparams, options, OPTIONS)


def over_agents(fn: Callable, batched: bool, n_shared: int) -> Callable:
    """``fn(agent, hp, *shared)`` for one agent -> the same over stacked agents and hp:
    ``jax.vmap`` when ``batched``, else ``jax.lax.map`` (agents one after the other)."""
    if batched:
        return jax.vmap(fn, in_axes=(0, 0) + (None,) * n_shared)

    def mapped(agents, hp, *shared):
        return jax.lax.map(lambda pair: fn(pair[0], pair[1], *shared), (agents, hp))

    return mapped


def over_active(fn: Callable, batched: bool, n_shared: int) -> Callable:
    """``fn(agent, hp, *shared)`` -> ``f(agents, hp, active, *shared)`` over stacked agents,
    where an agent with ``active[k]`` False is returned unchanged (module docstring)."""
    if batched:
        every = jax.vmap(fn, in_axes=(0, 0) + (None,) * n_shared)

        def vmapped(agents, hp, active, *shared):
            return select(active, every(agents, hp, *shared), agents)

        return vmapped

    def mapped(agents, hp, active, *shared):
        def one(triple):
            a, h, on = triple
            return jax.lax.cond(on, lambda x: fn(x, h, *shared), lambda x: x, a)

        return jax.lax.map(one, (agents, hp, active))

    return mapped


def budget(configs: Sequence[dict], unit: int) -> int:
    """The steps SB3 runs for a population: the largest ``total_steps``, rounded up to whole
    units (DDPG's training periods of ``train_freq`` steps, PPO's rollouts of ``n_steps``)."""
    return math.ceil(max(int(c["total_steps"]) for c in configs) / unit) * unit


def stack_values(configs: Sequence[dict], keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Value hyper-parameters as float32 host arrays [K] (one compiled program for any values;
    :func:`init_population` places them on the device)."""
    return {k: np.asarray([float(c[k]) for c in configs], dtype=np.float32) for k in keys}


# ---------------------------------------------------------------------- a population's setup
@dataclass
class Setup:
    """What a population needs, built once from the dataset and the configurations."""

    method: str
    dataset: Dataset
    reg: str
    configs: list[dict]
    seeds: list[int]
    device: Any
    consts: envs_jax.EnvConstants
    train: envs_jax.EnvData
    val: envs_jax.EnvData
    reg_params: RegularizationParams
    loss: LossConfig
    extras: dict = field(default_factory=dict)

    @property
    def config(self) -> dict:
        return self.configs[0]

    @property
    def batched(self) -> bool:
        """Whether the population is vmapped (``population``: vmap, or auto off the CPU)."""
        mode = self.config["population"]
        return mode == "vmap" or (mode == "auto" and self.device.platform != "cpu")


def make_setup(method: str, dataset: Dataset, reg: str, configs: Sequence[dict],
               seeds: Sequence[int], device: str, value_keys: Sequence[str]) -> Setup:
    """A population of one shape group: ``configs`` complete (:func:`jax_config`), one seed
    each; places the split arrays on the device."""
    if not configs or len(configs) != len(seeds):
        raise ConfigError(f"a {method} population needs one seed per configuration, got "
                          f"{len(configs)} configurations and {len(seeds)} seeds")
    if len(group_by_shape(configs, value_keys)) != 1:
        raise ConfigError(f"a {method} population needs configurations of one shape; group them "
                          "with jax_common.group_by_shape (train_groups does)")
    get_regularization(reg)
    jaxrt.setup()  # before JAX's first computation here: the XLA flags, threefry, the core pin
    dev = jaxrt.device(resolve_device(method, device, "jax"))
    cfg = configs[0]
    reg_params = RegularizationParams(M=float(cfg["M"]), coeff_scale=float(cfg["coeff_scale"]),
                                      coeff_clip=tuple(float(c) for c in cfg["coeff_clip"]))
    loss = dataset.setting.loss(cfg["loss_h"])
    consts = envs_jax.env_constants(dataset, reg, reg_params, loss)
    with jax.default_device(dev):
        train = envs_jax.env_data(dataset, cfg["train_split"], jnp.float32)
        val = envs_jax.env_data(dataset, cfg["val_split"], jnp.float32)
    return Setup(method, dataset, reg, list(configs), [int(s) for s in seeds], dev, consts, train,
                 val, reg_params, loss)


# ---------------------------------------------------------------------- programs
_INITIALIZERS: dict[tuple, Callable] = {}
_COMPILED: dict[tuple, Any] = {}


def init_population(setup: Setup, init_agent: Callable, shape: Any,
                    arrays: Sequence[str]) -> tuple[Any, dict]:
    """The stacked agents and value hyper-parameters of a population, on its device.

    ``init_agent(shape, data, hp, key)`` initializes one agent; the population is initialized
    by one compiled program per (algorithm, shape), not op by op.
    """
    key = (init_agent, shape)
    if key not in _INITIALIZERS:
        _INITIALIZERS[key] = jax.jit(jax.vmap(lambda h, k, d: init_agent(shape, d, h, k),
                                              in_axes=(0, 0, None)))
    hp = stack_values(setup.configs, arrays)
    with jax.default_device(setup.device):
        keys = jnp.stack([jax.random.PRNGKey(s) for s in setup.seeds])
        hp = jax.device_put(hp, setup.device)
        agents = _INITIALIZERS[key](hp, keys, setup.train)
    return agents, hp


def compile_chunk(fn: Callable, shape: Any, agents, hp, data, *example) -> tuple[Any, float]:
    """``fn(shape, agents, hp, data, *values)`` compiled for these shapes (``example``: values of
    the scalar arguments), from the in-process cache, the persistent cache or XLA; and the
    seconds it took (0 from the in-process cache)."""
    specimen = jax.tree_util.tree_map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype),
                                      (agents, hp, data))
    key = (fn, shape, repr(specimen), str(jax.tree_util.tree_leaves(data)[0].devices()))
    if key in _COMPILED:
        return _COMPILED[key], 0.0
    t0 = time.perf_counter()
    _COMPILED[key] = jax.jit(fn, static_argnums=0).lower(shape, agents, hp, data,
                                                         *example).compile()
    return _COMPILED[key], time.perf_counter() - t0


def train_groups(method: str, train_group: Callable, values: Sequence[str], dataset: Dataset,
                 reg: str, hparams: Sequence[dict], seeds: Sequence[int], *, device: str,
                 progress: bool, options: dict) -> list[TrainResult]:
    """Train configuration k with seed k: ``train_group(setup, progress=...)`` once per group of
    configurations of one shape (``values``: the keys that may differ within a group, compiled
    once for the group); the results in input order."""
    configs = [jax_config(method, h, options) for h in hparams]
    results: list[TrainResult | None] = [None] * len(configs)
    for group in group_by_shape(configs, values):
        setup = make_setup(method, dataset, reg, [configs[i] for i in group],
                           [seeds[i] for i in group], device, values)
        for i, result in zip(group, train_group(setup, progress=progress), strict=True):
            results[i] = result
    return results  # type: ignore[return-value]


# ---------------------------------------------------------------------- evaluation
@functools.cache
def evaluator(act: Callable, shape: Any) -> Callable:
    """Compiled batched validation of a population, one per (algorithm, shape): actor
    parameters [K, ...] and the split's data -> (mean return [K], mean episode loss [K])."""
    def one(params, _, data):
        ret, ell = envs_jax.episode_returns(shape.consts, data,
                                            lambda obs: act(shape, params, obs))
        return ret.mean(), ell.mean()

    lifted = over_agents(one, shape.batched, 1)
    return jax.jit(lambda params, data: lifted(params, jnp.zeros(_leading(params)), data))


def _leading(tree) -> int:
    return jax.tree_util.tree_leaves(tree)[0].shape[0]


@functools.cache
def predictor(act: Callable, shape: Any) -> Callable:
    """Compiled deterministic policy of one agent: (params, float32 inputs [n, d]) -> actions."""
    return jax.jit(functools.partial(act, shape))


def lr_values(configs: Sequence[dict], step: int) -> np.ndarray:
    """Per-agent learning rate after ``step`` env steps (SB3 linear schedule, spec §7.3)."""
    def column(key: str) -> np.ndarray:
        return np.array([float(c[key]) for c in configs])

    return np.asarray(linear_schedule(column("learning_rate"), column("lr_min"),
                                      column("lr_fraction"), step / column("total_steps")),
                      dtype=float)


@jax.jit
def select(mask, new, old):
    """Per-agent choice between two stacked pytrees (mask [K]); one compiled program per tree
    structure (op by op, each leaf would compile its own)."""
    def pick(a, b):
        return jnp.where(mask.reshape(mask.shape + (1,) * (a.ndim - 1)), a, b)

    return jax.tree_util.tree_map(pick, new, old)


def keep_best(improved: np.ndarray, actor, best):
    """Each agent's best parameters after an evaluation: its ``actor`` where ``improved``, else
    its ``best`` (no program runs when every agent or none improved)."""
    if improved.all():
        return actor
    if not improved.any():
        return best
    return select(improved, actor, best)


def agent(tree, k: int):
    """Agent k's slice of a stacked pytree (host numpy arrays: nothing is compiled)."""
    return jax.tree_util.tree_map(lambda a: a[k], tree)


# ---------------------------------------------------------------------- validation during training
@dataclass
class Tracker:
    """Per-agent evaluation history, early stopping and best parameters (spec §7.2)."""

    configs: list[dict]
    stoppers: list[NoImprovementStopper]
    active: np.ndarray
    best_return: np.ndarray
    best_step: np.ndarray
    steps: np.ndarray
    stopped_early: np.ndarray
    history: list[list[dict]]
    best_params: Any = None

    @classmethod
    def start(cls, configs: list[dict]) -> Tracker:
        k = len(configs)
        return cls(configs, [NoImprovementStopper(c["patience_evals"], c["min_evals"])
                             for c in configs],
                   np.ones(k, bool), np.full(k, -math.inf), np.zeros(k, int), np.zeros(k, int),
                   np.zeros(k, bool), [[] for _ in range(k)])

    def record(self, step: int, returns, losses, lrs, wall: float, *, counted: bool,
               which: Sequence[int] | None = None) -> np.ndarray:
        """Apply one evaluation event to the active agents (or to ``which``); return the agents
        whose best return improved."""
        improved = np.zeros(len(self.configs), bool)
        for k in np.flatnonzero(self.active) if which is None else which:
            ret = float(returns[k])
            if counted:
                if ret > self.best_return[k]:  # strict; NaN never improves
                    self.best_return[k], self.best_step[k], improved[k] = ret, step, True
                if not self.stoppers[k].update(self.best_return[k]):
                    self.active[k], self.stopped_early[k] = False, True
                self.steps[k] = step
            self.history[k].append({
                "step": step, "val_loss": float(losses[k]), "mean_return": ret,
                "best_mean_return": self.best_return[k] if counted else math.nan,
                "lr": float(lrs[k]), "no_improvement": self.stoppers[k].counter, "wall_s": wall,
            })
        return improved


class Validation:
    """SB3's evaluation callback of a population, on the host (spec §7.2), for the algorithm's
    own training loop: :meth:`start` evaluates the initial policies (step 0, not counted);
    :meth:`reached` records the step count after each compiled chunk and, at evaluation events,
    evaluates the deterministic policies on the whole validation split in one batched program,
    updates each agent's early-stopping counter (an agent that stops is frozen: ``active``
    masks it out of later chunks) and keeps its best-return parameters; :meth:`finish` stops
    the learning clock; :meth:`results` evaluates a policy never evaluated during training
    (fewer steps than ``eval_freq``, as the SB3 trainer does), then selects each agent's
    policy (best or last) and evaluates it on the train/val/test splits through the shared
    simulator. ``act(shape, params, obs)`` is the algorithm's deterministic policy."""

    def __init__(self, setup: Setup, act: Callable, shape: Any, *, total: int, started: float,
                 compile_seconds: float, progress: bool) -> None:
        self.setup, self.act, self.shape = setup, act, shape
        self.tracker = Tracker.start(setup.configs)
        self.started, self.compile_seconds = started, compile_seconds
        self.eval_seconds = self.learn_seconds = 0.0
        self._evaluate = evaluator(act, shape)
        self._t0 = self._t_learn = time.perf_counter()
        self._bar = _progress_bar(setup, total) if progress else None

    @property
    def active(self) -> np.ndarray:
        """The agents still training (a copy: the chunk's mask)."""
        return self.tracker.active.copy()

    def start(self, actor) -> None:
        """Evaluate the initial policies (compiling the evaluator) at step 0, not counted."""
        t = time.perf_counter()
        returns, losses = jax.device_get(self._evaluate(actor, self.setup.val))
        self.compile_seconds += time.perf_counter() - t
        self.tracker.record(0, returns, losses, lr_values(self.setup.configs, 0),
                            time.perf_counter() - self._t0, counted=False)
        self.tracker.best_params = actor
        self._t_learn = time.perf_counter()

    def reached(self, steps: int, events: Sequence[int], actor) -> None:
        """The active agents ran to ``steps``; the evaluation ``events`` (steps) inside the
        chunk saw the policies ``actor``."""
        self.tracker.steps[self.tracker.active] = steps
        if events:
            self._record(events, actor)
        if self._bar is not None:
            self._bar.update(steps - self._bar.n)

    def _record(self, events: Sequence[int], actor, which: Sequence[int] | None = None) -> None:
        t = time.perf_counter()
        returns, losses = jax.device_get(self._evaluate(actor, self.setup.val))
        for event in events:
            improved = self.tracker.record(event, returns, losses,
                                           lr_values(self.setup.configs, event),
                                           time.perf_counter() - self._t0, counted=True,
                                           which=which)
            self.tracker.best_params = keep_best(improved, actor, self.tracker.best_params)
        self.eval_seconds += time.perf_counter() - t

    def finish(self) -> None:
        """Training is over: stop the learning clock and the progress bar."""
        self.learn_seconds = time.perf_counter() - self._t_learn
        if self._bar is not None:
            self._bar.close()

    def results(self, actor, logs: Callable[[int], dict] | None = None) -> list[TrainResult]:
        """One result per agent from the final policies ``actor`` (``logs(k)``: agent k's logs,
        added to its ``extras``)."""
        tracker = self.tracker
        never = [k for k in range(len(self.setup.configs)) if tracker.stoppers[k].n_evals == 0]
        if never:
            self._record([int(tracker.steps[never[0]])], actor, which=never)
        wall = time.perf_counter() - self.started
        last, best = jax.device_get((actor, tracker.best_params))
        return [self._result(k, agent(best if cfg["checkpoint"] == "best" else last, k),
                             logs(k) if logs else {}, wall)
                for k, cfg in enumerate(self.setup.configs)]

    def _result(self, k: int, chosen, logs: dict, wall: float) -> TrainResult:
        setup, tracker = self.setup, self.tracker
        steps = int(tracker.steps[k])
        extras = {
            **rl_extras(best_step=tracker.best_step[k], n_evals=tracker.stoppers[k].n_evals,
                        stopped_early=tracker.stopped_early[k], eval_seconds=self.eval_seconds,
                        learn_seconds=self.learn_seconds, steps=steps,
                        episode_length=setup.consts.episode_length),
            "compile_seconds": self.compile_seconds, "population_size": len(setup.configs),
            **setup.extras, **logs,
        }
        state = {name: np.asarray(a) for name, a in flatten(chosen).items()}
        return selected_result(
            setup.dataset, setup.method, setup.reg, setup.seeds[k], setup.configs[k],
            numpy_policy(setup, self.act, self.shape, chosen), setup.loss,
            best_val=-float(tracker.best_return[k]) / setup.consts.counted_decisions,
            iterations=steps, wall_s=wall,
            device=setup.device.platform, curve=pd.DataFrame(tracker.history[k]),
            extras=extras, model_state=state, backend="jax")


def _progress_bar(setup: Setup, total: int):
    from tqdm.auto import tqdm

    k = len(setup.configs)
    return tqdm(total=total, desc=f"{setup.method}-{setup.reg} {setup.dataset.setting.id} "
                f"(jax, {k} agent{'s' * (k > 1)})", leave=False)


def numpy_policy(setup: Setup, act: Callable, shape: Any, params) -> Callable:
    """The shared-simulator policy (numpy Observation -> orders) of one agent's parameters."""
    regz = get_regularization(setup.reg)
    z = rl_context(setup.dataset) if regz.uses_coeff else None
    cpu = jax.devices("cpu")[0]
    params = jax.device_put(params, cpu)
    fn = predictor(act, shape)

    def predict(inputs: np.ndarray) -> np.ndarray:
        with jax.default_device(cpu):
            return np.asarray(fn(params, jnp.asarray(inputs, jnp.float32)))

    return network_policy(predict, setup.reg, setup.reg_params, z=z)


def flatten(tree, prefix: str = "") -> dict[str, Any]:
    """Nested dicts/lists/tuples of arrays -> {"actor/0/w": array, ...} (``model.npz`` keys)."""
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, (list, tuple)):
        names = ("w", "b") if len(tree) == 2 and not isinstance(tree[0], (list, tuple, dict)) \
            else range(len(tree))
        items = zip(names, tree, strict=True)
    else:
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in items:
        out.update(flatten(value, f"{prefix}/{key}" if prefix else str(key)))
    return out
