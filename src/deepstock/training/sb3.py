"""DDPG and PPO with stable-baselines3 on :class:`deepstock.training.envs.InventoryEnv` (spec §4, §7.1-7.4).

- Environment: one training env (uniform trajectory choice, seeded with the run seed) in
  ``DummyVecEnv([Monitor(env)])`` on CPU with one torch thread.
- Schedules (spec §7.3): SB3 ``LinearSchedule(start, end, end_fraction)`` of the progress
  p = num_timesteps / total_steps (SB3 passes progress_remaining = 1 - p; ``learn`` is called
  with ``total_timesteps = total_steps`` so early stopping does not change p). LR: learning_rate
  -> lr_min over lr_fraction (actor and critic alike); PPO clip: clip_range ->
  clip_end_ratio·clip_range over lr_fraction.
- Initial action bias (spec §4): DDPG adds atanh(2b₀-1) (3·(2b₀-1) when |2b₀-1| >= 0.99) to the
  online actor's last Linear bias (target actor unshifted unless ``ddpg_bias_on_target``); PPO
  sets the ``action_net`` bias (the Gaussian mean) to low + b₀·(high-low).
- Evaluation (spec §7.2): every ``eval_freq`` env steps, the deterministic policy on the whole
  validation split in ONE batched rollout of the shared simulator; metric = mean episode return
  (:func:`deepstock.training.envs.window_returns`). Checkpoint on strict improvement; stop like SB3's
  ``StopTrainingOnNoModelImprovement(patience_evals, min_evals)``; cap ``total_steps``; restore the
  best checkpoint (``checkpoint: best``) or keep the last. An evaluation of the initial policy is
  recorded as curve row ``step = 0`` but takes no part in selection or stopping.
- ``log_critic`` (DDPG, Figure 3): every critic loss (MSE Bellman error of each gradient update)
  and the next observation of the first ``critic_log_steps`` transitions entering the replay
  buffer, returned as DataFrames ``extras["critic_log"]`` and ``extras["replay_log"]``.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from stable_baselines3 import DDPG, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn

from deepstock.errors import ConfigError
from deepstock.problem.data import Dataset
from deepstock.problem.dynamics import Observation
from deepstock.problem.evaluation import simulate_split
from deepstock.problem.losses import LossConfig, trajectory_loss
from deepstock.registry import get_method
from deepstock.training import TrainResult
from deepstock.training.backends import (
    Trainer,
    complete_config,
    resolve_device,
    rl_extras,
    selected_result,
)
from deepstock.training.common import NoImprovementStopper, seed_everything
from deepstock.training.envs import InventoryEnv, network_policy, rl_context, window_returns
from deepstock.training.regularizations import RegularizationParams, get_regularization

OPTIONS: dict[str, Any] = {
    "train_split": "train", "val_split": "val", "critic_log_steps": 10000,
}


# ---------------------------------------------------------------------- schedules and bias
def linear_schedule(start: float, end: float, end_fraction: float) -> LinearSchedule:
    """Spec §7.3: start + p·(end - start)/end_fraction while p <= end_fraction, then end."""
    return LinearSchedule(float(start), float(end), float(end_fraction))


def ddpg_bias_shift(b0: float) -> float:
    """Pre-tanh shift that makes the squashed output 2b₀ - 1, i.e. the action b₀ of the box."""
    v = 2.0 * float(b0) - 1.0
    return 3.0 * v if abs(v) >= 0.99 else math.atanh(v)


def _last_linear(module: nn.Module) -> nn.Linear:
    layers = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not layers:
        raise ConfigError("policy network has no Linear layer to bias")
    return layers[-1]


def apply_ddpg_bias(model: DDPG, b0: float, *, on_target: bool = False) -> None:
    """Add :func:`ddpg_bias_shift` to the last Linear bias of the online actor (spec §4)."""
    shift = ddpg_bias_shift(b0)
    actors = [model.actor] + ([model.actor_target] if on_target else [])
    with torch.no_grad():
        for actor in actors:
            _last_linear(actor.mu).bias.add_(shift)


def apply_ppo_bias(model: PPO, b0: float) -> None:
    """Set the Gaussian mean bias to low + b₀·(high - low) per action dimension (spec §4),
    computed in float32 like the authors' code (the box's float32 bounds times b₀ as float32):
    the float64 value rounded once can land one float32 ulp apart (28.207903 against their
    28.207901 for b₀ = 0.2820790…, M = 100), and the training then diverges from theirs."""
    space = model.action_space
    low, high = space.low.astype(np.float32), space.high.astype(np.float32)
    target = low + np.float32(b0) * (high - low)
    with torch.no_grad():
        bias = model.policy.action_net.bias
        bias.copy_(torch.as_tensor(target, dtype=bias.dtype, device=bias.device))


# ---------------------------------------------------------------------- policy adapter
class SB3Policy:
    """Numpy Observation -> orders [n] from an SB3 model's deterministic ``predict`` (batched)."""

    def __init__(
        self, model: BaseAlgorithm, reg: str, reg_params: RegularizationParams,
        z_table: np.ndarray | None = None,
    ) -> None:
        self.model, self.reg, self.reg_params = model, reg, reg_params
        self._policy = network_policy(self.predict, reg, reg_params, z=z_table)

    def predict(self, inputs: np.ndarray) -> np.ndarray:
        actions, _ = self.model.predict(inputs, deterministic=True)
        return actions

    def __call__(self, obs: Observation) -> np.ndarray:
        return self._policy(obs)


