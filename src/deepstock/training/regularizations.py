"""Policy regularizations (spec §4): how a network output becomes an order.

One place defines the four mappings — None, Base, Coeff, Both — and the network input each one
uses. DS, DDPG and PPO all decode actions through :func:`get_regularization`. Every function works
on numpy arrays, torch tensors and JAX arrays alike. The four are declared, with their labels,
colours and markers, in :mod:`deepstock.registry`; a new one is one :class:`Regularization` passed to
``registry.register_regularization`` (a subclass may override ``decode``).

- None:  q = clip(μ, 0, M)
- Base:  q = clip(μ - tot(I_t), 0, M)
- Coeff: q = clip(K_c Σ_j clip(w_j, c_lo, c_hi) φ_j(t) + w_5, 0, M)
- Both:  q = clip(K_c Σ_j clip(w_j, c_lo, c_hi) φ_j(t) + w_5 - tot(I_t), 0, M)

φ_j are the raw Coeff features of the dataset (demand units); K_c = ``coeff_scale`` (28) and the
coefficient clip ``coeff_clip`` ([0, 1]) come from the authors' code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepstock.errors import ConfigError
from deepstock.problem.dynamics import Array, Observation, array_module

N_COEFF = 4


@dataclass(frozen=True)
class RegularizationParams:
    """Constants of the mappings (config fields, defaults from the authors' code)."""

    M: float = 100.0
    coeff_scale: float = 28.0
    coeff_clip: tuple[float, float] = (0.0, 1.0)


def _cat(parts: list[Array]) -> Array:
    return array_module(parts[0]).concatenate(parts, 1)


@dataclass(frozen=True)
class Regularization:
    """One action mapping: its output size, its network input and its decoder."""

    name: str
    subtract_position: bool  # Base / Both
    uses_coeff: bool  # Coeff / Both
    label: str = ""  # in tables and legends (default: the capitalized name)
    color: str = "#777777"
    marker: str = "o"

    @property
    def title(self) -> str:
        return self.label or self.name.capitalize()

    @property
    def output_dim(self) -> int:
        return N_COEFF + 1 if self.uses_coeff else 1

    def network_input(self, obs: Observation, reg_params: RegularizationParams, *, rl: bool = False) -> Array:
        """Input of the policy network.

        None/Base: the raw state s_t = (x_t, I_{t,0}, ..., I_{t,L}).
        Coeff/Both: min-max normalized context (``obs.z``; 4 columns for DS, x_t only for RL)
        followed by the pipeline divided by M.
        """
        if not self.uses_coeff:
            return obs.state
        if obs.z is None:
            raise ConfigError(f"regularization {self.name!r} needs normalized features (obs.z)")
        z = obs.z[:, :1] if rl else obs.z
        return _cat([z, obs.pipeline / reg_params.M])

    def input_dim(self, L: int, *, rl: bool = False) -> int:
        if not self.uses_coeff:
            return 2 + L
        return (1 if rl else N_COEFF) + L + 1

    def decode(self, out: Array, obs: Observation, reg_params: RegularizationParams) -> Array:
        """Order batch [n] from network outputs ``out`` [n, output_dim] (or [n] when 1-d)."""
        if out.ndim == 2 and not self.uses_coeff:
            out = out[:, 0]
        if self.uses_coeff:
            lo, hi = reg_params.coeff_clip
            w = out[:, :N_COEFF].clip(min=lo, max=hi)
            value = reg_params.coeff_scale * (w * obs.phi).sum(1) + out[:, N_COEFF]
        else:
            value = out
        if self.subtract_position:
            value = value - obs.position
        return value.clip(min=0.0, max=reg_params.M)


def get_regularization(name: str) -> Regularization:
    """The registered regularization ``name`` (one-line ConfigError listing the known ones)."""
    from deepstock.registry import get_regularization as lookup

    return lookup(name)


def minmax_normalize(a: np.ndarray, axis: int = 1) -> np.ndarray:
    """Per-trajectory min-max normalization over time: (f - min) / (max - min + 1e-8)."""
    lo = np.nanmin(a, axis=axis, keepdims=True)
    hi = np.nanmax(a, axis=axis, keepdims=True)
    return np.nan_to_num((a - lo) / (hi - lo + 1e-8))
