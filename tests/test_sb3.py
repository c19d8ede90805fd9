"""SB3 DDPG/PPO trainers (spec §4, §7.2-7.4): schedules, bias init, stopping, batched evaluation."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from deepstock.errors import ConfigError
from deepstock.hparams import resolve_hparams
from deepstock.problem.data import Dataset
from deepstock.problem.evaluation import evaluate_policy
from deepstock.problem.settings import get_setting
from deepstock.training import save_run, train
from deepstock.training.common import NoImprovementStopper
from deepstock.training.envs import InventoryEnv, window_returns
from deepstock.training.sb3 import (
    apply_ddpg_bias,
    apply_ppo_bias,
    build_model,
    ddpg_bias_shift,
    linear_schedule,
    train_ddpg,
    train_ppo,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
SMALL_DDPG = {"net_arch": {"pi": [16, 16], "qf": [16, 16]}, "batch_size": 32}
SMALL_PPO = {"net_arch": {"pi": [32, 32], "vf": [32, 32]}}


def make_dataset(seed: int = 0, const: float | None = None, setting_id: str = "s1") -> Dataset:
    st = get_setting(setting_id)
    n = st.n_train + st.n_val + st.n_test
    rng = np.random.default_rng(seed)
    if const is None:
        demand = rng.integers(5, 15, size=(n, st.T)).astype(float)
    else:
        demand = np.full((n, st.T), float(const))
    x = np.tile(np.arange(st.T) // 2, (n, 1)).astype(float)
    idx = np.arange(n)
    splits = {"train": idx[: st.n_train], "val": idx[st.n_train : st.n_train + st.n_val],
              "test": idx[st.n_train + st.n_val :]}
    return Dataset(st, demand, x[..., None], rng.uniform(0, 5, (n, st.T, 4)), idx + 1, splits)


def hp(method: str, reg: str = "base", **overrides) -> dict:
    return resolve_hparams(method, "s1", reg, overrides)


# ------------------------------------------------------------------ schedules, stopping, bias
def test_linear_schedule_hand_values():
    f = linear_schedule(1e-3, 1e-4, 0.95)  # called with progress_remaining = 1 - p
    assert f(1.0) == pytest.approx(1e-3)
    assert f(1.0 - 0.475) == pytest.approx(5.5e-4)
    assert f(1.0 - 0.95) == pytest.approx(1e-4)
    assert f(0.0) == pytest.approx(1e-4)
    clip = linear_schedule(0.2, 0.1, 0.9)
    assert clip(1.0 - 0.45) == pytest.approx(0.15)


def _stop_index(values, patience=10, min_evals=5):
    """1-based evaluation at which the stopper says stop (None if never); values = best so far."""
    s = NoImprovementStopper(patience, min_evals)
    for k, v in enumerate(values, start=1):
        if not s.update(v):
            return k
    return None


def test_stopper_matches_sb3_semantics():
    assert _stop_index([-5.0] * 40) == 16  # earliest possible stop (spec §7.2)
    improving = list(np.arange(8.0)) + [7.0] * 40
    assert _stop_index(improving) == 19  # last improvement at 8, then 11 flat evaluations
    assert _stop_index(list(np.arange(3.0)) + [2.0] * 40) == 16  # evals <= min_evals ignored
    assert _stop_index(list(np.arange(40.0))) is None
    assert _stop_index([1.0, 1.0], patience=0, min_evals=0) == 2
    assert _stop_index([1.0, 2.0, 2.0], patience=1, min_evals=0) is None


def test_ddpg_bias_shift_values():
    assert ddpg_bias_shift(0.75) == pytest.approx(math.atanh(0.5))
    assert ddpg_bias_shift(0.5) == 0.0
    assert ddpg_bias_shift(0.9975) == pytest.approx(3 * 0.995)  # |2b0-1| >= 0.99
    assert ddpg_bias_shift(0.0) == pytest.approx(-3.0)
    assert ddpg_bias_shift(0.2) == pytest.approx(math.atanh(-0.6))


@pytest.mark.parametrize("on_target", [False, True])
def test_ddpg_bias_on_online_actor_only(on_target):
    ds = make_dataset()
    b0 = 0.3
    s = build_model("ddpg", ds, "base", hp("ddpg", initial_action_bias=b0,
                                              ddpg_bias_on_target=on_target, **SMALL_DDPG), 1)
    online = s.model.actor.mu[-2].bias.detach().numpy()
    target = s.model.actor_target.mu[-2].bias.detach().numpy()
    expected = 0.0 if on_target else math.atanh(2 * b0 - 1)
    np.testing.assert_allclose(online - target, expected, atol=1e-6)
    # with a zero last layer the action is exactly b0*M on any state
    with torch.no_grad():
        s.model.actor.mu[-2].weight.zero_()
        s.model.actor.mu[-2].bias.zero_()
    apply_ddpg_bias(s.model, b0)
    obs = np.array([[1.0, -20.0, 0.0], [7.0, 35.0, 0.0]], np.float32)
    np.testing.assert_allclose(s.policy.predict(obs)[:, 0], b0 * 100.0, atol=1e-3)


@pytest.mark.parametrize("reg", ["base", "none", "both"])
def test_ppo_initial_mean_action_is_b0_M(reg):
    ds = make_dataset()
    b0 = 0.35
    s = build_model("ppo", ds, reg, hp("ppo", reg, initial_action_bias=b0, **SMALL_PPO), 2)
    high = 1.0 if reg == "both" else 100.0
    np.testing.assert_allclose(s.model.policy.action_net.bias.detach().numpy(), b0 * high,
                               rtol=1e-6)
    assert np.all(s.model.policy.log_std.detach().numpy() == 0.0)
    obs = np.array([s.env.reset(options={"index": i})[0] for i in range(10)])
    actions = s.policy.predict(obs)
    np.testing.assert_allclose(actions.mean(0), b0 * high, atol=0.01 * high)


def test_unknown_option_and_bad_arch_are_config_errors():
    ds = make_dataset()
    with pytest.raises(ConfigError, match="option"):
        train_ppo(ds, "base", hp("ppo"), 1, bogus=1)
    bad = hp("ppo")
    bad["net_arch"] = {"pi": [8], "qf": [8]}
    with pytest.raises(ConfigError, match="net_arch"):
        build_model("ppo", ds, "base", bad, 1)


# ------------------------------------------------------------------ batched validation
@pytest.mark.parametrize("method", ["ddpg", "ppo"])
@pytest.mark.parametrize("reg", ["none", "base", "coeff"])
def test_batched_validation_equals_env_episodes(method, reg):
    ds = make_dataset(seed=3)
    small = SMALL_DDPG if method == "ddpg" else SMALL_PPO
    s = build_model(method, ds, reg, hp(method, reg if reg != "coeff" else "base", **small), 4)
    ev = evaluate_policy(s.policy, ds, "val")  # ONE vectorized rollout
    returns = window_returns(ev.rollout)
    env = InventoryEnv(ds, "val", reg, reg_params=s.reg_params)
    for i in range(len(ev.per_trajectory)):
        obs, _ = env.reset(options={"index": i})
        total, done = 0.0, False
        while not done:
            action, _ = s.model.predict(obs, deterministic=True)
            obs, r, done, _, info = env.step(action)
            total += r
        np.testing.assert_allclose(info["episode_loss"], ev.per_trajectory[i], rtol=1e-5,
                                   atol=1e-5)
        np.testing.assert_allclose(total, returns[i], rtol=1e-5, atol=1e-4)


# ------------------------------------------------------------------ training runs
def test_short_ppo_base_beats_initial_policy():
    ds = make_dataset(const=10.0)
    h = hp("ppo", total_steps=2048, eval_freq=512, n_steps=512, batch_size=128,
           initial_action_bias=0.2, **SMALL_PPO)
    r = train_ppo(ds, "base", h, 45)
    curve = r.curve
    initial = float(curve.loc[curve.step == 0, "val_loss"].iloc[0])
    # target 20 vs optimum 30 on constant demand 10: initial loss = 0.9*10/2 = 4.5 per day
    assert initial == pytest.approx(4.5, abs=0.05)
    assert r.val_loss < initial - 0.03
    assert r.test_loss < initial - 0.03
    evals = curve[curve.step > 0]
    assert list(evals.step) == [512, 1024, 1536, 2048]
    assert r.val_loss == pytest.approx(evals.val_loss.min(), abs=1e-9)  # best checkpoint
    # -best return / 14 = val loss, up to the 6-decimal rounding of each episode return (SB3's
    # Monitor, as in the authors' evaluation): |error| <= 0.5e-6 / 14
    assert r.best_val == pytest.approx(r.val_loss, abs=0.5e-6 / 14)
    np.testing.assert_allclose(-evals.mean_return / 14, evals.val_loss, atol=0.5e-6 / 14)
    assert r.iterations == 2048 and r.method == "ppo" and r.device == "cpu"
    assert 0 <= r.extras["eval_share"] < 0.5


def test_ddpg_no_training_stops_deterministically():
    """Before learning_starts the weights never change: no improvement after evaluation 1."""
    ds = make_dataset(seed=1)
    h = hp("ddpg", total_steps=200000, eval_freq=100, learning_starts=10**6, min_evals=0,
           patience_evals=1, **SMALL_DDPG)
    r = train_ddpg(ds, "base", h, 7)
    assert r.iterations == 300 and r.extras["stopped_early"]
    assert list(r.curve.step) == [0, 100, 200, 300]
    assert r.curve.val_loss.nunique() == 1
    assert r.extras["best_step"] == 100  # checkpoint only on strict improvement
    # the curve evaluates the validation split (train != val here), metric = -return / 14
    assert r.curve.val_loss.iloc[-1] == pytest.approx(r.val_loss, abs=1e-9)
    assert r.best_val == pytest.approx(r.val_loss, abs=0.5e-6 / 14)  # Monitor's rounding
    assert abs(r.train_loss - r.val_loss) > 1e-3
    lr0, lr1 = h["learning_rate"], h["lr_min"]
    expected = lr0 + (300 / 200000) * (lr1 - lr0) / 0.95
    assert r.curve.lr.iloc[-1] == pytest.approx(expected)


def test_ddpg_critic_log(tmp_path):
    ds = make_dataset(seed=2)
    h = hp("ddpg", total_steps=400, eval_freq=200, learning_starts=100, **SMALL_DDPG)
    r = train_ddpg(ds, "base", h, 45, log_critic=True, critic_log_steps=250)
    critic, replay = r.extras["critic_log"], r.extras["replay_log"]
    assert isinstance(critic, pd.DataFrame) and isinstance(replay, pd.DataFrame)
    # one update per step after learning_starts (train_freq 1, gradient_steps 1)
    assert list(critic.step) == list(range(101, 401))
    assert list(critic["update"]) == list(range(1, 301))
    assert np.all(np.isfinite(critic.critic_loss)) and np.all(critic.critic_loss >= 0)
    lr0, lr1 = h["learning_rate"], h["lr_min"]
    p = critic.step / 400  # p = num_timesteps / total_steps; constant lr_min after p = 0.95
    np.testing.assert_allclose(critic.lr, np.where(p > 0.95, lr1, lr0 + p * (lr1 - lr0) / 0.95),
                               rtol=1e-9)
    assert list(replay.step) == list(range(1, 251))
    # next on-hand follows backlog dynamics with L = 1: I' = I - D_t - D_{t+1} + q, per episode
    train_rows = ds.split("train").index
    episode = replay.iloc[:14]
    assert episode.done.tolist() == [False] * 13 + [True]
    assert episode.x.tolist() == list(range(2, 16))  # x_{t+2} = floor((t+2)/2); terminal x_30
    env = InventoryEnv(ds, "train", "base")
    env.reset(seed=45)  # the env of the run was seeded with the run seed: same first trajectory
    dem = ds.demand[train_rows[env._row]]
    onhand = -(dem[0] + dem[1])
    for k, row in enumerate(episode.itertuples()):
        t = 2 + 2 * k
        onhand = onhand - dem[t] - dem[t + 1] + row.order
        if t + 2 == 30:  # terminal: the remaining day 30 is simulated with q = 0
            onhand -= dem[30]
        assert row.onhand == pytest.approx(onhand, abs=1e-3)
    out = save_run(r, tmp_path / "run")
    for name in ("critic_log.csv", "replay_log.csv", "curve.csv", "metrics.json", "model.zip"):
        assert (out / name).is_file()
    # logging does not change training: same seed without the log gives the same weights
    plain = train_ddpg(ds, "base", h, 45)
    for a, b in zip(plain.model_state.policy.parameters(), r.model_state.policy.parameters(),
                    strict=True):
        torch.testing.assert_close(a, b)
    pd.testing.assert_frame_equal(plain.curve.drop(columns="wall_s"), r.curve.drop(columns="wall_s"))


def test_dispatcher_coeff_run_and_checkpoint_last():
    ds = make_dataset(seed=5)
    h = hp("ppo", total_steps=256, eval_freq=128, n_steps=128, batch_size=64, checkpoint="last",
           **SMALL_PPO)
    r = train(ds, "ppo", "both", h, 3)
    assert r.reg == "both" and r.iterations == 256
    assert np.isfinite([r.train_loss, r.val_loss, r.test_loss]).all()
    ev = evaluate_policy(r.policy, ds, "val")
    assert ev.loss == pytest.approx(r.val_loss)


def test_the_ppo_bias_is_computed_in_float32_like_the_authors():
    """low + b0·(high - low) in float32 (the authors' numpy on the box's float32 bounds):
    28.207901 for their PPO-None b0 with M = 100, not the float64 value rounded once (28.207903)."""
    b0 = 0.2820790201859893
    s = build_model("ppo", make_dataset(1), "none", hp("ppo", "none", **SMALL_PPO), 4)
    apply_ppo_bias(s.model, b0)
    bias = s.model.policy.action_net.bias.detach().numpy()
    assert bias.dtype == np.float32
    assert bias[0] == np.float32(28.207901) != np.float32(b0 * 100.0)


def test_the_validation_return_is_each_episode_rounded_to_6_decimals_like_sb3s_monitor():
    """The authors' EvalCallback averages Monitor's round(sum(rewards), 6) per episode."""
    from deepstock.problem.evaluation import simulate_split
    from deepstock.problem.losses import DEFAULT_LOSS
    from deepstock.training.sb3 import _ValEvaluator

    ds = make_dataset(seed=3)
    s = build_model("ppo", ds, "base", hp("ppo", "base", **SMALL_PPO), 4)
    _, mean = _ValEvaluator(ds, "val", s.policy, DEFAULT_LOSS)()
    returns = window_returns(simulate_split(s.policy, ds, "val"))
    assert mean == float(np.mean([round(float(r), 6) for r in returns]))
    assert mean != float(returns.mean())  # the rounding is visible
