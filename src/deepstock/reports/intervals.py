"""95 % stratified-bootstrap intervals for the reported numbers (the paper gives none).

**The statistic.** A tuned cell c = (setting, method, reg) has repetitions r = 1..R_c. In
repetition r the winning configuration ran n_r stage-2 seeds, each a triple (seed s_i,
validation loss v_i, test loss y_i). The reported run is the median-validation seed: sort the
triples by (v_i, s_i) and take index ⌊n_r/2⌋ (``tuning.median_seed_row``); call its test loss
y_r^med (likewise v_r^med). The tables show θ_c = (1/R_c) Σ_r y_r^med. Differences and trends
are linear combinations over strata k = (cell, repetition),

    θ = Σ_k w_k q_k^med,   q ∈ {test loss, validation loss, test − validation},

e.g. mean(Base) − mean(None) has w = +1/R for every Base repetition and −1/R for every None one.

**The bootstrap.** Each stratum's seeds are resampled with replacement (n_k out of n_k),
independently across strata: ``scipy.stats.bootstrap`` receives one sample (the seed indices
0..n_k−1) per stratum and resamples each sample on its own, which is exactly a stratified
bootstrap. Each resample goes through the same median-validation rule and θ* is recomputed; the
interval is the 2.5 and 97.5 percentiles of θ* (``method="percentile"``, ``N_RESAMPLES``
resamples, the fixed ``SEED``, so the same input always gives the same interval). The interval
therefore surrounds the very number the tables show.

**What it covers.** Seed-to-seed variation of the winners' training runs (initialisation,
batching, exploration), given the winning configurations. **What it does not cover.** (i)
Tuning noise — which configuration wins a repetition: repetitions are strata, never resampled,
so with one repetition the interval is seed noise only, and with three it is still the seed
noise around those three winners, not the spread of re-tuning; (ii) the finite validation and
test sets, which are fixed; (iii) the benchmark L*, a constant, so a gap interval is the loss
interval mapped through gap = 100 (L − L*)/L*; (iv) the paper's own noise, so a paper value
outside our interval does not by itself contradict the paper. With few seeds per stratum (the
tiny/quick scales run 2) the bootstrap distribution has few distinct values and the percentile
interval under-covers; at the paper's 5 seeds it is still coarse.

**Degenerate inputs.** A stratum whose reported quantity is equal for every seed is a constant
(not resampled); when every stratum is constant the interval is the point, [θ, θ]. A stratum
with a single seed carries no seed noise to resample — a zero-width interval would claim a
certainty one run cannot give — so it gives NaN ("no interval"), like a stratum without seeds
(no ``stage2.csv`` collected) or with a non-finite value. None of these calls scipy, so none of
them warns.
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

    ``distribution``: the bootstrap replicates θ* (None when nothing was resampled).
    """

    point: float
    low: float
    high: float
    distribution: np.ndarray | None = field(default=None, repr=False, compare=False)

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
                        None if self.distribution is None else np.asarray(f(self.distribution)))

    def text(self, digits: int = 4) -> str:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            return "no interval"
        return f"[{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def __str__(self) -> str:
        return self.text()


NAN = Interval(math.nan, math.nan, math.nan)


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


def contrast(summary: pd.DataFrame, weights: Mapping[Cell, float], what: str = "test",
             **kw) -> Interval:
    """Interval of Σ_c w_c · (mean over c's repetitions of ``what``); strata = cell × repetition.

    NaN when a cell has no rows or a row has no seeds.
    """
    terms = []
    for cell, w in weights.items():
        runs = rows_runs(_cell_rows(summary, cell))
        if not runs:
            return NAN
        terms += [(w / len(runs), r) for r in runs]
    return stratified_interval(terms, what, **kw)


def cell_interval(summary: pd.DataFrame, cell: Cell, what: str = "test", **kw) -> Interval:
    """Interval of the cell's repetition mean (the number in Tables 6–9)."""
    return contrast(summary, {cell: 1.0}, what, **kw)


def difference(summary: pd.DataFrame, a: Cell, b: Cell, what: str = "test", **kw) -> Interval:
    """Interval of mean(a) − mean(b); strata = (cell, repetition), e.g. (reg, repetition)."""
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