class _ValEvaluator:
    """Batched evaluation of the deterministic policy on one split (spec §7.2)."""

    def __init__(self, dataset: Dataset, split: str, policy: SB3Policy, loss: LossConfig) -> None:
        self.dataset, self.split, self.policy = dataset, split, policy
        self.loss = loss

    def __call__(self) -> tuple[float, float]:
        """(validation loss, mean episode return) of the current policy. Each episode's return
        is rounded to 6 decimals, as SB3's ``Monitor`` wrapper of the authors' evaluation env
        reports it (``round(sum(rewards), 6)``, which ``EvalCallback`` averages): returns that
        agree to 6 decimals tie, and on a tie the earlier checkpoint stays the best one, as in
        their runs (docs/choices.md, "Floating-point order of operations")."""
        ro = simulate_split(self.policy, self.dataset, self.split)
        per = np.asarray(trajectory_loss(ro, self.loss))
        returns = window_returns(ro, self.loss)
        monitored = np.array([round(float(r), 6) for r in returns])
        return float(per.mean()), float(monitored.mean())


class _EvalCallback(BaseCallback):
    """Evaluate every ``eval_freq`` steps, checkpoint on strict improvement, stop early."""

    def __init__(self, evaluate: _ValEvaluator, cfg: dict, lr_fn: Callable[[float], float],
                 bar: Any = None) -> None:
        super().__init__(verbose=0)
        self.evaluate, self.lr_fn, self.bar = evaluate, lr_fn, bar
        self.eval_freq = int(cfg["eval_freq"])
        self.total_steps = int(cfg["total_steps"])
        self.stopper = NoImprovementStopper(cfg["patience_evals"], cfg["min_evals"])
        self.best_return = -math.inf
        self.best_state: dict | None = None
        self.best_step = 0
        self.history: list[dict] = []
        self.eval_seconds = 0.0
        self.stopped_early = False
        self.t_start = time.perf_counter()

    def run_eval(self, step: int, *, counted: bool = True) -> bool:
        t0 = time.perf_counter()
        val_loss, mean_return = self.evaluate()
        keep_going = True
        if counted:
            if mean_return > self.best_return:  # strict; NaN never improves
                self.best_return = mean_return
                self.best_state = copy.deepcopy(self.model.policy.state_dict())
                self.best_step = step
            keep_going = self.stopper.update(self.best_return)
        p = step / self.total_steps
        self.history.append({
            "step": step, "val_loss": val_loss, "mean_return": mean_return,
            "best_mean_return": self.best_return if counted else math.nan,
            "lr": self.lr_fn(1.0 - p), "no_improvement": self.stopper.counter,
            "wall_s": time.perf_counter() - self.t_start,
        })
        self.eval_seconds += time.perf_counter() - t0
        if self.bar is not None and counted:
            self.bar.update(step - self.bar.n)
            self.bar.set_postfix(val=f"{val_loss:.4f}", best=f"{-self.best_return:.3f}")
        return keep_going

    def _on_step(self) -> bool:
        if self.n_calls % self.eval_freq:
            return True
        keep_going = self.run_eval(self.num_timesteps)
        self.stopped_early = not keep_going
        return keep_going


