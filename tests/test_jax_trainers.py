"""The JAX backend's DDPG and PPO held to stable-baselines3: networks, updates, schedules, driver."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from stable_baselines3.common.logger import configure

from deepstock.training import jax_ddpg as jd
from deepstock.training import jax_ppo as jp
from deepstock.training import read_run, save_run
from deepstock.training.backends import load_trainer
from deepstock.training.jax_common import (
    OPTIONS,
    budget,
    init_population,
    jax_config,
    keep_best,
    lr_values,
    make_setup,
    stack_values,
)
from deepstock.training.jax_common import agent as pick
from deepstock.training.sb3 import build_model, ddpg_bias_shift, linear_schedule
from tests.test_sb3 import hp, make_dataset

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
SMALL_DDPG = {"net_arch": {"pi": [16, 16], "qf": [16, 16]}, "batch_size": 32}
SMALL_PPO = {"net_arch": {"pi": [32, 32], "vf": [32, 32]}}
SHORT_DDPG = {**SMALL_DDPG, "total_steps": 700, "learning_starts": 100, "eval_freq": 200,
              "buffer_size": 1000}
SHORT_PPO = {**SMALL_PPO, "total_steps": 1024, "n_steps": 256, "batch_size": 64,
             "eval_freq": 512}


def _setup(method, reg="base", seeds=(42,), **over):
    module = jd if method == "ddpg" else jp
    config = jax_config(method, hp(method, reg, **over), {})
    return make_setup(method, make_dataset(1), reg, [config] * len(seeds), list(seeds), "cpu",
                      module.VALUES)


def _agent(module, setup):
    """Agent 0 of the population of ``setup`` as the module's training loop initializes it."""
    shape = module.Shape.of(setup)
    return pick(init_population(setup, module.init_agent, shape, module.ARRAYS)[0], 0)


def _hparams(setup):
    return {k: v for k, v in setup.config.items() if k not in OPTIONS}


def _torch_layers(params):
    return [(torch.tensor(np.asarray(w).T), torch.tensor(np.asarray(b))) for w, b in params]


def _load(linears, params):
    with torch.no_grad():
        for lin, (w, b) in zip(linears, _torch_layers(params), strict=True):
            lin.weight.copy_(w)
            lin.bias.copy_(b)


def _linears(module):
    return [m for m in module.modules() if isinstance(m, torch.nn.Linear)]


# ------------------------------------------------------------------ schedules and initialization
def test_the_linear_schedule_equals_sb3s_at_every_progress():
    ours = [float(jd.linear_schedule(1e-3, 1e-4, 0.95, p)) for p in np.linspace(0, 1.2, 25)]
    sb3 = [linear_schedule(1e-3, 1e-4, 0.95)(1 - p) for p in np.linspace(0, 1.2, 25)]
    np.testing.assert_allclose(ours, sb3, rtol=1e-6)


def test_the_logged_learning_rate_of_each_agent_is_its_own_sb3_schedule_at_the_step():
    configs = [{"learning_rate": 1e-3, "lr_min": 1e-4, "lr_fraction": 0.95, "total_steps": 200_000},
               {"learning_rate": 4.2493e-3, "lr_min": 1.5346e-5, "lr_fraction": 0.9,
                "total_steps": 13_000}]
    for step in (0, 2048, 12_999, 13_000, 150_000, 200_000):
        sb3 = [linear_schedule(c["learning_rate"], c["lr_min"], c["lr_fraction"])(
            1 - step / c["total_steps"]) for c in configs]
        np.testing.assert_allclose(lr_values(configs, step), sb3, rtol=1e-6)


@pytest.mark.parametrize("b0", [0.0, 0.2, 0.47504, 0.75, 0.996, 1.0])
def test_the_ddpg_bias_shift_equals_the_sb3_backends(b0):
    assert float(jd.bias_shift(jnp.float32(b0))) == pytest.approx(ddpg_bias_shift(b0), rel=1e-5)


