"""95 % stratified-bootstrap intervals: the bootstrap itself, the seed columns of summary.csv,
the interval rows of the tables and the ``beyond_noise`` verdict of the takeaways.

Expected values are built by hand (the median-validation seed is picked by a plain sort here,
not by the code under test).
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import bootstrap

from deepstock.reports.collect import SEED_COLUMNS, build_summary
from deepstock.reports.intervals import (
    SeedRuns,
    cell_interval,
    difference,
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
from deepstock.reports.takeaways import base_improves_test, claims_frame, figure4_trends

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
    got = stats.loc[("s1", "ds", "base", "test_loss")]
    assert (got["ci_low"], got["ci_high"]) == (test.low, test.high)
    assert got["ci_low"] <= got["mean"] <= got["ci_high"] and got["ci_low"] < got["ci_high"]
    gap = stats.loc[("s1", "ds", "base", "test_gap")]  # the loss interval mapped through L*
    assert gap["ci_low"] == pytest.approx(100 * (test.low - 0.8) / 0.8)
    assert gap["ci_high"] == pytest.approx(100 * (test.high - 0.8) / 0.8)
    assert np.isnan(stats.loc[("s1", "ds", "none", "test_loss"), "ci_low"])  # no seeds

    t6 = table_6_8(flat, "s1")
    assert t6.loc["Testing Loss 95% CI low", "DS-Base"] == test.low
    assert t6.loc["Testing Loss 95% CI high", "DS-Base"] == test.high
    assert t6.loc["Testing Loss Gap (%) 95% CI low", "DS-Base"] == pytest.approx(gap["ci_low"])
    md = to_markdown(t6, "T6")
    assert "| Testing Loss 95% CI " in md and f"[{test.low:.4f}, {test.high:.4f}]" in md
    assert f"[{gap['ci_low']:.2f}, {gap['ci_high']:.2f}]" in md
    assert "CI low" not in md and "CI high" not in md  # the pair is one row
    tex = to_latex(t6, "T6", "6-8")
    assert r"Testing Loss Gap (\%) 95\% CI & " in tex
    t9 = table_9(flat)
    n5 = t9[t9["N"] == 5].set_index("row")
    iv9 = cell_interval(s, ("s4_n5_t7", "ds", "base"))
    assert n5.loc["Testing Loss 95% CI low", "T=7"] == iv9.low
    assert f"[{iv9.low:.4f}, {iv9.high:.4f}]" in to_markdown(t9, "T9")

    import yaml
    comp = comparison(flat, yaml.safe_load(REPORTED.read_text()))
    r = comp[(comp["setting"] == "s1") & (comp["method"] == "ds") & (comp["reg"] == "base")
             & (comp["metric"] == "test_loss")].iloc[0]
    assert (r["ci_low"], r["ci_high"]) == (test.low, test.high)


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
    assert clear.ours.endswith("beyond the noise: 9 of 9")
    assert "DS S3 [" in clear.evidence
    noisy = base_improves_test(_nine_cells(rng, noisy=[("s1", "ppo"), ("s2", "ds")]))
    assert noisy.reproduced is True and noisy.beyond_noise is False  # 7 of 9 beyond the noise
    assert noisy.ours == "9 of 9; beyond the noise: 7 of 9"
    missing = base_improves_test(_nine_cells(rng, with_seeds=False))
    assert missing.reproduced is True and missing.beyond_noise is None
    assert missing.ours == "9 of 9"
    frame = claims_frame([clear, noisy, missing])
    assert frame["beyond noise"].tolist() == ["yes", "no", "no interval"]


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
    assert clear.beyond_noise is True and "% lies above 5%" in clear.evidence
    s = _t131(rng, 2.12, 0.0)  # gap 6%, but one seed per repetition far below the bar
    for i in s.index[s["setting"] == "s4_n5_t131"]:
        s.loc[i, "seed_test_losses"] = json.dumps([2.0, 2.12, 2.12, 2.12, 2.12])
        s.loc[i, "seed_val_losses"] = json.dumps([1.99, 2.0, 2.0, 2.0, 2.0])
    noisy = figure4_trends(s)[0]
    assert noisy.reproduced is True and noisy.ours == "6.00%" and noisy.beyond_noise is False
    missing = figure4_trends(_t131(rng, 2.3, 0.01, with_seeds=False))[0]
    assert missing.reproduced is True and missing.beyond_noise is None
