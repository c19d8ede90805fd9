"""The one inventory simulator (spec §2), batched over trajectories.

The same code runs on numpy arrays (evaluation, environments, benchmarks), on torch tensors
(the differentiable simulator of DS) and on JAX arrays (the compiled RL environment,
:mod:`deepstock.training.envs_jax`): every operation used here (``clip``, ``stack``, ``concatenate``,
``zeros_like``, arithmetic) has the same meaning in the three libraries, so there is no second
copy of the dynamics. The Python loop is over days only; every day is one vectorized step over the batch.
Only the bookkeeping differs (``_Record``): numpy writes each day into one preallocated buffer,
torch keeps lists for autograd. See ``speed/bench_simulator.py`` for the speed.

Within-day order of events (spec §2): order -> demand -> record -> shift the pipeline.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

Array = Any  # numpy.ndarray, torch.Tensor or jax.Array


def array_module(a: Array):
    """The array library of ``a``: torch, jax.numpy or numpy.

    torch and JAX are only looked up if already imported: numpy-only users never pay their
    import time, and a tensor of either cannot exist unless its library was imported.
    """
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(a, torch.Tensor):
        return torch
    jax = sys.modules.get("jax")
    if jax is not None and isinstance(a, jax.Array):
        return jax.numpy
    return np


def positive_part(a: Array) -> Array:
    """max(a, 0) for numpy arrays, torch tensors (``clip(min=0)``) and Python floats."""
    return a.clip(min=0) if hasattr(a, "clip") else (a if a > 0 else 0.0)


def advance_day(pipe: list, q: Array | None, d: Array, lost_sales: bool, zero: Array):
    """One day of spec §2 on the pipeline ``pipe`` = [I_{t,0}, ..., I_{t,L}].

    The entries are batches ([n] arrays or tensors) or Python floats (the gymnasium environment);
    ``zero`` is the matching zero. Events: 1. the order ``q`` (None = no order) joins I_{t,L}
    (on-hand when L = 0); 2. demand: E_t = I_{t,0} - D_t (backlog) or max(I_{t,0} - D_t, 0) with
    λ_t = max(D_t - I_{t,0}, 0) (lost sales); 4. shift: I_{t+1,0} = E_t + I_{t,1},
    I_{t+1,l} = I_{t,l+1}, I_{t+1,L} = 0. Returns (I_{t,0}, E_t, λ_t, next pipeline).
    """
    L = len(pipe) - 1
    if q is not None:
        pipe = [*pipe[:L], pipe[L] + q]
    i0 = pipe[0]
    if lost_sales:
        e, lam = positive_part(i0 - d), positive_part(d - i0)
    else:
        e, lam = i0 - d, zero
    nxt = [e] if L == 0 else [e + pipe[1], *pipe[2:], zero]
    return i0, e, lam, nxt


class _Record:
    """Collects the per-day columns [n] of a rollout and returns them as [n, T] arrays.

    torch: lists + ``torch.stack(..., 1)`` and s = D - λ at the end (fewest autograd nodes).
    numpy: every column is copied into one preallocated day-major buffer [5, T, n] and the results
    are its transposed views (values and shape as ``np.stack(columns, 1)``): no list of T
    temporaries per quantity, no strided copy at the end, one allocation for the whole record.
    """

    def __init__(self, demand: Array, initial: Array | None) -> None:
        self.torch = array_module(demand) is not np
        n, T = demand.shape
        if self.torch:
            self.cols: list[list[Array]] = [[], [], [], []]
        else:  # float dtype of demand and initial state (float64 for integer demand)
            dtype = np.result_type(demand, 1.0, *(() if initial is None else (initial,)))
            self.buf = np.empty((5, T, n), dtype=dtype)

    def put(self, t: int, q: Array, i0: Array, e: Array, lam: Array, d: Array) -> None:
        """Record day t: order q_t, on-hand I_{t,0}, ending E_t, lost λ_t and demand D_t."""
        if self.torch:
            for store, c in zip(self.cols, (q, i0, e, lam), strict=True):
                store.append(c)
        else:
            buf = self.buf
            buf[0, t], buf[1, t], buf[2, t], buf[3, t] = q, i0, e, lam
            np.subtract(d, lam, out=buf[4, t])  # sales s_t = D_t - λ_t

    def result(self, demand: Array) -> list[Array]:
        """orders, onhand, ending, lost, sales, each [n, T]."""
        if self.torch:
            out = [array_module(c[0]).stack(c, 1) for c in self.cols]
            return [*out, demand - out[3]]
        return [b.T for b in self.buf]


def order_days(T: int, R: int, L: int) -> np.ndarray:
    """Boolean mask [T] of useful order days: t >= R, t mod R == 0 and t + L <= T - 1."""
    t = np.arange(T)
    return (t >= R) & (t % R == 0) & (t + L <= T - 1)


def counted_days(T: int, R: int, L: int, warmup: int = 0) -> np.ndarray:
    """Boolean mask [T] of the days that enter losses and metrics: t >= R + L + warmup."""
    return np.arange(T) >= R + L + warmup


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
        return array_module(self.pipeline).concatenate([self.x[:, None], self.pipeline], 1)

    @property
    def position(self) -> Array:
        """Inventory position tot(I_t) = sum over the pipeline, shape [n]."""
        p = self.pipeline
        if array_module(p) is not np:
            return p.sum(1)
        total = p[:, 0]
        for ell in range(1, p.shape[1]):  # column adds: numpy's .sum(1) over a short axis is slow
            total = total + p[:, ell]
        return total


Policy = Callable[[Observation], Array]


@dataclass
class Rollout:
    """Per-day record of a simulation, each array [n, T].

    numpy results are views of one day-major buffer (Fortran-ordered [n, T]; use
    ``np.ascontiguousarray`` where C order matters); torch results are stacked tensors.
    """

    demand: Array
    orders: Array
    onhand: Array  # I_{t,0} at the start of day t, after the arrival, before demand
    ending: Array  # E_t
    lost: Array  # λ_t (zero under backlog)
    sales: Array  # s_t = D_t - λ_t
    R: int
    L: int
    lost_sales: bool = False  # the dynamics it was simulated under
    warmup: int = 0  # uncounted days after R + L

    @property
    def first_counted(self) -> int:
        """The first day that enters losses: R + L + warmup."""
        return self.R + self.L + self.warmup


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
    warmup: int = 0,
) -> Rollout:
    """Roll ``policy`` through ``demand`` [n, T] with review period R and lead time L.

    ``policy`` is called once per useful order day with an :class:`Observation` and returns the
    order batch [n]; it is responsible for clipping (the regularizations clip to [0, M]).
    ``initial`` is the pipeline I_0 [n, L+1] (default zeros); ``x`` [n, T], ``phi`` [n, T, 4] and
    ``z`` [n, T, k] are the context passed through to the policy. ``warmup`` days after R + L
    are simulated but not counted (recorded in the Rollout, read by the losses). Works on numpy
    and torch inputs.
    """
    if R < 1 or L < 0:
        raise ValueError(f"need R >= 1 and L >= 0, got R={R}, L={L}")
    xp = array_module(demand)
    n, T = demand.shape
    zeros = xp.zeros_like(demand[:, 0])
    if initial is None:
        pipe = [zeros] * (L + 1)
    else:
        pipe = [initial[:, ell] for ell in range(L + 1)]
    is_order_day = order_days(T, R, L).tolist()
    rec = _Record(demand, initial)
    for t in range(T):
        q = None
        if is_order_day[t]:
            obs = Observation(
                t=t,
                x=zeros if x is None else x[:, t],
                pipeline=xp.stack(pipe, 1),
                phi=None if phi is None else phi[:, t],
                index=index,
                z=None if z is None else z[:, t],
            )
            q = policy(obs)
        d = demand[:, t]
        i0, e, lam, pipe = advance_day(pipe, q, d, lost_sales, zeros)
        rec.put(t, zeros if q is None else q, i0, e, lam, d)
    orders, onhand, ending, lost, sales = rec.result(demand)
    return Rollout(
        demand=demand,
        orders=orders,
        onhand=onhand,
        ending=ending,
        lost=lost,
        sales=sales,
        R=R,
        L=L,
        lost_sales=bool(lost_sales),
        warmup=int(warmup),
    )