class _LoggedDDPG(DDPG):
    """DDPG that records every critic loss and the first transitions entering the replay buffer.

    ``train`` runs SB3's update one gradient step at a time (numerically identical for DDPG:
    the steps are independent apart from the update counter) and reads the critic loss SB3 logs.
    """

    critic_log_steps = 10000
    position_scale = 1.0  # on-hand unit of the observation (M for Coeff/Both, which divide by M)

    def _init_logs(self) -> None:
        self.critic_rows: list[tuple[int, int, float, float]] = []
        self.replay_rows: list[dict] = []

    def train(self, gradient_steps: int, batch_size: int = 100) -> None:
        for _ in range(gradient_steps):
            super().train(1, batch_size)
            loss = float(self.logger.name_to_value["train/critic_loss"])
            lr = float(self.critic.optimizer.param_groups[0]["lr"])
            self.critic_rows.append((self._n_updates, self.num_timesteps, loss, lr))

    def _store_transition(self, replay_buffer, buffer_action, new_obs, reward, dones, infos) -> None:
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)
        if len(self.replay_rows) >= self.critic_log_steps:
            return
        pos = (replay_buffer.pos - 1) % replay_buffer.buffer_size
        nxt = replay_buffer.next_observations[pos, 0]
        info = infos[0]
        self.replay_rows.append({
            "step": self.num_timesteps, "x": float(nxt[0]),
            "onhand": float(nxt[1]) * self.position_scale,
            "order": float(info.get("order", math.nan)), "reward": float(reward[0]),
            "done": bool(dones[0]),
        })

    def logs(self) -> dict[str, pd.DataFrame]:
        critic = pd.DataFrame(self.critic_rows, columns=["update", "step", "critic_loss", "lr"])
        replay = pd.DataFrame(self.replay_rows,
                              columns=["step", "x", "onhand", "order", "reward", "done"])
        return {"critic_log": critic, "replay_log": replay}


# ---------------------------------------------------------------------- shared driver
def _config(method: str, hparams: dict, options: dict) -> dict:
    """The complete hyper-parameters (resolved by ``deepstock.hparams``) plus the run options."""
    return complete_config(method, hparams, options, OPTIONS)


@dataclass
class SB3Setup:
    """An SB3 model ready to learn, with its training env and the batched policy adapter."""

    method: str
    reg: str
    model: BaseAlgorithm
    env: InventoryEnv
    venv: DummyVecEnv
    cfg: dict
    reg_params: RegularizationParams
    loss: LossConfig
    policy: SB3Policy
    lr: LinearSchedule


def _ddpg(venv: DummyVecEnv, cfg: dict, common: dict, *, log_critic: bool,
          position_scale: float) -> BaseAlgorithm:
    """SB3 DDPG (no action noise) with the initial action bias; the critic log if asked."""
    cls = _LoggedDDPG if log_critic else DDPG
    model = cls(
        "MlpPolicy", venv, buffer_size=int(cfg["buffer_size"]),
        learning_starts=int(cfg["learning_starts"]), batch_size=int(cfg["batch_size"]),
        tau=float(cfg["tau"]), train_freq=(int(cfg["train_freq"]), "step"),
        gradient_steps=int(cfg["gradient_steps"]), action_noise=None, **common,
    )
    apply_ddpg_bias(model, float(cfg["initial_action_bias"]),
                    on_target=bool(cfg["ddpg_bias_on_target"]))
    if log_critic:
        model._init_logs()
        model.critic_log_steps = int(cfg["critic_log_steps"])
        model.position_scale = position_scale
    return model


def _ppo(venv: DummyVecEnv, cfg: dict, common: dict, *, log_critic: bool,
         position_scale: float) -> BaseAlgorithm:
    """SB3 PPO with the clip-range schedule and the initial action bias (no critic log)."""
    clip = float(cfg["clip_range"])
    model = PPO(
        "MlpPolicy", venv, n_steps=int(cfg["n_steps"]), batch_size=int(cfg["batch_size"]),
        n_epochs=int(cfg["n_epochs"]), gae_lambda=float(cfg["gae_lambda"]),
        clip_range=linear_schedule(clip, clip * float(cfg["clip_end_ratio"]),
                                   cfg["lr_fraction"]),
        ent_coef=float(cfg["ent_coef"]), vf_coef=float(cfg["vf_coef"]),
        max_grad_norm=float(cfg["max_grad_norm"]), target_kl=None, **common,
    )
    apply_ppo_bias(model, float(cfg["initial_action_bias"]))
    return model


#: The SB3 model of each method this backend trains.
MODELS = {"ddpg": _ddpg, "ppo": _ppo}


