"""Regularizations (spec §4) and the DS policy adapters: hand-written decodes, network inputs,
Base with a constant target = the base-stock policy, initial bias b0·M."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepstock.errors import ConfigError
from deepstock.problem.data import Dataset
from deepstock.problem.dynamics import Observation, simulate
from deepstock.problem.evaluation import base_stock_policy, evaluate_policy
from deepstock.problem.losses import trajectory_loss
from deepstock.problem.settings import get_setting
from deepstock.training.policies import (
    DSNetwork,
    NumpyPolicy,
    TorchPolicy,
    build_ds_network,
    normalized_coeff,
)
from deepstock.training.regularizations import RegularizationParams, get_regularization

torch.set_num_threads(1)
P = RegularizationParams(M=100.0)  # K_c = 28, coefficients clipped to [0, 1]


def obs(pipeline, phi=None, x=None, z=None, lib=np):
    pipeline = np.asarray(pipeline, dtype=np.float64)
    n = pipeline.shape[0]
    x = np.zeros(n) if x is None else np.asarray(x, dtype=np.float64)
    conv = (lambda a: a) if lib is np else (lambda a: None if a is None else torch.tensor(a))
    phi = None if phi is None else np.asarray(phi, dtype=np.float64)
    z = None if z is None else np.asarray(z, dtype=np.float64)
    return Observation(t=2, x=conv(x), pipeline=conv(pipeline), phi=conv(phi), z=conv(z))


@pytest.mark.parametrize("lib", [np, torch])
def test_decode_none_and_base_by_hand(lib):
    conv = np.asarray if lib is np else torch.tensor
    o = obs([[10.0, 5.0], [60.0, 0.0], [-20.0, 0.0]], lib=lib)
    out = conv(np.array([[150.0], [30.0], [-5.0]]))
    # None: clip(μ, 0, 100)
    np.testing.assert_allclose(np.asarray(get_regularization("none").decode(out, o, P)),
                               [100.0, 30.0, 0.0])
    # Base: clip(μ - tot(I), 0, 100) with positions 15, 60, -20
    out = conv(np.array([[50.0], [50.0], [250.0]]))
    np.testing.assert_allclose(np.asarray(get_regularization("base").decode(out, o, P)),
                               [35.0, 0.0, 100.0])


@pytest.mark.parametrize("lib", [np, torch])
def test_decode_coeff_and_both_by_hand(lib):
    conv = np.asarray if lib is np else torch.tensor
    phi = [[1.0, 0.5, 2.0, 0.4], [10.0, 20.0, 30.0, 40.0]]
    o = obs([[10.0, 2.8], [0.0, 0.0]], phi=phi, lib=lib)
    # w clipped to [0,1]: (0.5, 1, 0, 0.25); 28*(0.5 + 0.5 + 0 + 0.1) + 3 = 33.8
    # second row: 28*(10 + 20 + 0 + 10) + 3 = 1123 -> capped at M = 100
    out = conv(np.array([[0.5, 2.0, -1.0, 0.25, 3.0], [0.5, 2.0, -1.0, 0.25, 3.0]]))
    np.testing.assert_allclose(np.asarray(get_regularization("coeff").decode(out, o, P)),
                               [33.8, 100.0])
    # Both subtracts the position 12.8: 33.8 - 12.8 = 21.0
    np.testing.assert_allclose(np.asarray(get_regularization("both").decode(out, o, P)),
                               [21.0, 100.0])


def test_coeff_scale_and_clip_are_parameters():
    o = obs([[0.0, 0.0]], phi=[[1.0, 1.0, 1.0, 1.0]])
    out = np.array([[0.5, 0.5, 0.5, 0.5, 1.0]])
    p = RegularizationParams(M=100.0, coeff_scale=10.0, coeff_clip=(0.0, 0.25))
    # 10 * (4 * 0.25) + 1 = 11
    np.testing.assert_allclose(get_regularization("coeff").decode(out, o, p), [11.0])


def test_network_inputs_by_hand():
    o = obs([[-4.0, 7.0]], x=[3.0], z=[[0.1, 0.2, 0.3, 0.4]])
    for name in ("none", "base"):
        reg = get_regularization(name)
        np.testing.assert_allclose(reg.network_input(o, P), [[3.0, -4.0, 7.0]])
        assert reg.input_dim(1) == 3 and reg.output_dim == 1
    o = obs([[50.0, 20.0]], z=[[0.1, 0.2, 0.3, 0.4]])
    for name in ("coeff", "both"):
        reg = get_regularization(name)
        np.testing.assert_allclose(reg.network_input(o, P), [[0.1, 0.2, 0.3, 0.4, 0.5, 0.2]])
        np.testing.assert_allclose(reg.network_input(o, P, rl=True), [[0.1, 0.5, 0.2]])
        assert reg.input_dim(1) == 6 and reg.input_dim(1, rl=True) == 3 and reg.output_dim == 5
    with pytest.raises(ConfigError, match="coeff"):
        get_regularization("coeff").network_input(obs([[0.0, 0.0]]), P)
    with pytest.raises(ConfigError, match="unknown regularization"):
        get_regularization("basestock")


def test_normalized_coeff_per_trajectory_and_column():
    c = np.zeros((2, 3, 4))
    c[0, :, 0] = [2.0, 4.0, 6.0]
    c[1, :, 0] = [10.0, 0.0, 5.0]
    c[0, :, 1] = [7.0, 7.0, 7.0]  # constant -> 0
    z = normalized_coeff(c)
    np.testing.assert_allclose(z[0, :, 0], [0.0, 0.5, 1.0], atol=1e-7)
    np.testing.assert_allclose(z[1, :, 0], [1.0, 0.0, 0.5], atol=1e-7)
    np.testing.assert_allclose(z[0, :, 1], 0.0)


def constant_net(reg_name: str, value: float) -> DSNetwork:
    """A DS network whose output is exactly ``value`` (last weights zero, bias = value)."""
    reg = get_regularization(reg_name)
    net = DSNetwork(reg.input_dim(1), reg.output_dim, [8, 8], bias=value)
    with torch.no_grad():
        net.last.weight.zero_()
    return net


def tiny_dataset(demand: np.ndarray) -> Dataset:
    n, T = demand.shape
    k = n // 3
    rng = np.random.default_rng(0)
    return Dataset(
        setting=get_setting("s1"), demand=demand, features=(np.arange(T) // 2)[None, :, None]
        * np.ones((n, 1, 1)), coeff=rng.uniform(0, 20, size=(n, T, 4)), ids=np.arange(1, n + 1),
        split_idx={"train": np.arange(k), "val": np.arange(k, 2 * k), "test": np.arange(2 * k, n)},
        meta={"setting": "s1"},
    )


def test_base_with_constant_target_is_base_stock():
    rng = np.random.default_rng(1)
    ds = tiny_dataset(rng.integers(5, 20, size=(9, 31)).astype(float))
    reg = get_regularization("base")
    mine = evaluate_policy(NumpyPolicy(constant_net("base", 37.0), reg, P), ds, "test")
    ref = evaluate_policy(base_stock_policy(37.0, 100.0), ds, "test")
    np.testing.assert_array_equal(mine.per_trajectory, ref.per_trajectory)
    np.testing.assert_array_equal(mine.rollout.orders, ref.rollout.orders)
    # the differentiable torch path gives the same losses (float32)
    s = ds.split("test")
    f = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    ro = simulate(f(s.demand), TorchPolicy(constant_net("base", 37.0), reg, P), R=2, L=1, x=f(s.x))
    np.testing.assert_allclose(trajectory_loss(ro).detach().numpy(), ref.per_trajectory, rtol=1e-5)


def test_constant_demand_base_stock_hand_computed():
    """D = 10 every day, S = 30: E alternates 10 (odd days) and 0 (even) from day 3 -> 0.5."""
    ds = tiny_dataset(np.full((3, 31), 10.0))
    ev = evaluate_policy(NumpyPolicy(constant_net("base", 30.0), get_regularization("base"), P),
                         ds, "test")
    np.testing.assert_allclose(ev.per_trajectory, [0.5])


def test_initial_bias_gives_b0_times_M():
    reg = get_regularization("base")
    net = build_ds_network(reg, 1, [64, 64], b0=0.51463, M=100.0)
    torch.testing.assert_close(net.last.bias, torch.full((1,), 51.463))
    with torch.no_grad():
        net.last.weight.zero_()
        out = net(torch.tensor([[5.0, -12.0, 0.0], [0.0, 40.0, 0.0]]))
    torch.testing.assert_close(out, torch.full((2, 1), 51.463))
    # None: that output is the initial order; Base: the initial target
    o = obs([[-12.0, 0.0], [40.0, 0.0]], x=[5.0, 0.0])
    pol = NumpyPolicy(net, reg, P)
    np.testing.assert_allclose(pol(o), [63.463, 11.463], rtol=1e-6)
    pol = NumpyPolicy(net, get_regularization("none"), P)
    np.testing.assert_allclose(pol(o), [51.463, 51.463], rtol=1e-6)
    # 5-output Coeff network: every last bias is b0·M
    net5 = build_ds_network(get_regularization("both"), 1, [16, 16], b0=0.2, M=500.0)
    torch.testing.assert_close(net5.last.bias, torch.full((5,), 100.0))
    assert [type(m).__name__ for m in net5.body] == ["Linear", "ELU", "Linear", "ELU", "Linear"]


def test_numpy_policy_looks_up_z_by_index():
    rng = np.random.default_rng(2)
    ds = tiny_dataset(rng.integers(5, 20, size=(9, 31)).astype(float))
    z_table = normalized_coeff(ds.coeff)
    reg = get_regularization("both")
    net = build_ds_network(reg, 1, [8, 8], b0=0.3, M=100.0)
    pol = NumpyPolicy(net, reg, P, z_table)
    s = ds.split("test")
    via_index = simulate(s.demand, pol, R=2, L=1, x=s.x, phi=s.phi, index=s.index)
    direct = simulate(s.demand, NumpyPolicy(net, reg, P), R=2, L=1, x=s.x, phi=s.phi,
                      z=z_table[s.index])
    np.testing.assert_array_equal(via_index.orders, direct.orders)
