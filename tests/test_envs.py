"""InventoryEnv (spec §7.1): API conformance, hand-computed episodes, parity with the simulator."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from deepstock.problem.data import Dataset
from deepstock.problem.dynamics import Observation, simulate
from deepstock.problem.evaluation import base_stock_policy, evaluate_policy, simulate_split
from deepstock.problem.losses import LossConfig, trajectory_loss
from deepstock.problem.settings import Setting, get_setting
from deepstock.training.envs import (
    ENV_ID,
    InventoryEnv,
    network_policy,
    rl_context,
    window_returns,
)
from deepstock.training.regularizations import RegularizationParams, get_regularization

REGS = ("none", "base", "coeff", "both")


def make_dataset(setting: Setting, *, seed: int = 0, demand: np.ndarray | None = None) -> Dataset:
    """A synthetic dataset with the setting's layout; x_t = floor(t/2), random Coeff features."""
    n = setting.n_train + setting.n_val + setting.n_test
    rng = np.random.default_rng(seed)
    T = setting.T
    if demand is None:
        demand = rng.integers(0, 20, size=(n, T)).astype(float) + rng.uniform(0, 1, size=(n, T))
    x = np.tile(np.arange(T) // 2, (n, 1)).astype(float) + rng.uniform(0, 0.5, size=(n, 1))
    idx = np.arange(n)
    splits = {
        "train": idx[: setting.n_train],
        "val": idx[setting.n_train : setting.n_train + setting.n_val],
        "test": idx[setting.n_train + setting.n_val :],
    }
    coeff = rng.uniform(0, 5, size=(n, T, 4))
    return Dataset(setting, np.asarray(demand, float), x[..., None], coeff, idx + 1, splits)


def small_setting(T: int = 31, R: int = 2, L: int = 1, n: int = 4) -> Setting:
    return Setting("synthetic", "indep", T=T, n_train=n, n_val=n, n_test=n, R=R, L=L)


def run_episode(env: InventoryEnv, actions, *, index: int | None = None):
    """Play one episode; ``actions(env, k)`` gives the k-th action. Returns rewards, infos, obs."""
    opts = None if index is None else {"index": index}
    obs, info = env.reset(options=opts)
    rewards, infos, observations = [], [], [obs]
    done, k = False, 0
    while not done:
        obs, r, term, trunc, info = env.step(actions(env, k))
        assert trunc is False
        rewards.append(r)
        infos.append(info)
        observations.append(obs)
        done, k = term, k + 1
    return np.array(rewards), infos, observations


# ------------------------------------------------------------------ API
@pytest.mark.filterwarnings("ignore:.*(symmetric and normalized|infinity).*:UserWarning")
@pytest.mark.parametrize("reg", REGS)
def test_check_env_passes(reg):
    env = InventoryEnv(make_dataset(get_setting("s1")), "train", reg)
    check_env(env, skip_render_check=True)
    eval_env = InventoryEnv(make_dataset(get_setting("s1")), "val", reg)
    check_env(eval_env, skip_render_check=True)


def test_spaces_and_registration():
    ds = make_dataset(get_setting("s1"))
    env = gym.make(ENV_ID, dataset=ds, split="train", reg="base", disable_env_checker=True)
    assert env.unwrapped.episode_length == 14
    assert env.action_space.shape == (1,) and env.action_space.high[0] == 100.0
    assert env.observation_space.shape == (3,) and env.observation_space.dtype == np.float32
    coeff = InventoryEnv(ds, "train", "both")
    assert coeff.action_space.shape == (5,) and coeff.action_space.high.max() == 1.0
    assert coeff.observation_space.shape == (3,)  # (z_t, I_0/M, I_1/M)
    iid = get_setting("s4_n5_t19")
    assert InventoryEnv(make_dataset(iid), "train", "base").episode_length == iid.H == 8


def test_fourteen_decisions_and_termination():
    env = InventoryEnv(make_dataset(get_setting("s1")), "train", "base")
    rewards, infos, _ = run_episode(env, lambda e, k: np.array([30.0]))
    assert len(rewards) == 14
    assert [i["t"] for i in infos] == list(range(2, 29, 2))
    assert [i["days"] for i in infos] == [2] * 14


# ------------------------------------------------------------------ hand-computed episode
def _hand_dataset() -> Dataset:
    st = Setting("hand", "indep", T=7, n_train=1, n_val=0, n_test=0)
    demand = np.array([[3.0, 4, 5, 6, 7, 8, 9]])
    return Dataset(st, demand, np.arange(7.0)[None, :, None], np.zeros((1, 7, 4)), np.array([1]),
                   {"train": np.array([0]), "val": np.array([], int), "test": np.array([], int)})


def test_hand_computed_backlog_episode():
    # T=7, R=2, L=1, D = 3..9, None policy with orders 30 (day 2) and 10 (day 4).
    # E_0..E_6 = -3, -7, -12, 12, 5, 7, -2; counted days 3..6 cost 1.2, 0.5, 0.7, 1.8.
    env = InventoryEnv(_hand_dataset(), "train", "none")
    obs, _ = env.reset()
    np.testing.assert_allclose(obs, [2.0, -7.0, 0.0])  # x_2, I_{2,0} = -(3+4), I_{2,1}
    obs, r, term, _, info = env.step(np.array([30.0]))
    assert not term and info["order"] == 30.0
    np.testing.assert_allclose(r, -(1.2 + 0.5) / 2)  # E_4 from the rewound look-ahead
    np.testing.assert_allclose(obs, [4.0, 12.0, 0.0])  # look-ahead left the state unchanged
    obs, r, term, _, info = env.step(np.array([10.0]))
    assert term
    np.testing.assert_allclose(r, -(0.7 + 1.8) / 2)
    np.testing.assert_allclose(info["episode_loss"], (1.2 + 0.5 + 0.7 + 1.8) / 4)
    np.testing.assert_allclose(obs, [6.0, -2.0, 0.0])  # terminal state I_7 with x_{T-1}


def test_hand_computed_stockouts_and_clip():
    # orders 10 and 10 (an action above M is clipped to M by decode): E_3..E_6 = -8,-15,-13,-22
    env = InventoryEnv(_hand_dataset(), "train", "none")
    env.reset()
    _, r1, _, _, _ = env.step(np.array([10.0]))
    _, r2, _, _, info = env.step(np.array([10.0]))
    np.testing.assert_allclose([r1, r2], [-(7.2 + 13.5) / 2, -(11.7 + 19.8) / 2])
    np.testing.assert_allclose(info["episode_loss"], 52.2 / 4)
    env.reset()
    _, _, _, _, info = env.step(np.array([1e6]))
    assert info["order"] == 100.0


# ------------------------------------------------------------------ parity with simulate
def _action_table(ds: Dataset, reg: str, seed: int) -> np.ndarray:
    """Random actions [n_dataset, T, k] inside the action box."""
    rng = np.random.default_rng(seed)
    k = get_regularization(reg).output_dim
    hi = 1.0 if k > 1 else ds.setting.M
    return rng.uniform(0.0, hi, size=(ds.demand.shape[0], ds.setting.T, k))


def _assert_parity(ds: Dataset, split: str, reg: str, table: np.ndarray, *, lost_sales=False,
                   loss=LossConfig(), warmup=0):
    if lost_sales or warmup:  # the dynamics and warm-up are the setting's
        ds = dataclasses.replace(ds, setting=dataclasses.replace(
            ds.setting, dynamics="lost_sales" if lost_sales else "backlog", warmup=warmup))
    params = RegularizationParams(M=ds.setting.M)
    regz = get_regularization(reg)
    z = rl_context(ds)
    s = ds.split(split)

    seen: dict[tuple[int, int], np.ndarray] = {}

    def policy(obs: Observation) -> np.ndarray:  # the simulator side: same table, same decoder
        inp = np.asarray(regz.network_input(obs, params, rl=True), np.float32)
        seen.update({(int(r), obs.t): inp[j] for j, r in enumerate(obs.index)})
        return regz.decode(table[obs.index, obs.t], obs, params)

    ro = simulate(s.demand, policy, R=ds.setting.R, L=ds.setting.L, x=s.x, phi=s.phi,
                  z=z[s.index], index=s.index, lost_sales=lost_sales, warmup=warmup)
    ell = np.asarray(trajectory_loss(ro, loss))
    returns = window_returns(ro, loss)
    env = InventoryEnv(ds, split, reg, reg_params=params, loss=loss)
    for i in range(len(s)):
        row = s.index[i]

        def act(e, k, row=row):
            return table[row, e._t]

        rewards, infos, obs = run_episode(env, act, index=i)
        assert infos[-1]["trajectory"] == row
        np.testing.assert_allclose(infos[-1]["episode_loss"], ell[i], rtol=0, atol=1e-9)
        np.testing.assert_allclose(rewards.sum(), returns[i], rtol=0, atol=1e-9)
        days = [inf["t"] for inf in infos]
        np.testing.assert_allclose([inf["order"] for inf in infos], ro.orders[i, days], atol=1e-9)
        for t, o in zip(days, obs[:-1], strict=True):  # every decision's observation = simulator state
            np.testing.assert_allclose(o, seen[(int(row), t)], rtol=1e-6, atol=1e-6)
    return ell


@pytest.mark.parametrize("setting_id", ["s1", "s2"])
@pytest.mark.parametrize("reg", ["none", "base"])
def test_parity_random_actions_synthetic(setting_id, reg):
    ds = make_dataset(get_setting(setting_id), seed=3)
    for split in ("train", "val"):
        _assert_parity(ds, split, reg, _action_table(ds, reg, 7))


@pytest.mark.parametrize("reg", ["coeff", "both"])
def test_parity_coeff_regularizations(reg):
    ds = make_dataset(get_setting("s1"), seed=4)
    _assert_parity(ds, "train", reg, _action_table(ds, reg, 8))


def test_parity_lost_sales_and_other_weights():
    ds = make_dataset(small_setting(), seed=5)
    _assert_parity(ds, "train", "base", _action_table(ds, "base", 9), lost_sales=True,
                   loss=LossConfig(h=0.3))


@pytest.mark.parametrize("lost_sales", [False, True])
def test_parity_with_uncounted_warm_up_days(lost_sales):
    ds = make_dataset(small_setting(), seed=6)
    ell = _assert_parity(ds, "train", "none", _action_table(ds, "none", 10), lost_sales=lost_sales,
                         loss=LossConfig(h=1.0, b=9.0), warmup=3)
    full = _assert_parity(ds, "train", "none", _action_table(ds, "none", 10),
                          lost_sales=lost_sales, loss=LossConfig(h=1.0, b=9.0))
    assert not np.allclose(ell, full)  # the warm-up days are left out of the loss


@pytest.mark.parametrize("R,L,T", [(1, 0, 9), (3, 2, 31), (2, 3, 31), (2, 1, 30), (4, 1, 23)])
def test_parity_general_review_and_lead_time(R, L, T):
    ds = make_dataset(small_setting(T=T, R=R, L=L), seed=R * 10 + L)
    for reg in ("none", "base"):
        ell = _assert_parity(ds, "train", reg, _action_table(ds, reg, 11))
        assert np.all(np.isfinite(ell))


@pytest.mark.parametrize("setting_id", ["s1", "s2"])
@pytest.mark.parametrize("reg", ["none", "base"])
def test_parity_on_generated_datasets(setting_id, reg):
    generators = pytest.importorskip("deepstock.problem.generators")
    ds = generators.generate_dataset(setting_id)
    _assert_parity(ds, "val", reg, _action_table(ds, reg, 12))
    # base-stock through the evaluation module: env return = -14·ℓ on every trajectory
    level = 35.0
    ev = evaluate_policy(base_stock_policy(level, ds.setting.M), ds, "test")
    env = InventoryEnv(ds, "test", "base")
    for i in range(len(ev.per_trajectory)):
        rewards, _, _ = run_episode(env, lambda e, k: np.array([level]))
        np.testing.assert_allclose(-rewards.sum() / 14, ev.per_trajectory[i], atol=1e-9)


def test_full_windows_return_is_minus_14_loss():
    ds = make_dataset(get_setting("s1"), seed=6)
    table = _action_table(ds, "none", 13)
    ell = _assert_parity(ds, "val", "none", table)
    s = ds.split("val")
    env = InventoryEnv(ds, "val", "none")
    for i in range(len(s)):
        rewards, _, _ = run_episode(env, lambda e, k, r=s.index[i]: table[r, e._t], index=i)
        np.testing.assert_allclose(-rewards.sum() * 2 / 28, ell[i], atol=1e-9)


# ------------------------------------------------------------------ observations and reset
@pytest.mark.parametrize("reg", REGS)
def test_observation_is_the_shared_network_input(reg):
    ds = make_dataset(get_setting("s1"), seed=2)
    params = RegularizationParams(M=100.0)
    regz = get_regularization(reg)
    env = InventoryEnv(ds, "train", reg, reg_params=params)
    z = rl_context(ds)
    obs, _ = env.reset(options={"index": 1})
    row = ds.split("train").index[1]
    for _ in range(3):
        t = env._t
        o = Observation(t, np.array([ds.x[row, t]]), np.array([env._pipe]), ds.coeff[row, t][None],
                        np.array([row]), z[row, t][None])
        expected = np.asarray(regz.network_input(o, params, rl=True), np.float32)[0]
        np.testing.assert_array_equal(obs, expected)
        obs, *_ = env.step(env.action_space.sample())


def test_rl_context_is_minmax_of_x():
    ds = make_dataset(get_setting("s1"), seed=1)
    z = rl_context(ds)[..., 0]
    x = ds.x
    lo, hi = x.min(1, keepdims=True), x.max(1, keepdims=True)
    np.testing.assert_allclose(z, (x - lo) / (hi - lo + 1e-8))


def test_train_reset_is_seeded_uniform_and_eval_cycles():
    ds = make_dataset(get_setting("s1"))
    env = InventoryEnv(ds, "train", "base")

    def draws(seed, n=2000):
        env.reset(seed=seed)
        out = [env._row]
        out += [(env.reset(), env._row)[1] for _ in range(n - 1)]
        return np.array(out)

    a, b = draws(123), draws(123)
    np.testing.assert_array_equal(a, b)
    counts = np.bincount(a, minlength=10)
    assert counts.min() > 150 and counts.max() < 250  # 2000 draws, 200 expected each
    assert not np.array_equal(a, draws(124))

    ev = InventoryEnv(ds, "val", "base")
    assert ev.mode == "eval"
    rows = [ev.reset(seed=0)[1]["trajectory"]] + [ev.reset()[1]["trajectory"] for _ in range(11)]
    val = list(ds.split("val").index)
    assert rows == val + val[:2]  # id order, then wraps around
    assert ev.reset(seed=5)[1]["trajectory"] == val[0]  # seeding restarts the cycle


# ------------------------------------------------------------------ batched evaluation
def test_batched_network_policy_equals_env_episodes():
    """A fixed float32 'network' through one batched simulate == episode-by-episode env play."""
    ds = make_dataset(get_setting("s1"), seed=9)
    w = np.array([1.5, -0.8, 0.3], np.float32)

    def predict(inp: np.ndarray) -> np.ndarray:
        return np.clip(inp @ w + 25.0, 0.0, 100.0)[:, None]

    params = RegularizationParams(M=100.0)
    for reg in ("none", "base"):
        policy = network_policy(predict, reg, params)
        ro = simulate_split(policy, ds, "val")
        ell = np.asarray(trajectory_loss(ro))
        returns = window_returns(ro)
        env = InventoryEnv(ds, "val", reg, reg_params=params)
        for i in range(len(ell)):
            rewards, infos, _ = run_episode(
                env, lambda e, k: predict(e._obs_vector(e._t)[None])[0], index=i)
            np.testing.assert_allclose(infos[-1]["episode_loss"], ell[i], atol=1e-9)
            np.testing.assert_allclose(rewards.sum(), returns[i], atol=1e-9)


def test_the_reward_uses_the_authors_order_of_operations():
    """One window of two counted days ending at E = -1 and E = -5.192495822906494 (T = 5, R = 2,
    L = 1, order 0): the authors' -(h·Σover/2 + b·Σunder/2) is -2.786623 in float32, the
    shorter -(Σ c)/2 rounds to -2.7866232 — SB3 stores the float32, so the order matters."""
    st = small_setting(T=5, n=1)
    demand = np.array([[0.0, 0.0, 0.0, 1.0, 4.192495822906494]] * 3)
    env = InventoryEnv(make_dataset(st, demand=demand), "train", "none")
    env.reset(options={"index": 0})
    _, reward, terminated, _, _ = env.step(np.array([0.0], dtype=np.float32))
    assert terminated
    e = np.array([-1.0, -5.192495822906494])
    h, b = 0.1, 1 - 0.1
    authors = -(h * (np.maximum(e, 0).sum() / 2) + b * (np.maximum(-e, 0).sum() / 2))
    shorter = -(b * np.maximum(-e, 0) + h * np.maximum(e, 0)).sum() / 2
    assert reward == authors
    assert np.float32(reward) == np.float32(-2.786623) != np.float32(shorter)
    assert np.float32(shorter) == np.float32(-2.7866232)