def build_model(method: str, dataset: Dataset, reg: str, hparams: dict, seed: int, *,
                device: str = "cpu", log_critic: bool = False, **options: Any) -> SB3Setup:
    """Seed, build the env and the SB3 model (spec §7.4) and apply the initial action bias."""
    if "sb3" not in get_method(method).backends or method not in MODELS:
        raise ConfigError(f"method {method!r} has no SB3 backend")
    cfg = _config(method, hparams, options)
    dev = resolve_device(method, device, "sb3")
    seed_everything(seed, threads=1)
    regz = get_regularization(reg)
    reg_params = RegularizationParams(
        M=float(cfg["M"]), coeff_scale=float(cfg["coeff_scale"]),
        coeff_clip=tuple(float(c) for c in cfg["coeff_clip"]),
    )
    loss_cfg = dataset.setting.loss(cfg["loss_h"])
    env = InventoryEnv(dataset, cfg["train_split"], reg, mode="train", reg_params=reg_params,
                       loss=loss_cfg)
    venv = DummyVecEnv([lambda: Monitor(env)])
    lr = linear_schedule(cfg["learning_rate"], cfg["lr_min"], cfg["lr_fraction"])
    common = {"learning_rate": lr, "gamma": float(cfg["gamma"]), "seed": int(seed),
              "device": dev, "verbose": 0,
              "policy_kwargs": {"net_arch": {k: list(v) for k, v in cfg["net_arch"].items()}}}
    model = MODELS[method](venv, cfg, common, log_critic=log_critic,
                           position_scale=reg_params.M if regz.uses_coeff else 1.0)
    z_table = rl_context(dataset) if regz.uses_coeff else None
    policy = SB3Policy(model, reg, reg_params, z_table)
    return SB3Setup(method, reg, model, env, venv, cfg, reg_params, loss_cfg, policy, lr)


def _train_sb3(method: str, dataset: Dataset, reg: str, hparams: dict, seed: int, *,
               device: str, progress: bool, log_critic: bool, options: dict) -> TrainResult:
    t0 = time.perf_counter()
    setup = build_model(method, dataset, reg, hparams, seed, device=device,
                        log_critic=log_critic, **options)
    model, env, cfg, policy, loss_cfg = setup.model, setup.env, setup.cfg, setup.policy, setup.loss
    total = int(cfg["total_steps"])
    st = dataset.setting
    lr = setup.lr
    evaluator = _ValEvaluator(dataset, cfg["val_split"], policy, loss_cfg)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=f"{method}-{reg} {st.id}", leave=False)
    callback = _EvalCallback(evaluator, cfg, lr, bar)
    callback.run_eval(0, counted=False)  # initial policy, for the curve only
    t_learn = time.perf_counter()
    model.learn(total_timesteps=total, callback=callback, reset_num_timesteps=True)
    learn_s = time.perf_counter() - t_learn
    if bar is not None:
        bar.close()
    if callback.stopper.n_evals == 0:  # fewer steps than eval_freq: the final policy is the only one
        callback.run_eval(model.num_timesteps)
    if cfg["checkpoint"] == "best" and callback.best_state is not None:
        model.policy.load_state_dict(callback.best_state)

    steps = int(model.num_timesteps)
    extras: dict[str, Any] = rl_extras(
        best_step=callback.best_step, n_evals=callback.stopper.n_evals,
        stopped_early=callback.stopped_early, eval_seconds=callback.eval_seconds,
        learn_seconds=learn_s, steps=steps, episode_length=env.episode_length)
    if log_critic and isinstance(model, _LoggedDDPG):
        extras.update(model.logs())
    setup.venv.close()
    return selected_result(
        dataset, method, reg, seed, cfg, policy, loss_cfg,
        best_val=-callback.best_return / env.counted_decisions, iterations=steps,
        wall_s=time.perf_counter() - t0, device=str(model.device),
        curve=pd.DataFrame(callback.history), extras=extras, model_state=model, backend="sb3")


def train_ddpg(dataset: Dataset, reg: str, hparams: dict, seed: int, *, device: str = "cpu",
               progress: bool = False, log_critic: bool = False, **options: Any) -> TrainResult:
    """Train SB3 DDPG (spec §7.4) on the training split; see the module docstring."""
    return _train_sb3("ddpg", dataset, reg, hparams, seed, device=device, progress=progress,
                      log_critic=log_critic, options=options)


def train_ppo(dataset: Dataset, reg: str, hparams: dict, seed: int, *, device: str = "cpu",
              progress: bool = False, log_critic: bool = False, **options: Any) -> TrainResult:
    """Train SB3 PPO (spec §7.4) on the training split; ``log_critic`` is ignored (DDPG only)."""
    return _train_sb3("ppo", dataset, reg, hparams, seed, device=device, progress=progress,
                      log_critic=False, options=options)


#: The sb3 backend: stable-baselines3's DDPG and PPO (the reference implementations).
TRAINERS = {
    "ddpg": Trainer(train_ddpg, None, {**OPTIONS, "log_critic": False},
                    frozenset({"critic_log"})),
    "ppo": Trainer(train_ppo, None, OPTIONS),
}
