"""The one inventory simulator (spec §2), batched over trajectories.

The same code runs on numpy arrays (evaluation, environments, benchmarks) and on torch tensors
(the differentiable simulator of DS): every operation used here (``clip``, ``stack``,
``zeros_like``, arithmetic) has the same meaning in both libraries, so there is no second copy of
the dynamics. The Python loop is over days only; every day is one vectorized step over the batch.

Within-day order of events (spec §2): order -> demand -> record -> shift the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

try:  # torch is a hard dependency, but keep numpy-only use importable and fast.
    import torch
except ImportError:  # pragma: no cover
    torch = None  # type: ignore[assignment]

Array = Any  # numpy.ndarray or torch.Tensor


def _xp(a: Array):
    return torch if torch is not None and isinstance(a, torch.Tensor) else np


def order_days(T: int, R: int, L: int) -> np.ndarray:
    """Boolean mask [T] of useful order days: t >= R, t mod R == 0 and t + L <= T - 1."""
    t = np.arange(T)
    return (t >= R) & (t % R == 0) & (t + L <= T - 1)


def counted_days(T: int, R: int, L: int) -> np.ndarray:
    """Boolean mask [T] of the days that enter losses and metrics: t >= R + L."""
    return np.arange(T) >= R + L


@dataclass
class Observation:
    """What a policy sees on order day ``t`` for every trajectory of the batch.

    ``pipeline[:, 0]`` is the net on-hand inventory I_{t,0}; ``pipeline[:, l]`` arrives at the
    start of day t + l. ``x`` is the context feature x_t, ``phi`` the Coeff features φ_1..φ_4 at t
    (None when the dataset has none) and ``index`` the rows of the dataset being simulated.
    """

    t: int
    x: Array  # [n]
    pipeline: Array  # [n, L+1]
    phi: Array | None = None  # [n, 4]
    index: np.ndarray | None = None  # [n] dataset rows
    z: Array | None = None  # [n, k] per-trajectory min-max normalized context (Coeff/Both input)

    @property
    def state(self) -> Array:
        """The policy state s_t = (x_t, I_{t,0}, ..., I_{t,L}), shape [n, 2 + L]."""
        xp = _xp(self.pipeline)
        return xp.concatenate([self.x[:, None], self.pipeline], 1) if xp is np else torch.cat(
            [self.x[:, None], self.pipeline], 1
        )

    @property
    def position(self) -> Array:
        """Inventory position tot(I_t) = sum over the pipeline, shape [n]."""
        return self.pipeline.sum(1)


Policy = Callable[[Observation], Array]


@dataclass
class Rollout:
    """Per-day record of a simulation, each array [n, T]."""

    demand: Array
    orders: Array
    onhand: Array  # I_{t,0} at the start of day t, after the arrival, before demand
    ending: Array  # E_t
    lost: Array  # λ_t (zero under backlog)
    sales: Array  # s_t = D_t - λ_t
    R: int
    L: int


def simulate(
    demand: Array,
    policy: Policy,
    *,
    R: int,
    L: int,
    x: Array | None = None,
    phi: Array | None = None,
    lost_sales: bool = False,
    initial: Array | None = None,
    index: np.ndarray | None = None,
    z: Array | None = None,
) -> Rollout:
    """Roll ``policy`` through ``demand`` [n, T] with review period R and lead time L.

    ``policy`` is called once per useful order day with an :class:`Observation` and returns the
    order batch [n]; it is responsible for clipping (the regularizations clip to [0, M]).
    ``initial`` is the pipeline I_0 [n, L+1] (default zeros); ``x`` [n, T], ``phi`` [n, T, 4] and
    ``z`` [n, T, k] are the context passed through to the policy. Works on numpy and torch inputs.
    """
    if R < 1 or L < 0:
        raise ValueError(f"need R >= 1 and L >= 0, got R={R}, L={L}")
    xp = _xp(demand)
    n, T = demand.shape
    zeros = xp.zeros_like(demand[:, 0])
    if initial is None:
        pipe = [zeros for _ in range(L + 1)]
    else:
        pipe = [initial[:, ell] for ell in range(L + 1)]
    if x is None:
        x = xp.zeros_like(demand)
    mask = order_days(T, R, L)
    orders, onhand, ending, lost = [], [], [], []
    for t in range(T):
        q = zeros
        if mask[t]:
            obs = Observation(
                t=t,
                x=x[:, t],
                pipeline=xp.stack(pipe, 1),
                phi=None if phi is None else phi[:, t],
                index=index,
                z=None if z is None else z[:, t],
            )
            q = policy(obs)
            pipe = pipe[:L] + [pipe[L] + q]
        d = demand[:, t]
        i0 = pipe[0]
        if lost_sales:
            e = (i0 - d).clip(min=0)
            lam = (d - i0).clip(min=0)
        else:
            e = i0 - d
            lam = zeros
        orders.append(q)
        onhand.append(i0)
        ending.append(e)
        lost.append(lam)
        if L == 0:
            pipe = [e]
        else:
            pipe = [e + pipe[1]] + pipe[2:] + [zeros]
    st = xp.stack
    lost_arr = st(lost, 1)
    return Rollout(
        demand=demand,
        orders=st(orders, 1),
        onhand=st(onhand, 1),
        ending=st(ending, 1),
        lost=lost_arr,
        sales=demand - lost_arr,
        R=R,
        L=L,
    )
