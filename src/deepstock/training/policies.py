"""Policy networks of DS and their adapters to the shared simulator (spec §4, §7.5).

- :class:`DSNetwork`: Linear → ELU → Linear → ELU → Linear → ReLU with hidden sizes
  ``neurons_per_hidden_layer``; PyTorch default init, then every bias of the last Linear layer
  is set to b₀·M (``initial_action_bias``, spec §4), so the initial output is ≈ b₀·M.
- :class:`TorchPolicy`: Observation (torch tensors) → regularization input → network → decoded
  order, differentiable; used inside :func:`deepstock.problem.dynamics.simulate` during DS training.
- :class:`NumpyPolicy`: the same mapping for numpy observations (evaluation, benchmarks). The
  network runs in float32 without gradients on a CPU copy; inputs and decoding are float64.

Coeff/Both read ``obs.z``: the 4 Coeff features min-max normalized per trajectory over the
horizon (spec §4), built by :func:`normalized_coeff` from the dataset's ``coeff`` array.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepstock.problem.dynamics import Observation
from deepstock.training.regularizations import (
    Regularization,
    RegularizationParams,
    minmax_normalize,
)


class DSNetwork(nn.Module):
    """μ_θ: ELU hidden layers and a ReLU output; last-layer biases = ``bias`` (b₀·M)."""

    def __init__(
        self, input_dim: int, output_dim: int, hidden: Sequence[int], *, bias: float | None = None
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = input_dim
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ELU()]
            width = int(h)
        self.body = nn.Sequential(*layers, nn.Linear(width, output_dim))
        self._linears = [m for m in self.body if isinstance(m, nn.Linear)]
        if bias is not None:
            with torch.no_grad():
                self.last.bias.fill_(float(bias))

    @property
    def last(self) -> nn.Linear:
        """The output Linear layer (before the ReLU)."""
        return self.body[-1]

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        # functional calls: same maths as ``relu(self.body(inp))`` without per-module overhead,
        # which matters because the policy runs 14 times per rollout on tiny batches
        *hidden, last = self._linears
        h = inp
        for lin in hidden:
            h = F.elu(F.linear(h, lin.weight, lin.bias))
        return torch.relu(F.linear(h, last.weight, last.bias))


def initial_action_bias(b0: float, M: float) -> float:
    """The value every last-layer bias starts at: b₀·M (spec §4, DS row).

    A one-line ConfigError, before any network is built, when ``M`` is above the order cap's
    bound (:data:`deepstock.registry.M_MAX`) or b₀·M is not a finite float32 (torch's bias)."""
    from deepstock.errors import ConfigError
    from deepstock.registry import M_MAX

    if not 0.0 < float(M) <= M_MAX:
        raise ConfigError(f"order cap M={float(M):g} is outside (0, {M_MAX:g}] "
                          "(deepstock.registry.M_MAX)")
    bias = float(b0) * float(M)
    if not abs(bias) <= float(np.finfo(np.float32).max):
        raise ConfigError(f"initial action bias b0*M = {bias:g} (b0={float(b0):g}, "
                          f"M={float(M):g}) is not a finite float32")
    return bias


def build_ds_network(
    reg: Regularization, L: int, hidden: Sequence[int], *, b0: float, M: float
) -> DSNetwork:
    """The DS network for ``reg`` (input size from the regularization, spec §4)."""
    return DSNetwork(
        reg.input_dim(L, rl=False), reg.output_dim, hidden, bias=initial_action_bias(b0, M)
    )


def normalized_coeff(coeff: np.ndarray) -> np.ndarray:
    """Per-trajectory min-max normalized Coeff features [n, T, 4] (spec §4, DS input)."""
    return minmax_normalize(np.asarray(coeff, dtype=np.float64), axis=1)


class TorchPolicy:
    """Differentiable policy: ``decode(net(network_input(obs)))`` on torch observations."""

    def __init__(self, net: nn.Module, reg: Regularization, reg_params: RegularizationParams) -> None:
        self.net, self.reg, self.reg_params = net, reg, reg_params

    def __call__(self, obs: Observation) -> torch.Tensor:
        out = self.net(self.reg.network_input(obs, self.reg_params))
        return self.reg.decode(out, obs, self.reg_params)


class NumpyPolicy:
    """No-grad numpy adapter of a trained network (float32 net, float64 in/out).

    ``z_table`` [n_dataset, T, 4] (normalized Coeff features of the whole dataset) lets Coeff/Both
    policies run under :func:`deepstock.problem.evaluation.evaluate_policy`, which passes ``obs.index``
    but no ``z``.
    """

    def __init__(
        self,
        net: nn.Module,
        reg: Regularization,
        reg_params: RegularizationParams,
        z_table: np.ndarray | None = None,
    ) -> None:
        self.net = copy.deepcopy(net).to("cpu").float().eval()
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.reg, self.reg_params, self.z_table = reg, reg_params, z_table

    def __call__(self, obs: Observation) -> np.ndarray:
        if self.reg.uses_coeff and obs.z is None and self.z_table is not None:
            if obs.index is None:
                raise ValueError("Coeff/Both evaluation needs obs.z or obs.index")
            obs = replace(obs, z=self.z_table[obs.index, obs.t])
        inp = np.asarray(self.reg.network_input(obs, self.reg_params), dtype=np.float32)
        with torch.no_grad():
            out = self.net(torch.from_numpy(inp)).numpy().astype(np.float64)
        return self.reg.decode(out, obs, self.reg_params)