def test_ddpg_layers_have_torch_default_bounds_and_a_shifted_online_actor():
    setup = _setup("ddpg", net_arch={"pi": [64, 64], "qf": [64, 64]})
    learner = _agent(jd, setup)["learner"]
    for net in ("actor", "critic"):
        for w, b in learner[net][:-1] if net == "actor" else learner[net]:
            bound = 1 / math.sqrt(w.shape[0])
            assert float(jnp.abs(w).max()) <= bound and float(jnp.abs(w).max()) > 0.9 * bound
            assert float(jnp.abs(b).max()) <= bound
    shift = ddpg_bias_shift(setup.config["initial_action_bias"])
    np.testing.assert_allclose(learner["actor"][-1][1] - learner["actor_t"][-1][1], shift,
                               rtol=1e-5)


def test_ppo_weights_are_orthogonal_with_sb3_gains_and_the_mean_starts_at_b0():
    setup = _setup("ppo", net_arch={"pi": [64, 64], "vf": [64, 64]})
    params = _agent(jp, setup)["params"]
    w = np.asarray(params["pi"][1][0])
    np.testing.assert_allclose(w.T @ w, 2.0 * np.eye(64), atol=1e-4)
    w_mu = np.asarray(params["mu"][0])
    np.testing.assert_allclose(np.linalg.norm(w_mu), 0.01, rtol=1e-4)
    assert float(params["mu"][1][0]) == pytest.approx(
        setup.config["initial_action_bias"] * setup.config["M"], rel=1e-6)
    assert float(params["log_std"][0]) == 0.0 and float(jnp.abs(params["pi"][0][1]).max()) == 0.0


