"""The JAX environment (deepstock.training.envs_jax) equals InventoryEnv step by step (float64, 1e-9)."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deepstock.problem.losses import LossConfig
from deepstock.problem.settings import get_setting
from deepstock.training import envs_jax
from deepstock.training.envs import InventoryEnv
from deepstock.training.regularizations import RegularizationParams
from tests.test_envs import make_dataset, small_setting

REGS = ("none", "base", "coeff", "both")


@pytest.fixture(autouse=True)
def float64():
    with jax.enable_x64(True):
        yield


def _table(ds, reg, seed):
    """A fixed open-loop policy: one action per (dataset row, day) inside the action box."""
    k = 5 if reg in ("coeff", "both") else 1
    hi = 1.0 if k > 1 else ds.setting.M
    return np.random.default_rng(seed).uniform(0.0, hi, size=(ds.demand.shape[0], ds.setting.T, k))


def _feedback(obs):
    """A fixed closed-loop policy of the float32 network input (InventoryEnv observes float32)."""
    obs = np.asarray(obs, np.float32).astype(np.float64)
    return (40.0 - 0.5 * obs[..., 1:2] + 0.1 * obs[..., :1]).clip(0.0, 100.0)


def _env_episodes(ds, split, reg, act, *, loss=LossConfig()):
    """Rewards [n, steps], orders [n, steps] and episode losses [n] of InventoryEnv."""
    params = RegularizationParams(M=ds.setting.M)
    env = InventoryEnv(ds, split, reg, reg_params=params, loss=loss)
    rewards, orders, losses = [], [], []
    for i, row in enumerate(ds.split(split).index):
        obs, _ = env.reset(options={"index": i})
        r, q, done = [], [], False
        while not done:
            obs, reward, done, _, info = env.step(act(row, env._t, obs))
            r.append(reward)
            q.append(info["order"])
        rewards.append(r)
        orders.append(q)
        losses.append(info["episode_loss"])
    return np.array(rewards), np.array(orders), np.array(losses)


def _jax_episodes(ds, split, reg, act, *, loss=LossConfig()):
    """The same episodes in the JAX environment, every trajectory of the split in one batch."""
    params = RegularizationParams(M=ds.setting.M)
    consts = envs_jax.env_constants(ds, reg, params, loss)
    data = envs_jax.env_data(ds, split)
    rows = jnp.arange(data.n)
    index = ds.split(split).index
    state, obs = envs_jax.reset(consts, data, rows)
    rewards, orders = [], []
    for _ in range(consts.episode_length):
        a = np.stack([act(index[i], int(state.t[i]), np.asarray(obs[i])) for i in range(data.n)])
        state, obs, reward, done, info = envs_jax.step(consts, data, state, jnp.asarray(a))
        rewards.append(np.asarray(reward))
        orders.append(np.asarray(info["order"]))
    assert bool(done.all())
    return np.array(rewards).T, np.array(orders).T, np.asarray(info["episode_loss"])


def _assert_equal_episodes(ds, split, reg, act, **kw):
    want = _env_episodes(ds, split, reg, act, **kw)
    got = _jax_episodes(ds, split, reg, act, **kw)
    for name, w, g in zip(("rewards", "orders", "episode losses"), want, got, strict=True):
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-9, err_msg=name)
    return want


@pytest.mark.parametrize("setting_id", ["s1", "s2", "s4_n5_t7"])
@pytest.mark.parametrize("reg", REGS)
def test_every_reward_and_episode_loss_equals_inventory_env_on_generated_datasets(setting_id, reg):
    generators = pytest.importorskip("deepstock.problem.generators")
    ds = generators.generate_dataset(setting_id)
    table = _table(ds, reg, 3)
    for split in ("train", "val", "test"):
        rewards, _, losses = _assert_equal_episodes(
            ds, split, reg, lambda row, t, obs: table[row, t])
        assert np.all(rewards <= 0) and np.all(losses > 0)


@pytest.mark.parametrize("setting_id", ["s1", "s2"])
def test_a_closed_loop_policy_sees_the_same_observations_in_both_envs(setting_id):
    generators = pytest.importorskip("deepstock.problem.generators")
    ds = generators.generate_dataset(setting_id)
    _assert_equal_episodes(ds, "val", "base", lambda row, t, obs: _feedback(np.asarray(obs)))


@pytest.mark.parametrize("R,L,T", [(1, 0, 9), (3, 2, 31), (2, 3, 31), (2, 1, 30), (4, 1, 23)])
@pytest.mark.parametrize("reg", ["none", "both"])
def test_general_review_periods_and_lead_times_match(R, L, T, reg):
    ds = make_dataset(small_setting(T=T, R=R, L=L), seed=R * 10 + L)
    table = _table(ds, reg, 11)
    _assert_equal_episodes(ds, "train", reg, lambda row, t, obs: table[row, t])


@pytest.mark.parametrize("reg", ["none", "base"])
def test_lost_sales_and_other_cost_weights_match(reg):
    ds = make_dataset(dataclasses.replace(small_setting(), dynamics="lost_sales"), seed=5)
    table = _table(ds, reg, 9)
    _assert_equal_episodes(ds, "train", reg, lambda row, t, obs: table[row, t],
                           loss=LossConfig(h=0.3))


@pytest.mark.parametrize("dynamics", ["backlog", "lost_sales"])
def test_uncounted_warm_up_days_earn_no_reward_in_both_envs(dynamics):
    ds = make_dataset(dataclasses.replace(small_setting(R=1, L=2, T=20), dynamics=dynamics,
                                          warmup=4), seed=7)
    table = _table(ds, "none", 12)
    rewards, _, _ = _assert_equal_episodes(ds, "train", "none", lambda row, t, obs: table[row, t],
                                           loss=LossConfig(h=1.0, b=9.0))
    assert np.all(rewards[:, :4] == 0) and np.all(rewards[:, 4:] < 0)


def test_batched_deterministic_returns_equal_the_sum_of_env_rewards():
    ds = make_dataset(get_setting("s1"), seed=2)
    consts = envs_jax.env_constants(ds, "base", RegularizationParams(M=ds.setting.M), LossConfig())

    def act(obs):  # numpy or JAX input, rounded to float32 as InventoryEnv observes it
        obs = obs.astype(np.float32).astype(np.float64)
        return (40.0 - 0.5 * obs[:, 1:2] + 0.1 * obs[:, :1]).clip(0.0, 100.0)

    rewards, _, losses = _env_episodes(ds, "val", "base", lambda row, t, obs: act(obs[None])[0])
    ret, ell = envs_jax.episode_returns(consts, envs_jax.env_data(ds, "val"), act)
    np.testing.assert_allclose(ret, rewards.sum(1), rtol=0, atol=1e-9)
    np.testing.assert_allclose(ell, losses, rtol=0, atol=1e-9)


def test_auto_reset_replaces_only_the_finished_episodes():
    ds = make_dataset(get_setting("s1"), seed=1)
    consts = envs_jax.env_constants(ds, "none", RegularizationParams(M=ds.setting.M), LossConfig())
    data = envs_jax.env_data(ds, "train")
    state, obs = envs_jax.reset(consts, data, jnp.array([0, 1]))
    state = state._replace(t=jnp.array([29, 4]))
    done = jnp.array([True, False])
    new, new_obs = envs_jax.auto_reset(consts, data, state, obs, done, jax.random.PRNGKey(0))
    assert int(new.t[0]) == ds.setting.R and float(new.cost_total[0]) == 0.0
    assert int(new.t[1]) == 4 and int(new.row[1]) == 1
    np.testing.assert_array_equal(new_obs[1], obs[1])
