"""The JAX DDPG backend's critic log (Figure 3): SB3's frames, the env's transitions, the critic's
losses, an unchanged training, and the figure pipeline reading the run folder."""

from __future__ import annotations

import functools
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

from deepstock.errors import ConfigError
from deepstock.problem.losses import LossConfig
from deepstock.reports.figures import figure3_data
from deepstock.training import jax_ddpg as jd
from deepstock.training import save_run
from deepstock.training.envs import InventoryEnv
from deepstock.training.jax_common import agent as pick
from deepstock.training.jax_common import init_population, jax_config, make_setup
from deepstock.training.regularizations import RegularizationParams
from deepstock.training.sb3 import OPTIONS as SB3_OPTIONS
from deepstock.training.sb3 import _LoggedDDPG
from tests.test_sb3 import hp, make_dataset

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
#: Two updates every 7 steps after step 100; 600 steps run as 86 periods (602 steps).
TINY = {"net_arch": {"pi": [16, 16], "qf": [16, 16]}, "batch_size": 32, "buffer_size": 1000,
        "total_steps": 600, "learning_starts": 100, "eval_freq": 256, "train_freq": 7,
        "gradient_steps": 2}
LOGGED = 250  # critic_log_steps


@functools.cache
def _logged(reg: str):
    return jd.train_ddpg(make_dataset(1), reg, hp("ddpg", reg, **TINY), 42, log_critic=True,
                         critic_log_steps=LOGGED)


def _sb3_frames() -> dict:
    """SB3's ``_LoggedDDPG.logs`` on one row of each kind, typed as its callbacks record them."""
    fake = SimpleNamespace(
        critic_rows=[(1, 105, 0.5, 1e-3)],
        replay_rows=[{"step": 1, "x": 2.0, "onhand": 3.0, "order": 4.0, "reward": -1.0,
                      "done": False}])
    return _LoggedDDPG.logs(fake)


def _sb3_update_steps(total: int, train_freq: int, gradient_steps: int, starts: int) -> list:
    """The step of every gradient update SB3 makes: whole periods of ``train_freq`` steps until
    ``total`` is reached, each trained ``gradient_steps`` times once past ``starts``."""
    steps, s = [], 0
    while s < total:
        s += train_freq
        if s > starts:
            steps += [s] * gradient_steps
    return steps


def test_the_logs_have_sb3s_columns_one_critic_row_per_update_and_at_most_the_asked_transitions():
    r = _logged("none")
    critic, replay = r.extras["critic_log"], r.extras["replay_log"]
    sb3 = _sb3_frames()
    assert dict(critic.dtypes) == dict(sb3["critic_log"].dtypes)
    assert dict(replay.dtypes) == dict(sb3["replay_log"].dtypes)
    assert list(critic.columns) == list(sb3["critic_log"].columns)
    assert list(replay.columns) == list(sb3["replay_log"].columns)
    expected = _sb3_update_steps(600, 7, 2, 100)
    assert r.iterations == 602 and len(expected) == 144
    assert critic["step"].tolist() == expected
    assert critic["update"].tolist() == list(range(1, len(expected) + 1))
    assert np.all(np.diff(critic["step"]) >= 0)
    assert np.all(np.isfinite(critic["critic_loss"])) and np.all(critic["critic_loss"] >= 0)
    lr0, lr1 = r.config["learning_rate"], r.config["lr_min"]
    p = critic["step"].to_numpy() / 600
    np.testing.assert_allclose(critic["lr"], np.where(p > 0.95, lr1, lr0 + p * (lr1 - lr0) / 0.95),
                               rtol=1e-5)
    assert replay["step"].tolist() == list(range(1, LOGGED + 1))  # capped at critic_log_steps
    assert SB3_OPTIONS["critic_log_steps"] == jd.CRITIC_LOG_STEPS  # the same default cap


def _env_transitions(env: InventoryEnv, row: int, orders) -> pd.DataFrame:
    """The replay-log columns of the numpy env's episode on train row ``row`` when ``orders`` are
    placed (whatever the action), recorded as SB3's ``_LoggedDDPG`` records them."""
    env.reset(options={"index": row})
    scale = env.reg_params.M if env.reg.uses_coeff else 1.0
    out = []
    for q in orders:
        env.decode = lambda action, q=q: q
        obs, reward, done, _, info = env.step(np.zeros(env.action_space.shape))
        out.append({"x": float(obs[0]), "onhand": float(obs[1]) * scale,
                    "order": info["order"], "reward": reward, "done": done})
    return pd.DataFrame(out)


@functools.cache
def _episodes(reg: str) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """(logged episode, the numpy env's episode on the one train row giving its rewards), for
    every episode of the replay log (the last one cut by ``critic_log_steps``)."""
    r = _logged(reg)
    replay, cfg = r.extras["replay_log"], r.config
    params = RegularizationParams(M=float(cfg["M"]), coeff_scale=float(cfg["coeff_scale"]),
                                  coeff_clip=tuple(cfg["coeff_clip"]))
    env = InventoryEnv(make_dataset(1), "train", reg, mode="train", reg_params=params,
                       loss=LossConfig(h=float(cfg["loss_h"])))
    ends = np.flatnonzero(replay["done"].to_numpy()) + 1
    assert len(ends) >= 15 and np.all(np.diff([0, *ends]) == env.episode_length)
    pairs = []
    for a, b in zip([0, *ends], [*ends, len(replay)], strict=True):
        logged = replay.iloc[a:b].reset_index(drop=True)
        rows = [_env_transitions(env, row, logged["order"]) for row in range(len(env.index))]
        same = [t for t in rows if np.allclose(t["reward"], logged["reward"], rtol=1e-5,
                                               atol=1e-4)]
        assert len(same) == 1, (a, len(same))
        pairs.append((logged, same[0]))
    return pairs