# ------------------------------------------------------------------ networks and updates vs SB3
def test_ddpg_actor_and_critic_equal_sb3s_networks_with_the_same_weights():
    setup = _setup("ddpg")
    learner = _agent(jd, setup)["learner"]
    model = build_model("ddpg", setup.dataset, "base", _hparams(setup), 42).model
    _load(_linears(model.actor.mu), learner["actor"])
    _load(_linears(model.critic.qf0), learner["critic"])
    obs = np.random.default_rng(0).uniform(0, 60, (7, 3)).astype(np.float32)
    a = np.random.default_rng(1).uniform(-1, 1, (7, 1)).astype(np.float32)
    with torch.no_grad():
        mu = model.actor(torch.tensor(obs)).numpy()
        q = model.critic(torch.tensor(obs), torch.tensor(a))[0].numpy()[:, 0]
        act, _ = model.predict(obs, deterministic=True)
    np.testing.assert_allclose(jd.actor_out(learner["actor"], obs), mu, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(jd.q_value(learner["critic"], obs, a), q, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jd.act(jd.Shape.of(setup), learner["actor"], obs), act, rtol=1e-5)


def test_one_ddpg_update_equals_sb3s_train_on_the_same_batch(monkeypatch):
    setup = _setup("ddpg", learning_rate=3e-3, lr_min=3e-3, tau=0.05, gamma=0.9)
    learner = _agent(jd, setup)["learner"]
    model = build_model("ddpg", setup.dataset, "base", _hparams(setup), 42).model
    for mod, key in ((model.actor.mu, "actor"), (model.actor_target.mu, "actor_t"),
                     (model.critic.qf0, "critic"), (model.critic_target.qf0, "critic_t")):
        _load(_linears(mod), learner[key])
    rng = np.random.default_rng(2)
    n = 32
    batch = {"obs": rng.uniform(0, 60, (n, 3)), "act": rng.uniform(-1, 1, (n, 1)),
             "rew": -rng.uniform(0, 5, n), "next": rng.uniform(0, 60, (n, 3)),
             "done": (rng.uniform(size=n) < 0.2).astype(float)}
    batch = {k: v.astype(np.float32) for k, v in batch.items()}
    from stable_baselines3.common.type_aliases import ReplayBufferSamples

    sample = ReplayBufferSamples(*(torch.tensor(batch[k]).reshape(n, -1) for k in
                                   ("obs", "act", "next", "done", "rew")))
    monkeypatch.setattr(model.replay_buffer, "sample", lambda *a, **k: sample)
    model._current_progress_remaining = 1.0
    model.set_logger(configure(None, []))
    model.train(gradient_steps=1, batch_size=n)
    hpv = pick(stack_values(setup.configs, jd.ARRAYS), 0)
    new, _ = jd.update(learner, {k: jnp.asarray(v) for k, v in batch.items()}, hpv, 3e-3)
    for mod, key in ((model.actor.mu, "actor"), (model.critic.qf0, "critic"),
                     (model.actor_target.mu, "actor_t"), (model.critic_target.qf0, "critic_t")):
        for lin, (w, b) in zip(_linears(mod), new[key], strict=True):
            np.testing.assert_allclose(np.asarray(w).T, lin.weight.detach().numpy(), atol=2e-6)
            np.testing.assert_allclose(b, lin.bias.detach().numpy(), atol=2e-6)


def _ppo_pair(**over):
    setup = _setup("ppo", **over)
    agent = _agent(jp, setup)
    model = build_model("ppo", setup.dataset, "base", _hparams(setup), 42).model
    pol = model.policy
    _load(_linears(pol.mlp_extractor.policy_net), agent["params"]["pi"])
    _load(_linears(pol.mlp_extractor.value_net), agent["params"]["vf"])
    _load([pol.action_net], [agent["params"]["mu"]])
    _load([pol.value_net], [agent["params"]["v"]])
    return setup, agent, model


def test_ppo_log_probabilities_entropy_and_values_equal_sb3s_policy():
    setup, agent, model = _ppo_pair()
    params = agent["params"] | {"log_std": jnp.asarray([0.3])}
    with torch.no_grad():
        model.policy.log_std.fill_(0.3)
    rng = np.random.default_rng(3)
    obs = rng.uniform(0, 60, (9, 3)).astype(np.float32)
    a = rng.uniform(-10, 110, (9, 1)).astype(np.float32)
    with torch.no_grad():
        v, logp, ent = model.policy.evaluate_actions(torch.tensor(obs), torch.tensor(a))
    mean = jp.mean_action(params, obs)
    np.testing.assert_allclose(jp.value(params, obs), v.numpy()[:, 0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(jp.log_prob(params, mean, a), logp.numpy(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(jp.entropy(params), ent.numpy()[0], rtol=1e-6)


def test_gae_advantages_and_returns_equal_sb3s_rollout_buffer():
    from stable_baselines3.common.buffers import RolloutBuffer

    setup, agent, model = _ppo_pair()
    n, rng = 40, np.random.default_rng(4)
    rew = -rng.uniform(0, 5, n).astype(np.float32)
    val = rng.normal(size=n).astype(np.float32)
    start = (rng.uniform(size=n) < 0.15).astype(np.float32)
    buf = RolloutBuffer(n, model.observation_space, model.action_space, gamma=0.97,
                        gae_lambda=0.8)
    for t in range(n):
        buf.add(np.zeros((1, 3)), np.zeros((1, 1)), rew[t:t + 1], start[t:t + 1],
                torch.tensor(val[t:t + 1]), torch.zeros(1))
    buf.compute_returns_and_advantage(torch.tensor([0.7]), np.array([1.0]))
    rollout = {"rew": rew, "value": val, "start": start, "last_value": jnp.float32(0.7),
               "last_done": jnp.float32(1.0)}
    adv, ret = jp.advantages(rollout, 0.97, 0.8)
    np.testing.assert_allclose(adv, buf.advantages[:, 0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ret, buf.returns[:, 0], rtol=1e-5, atol=1e-5)


def test_one_ppo_epoch_on_one_minibatch_equals_sb3s_train():
    n = 64
    setup, agent, model = _ppo_pair(n_steps=n, batch_size=n, n_epochs=1, learning_rate=2e-3,
                                    lr_min=2e-3, ent_coef=0.05, max_grad_norm=0.3)
    rng = np.random.default_rng(5)
    obs = rng.uniform(0, 60, (n, 3)).astype(np.float32)
    act = rng.normal(20, 5, (n, 1)).astype(np.float32)
    rew = -rng.uniform(0, 5, n).astype(np.float32)
    start = (rng.uniform(size=n) < 0.1).astype(np.float32)
    params = agent["params"]
    val = np.asarray(jp.value(params, obs))
    logp = np.asarray(jp.log_prob(params, jp.mean_action(params, obs), act))
    buf = model.rollout_buffer
    buf.reset()
    for t in range(n):
        buf.add(obs[t:t + 1], act[t:t + 1], rew[t:t + 1], start[t:t + 1],
                torch.tensor(val[t:t + 1]), torch.tensor(logp[t:t + 1]))
    buf.compute_returns_and_advantage(torch.tensor([0.5]), np.array([0.0]))
    model._current_progress_remaining = 1.0
    model.set_logger(configure(None, []))
    model.train()
    rollout = {"obs": obs, "act": act, "rew": rew, "start": start, "value": val, "logp": logp}
    rollout = {k: jnp.asarray(v) for k, v in rollout.items()} | {
        "last_value": jnp.float32(0.5), "last_done": jnp.float32(0.0)}
    hpv = pick(stack_values(setup.configs, jp.ARRAYS), 0)
    new = jp.optimize(jp.Shape.of(setup), {**agent, "rollout": rollout}, hpv, 0)["params"]
    pol = model.policy
    for mod, key in ((pol.mlp_extractor.policy_net, "pi"), (pol.mlp_extractor.value_net, "vf")):
        for lin, (w, b) in zip(_linears(mod), new[key], strict=True):
            np.testing.assert_allclose(np.asarray(w).T, lin.weight.detach().numpy(), atol=1e-5)
            np.testing.assert_allclose(b, lin.bias.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(new["mu"][1], pol.action_net.bias.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(new["log_std"], pol.log_std.detach().numpy(), atol=1e-6)


# ------------------------------------------------------------------ where SB3 evaluates
def test_ddpg_runs_whole_training_periods_as_sb3_does():
    assert budget([{"total_steps": 250}], 1) == 250
    assert budget([{"total_steps": 200}], 14) == 210  # SB3 runs whole periods of 14 steps
    assert budget([{"total_steps": 5000}, {"total_steps": 3000}], 1024) == 5120  # the largest


def test_ppo_chunks_stop_at_the_rollout_holding_an_evaluation():
    assert [jp.rollouts_to_event(s, 1024, 2048, 5120) for s in (0, 2048)] == [2, 2]
    assert jp.rollouts_to_event(4096, 1024, 2048, 5120) == 1
    assert jp.events_in(4096, 5120, 2048) == []
    assert jp.rollouts_to_event(1024, 1024, 512, 4096) == 1
    assert jp.events_in(1024, 2048, 512) == [1536, 2048]


# ------------------------------------------------------------------ training runs
@pytest.mark.parametrize("method,over", [("ddpg", SHORT_DDPG), ("ppo", SHORT_PPO)])
def test_a_short_run_is_deterministic_and_saved_like_the_sb3_backend(tmp_path, method, over):
    ds = make_dataset(1)
    fn = load_trainer(method, "jax").train
    a = fn(ds, "base", hp(method, **over), 42)
    b = fn(ds, "base", hp(method, **over), 42)
    assert a.backend == "jax" and a.test_loss == b.test_loss
    assert a.curve.drop(columns="wall_s").equals(b.curve.drop(columns="wall_s"))
    tiny = ({"total_steps": 300, "eval_freq": 300, "learning_starts": 100} if method == "ddpg"
            else {"total_steps": 256, "eval_freq": 256, "n_steps": 128, "batch_size": 64})
    sb3 = load_trainer(method, "sb3").train(ds, "base", hp(method, **tiny), 42)
    assert list(a.curve.columns) == list(sb3.curve.columns)
    evals = list(range(over["eval_freq"], over["total_steps"] + 1, over["eval_freq"]))
    assert a.curve["step"].tolist() == [0, *evals] and a.iterations == over["total_steps"]
    save_run(a, tmp_path / "run")
    metrics = read_run(tmp_path / "run")
    assert metrics["backend"] == "jax" and metrics["test_loss"] == a.test_loss
    with np.load(tmp_path / "run" / "model.npz") as npz:
        assert len(npz.files) >= 3


def _population_and_singles(mode):
    ds = make_dataset(1)
    configs = [hp("ddpg", **SHORT_DDPG, learning_rate=lr, tau=tau, patience_evals=pe,
                  min_evals=0)
               for lr, tau, pe in ((1e-3, 0.005, 0), (4e-3, 0.02, 5), (2e-3, 0.01, 5))]
    seeds = [42, 43, 44]
    together = jd.train_ddpg_population(ds, "base", configs, seeds, population=mode)
    alone = [jd.train_ddpg(ds, "base", c, s, population=mode)
             for c, s in zip(configs, seeds, strict=True)]
    assert together[0].extras["stopped_early"] and together[0].iterations < 700
    assert not together[1].extras["stopped_early"] and together[1].iterations == 700
    return together, alone


def test_each_agent_keeps_its_improved_parameters_and_no_program_runs_when_all_agree():
    actor = {"w": jnp.arange(6.0).reshape(3, 2), "b": jnp.arange(3.0)}
    best = {"w": -jnp.ones((3, 2)), "b": -jnp.ones(3)}
    assert keep_best(np.ones(3, bool), actor, best) is actor
    assert keep_best(np.zeros(3, bool), actor, best) is best
    mixed = keep_best(np.array([True, False, True]), actor, best)
    np.testing.assert_array_equal(mixed["w"], [[0.0, 1.0], [-1.0, -1.0], [4.0, 5.0]])
    np.testing.assert_array_equal(mixed["b"], [0.0, -1.0, 2.0])


def test_a_cpu_population_returns_exactly_what_each_agent_returns_alone():
    together, alone = _population_and_singles("sequential")
    for t, a in zip(together, alone, strict=True):
        assert t.iterations == a.iterations and t.extras["best_step"] == a.extras["best_step"]
        assert t.curve["val_loss"].tolist() == a.curve["val_loss"].tolist()
        assert (t.train_loss, t.val_loss, t.test_loss) == (a.train_loss, a.val_loss, a.test_loss)
        for key, value in t.model_state.items():
            np.testing.assert_array_equal(value, a.model_state[key])


def test_a_vmapped_population_equals_single_runs_until_rounding_grows():
    # vmap batches the agents' matrix products, which rounds differently from one agent's; like
    # any float perturbation of RL training the difference then grows (docs/jax-backend.md).
    ds = make_dataset(1)
    configs = [hp("ddpg", **{**SHORT_DDPG, "total_steps": 400}, learning_rate=lr)
               for lr in (1e-3, 4e-3)]
    together = jd.train_ddpg_population(ds, "base", configs, [42, 43], population="vmap")
    for t, c, seed in zip(together, configs, [42, 43], strict=True):
        a = jd.train_ddpg(ds, "base", c, seed, population="vmap")
        assert t.iterations == a.iterations == 400
        np.testing.assert_allclose(t.curve["val_loss"], a.curve["val_loss"], rtol=1e-4)


def test_configurations_of_different_shapes_train_in_separate_groups_in_input_order():
    ds = make_dataset(1)
    configs = [hp("ppo", **SHORT_PPO), hp("ppo", **{**SHORT_PPO, "batch_size": 128}),
               hp("ppo", **SHORT_PPO, ent_coef=0.01)]
    results = jp.train_ppo_population(ds, "base", configs, [42, 43, 44])
    assert [r.config["batch_size"] for r in results] == [64, 128, 64]
    assert [r.seed for r in results] == [42, 43, 44]
    assert [r.extras["population_size"] for r in results] == [2, 1, 2]


def test_value_hyper_parameters_reuse_the_compiled_program():
    built: list[str] = []  # every XLA compilation and every program loaded from the disk cache
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, *a, **k: built.append(event) if "backend_compile" in event else None)
    jax.monitoring.register_event_listener(
        lambda event, **k: built.append(event) if event.endswith("cache_hits") else None)
    ds = make_dataset(1)
    jd.train_ddpg(ds, "base", hp("ddpg", **{**SHORT_DDPG, "net_arch": {"pi": [13, 13],
                                                                       "qf": [13, 13]}}), 42)
    before = len(built)
    assert before > 0  # the listeners see the first run's programs
    jd.train_ddpg(ds, "base", hp("ddpg", **{**SHORT_DDPG, "net_arch": {"pi": [13, 13],
                                                                       "qf": [13, 13]},
                                            "learning_starts": 50},
                                 learning_rate=1e-3, gamma=0.9, tau=0.05,
                                 initial_action_bias=0.3), 7)
    assert len(built) == before  # new values: not one program compiled or loaded again


def test_cuda_without_a_gpu_is_a_one_line_error():
    from deepstock.errors import ConfigError
    from deepstock.training.jaxrt import gpu_available

    if gpu_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ConfigError, match="cuda"):
        jd.train_ddpg(make_dataset(1), "base", hp("ddpg", **SHORT_DDPG), 42, device="cuda")


_CACHE_PROBE = """
import collections, json, jax
events = collections.Counter()
jax.monitoring.register_event_listener(lambda name, **kw: events.update([name]))
from deepstock.training import jax_ppo
from tests.test_sb3 import hp, make_dataset
from tests.test_jax_trainers import SHORT_PPO
r = jax_ppo.train_ppo(make_dataset(1), "base", hp("ppo", **SHORT_PPO), 42)
print(json.dumps({"hits": events["/jax/compilation_cache/cache_hits"],
                  "misses": events["/jax/compilation_cache/cache_misses"],
                  "compile_s": r.extras["compile_seconds"], "test": r.test_loss}))
"""


def test_a_second_process_loads_the_compiled_programs_from_the_persistent_cache(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "DEEPSTOCK_JAX_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}

    def probe() -> dict:
        out = subprocess.run([sys.executable, "-c", _CACHE_PROBE], env=env, check=True,
                             capture_output=True, text=True).stdout
        return json.loads(out.strip().splitlines()[-1])

    first, second = probe(), probe()
    assert first["misses"] > 0  # every program compiled once and stored
    assert second["misses"] == 0 and second["hits"] > 0  # nothing compiled again
    assert second["test"] == first["test"]
    assert any((tmp_path / "cache").iterdir())


def test_a_run_shorter_than_eval_freq_evaluates_its_final_policy_once():
    r = jd.train_ddpg(make_dataset(1), "base",
                      hp("ddpg", **{**SHORT_DDPG, "total_steps": 300, "eval_freq": 1024}), 42)
    assert r.curve["step"].tolist() == [0, 300] and r.extras["n_evals"] == 1
    assert r.best_val == pytest.approx(r.val_loss, rel=1e-5)


def test_tanh_saturates_and_differentiates_like_torchs_float32_tanh():
    from deepstock.training.jax_common import tanh

    x = np.concatenate([np.linspace(-12, 12, 481), [7.9, 8.0, 8.3, 8.6, 9.0]]).astype(np.float32)
    t = torch.tensor(x, requires_grad=True)
    torch.tanh(t).sum().backward()
    ours = np.asarray(tanh(jnp.asarray(x)))
    grad = np.asarray(jax.vmap(jax.grad(tanh))(jnp.asarray(x)))
    np.testing.assert_allclose(ours, torch.tanh(t).detach().numpy(), rtol=0, atol=1.2e-7)
    np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-5, atol=3e-7)  # 1 - y², y to 1 ulp
    band = (np.abs(x) > 7.9) & (np.abs(x) < 8.9)  # XLA's own tanh has a zero gradient here
    assert np.all(grad[band] > 0) and np.all(t.grad.numpy()[band] > 0)
