"""95 % bootstrap intervals for the reported numbers (the paper gives none): two kinds.

**The statistic.** A tuned cell c = (setting, method, reg) has repetitions r = 1..R_c. In
repetition r the winning configuration ran n_r stage-2 seeds, each a triple (seed s_i,
validation loss v_i, test loss y_i). The reported run is the median-validation seed: sort the
triples by (v_i, s_i) and take index ⌊n_r/2⌋ (``tuning.median_seed_row``); call its test loss
y_r^med (likewise v_r^med). The tables show θ_c = (1/R_c) Σ_r y_r^med. Differences and trends
are linear combinations of cells,

    θ = Σ_c w_c (1/R_c) Σ_r q_{c,r}^med,   q ∈ {test loss, validation loss, test − validation},

e.g. mean(Base) − mean(None) has w = +1 for the Base cell and −1 for the None cell. Both
intervals are about this same θ, the number the tables show, and both are the 2.5 and 97.5
percentiles of B = ``N_RESAMPLES`` replicates θ* drawn with the fixed ``SEED`` (same input ⇒
same interval).

**Seed-only interval** (``kind="seed"``, columns ``ci_seed_*``): each stratum k = (cell,
repetition) resamples its n_k seeds with replacement, independently across strata
(``scipy.stats.bootstrap`` with one sample per stratum, ``method="percentile"``); θ* applies the
median-validation rule to every resample. Repetitions are strata, never resampled, so it
measures seed noise only: how much θ would move with other training seeds for the same winners.

**Hierarchical interval** (``kind="tuning"``, columns ``ci_tuning_*``): a two-stage bootstrap.
Within each cell c independently, draw R_c repetitions J_1..J_{R_c} uniformly with replacement
from its R_c; in every drawn slot s draw n_{J_s} seeds with replacement from repetition J_s
(afresh for each slot, so a repetition drawn twice gets two seed resamples). Cells are
independent — repetition r of Base and of None share a sampler seed but are separate searches,
so they are not paired. q*_{c,s} is the median-validation value of that resample, and
θ* = Σ_c w_c (1/R_c) Σ_s q*_{c,s} (vectorized numpy, ``numpy.random.default_rng(SEED)``;
percentiles by ``numpy.quantile``, linear). With X_c one slot's q*, E*[θ*] = Σ_c w_c E*[X_c]
and Var*[θ*] = Σ_c w_c² Var*[X_c]/R_c, where Var*[X_c] is the spread between the repetitions
plus the seed noise within one (both enumerable exactly on small inputs, as the tests do).
*What it covers*: which configuration wins a repetition (the tuning noise: stage-1 search and
stage-2 selection, as seen in the spread of the repetitions' reported runs) plus the seed noise
of the winners' runs. Since each repetition's reported value already carries one seed draw,
seed noise enters twice: the interval is conservative (a little wide), not optimistic.
*What it does not cover*: the finite validation and test sets (fixed), the benchmark L* (a
constant: a gap interval is the loss interval mapped through gap = 100 (L − L*)/L*), tuning
choices outside the protocol (search spaces, budgets), and the paper's own noise, so a paper
value outside our interval does not by itself contradict the paper. *Its resolution*: with
R = 3 repetitions there are only C(5, 3) = 10 distinct multisets of repetitions, one of them
(all three the same extreme repetition) with probability 1/27 > 2.5 %: the interval is wide
and coarse, close to the range of the repetitions. Three repetitions cannot pin tuning noise
down, and this interval says so. With R_c = 1 repetition the tuning noise cannot be measured
at all: the interval is NaN ("no interval", with ``note``), never a seed-only interval under
another name.

**Degenerate inputs** (both kinds). A stratum whose reported quantity is equal for every seed
gives that constant; when nothing varies the interval is the point, [θ, θ]. A repetition with a
single seed carries no seed noise to resample — a zero-width interval would claim a certainty
one run cannot give — so it gives NaN, like a repetition without seeds (no ``stage2.csv``
collected) or with a non-finite value. None of these calls scipy, so none of them warns. With
few seeds per stratum (the tiny/quick scales run 2) the seed bootstrap has few distinct values
and the percentile interval under-covers; at the paper's 5 seeds it is still coarse.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.stats import bootstrap

from deepstock.reports.collect import SEED_COLUMNS, loss_gap

CONFIDENCE = 0.95
N_RESAMPLES = 4999
SEED = 20_240_601
QUANTITIES = ("test", "val", "test-val")
SEED_ONLY = "seed"  # repetitions are strata: seed noise only
TUNING = "tuning"  # hierarchical: repetitions, then seeds within each drawn repetition
KINDS = (SEED_ONLY, TUNING)
ONE_REPETITION = "1 repetition: tuning noise not measurable"
Cell = tuple[str, str, str]  # (setting, method, reg)


@dataclass(frozen=True)
class SeedRuns:
    """The winner's successful stage-2 runs of one cell × repetition (aligned tuples)."""

    seeds: tuple[int, ...]
    val: tuple[float, ...]
    test: tuple[float, ...]

    def __post_init__(self) -> None:
        if not len(self.seeds) == len(self.val) == len(self.test):
            raise ValueError("seeds, val and test must have the same length")

    def __len__(self) -> int:
        return len(self.seeds)

    def order(self) -> np.ndarray:
        """Positions sorted by (validation loss, seed): the tuner's median-seed order."""
        return np.lexsort((np.asarray(self.seeds), np.asarray(self.val, dtype=float)))

    def values(self, what: str = "test") -> np.ndarray:
        if what not in QUANTITIES:
            raise ValueError(f"what must be one of {QUANTITIES}, got {what!r}")
        val, test = np.asarray(self.val, dtype=float), np.asarray(self.test, dtype=float)
        return {"test": test, "val": val, "test-val": test - val}[what]

    def reported(self, what: str = "test") -> float:
        """``what`` of the median-validation seed (NaN without seeds)."""
        if not len(self):
            return math.nan
        return float(self.values(what)[self.order()[len(self) // 2]])


@dataclass(frozen=True)
class Interval:
    """A point statistic and its 95 % interval; NaN everywhere when it cannot be computed.

    ``distribution``: the bootstrap replicates θ* (None when nothing was resampled); ``note``:
    why there is no interval, when that is worth saying (e.g. :data:`ONE_REPETITION`).
    """

    point: float
    low: float
    high: float
    distribution: np.ndarray | None = field(default=None, repr=False, compare=False)
    note: str = field(default="", compare=False)

    @property
    def finite(self) -> bool:
        return all(math.isfinite(v) for v in (self.point, self.low, self.high))

    def below(self, x: float) -> bool | None:
        """The whole interval is strictly below ``x`` (None without an interval)."""
        return bool(self.high < x) if self.finite else None

    def above(self, x: float) -> bool | None:
        """The whole interval is strictly above ``x`` (None without an interval)."""
        return bool(self.low > x) if self.finite else None

    def contains(self, x: float) -> bool | None:
        return bool(self.low <= x <= self.high) if self.finite else None

    def map(self, f: Callable) -> Interval:
        """The interval of f(θ) for an increasing ``f`` that also maps arrays (the loss gap)."""
        return Interval(float(f(self.point)), float(f(self.low)), float(f(self.high)),
                        None if self.distribution is None else np.asarray(f(self.distribution)),
                        self.note)

    def text(self, digits: int = 4) -> str:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return "no interval" + (f" ({self.note})" if self.note else "")
        return f"[{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def __str__(self) -> str:
        return self.text()


NAN = Interval(math.nan, math.nan, math.nan)


def no_interval(note: str) -> Interval:
    """NaN, with the reason as ``note``."""
    return Interval(math.nan, math.nan, math.nan, note=note)


def stratified_interval(terms: Sequence[tuple[float, SeedRuns]], what: str = "test", *,
                        confidence_level: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                        seed: int = SEED) -> Interval:
    """Interval of θ = Σ_k w_k · (``what`` of stratum k's median-validation seed).

    ``terms`` = [(w_k, runs_k)], one per stratum (cell × repetition); each stratum's seeds are
    resampled independently (see the module docstring).
    """
    if not terms:
        return NAN
    const, varying = 0.0, []
    for w, runs in terms:
        values = runs.values(what)
        if len(runs) < 2 or not np.isfinite(values).all() or not np.isfinite(runs.val).all():
            return NAN
        if w == 0:
            continue
        order = runs.order()
        ordered = values[order]  # q of the seeds in (val, seed) order
        if (ordered == ordered[0]).all():
            const += w * float(ordered[0])
            continue
        rank = np.empty(len(runs), dtype=np.intp)
        rank[order] = np.arange(len(runs))  # position of seed i in (val, seed) order
        varying.append((float(w), rank, ordered))
    point = const + sum(w * float(q[len(q) // 2]) for w, _, q in varying)
    if not varying:
        return Interval(point, point, point)

    def statistic(*idx, axis=-1):
        total = const
        for (w, rank, ordered), ix in zip(varying, idx, strict=True):
            ix = np.moveaxis(np.asarray(ix).astype(np.intp), axis, -1)
            # the resample's median-validation seed: the ⌊n/2⌋-th smallest (val, seed) rank
            med = np.sort(rank[ix], axis=-1)[..., ix.shape[-1] // 2]
            total = total + w * ordered[med]
        return total

    data = tuple(np.arange(len(rank)) for _, rank, _ in varying)
    res = bootstrap(data, statistic, n_resamples=n_resamples, vectorized=True,
                    method="percentile", confidence_level=confidence_level,
                    rng=np.random.default_rng(seed))
    ci = res.confidence_interval
    return Interval(point, float(ci.low), float(ci.high), res.bootstrap_distribution)


# ----------------------------------------------------------------------------- hierarchical
@dataclass(frozen=True)
class _RankedCell:
    """One cell's repetitions as padded arrays: ``rank[r, i]`` = position of seed i of
    repetition r in its (val, seed) order, ``ordered[r, k]`` = q of its k-th seed in that order,
    ``n[r]`` = its number of seeds (positions k >= n[r] are padding)."""

    rank: np.ndarray
    ordered: np.ndarray
    n: np.ndarray

    def reported(self) -> np.ndarray:
        """q of each repetition's median-validation seed."""
        return self.ordered[np.arange(len(self.n)), self.n // 2]


def _ranked_cell(reps: Sequence[SeedRuns], what: str) -> _RankedCell | None:
    """The padded arrays of one cell; None when a repetition has < 2 seeds or a NaN/inf value."""
    n = np.array([len(r) for r in reps], dtype=np.intp)
    if n.min() < 2:
        return None
    rank = np.zeros((len(reps), n.max()), dtype=np.intp)
    ordered = np.full((len(reps), n.max()), np.nan)
    for j, runs in enumerate(reps):
        values = runs.values(what)
        if not (np.isfinite(values).all() and np.isfinite(runs.val).all()):
            return None
        order = runs.order()
        rank[j, order] = np.arange(len(runs))
        ordered[j, : len(runs)] = values[order]
    return _RankedCell(rank, ordered, n)


def _cell_replicates(cell: _RankedCell, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """θ*_c for B resamples: R_c repetitions drawn with replacement, then the seeds of each slot
    drawn with replacement; the mean over slots of each slot's median-validation value."""
    n_reps, width = cell.rank.shape
    drawn = rng.integers(n_reps, size=(n_resamples, n_reps))  # repetition in each slot
    n = cell.n[drawn]  # (B, R) seeds of that repetition
    seeds = rng.integers(0, n[..., None], size=(n_resamples, n_reps, width))
    ranks = cell.rank[drawn[..., None], seeds]
    ranks = np.where(np.arange(width) < n[..., None], ranks, width)  # padding sorts last
    med = np.take_along_axis(np.sort(ranks, axis=-1), (n // 2)[..., None], axis=-1)[..., 0]
    return cell.ordered[drawn, med].mean(axis=-1)


def hierarchical_interval(groups: Sequence[tuple[float, Sequence[SeedRuns]]],
                          what: str = "test", *, confidence_level: float = CONFIDENCE,
                          n_resamples: int = N_RESAMPLES, seed: int = SEED) -> Interval:
    """Interval of θ = Σ_c w_c · mean over c's repetitions of ``what`` of the median-validation
    seed, resampling repetitions within each cell and then seeds (see the module docstring).

    ``groups`` = [(w_c, [runs of each repetition of c])]. NaN with :data:`ONE_REPETITION` as
    its note when a cell has a single repetition; NaN when a repetition has < 2 seeds.
    """
    if not groups:
        return NAN
    cells = []
    for w, reps in groups:
        if len(reps) < 2:
            return no_interval(ONE_REPETITION)
        cell = _ranked_cell(reps, what)
        if cell is None:
            return NAN
        cells.append((float(w), cell))
    point = sum(w * float(c.reported().mean()) for w, c in cells)
    rng = np.random.default_rng(seed)
    theta = np.zeros(n_resamples)
    for w, cell in cells:
        if w != 0:
            theta = theta + w * _cell_replicates(cell, n_resamples, rng)
    alpha = (1 - confidence_level) / 2
    low, high = np.quantile(theta, [alpha, 1 - alpha])
    return Interval(point, float(low), float(high), theta)


# ----------------------------------------------------------------------------- summary rows
def _list(value) -> list | None:
    if isinstance(value, (list, tuple, np.ndarray)):
        return list(value)
    if isinstance(value, str):
        try:
            out = json.loads(value)
        except json.JSONDecodeError:
            return None
        return out if isinstance(out, list) else None
    return None


def seed_runs(row: Mapping) -> SeedRuns | None:
    """The summary row's per-seed stage-2 values (JSON lists or lists); None when absent."""
    lists = [_list(row.get(c)) for c in SEED_COLUMNS]
    if any(v is None for v in lists) or not lists[0] or len({len(v) for v in lists}) != 1:
        return None
    seeds, val, test = lists
    try:
        return SeedRuns(tuple(int(s) for s in seeds), tuple(float(v) for v in val),
                        tuple(float(t) for t in test))
    except (TypeError, ValueError):
        return None


def rows_runs(rows: pd.DataFrame) -> list[SeedRuns] | None:
    """One :class:`SeedRuns` per repetition row; None if any row lacks its seeds (or no rows)."""
    if rows.empty or not set(SEED_COLUMNS) <= set(rows.columns):
        return None
    runs = [seed_runs(r) for r in rows[list(SEED_COLUMNS)].to_dict("records")]
    return None if any(r is None for r in runs) else runs


def _cell_rows(summary: pd.DataFrame, cell: Cell) -> pd.DataFrame:
    if summary.empty:
        return summary
    setting, method, reg = cell
    return summary[(summary["setting"] == setting) & (summary["method"] == method)
                   & (summary["reg"] == reg)]


def contrast(summary: pd.DataFrame, weights: Mapping[Cell, float], what: str = "test", *,
             kind: str = SEED_ONLY, **kw) -> Interval:
    """Interval of Σ_c w_c · (mean over c's repetitions of ``what``).

    ``kind``: :data:`SEED_ONLY` (strata = cell × repetition) or :data:`TUNING` (hierarchical:
    repetitions resampled within each cell, then seeds). NaN when a cell has no rows or a row
    has no seeds.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    groups = []
    for cell, w in weights.items():
        runs = rows_runs(_cell_rows(summary, cell))
        if not runs:
            return NAN
        groups.append((w, runs))
    if kind == TUNING:
        return hierarchical_interval(groups, what, **kw)
    return stratified_interval([(w / len(runs), r) for w, runs in groups for r in runs], what,
                               **kw)


def cell_interval(summary: pd.DataFrame, cell: Cell, what: str = "test", **kw) -> Interval:
    """Interval of the cell's repetition mean (the number in Tables 6–9)."""
    return contrast(summary, {cell: 1.0}, what, **kw)


def difference(summary: pd.DataFrame, a: Cell, b: Cell, what: str = "test", **kw) -> Interval:
    """Interval of mean(a) − mean(b) (seed-only strata: (cell, repetition))."""
    return contrast(summary, {a: 1.0, b: -1.0}, what, **kw)


def gap_interval(loss: Interval, lstar: float) -> Interval:
    """The loss interval mapped through gap = 100 (L − L*)/L* (increasing for L* > 0)."""
    if not (math.isfinite(lstar) and lstar > 0):
        return NAN
    return loss.map(lambda v: loss_gap(v, lstar))


def cell_lstar(summary: pd.DataFrame, cell: Cell) -> float:
    """The cell's L* (``benchmark`` column) when all its rows agree, else NaN."""
    rows = _cell_rows(summary, cell)
    if rows.empty or "benchmark" not in rows:
        return math.nan
    b = pd.to_numeric(rows["benchmark"], errors="coerce").dropna().unique()
    return float(b[0]) if len(b) == 1 else math.nan