@pytest.mark.parametrize("reg", ["none", "coeff"])
def test_the_logged_transitions_are_the_numpy_envs_under_the_logged_orders(reg):
    for logged, env in _episodes(reg):
        live = ~env["done"].to_numpy()
        np.testing.assert_array_equal(logged["done"], env["done"])
        np.testing.assert_allclose(logged["reward"], env["reward"], rtol=1e-5, atol=1e-4)
        np.testing.assert_allclose(logged["x"], env["x"], rtol=1e-6)
        np.testing.assert_allclose(logged["onhand"][live], env["onhand"][live], rtol=1e-5,
                                   atol=1e-3)


def test_a_terminal_transition_logs_the_on_hand_after_the_remaining_days():
    for logged, env in _episodes("none"):
        np.testing.assert_allclose(logged["onhand"], env["onhand"], rtol=1e-5, atol=1e-3)


def _np_mlp(params, x):
    for w, b in params[:-1]:
        x = np.maximum(x @ np.float64(w) + np.float64(b), 0.0)
    w, b = params[-1]
    return x @ np.float64(w) + np.float64(b)


def test_the_first_logged_critic_loss_is_the_bellman_error_of_its_batch_recomputed_in_numpy():
    r = _logged("none")
    critic = r.extras["critic_log"]
    setup = make_setup("ddpg", make_dataset(1), "none",
                       [jax_config("ddpg", hp("ddpg", "none", **TINY), {})], [42], "cpu", jd.VALUES)
    shape = jd.Shape.of(setup)
    agents, hpv = init_population(setup, jd.init_agent, shape, jd.ARRAYS)
    learner = pick(agents, 0)["learner"]  # no update before the first: the initial one
    after = jax.jit(jd.CHUNK, static_argnums=0)(shape, agents, hpv, setup.train, 0, 255,
                                                jnp.ones(1, bool))  # up to the first evaluation
    size = int(critic["step"].iloc[0])  # transitions stored when the first update draws
    buffer = np.asarray(pick(after, 0)["buffer"])
    idx = np.asarray(jax.random.randint(jax.random.split(learner["key"])[1], (32,), 0, size))
    batch = {k: np.float64(v) for k, v in jd.unpack(jd.Shape.of(setup), buffer[idx]).items()}
    mu_next = np.tanh(_np_mlp(learner["actor_t"], batch["next"]))
    q_next = _np_mlp(learner["critic_t"], np.concatenate([batch["next"], mu_next], 1))[:, 0]
    target = batch["rew"] + (1.0 - batch["done"]) * r.config["gamma"] * q_next
    q = _np_mlp(learner["critic"], np.concatenate([batch["obs"], batch["act"]], 1))[:, 0]
    assert critic["critic_loss"].iloc[0] == pytest.approx(np.mean((q - target) ** 2), rel=1e-5)


def test_logging_the_critic_leaves_the_trained_agent_unchanged_bit_for_bit():
    logged = _logged("none")
    plain = jd.train_ddpg(make_dataset(1), "none", hp("ddpg", "none", **TINY), 42)
    assert "critic_log" not in plain.extras and "replay_log" not in plain.extras
    assert (plain.train_loss, plain.val_loss, plain.test_loss, plain.iterations) == (
        logged.train_loss, logged.val_loss, logged.test_loss, logged.iterations)
    assert plain.curve.drop(columns="wall_s").equals(logged.curve.drop(columns="wall_s"))
    assert plain.model_state.keys() == logged.model_state.keys()
    for key, value in plain.model_state.items():
        np.testing.assert_array_equal(value, logged.model_state[key])


def test_the_figure3_pipeline_reads_the_critic_log_of_a_jax_run_folder(tmp_path):
    r = _logged("none")
    save_run(r, tmp_path / "figure3" / "none")
    data = figure3_data(tmp_path)["none"]
    critic, replay = data["critic"], data["replay"]
    assert data["steps"] == 602 and len(replay) == LOGGED
    assert list(replay.columns) == list(r.extras["replay_log"].columns)
    logged = r.extras["critic_log"]
    at_500 = logged[logged["step"] <= 500]["critic_loss"].iloc[-1]
    assert critic.set_index("step").loc[500, "critic_loss"] == pytest.approx(at_500, rel=1e-9)
    assert critic["critic_loss"].notna().sum() == 1  # checkpoints every 500 steps, run of 602


def test_a_population_refuses_the_critic_log_in_one_line():
    with pytest.raises(ConfigError, match="one DDPG agent") as err:
        jd.train_ddpg_population(make_dataset(1), "none", [hp("ddpg", "none", **TINY)] * 2,
                                 [1, 2], log_critic=True)
    assert "\n" not in str(err.value)
