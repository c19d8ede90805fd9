"""95 % bootstrap intervals, seed-only and hierarchical: the bootstraps themselves, the seed
columns of summary.csv, the interval rows of the tables and the noise verdicts of the takeaways.

Expected values are built by hand (the median-validation seed is picked by a plain sort here,
not by the code under test); the hierarchical bootstrap is checked against the exact
distribution of θ* enumerated over every resample of small cases.
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import bootstrap

from deepstock.reports.collect import SEED_COLUMNS, build_summary
from deepstock.reports.intervals import (
    ONE_REPETITION,
    SEED_ONLY,
    TUNING,
    SeedRuns,
    cell_interval,
    contrast,
    difference,
    hierarchical_interval,
    stratified_interval,
)
from deepstock.reports.tables import (
    cell_stats,
    comparison,
    table_6_8,
    table_9,
    to_latex,
    to_markdown,
)
from deepstock.reports.takeaways import (
    base_improves_test,
    claims_frame,
    figure4_trends,
    setting3_ds,
)

REPORTED = Path(__file__).resolve().parents[1] / "paper" / "reported.yaml"
FAST = {"n_resamples": 2000}


def _median_seed(seeds, val, test):
    """(val, test) of the median-validation seed: sort by (val, seed), take index n // 2."""
    i = sorted(range(len(seeds)), key=lambda k: (val[k], seeds[k]))[len(seeds) // 2]
    return val[i], test[i]


def _runs(val, test, seeds=None) -> SeedRuns:
    seeds = tuple(seeds or range(42, 42 + len(val)))
    return SeedRuns(seeds, tuple(map(float, val)), tuple(map(float, test)))


# ----------------------------------------------------------------------------- the bootstrap
def test_identical_values_give_a_zero_width_interval_and_a_single_seed_gives_none():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no scipy warning spew
        same = stratified_interval([(1.0, _runs([0.5, 0.7, 0.6], [2.0, 2.0, 2.0]))])
        one_seed = stratified_interval([(1.0, _runs([0.5], [3.0]))])
        two = stratified_interval([(0.5, _runs([0.5, 0.7], [2.0, 2.0])),
                                   (0.5, _runs([0.1, 0.2], [4.0, 4.0]))])
        empty = stratified_interval([(1.0, _runs([], []))])
    assert (same.point, same.low, same.high) == (2.0, 2.0, 2.0)
    assert math.isnan(one_seed.low) and math.isnan(one_seed.high) and not one_seed.finite
    assert (two.point, two.low, two.high) == (3.0, 3.0, 3.0)
    assert math.isnan(empty.low) and math.isnan(empty.high) and not empty.finite
    assert empty.below(0) is None and same.below(2.5) is True and same.above(2.0) is False


def test_the_interval_contains_the_point_statistic_the_tables_show():
    rng = np.random.default_rng(0)
    strata = [(rng.normal(1.0, 0.1, 5), rng.normal(1.2, 0.1, 5)) for _ in range(3)]
    iv = stratified_interval([(1 / 3, _runs(v, t)) for v, t in strata], **FAST)
    by_hand = np.mean([_median_seed(list(range(42, 47)), list(v), list(t))[1]
                       for v, t in strata])
    assert iv.point == pytest.approx(by_hand, rel=1e-12)
    assert iv.low < iv.point < iv.high
    val = stratified_interval([(1 / 3, _runs(v, t)) for v, t in strata], "val", **FAST)
    assert val.point == pytest.approx(np.mean(
        [_median_seed(list(range(42, 47)), list(v), list(t))[0] for v, t in strata]))


def test_the_median_validation_rule_breaks_ties_by_seed():
    # equal validation losses: (val, seed) order puts seed 7 before seed 9, so n // 2 = 1 -> 9
    runs = _runs([1.0, 1.0], [5.0, 6.0], seeds=[9, 7])
    assert runs.reported("test") == 5.0
    assert _median_seed([9, 7], [1.0, 1.0], [5.0, 6.0]) == (1.0, 5.0)


def test_resampling_is_stratified_so_every_resample_stays_between_the_extreme_means():
    """Two repetitions with disjoint test ranges: a stratified resample keeps 5 seeds of each,
    so the mean of the two medians lies in [(min A + min B)/2, (max A + max B)/2]; a pooled
    bootstrap over all 10 seeds can put B's seeds in A's slot and leaves that range."""
    rng = np.random.default_rng(1)
    a_val, b_val = rng.uniform(0, 1, 5), rng.uniform(0, 1, 5)
    a_test, b_test = rng.uniform(0, 1, 5), rng.uniform(10, 11, 5)
    iv = stratified_interval([(0.5, _runs(a_val, a_test)), (0.5, _runs(b_val, b_test))],
                             **FAST)
    lo, hi = (a_test.min() + b_test.min()) / 2, (a_test.max() + b_test.max()) / 2
    assert iv.distribution is not None and len(iv.distribution) == FAST["n_resamples"]
    assert ((iv.distribution >= lo - 1e-12) & (iv.distribution <= hi + 1e-12)).all()
    assert lo <= iv.low <= iv.high <= hi

    val, test = np.r_[a_val, b_val], np.r_[a_test, b_test]

    def pooled(idx, axis=-1):  # resample the 10 pooled seeds, first 5 = rep A, last 5 = rep B
        idx = np.moveaxis(np.asarray(idx).astype(int), axis, -1)
        out = 0.0
        for part in (idx[..., :5], idx[..., 5:]):
            order = np.argsort(val[part], axis=-1, kind="stable")
            med = np.take_along_axis(part, order, axis=-1)[..., 2]
            out = out + 0.5 * test[med]
        return out

    res = bootstrap((np.arange(10),), pooled, n_resamples=2000, vectorized=True,
                    method="percentile", rng=np.random.default_rng(0))
    d = res.bootstrap_distribution
    assert ((d < lo - 1e-9) | (d > hi + 1e-9)).any()


def test_the_same_input_gives_the_same_interval():
    rng = np.random.default_rng(2)  # 7^6 possible statistics: an unseeded rng would show
    terms = [(1 / 6, _runs(rng.normal(1, 0.1, 7), rng.normal(1, 0.3, 7))) for _ in range(6)]
    first, second = stratified_interval(terms, **FAST), stratified_interval(terms, **FAST)
    assert (first.point, first.low, first.high) == (second.point, second.low, second.high)
    assert np.array_equal(first.distribution, second.distribution)
    assert first.low < first.high


# ----------------------------------------------------------------------------- summary frames
def _row(setting, method, reg, rep, val, test, lstar=1.0, seeds=None, with_seeds=True):
    seeds = list(seeds or range(42, 42 + len(val)))
    v, t = _median_seed(seeds, list(val), list(test))
    row = {"setting": setting, "method": method, "reg": reg, "repetition": rep,
           "val_loss": v, "test_loss": t, "benchmark": lstar,
           "val_gap": 100 * (v - lstar) / lstar, "test_gap": 100 * (t - lstar) / lstar}
    if with_seeds:
        row.update(zip(SEED_COLUMNS, (json.dumps(seeds), json.dumps([float(x) for x in val]),
                                      json.dumps([float(x) for x in test])), strict=True))
    return row


def _noise(rng, centre, spread, n=5):
    return list(centre + rng.uniform(-spread, spread, n))


def test_difference_intervals_exclude_zero_when_base_is_clearly_lower_and_include_it_else():
    rng = np.random.default_rng(3)
    rows = []
    for rep in range(2):
        rows.append(_row("s1", "ds", "none", rep, _noise(rng, 1, .1), _noise(rng, 2.0, .01)))
        rows.append(_row("s1", "ds", "base", rep, _noise(rng, 1, .1), _noise(rng, 1.0, .01)))
    s = pd.DataFrame(rows)
    d = difference(s, ("s1", "ds", "base"), ("s1", "ds", "none"), **FAST)
    assert d.high < 0 and d.below(0) is True
    means = s.groupby("reg")["test_loss"].mean()
    assert d.point == pytest.approx(means["base"] - means["none"])
    same = s[s["reg"] == "none"].copy()
    twin = same.assign(reg="base")  # identical seeds and values under both regularizations
    d0 = difference(pd.concat([same, twin]), ("s1", "ds", "base"), ("s1", "ds", "none"), **FAST)
    assert d0.point == 0.0 and d0.low < 0 < d0.high and d0.contains(0) is True


# ----------------------------------------------------------------------------- collect
def _write_cell(root: Path, setting, method, reg, rep, table: pd.DataFrame | None,
                winner_index=1, tamper=False):
    d = root / setting / method / reg / f"rep{rep}"
    d.mkdir(parents=True)
    if table is not None:
        table.to_csv(d / "stage2.csv", index=False)
        ok = table[(table["config_index"] == winner_index) & (table["status"] == "ok")]
        v, t = _median_seed(list(ok["seed"]), list(ok["val_loss"]), list(ok["test_loss"]))
        seed = int(ok["seed"].iloc[list(ok["val_loss"]).index(v)])
    else:
        v, t, seed = 1.0, 1.1, 42
    (d / "winner.json").write_text(json.dumps({
        "setting": setting, "method": method, "reg": reg, "repetition": rep, "scale": "tiny",
        "winner_index": winner_index, "reported_seed": seed, "seeds": [42, 43, 44],
        "train_loss": v, "val_loss": v, "test_loss": t + (0.5 if tamper else 0.0)}))


def _stage2(rows):
    return pd.DataFrame(rows, columns=["config_index", "stage1_trial", "config_key", "config",
                                       "seed", "val_loss", "train_loss", "test_loss", "status",
                                       "error", "wall_s", "iterations", "population"])


def test_collect_writes_the_winners_per_seed_values_and_keeps_rows_without_stage2(tmp_path):
    r = tmp_path / "results"
    t = _stage2([
        [0, 3, "a", "{}", 42, 0.9, 0.9, 0.8, "ok", "", 1.0, 3, 1],  # not the winner
        [1, 5, "b", "{}", 42, 1.3, 1.3, 1.4, "ok", "", 1.0, 3, 1],
        [1, 5, "b", "{}", 43, 1.1, 1.1, 1.2, "ok", "", 1.0, 3, 1],
        [1, 5, "b", "{}", 44, math.inf, 0.0, 0.0, "failed", "boom", 1.0, 0, 1],
        [1, 5, "b", "{}", 45, 1.2, 1.2, 1.0, "ok", "", 1.0, 3, 1],
    ])
    _write_cell(r, "s1", "ds", "base", 0, t)
    _write_cell(r, "s1", "ds", "none", 0, None)  # no stage2.csv
    _write_cell(r, "s1", "ppo", "base", 0, t, tamper=True)  # stage2.csv disagrees with winner
    summary, _ = build_summary(r)
    assert len(summary) == 3
    by = summary.set_index(["method", "reg"])
    base = by.loc[("ds", "base")]
    assert json.loads(base["seed_ids"]) == [42, 43, 45]  # the winner's ok runs only
    assert json.loads(base["seed_val_losses"]) == [1.3, 1.1, 1.2]
    assert json.loads(base["seed_test_losses"]) == [1.4, 1.2, 1.0]
    assert base["test_loss"] == 1.0 and base["reported_seed"] == 45  # (1.1, 1.2, 1.3)[1]
    none = by.loc[("ds", "none")]
    assert [json.loads(none[c]) for c in SEED_COLUMNS] == [[], [], []]
    assert none["test_loss"] == pytest.approx(1.1)
    tampered = by.loc[("ppo", "base")]
    assert json.loads(tampered["seed_ids"]) == [] and "disagrees" in tampered["note"]
    out = tmp_path / "summary.csv"
    summary.to_csv(out, index=False)
    back = pd.read_csv(out)
    iv = cell_interval(back, ("s1", "ds", "base"), **FAST)
    assert iv.point == pytest.approx(1.0) and iv.low == pytest.approx(1.0)
    assert iv.high == pytest.approx(1.4)
    assert not cell_interval(back, ("s1", "ds", "none"), **FAST).finite


# ----------------------------------------------------------------------------- tables
def test_tables_carry_the_interval_beside_each_mean():
    rng = np.random.default_rng(4)
    rows = [_row("s1", "ds", "base", rep, _noise(rng, 1, .1), _noise(rng, 1.1, .05), lstar=0.8)
            for rep in range(2)]
    rows.append(_row("s1", "ds", "none", 0, [1.0], [1.5], lstar=0.8, with_seeds=False))
    rows += [_row("s4_n5_t7", "ds", "base", 0, _noise(rng, 2, .1), _noise(rng, 2.2, .1),
                  lstar=2.0)]
    s = pd.DataFrame(rows)
    flat = cell_stats(s)
    stats = flat.set_index(["setting", "method", "reg", "metric"])
    test = cell_interval(s, ("s1", "ds", "base"))
    hier = cell_interval(s, ("s1", "ds", "base"), kind=TUNING)
    got = stats.loc[("s1", "ds", "base", "test_loss")]
    assert (got["ci_seed_low"], got["ci_seed_high"]) == (test.low, test.high)
    assert (got["ci_tuning_low"], got["ci_tuning_high"]) == (hier.low, hier.high)
    assert got["ci_seed_low"] <= got["mean"] <= got["ci_seed_high"]
    assert got["ci_seed_low"] < got["ci_seed_high"] and hier.low < hier.high
    gap = stats.loc[("s1", "ds", "base", "test_gap")]  # the loss interval mapped through L*
    assert gap["ci_seed_low"] == pytest.approx(100 * (test.low - 0.8) / 0.8)
    assert gap["ci_seed_high"] == pytest.approx(100 * (test.high - 0.8) / 0.8)
    assert gap["ci_tuning_high"] == pytest.approx(100 * (hier.high - 0.8) / 0.8)
    assert np.isnan(stats.loc[("s1", "ds", "none", "test_loss"), "ci_seed_low"])  # no seeds
    one_rep = stats.loc[("s4_n5_t7", "ds", "base", "test_loss")]  # seeds, but one repetition
    assert np.isfinite(one_rep["ci_seed_low"]) and np.isnan(one_rep["ci_tuning_low"])

    t6 = table_6_8(flat, "s1")
    assert t6.loc["Testing Loss 95% CI seeds low", "DS-Base"] == test.low
    assert t6.loc["Testing Loss 95% CI seeds high", "DS-Base"] == test.high
    assert t6.loc["Testing Loss 95% CI tuning+seeds low", "DS-Base"] == hier.low
    assert t6.loc["Testing Loss Gap (%) 95% CI seeds low", "DS-Base"] == pytest.approx(
        gap["ci_seed_low"])
    md = to_markdown(t6, "T6")
    assert "| Testing Loss 95% CI seeds " in md and f"[{test.low:.4f}, {test.high:.4f}]" in md
    assert "| Testing Loss 95% CI tuning+seeds " in md
    assert f"[{hier.low:.4f}, {hier.high:.4f}]" in md
    assert f"[{gap['ci_seed_low']:.2f}, {gap['ci_seed_high']:.2f}]" in md
    assert " low " not in md and " high " not in md  # each pair is one row
    tex = to_latex(t6, "T6", "6-8")
    assert r"Testing Loss Gap (\%) 95\% CI seeds & " in tex
    assert r"Testing Loss Gap (\%) 95\% CI tuning+seeds & " in tex
    t9 = table_9(flat)
    n5 = t9[t9["N"] == 5].set_index("row")
    iv9 = cell_interval(s, ("s4_n5_t7", "ds", "base"))
    assert n5.loc["Testing Loss 95% CI seeds low", "T=7"] == iv9.low
    assert np.isnan(n5.loc["Testing Loss 95% CI tuning+seeds low", "T=7"])  # one repetition
    md9 = to_markdown(t9, "T9")
    assert f"[{iv9.low:.4f}, {iv9.high:.4f}]" in md9 and "95% CI tuning+seeds" in md9

    import yaml
    comp = comparison(flat, yaml.safe_load(REPORTED.read_text()))
    r = comp[(comp["setting"] == "s1") & (comp["method"] == "ds") & (comp["reg"] == "base")
             & (comp["metric"] == "test_loss")].iloc[0]
    assert (r["ci_seed_low"], r["ci_seed_high"]) == (test.low, test.high)
    assert (r["ci_tuning_low"], r["ci_tuning_high"]) == (hier.low, hier.high)


# ----------------------------------------------------------------------------- takeaways
def _nine_cells(rng, noisy=(), with_seeds=True):
    """Settings 1-3 × 3 methods, 2 repetitions; Base's test loss 1.0 vs None's 2.0, except the
    ``noisy`` (setting, method) cells where Base is only slightly lower amid wide seed noise."""
    rows = []
    for s in ("s1", "s2", "s3"):
        for m in ("ddpg", "ppo", "ds"):
            for rep in range(2):
                noisy_cell = (s, m) in noisy
                # val order 0.1 < 0.2 < 0.3: the reported (median) seed is the third one
                none_test = [0.1, 4.0, 2.0] if noisy_cell else _noise(rng, 2.0, .01, 3)
                base_test = [0.1, 4.0, 1.9] if noisy_cell else _noise(rng, 1.0, .01, 3)
                for reg, test in (("none", none_test), ("base", base_test)):
                    rows.append(_row(s, m, reg, rep, [0.1, 0.3, 0.2], test,
                                     with_seeds=with_seeds))
    return pd.DataFrame(rows)


def test_base_improves_test_is_beyond_the_noise_only_when_the_differences_exclude_zero():
    rng = np.random.default_rng(5)
    clear = base_improves_test(_nine_cells(rng))
    assert clear.reproduced is True and clear.beyond_noise is True
    assert clear.ours.endswith(
        "beyond the noise (tuning+seeds): 9 of 9; beyond seed noise: 9 of 9")
    assert "DS S3 seeds [" in clear.evidence and "], tuning+seeds [" in clear.evidence
    noisy = base_improves_test(_nine_cells(rng, noisy=[("s1", "ppo"), ("s2", "ds")]))
    assert noisy.reproduced is True and noisy.beyond_noise is False  # 7 of 9 beyond the noise
    assert noisy.beyond_seed_noise is False
    assert noisy.ours == ("9 of 9; beyond the noise (tuning+seeds): 7 of 9; "
                          "beyond seed noise: 7 of 9")
    missing = base_improves_test(_nine_cells(rng, with_seeds=False))
    assert missing.reproduced is True and missing.beyond_noise is None
    assert missing.ours == "9 of 9"
    frame = claims_frame([clear, noisy, missing])
    assert frame["beyond noise"].tolist() == ["yes", "no", "no interval"]
    assert frame["beyond seed noise"].tolist() == ["yes", "no", "no interval"]


def _t131(rng, test_centre, spread, with_seeds=True, lstar=2.0):
    rows = []
    for n in (5, 10, 20):
        for rep in range(2):
            centre = test_centre if n == 5 else 2.1
            rows.append(_row(f"s4_n{n}_t131", "ds", "base", rep, _noise(rng, 2.0, .01),
                             _noise(rng, centre, spread), lstar=lstar, with_seeds=with_seeds))
    return pd.DataFrame(rows)


def test_the_n5_gap_is_beyond_the_noise_only_when_its_interval_clears_the_bar():
    rng = np.random.default_rng(6)
    clear = figure4_trends(_t131(rng, 2.3, 0.01))[0]  # gap ≈ 15% ± 0.5
    assert clear.key == "n5_gap_t131" and clear.reproduced is True
    assert clear.beyond_noise is True and "%) lies above 5%" in clear.evidence
    assert "seeds [" in clear.evidence and "tuning+seeds [" in clear.evidence
    s = _t131(rng, 2.12, 0.0)  # gap 6%, but one seed per repetition far below the bar
    for i in s.index[s["setting"] == "s4_n5_t131"]:
        s.loc[i, "seed_test_losses"] = json.dumps([2.0, 2.12, 2.12, 2.12, 2.12])
        s.loc[i, "seed_val_losses"] = json.dumps([1.99, 2.0, 2.0, 2.0, 2.0])
    noisy = figure4_trends(s)[0]
    assert noisy.reproduced is True and noisy.ours == "6.00%" and noisy.beyond_noise is False
    missing = figure4_trends(_t131(rng, 2.3, 0.01, with_seeds=False))[0]
    assert missing.reproduced is True and missing.beyond_noise is None


# ----------------------------------------------------------------------------- hierarchical
def _exact_cell(reps) -> dict[float, float]:
    """Exact distribution of one cell's θ*_c: every ordered draw of R repetitions out of R, and
    for each drawn slot every ordered draw of its n seeds out of n, each equally likely."""
    out: dict[float, float] = defaultdict(float)
    n_reps = len(reps)
    for drawn in itertools.product(range(n_reps), repeat=n_reps):
        slots = []
        for j in drawn:
            seeds, val, test = reps[j]
            n = len(seeds)
            dist: dict[float, float] = defaultdict(float)
            for idx in itertools.product(range(n), repeat=n):
                pick = _median_seed([seeds[i] for i in idx], [val[i] for i in idx],
                                    [test[i] for i in idx])
                dist[pick[1]] += n ** -n
            slots.append(list(dist.items()))
        for combo in itertools.product(*slots):
            value = sum(v for v, _ in combo) / n_reps
            out[round(value, 12)] += math.prod(p for _, p in combo) * n_reps ** -n_reps
    return out


def _combine(a: dict[float, float], b: dict[float, float], sign: float) -> dict[float, float]:
    out: dict[float, float] = defaultdict(float)
    for x, p in a.items():
        for y, q in b.items():
            out[round(x + sign * y, 12)] += p * q
    return out


def _seed_runs(reps) -> list[SeedRuns]:
    return [SeedRuns(tuple(s), tuple(map(float, v)), tuple(map(float, t))) for s, v, t in reps]


# 2 cells x 2 repetitions x 2-3 seeds: (seeds, val, test) per repetition
CELL_A = [((42, 43), (0.1, 0.2), (1.0, 1.4)), ((42, 43, 44), (0.3, 0.1, 0.2), (2.0, 1.2, 1.6))]
CELL_B = [((42, 43), (0.2, 0.1), (0.5, 0.9)), ((42, 43), (0.1, 0.1), (0.7, 0.3))]


def test_the_hierarchical_bootstrap_draws_from_the_exact_two_level_resampling_distribution():
    """θ = mean(A) − mean(B). By hand: A's reported runs are 1.4 (val 0.2 is the upper of two)
    and 1.6 (val order 43, 44, 42: the middle is 44); B's are 0.5 (order 43, 42) and 0.3 (a val
    tie broken by seed: 42, 43), so θ = 1.5 − 0.4 = 1.1. The exact θ* distribution (64 x 2916
    equally weighted resamples, 17 atoms) has P(θ* <= 0.4) = 0.018, P(θ* <= 0.5) = 0.048,
    P(θ* <= 1.3) = 0.946 and P(θ* <= 1.4) = 0.980, so the 2.5 and 97.5 percentiles are 0.5
    and 1.4, far from an atom's edge."""
    exact = _combine(_exact_cell(CELL_A), _exact_cell(CELL_B), -1.0)
    atoms = np.array(sorted(exact))
    probs = np.array([exact[a] for a in atoms])
    cdf = np.cumsum(probs)
    assert len(atoms) == 17 and probs.sum() == pytest.approx(1.0)
    assert cdf[atoms.searchsorted(0.4)] == pytest.approx(0.018, abs=1e-3)
    assert cdf[atoms.searchsorted(1.3)] == pytest.approx(0.946, abs=1e-3)
    mean = float((atoms * probs).sum())
    var = float(((atoms - mean) ** 2 * probs).sum())
    b = 40_000
    iv = hierarchical_interval([(1.0, _seed_runs(CELL_A)), (-1.0, _seed_runs(CELL_B))],
                               n_resamples=b)
    assert iv.point == pytest.approx(1.1)
    assert set(np.round(iv.distribution, 12)) <= set(atoms)  # only reachable values
    assert iv.distribution.mean() == pytest.approx(mean, abs=5 * math.sqrt(var / b))
    assert iv.distribution.var() == pytest.approx(var, rel=0.03)
    assert (iv.low, iv.high) == (pytest.approx(0.5), pytest.approx(1.4))
    seed_only = difference(_summary_of({"base": CELL_A, "none": CELL_B}),
                           ("s1", "ds", "base"), ("s1", "ds", "none"), **FAST)
    assert seed_only.point == pytest.approx(1.1)
    assert iv.high - iv.low > seed_only.high - seed_only.low  # re-tuning noise on top


def _summary_of(cells: dict[str, list]) -> pd.DataFrame:
    """A summary with one s1 DS cell per regularization, repetitions as given."""
    return pd.DataFrame([_row("s1", "ds", reg, r, val, test, seeds=seeds)
                         for reg, reps in cells.items()
                         for r, (seeds, val, test) in enumerate(reps)])


def test_three_repetitions_give_ten_multisets_and_an_interval_as_wide_as_their_range():
    """Seeds that agree within each repetition leave only the repetition draw: the 10 multisets
    of 3 out of {1.0, 1.1, 1.4} (sums 3.0, 3.1, 3.2, 3.3, 3.4, 3.5, 3.6, 3.8, 3.9, 4.2: all
    distinct); 'all three the largest' has probability 1/27 > 2.5 %, so the 97.5th percentile
    is 1.4 itself, and likewise the 2.5th is 1.0."""
    reps = [((42, 43, 44), (0.1, 0.2, 0.3), (v, v, v)) for v in (1.0, 1.1, 1.4)]
    s = _summary_of({"base": reps})
    iv = cell_interval(s, ("s1", "ds", "base"), kind=TUNING)
    assert iv.point == pytest.approx(3.5 / 3)
    assert len(np.unique(np.round(iv.distribution, 9))) == 10
    assert (iv.low, iv.high) == (pytest.approx(1.0), pytest.approx(1.4))
    seed_only = cell_interval(s, ("s1", "ds", "base"), kind=SEED_ONLY)
    assert seed_only.low == seed_only.high == pytest.approx(3.5 / 3)  # blind to re-tuning


def test_the_same_input_gives_the_same_hierarchical_interval():
    groups = [(1.0, _seed_runs(CELL_A)), (-1.0, _seed_runs(CELL_B))]
    first, second = hierarchical_interval(groups), hierarchical_interval(groups)
    assert (first.point, first.low, first.high) == (second.point, second.low, second.high)
    assert np.array_equal(first.distribution, second.distribution)
    other = hierarchical_interval(groups, seed=1)  # the draws do come from the seeded rng
    assert not np.array_equal(first.distribution, other.distribution)


def test_one_repetition_gives_no_hierarchical_interval_rather_than_a_seed_only_one():
    one = _summary_of({"base": CELL_A[:1], "none": CELL_B})
    iv = cell_interval(one, ("s1", "ds", "base"), kind=TUNING)
    assert not iv.finite and iv.note == ONE_REPETITION
    assert iv.text() == f"no interval ({ONE_REPETITION})"
    assert cell_interval(one, ("s1", "ds", "base"), **FAST).finite  # the seed-only one exists
    d = contrast(one, {("s1", "ds", "base"): 1.0, ("s1", "ds", "none"): -1.0}, kind=TUNING)
    assert not d.finite and d.note == ONE_REPETITION  # one cell of the two is enough
    single_seed = _summary_of({"base": [((42,), (0.1,), (1.0,)), CELL_A[0]]})
    assert not cell_interval(single_seed, ("s1", "ds", "base"), kind=TUNING).finite
    with pytest.raises(ValueError, match="kind"):
        cell_interval(one, ("s1", "ds", "base"), kind="pooled")


def _retuning_cells(rng) -> pd.DataFrame:
    """Settings 1-3 x 3 methods x 2 repetitions, tight seeds (± 0.001) inside a repetition, but
    Base's two repetitions far apart (1.0 and 2.0) against None's (1.6 and 1.8): Base's mean
    1.5 beats None's 1.7, the seed-only difference interval sits near -0.2, and the repetition
    draw {2.0, 2.0} for Base (probability 1/4) gives θ* = 2.0 - 1.7 ± 0.1 > 0."""
    rows = []
    for s in ("s1", "s2", "s3"):
        for m in ("ddpg", "ppo", "ds"):
            for reg, centres in (("base", (1.0, 2.0)), ("none", (1.6, 1.8))):
                for rep, c in enumerate(centres):
                    rows.append(_row(s, m, reg, rep, [0.1, 0.3, 0.2], _noise(rng, c, .001, 3)))
    return pd.DataFrame(rows)


def test_a_claim_within_the_retuning_noise_is_not_beyond_the_noise_though_seeds_alone_say_so():
    s = _retuning_cells(np.random.default_rng(7))
    claim = base_improves_test(s)
    d = difference(s, ("s1", "ds", "base"), ("s1", "ds", "none"), kind=TUNING)
    seeds = difference(s, ("s1", "ds", "base"), ("s1", "ds", "none"), **FAST)
    assert seeds.high < 0 < d.high  # seeds alone exclude 0, re-tuning does not
    assert claim.reproduced is True
    assert claim.beyond_seed_noise is True and claim.beyond_noise is False
    assert "beyond the noise (tuning+seeds): 0 of 9; beyond seed noise: 9 of 9" in claim.ours
    frame = claims_frame([claim])
    assert frame["beyond noise"].iloc[0] == "no" and frame["beyond seed noise"].iloc[0] == "yes"


def test_with_one_repetition_a_noise_verdict_says_the_data_cannot_decide():
    rng = np.random.default_rng(8)
    s = _t131(rng, 2.3, 0.01)
    s = s[s["repetition"] == 0]
    n5 = figure4_trends(s)[0]
    assert n5.reproduced is True and n5.beyond_seed_noise is True
    assert n5.beyond_noise is None and "cannot decide" in n5.noise_note
    assert claims_frame([n5])["beyond noise"].iloc[0] == (
        f"the data cannot decide ({ONE_REPETITION})")
    cells = _retuning_cells(rng)
    s3 = setting3_ds(cells[cells["repetition"] == 0])[0]
    assert s3.beyond_noise is None and ONE_REPETITION in s3.noise_note
