"""Benchmarks π* (spec §6): brute force, Monte Carlo, analytic formulas and the spec fixtures."""

from __future__ import annotations

import os

# one BLAS thread: the AR(1) DP is matrix products, and spinning BLAS threads on the 2 shared
# cores are many times slower than one (effective when this file is the first to load numpy)
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import dataclasses  # noqa: E402
import itertools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from scipy import integrate  # noqa: E402
from scipy.stats import norm  # noqa: E402

from deepstock.benchmarks import (  # noqa: E402
    ar1_refinement,
    expected_newsvendor_cost,
    fractile_z,
    fresh_start_expected_loss,
    indep_pmf,
    run_benchmark,
    solve_ar1_rows,
    solve_ar1_sku,
    solve_indep_dp,
)
from deepstock.benchmarks.ar1_dp import Ar1DPSolution, ar1_kernel, rows_loss  # noqa: E402
from deepstock.benchmarks.critical_fractile import row_level_policy  # noqa: E402
from deepstock.cli import main  # noqa: E402
from deepstock.errors import DeepstockError  # noqa: E402
from deepstock.problem.dynamics import simulate  # noqa: E402
from deepstock.problem.evaluation import evaluate_policy  # noqa: E402
from deepstock.problem.generators import generate_dataset  # noqa: E402
from deepstock.problem.losses import LossConfig, trajectory_loss  # noqa: E402

torch.set_num_threads(1)

_CACHE: dict[str, object] = {}


def dataset(sid: str):
    if sid not in _CACHE:
        _CACHE[sid] = generate_dataset(sid)
    return _CACHE[sid]


def _c(e, h=0.1, b=0.9):
    return h * max(e, 0) + b * max(-e, 0)


# ------------------------------------------------------------------------------------ INDEP DP
def _tiny_pmf(T=7, support=3, seed=3):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(support), size=T)


def _brute_value(pmf, t, i, *, R, L, M, h, b):
    """Plain expectimax over the whole scenario tree (no table, no clamp)."""
    T = pmf.shape[0]
    if t == T:
        return 0.0
    support = [(d, p) for d, p in enumerate(pmf[t]) if p > 0]
    stage = sum(p * _c(i - d, h, b) for d, p in support) if t >= R + L else 0.0
    is_order = t >= R and t % R == 0 and t + L <= T - 1
    actions = range(M + 1) if is_order else [0]
    best = min(
        sum(p * _brute_value(pmf, t + 1, i - d + u, R=R, L=L, M=M, h=h, b=b) for d, p in support)
        for u in actions
    )
    return stage + best


@pytest.mark.parametrize("h", [0.1, 0.3])
def test_indep_dp_matches_brute_force_tree(h):
    pmf = _tiny_pmf()
    M, R, L = 3, 2, 1
    sol = solve_indep_dp(pmf, R=R, L=L, M=M, lo=-30, hi=30, loss=LossConfig(h=h))
    brute = _brute_value(pmf, 0, 0, R=R, L=L, M=M, h=h, b=1 - h)
    assert sol.value[0, 0 - sol.lo] == pytest.approx(brute, rel=1e-12)
    assert sol.is_base_stock
    # the DP policy attains its value: exact expectation over all 3^7 demand paths, shared simulator
    paths = np.array(list(itertools.product(range(3), repeat=pmf.shape[0])), dtype=float)
    prob = np.prod(pmf[np.arange(pmf.shape[0]), paths.astype(int)], axis=1)
    ro = simulate(paths, sol.policy(), R=R, L=L)
    n_counted = pmf.shape[0] - R - L
    exact = float(prob @ np.asarray(trajectory_loss(ro, LossConfig(h=h))))
    assert exact == pytest.approx(brute / n_counted, rel=1e-12)


def test_indep_dp_smallest_minimizer_on_ties():
    # zero demand and free holding (h = 0): every u with i + u >= 0 is optimal, so the smallest
    # minimizer orders exactly clip(-i, 0, M) on order days; non-order days order nothing
    pmf = np.zeros((7, 3))
    pmf[:, 0] = 1.0
    sol = solve_indep_dp(pmf, M=3, lo=-5, hi=10, loss=LossConfig(h=0.0), check_grid=False)
    grid = np.arange(-5, 11)
    for t in range(7):
        want = np.clip(-grid, 0, 3) if t in (2, 4) else np.zeros_like(grid)
        assert sol.orders[t].tolist() == want.tolist(), t


def test_indep_fixtures_spec_6_1():
    ds = dataset("s1")
    expect = {
        "empirical": ([44, 43, 45, 35, 34, 23, 23, 31, 33, 42, 28, 30, 31, 30],
                      0.8225, (0.7618, 0.8789, 0.8670)),
        "true": ([45, 42, 45, 36, 34, 23, 23, 30, 33, 42, 29, 30, 31, 30],
                 0.8543, (0.7761, 0.8789, 0.8592)),
    }
    for kind, (levels, v0, losses) in expect.items():
        res = run_benchmark(ds, f"dp_{kind}")
        assert res.policy["levels"] == levels
        assert res.policy["is_base_stock"]
        assert res.expected_value == pytest.approx(v0, abs=5e-5)
        got = (res.losses["train"], res.losses["val"], res.losses["test"])
        assert got == pytest.approx(losses, abs=5e-5)


def test_indep_dp_value_vs_monte_carlo():
    ds = dataset("s1")
    sol = solve_indep_dp(indep_pmf(ds, "true"))
    lower = ds.demand_params["lower"].astype(int)
    rng = np.random.default_rng(2024)
    n = 100_000
    demand = (lower[None, :] + rng.integers(0, 5, size=(n, lower.size))).astype(float)
    per = np.asarray(trajectory_loss(simulate(demand, sol.policy(), R=2, L=1)))
    se = per.std(ddof=1) / math.sqrt(n)
    assert abs(per.mean() - sol.expected_loss(0)) < 3 * se


def test_indep_grid_too_small_raises():
    pmf = indep_pmf(dataset("s1"), "empirical")
    solve_indep_dp(pmf, lo=-30, hi=40)  # on-hand stays in [-28, 40]: fine
    with pytest.raises(DeepstockError, match="too small"):
        solve_indep_dp(pmf, lo=-20, hi=200)  # -(D_0 + D_1) reaches -28
    with pytest.raises(DeepstockError, match="too small"):
        solve_indep_dp(pmf, lo=-100, hi=30)  # S_2 = 44 exceeds the top


# ------------------------------------------------------------------------------ IID fractile
IID_FIXTURES = {  # spec §6.2: (N, T) -> (z = 1.282, z exact)
    (5, 7): (2.36687, 2.36689), (5, 19): (2.37261, 2.37259), (5, 35): (2.37919, 2.37919),
    (5, 67): (2.38840, 2.38841), (5, 131): (2.37640, 2.37642),
    (10, 7): (2.25694, 2.25690), (10, 19): (2.26721, 2.26721), (10, 35): (2.27117, 2.27118),
    (10, 67): (2.27281, 2.27283), (10, 131): (2.26395, 2.26396),
    (20, 7): (2.09317, 2.09316), (20, 19): (2.10640, 2.10639), (20, 35): (2.10105, 2.10108),
    (20, 67): (2.09992, 2.09993), (20, 131): (2.10026, 2.10027),
}


def test_iid_fixtures_all_15_cells_both_z():
    for (n, t), (l_auth, l_exact) in IID_FIXTURES.items():
        ds = dataset(f"s4_n{n}_t{t}")
        for iid_z, want in (("1.282", l_auth), ("exact", l_exact)):
            got = run_benchmark(ds, "critical_fractile", iid_z=iid_z).losses["test"]
            assert got == pytest.approx(want, abs=6e-6), (n, t, iid_z)


def test_fractile_z_values():
    assert fractile_z("1.282") == 1.282
    assert fractile_z("exact") == pytest.approx(1.2815515655446004, abs=1e-12)
    assert fractile_z("exact", LossConfig(h=0.5)) == pytest.approx(0.0, abs=1e-12)


def test_newsvendor_cost_vs_normal_loss_formula():
    h, b, mu = 0.1, 0.9, 100.0
    for sigma in (5.0, 12.3, 20.0):
        for S in (90.0, 100.0 + 1.282 * sigma, 130.0):
            z = (S - mu) / sigma
            textbook = h * (S - mu) + (b + h) * sigma * (norm.pdf(z) - z * norm.sf(z))
            assert expected_newsvendor_cost(S, sigma) == pytest.approx(textbook, abs=1e-5)
    # heavy censoring: compare with numerical integration of c(S - max(0, X))
    sigma, S = 80.0, 150.0
    atom = norm.cdf(-mu / sigma) * _c(S)
    body, _ = integrate.quad(lambda x: _c(S - x) * norm.pdf(x, mu, sigma), 0, S)
    tail, _ = integrate.quad(lambda x: _c(S - x) * norm.pdf(x, mu, sigma), S, np.inf)
    assert expected_newsvendor_cost(S, sigma) == pytest.approx(atom + body + tail, rel=1e-8)
    # the exact fractile minimizes the expected cost
    s0 = 100 + fractile_z("exact") * 12.0
    f0 = expected_newsvendor_cost(s0, 12.0)
    assert f0 < expected_newsvendor_cost(s0 - 0.05, 12.0)
    assert f0 < expected_newsvendor_cost(s0 + 0.05, 12.0)


def test_iid_policy_monte_carlo_matches_expected_cost():
    sigma, T, n = 15.0, 19, 20_000
    rng = np.random.default_rng(11)
    demand = np.zeros((n, T))
    odd = [t for t in range(3, T, 2)]
    demand[:, odd] = np.maximum(0.0, rng.normal(100.0, sigma, size=(n, len(odd))))
    level = 100 + 1.282 * sigma
    pol = row_level_policy(np.full(n, level), 500.0)
    per = np.asarray(trajectory_loss(simulate(demand, pol, R=2, L=1, index=np.arange(n))))
    se = per.std(ddof=1) / math.sqrt(n)
    assert abs(per.mean() - float(expected_newsvendor_cost(level, sigma))) < 3 * se


@pytest.mark.parametrize("sid", ["s4_n5_t7", "s4_n10_t35", "s4_n20_t131"])
def test_iid_benchmark_vs_constant_levels(sid):
    ds = dataset(sid)
    bench = run_benchmark(ds, "critical_fractile").losses["test"]
    sig = ds.demand_params["sigma"]
    grid = np.arange(85.0, 145.0, 0.5)
    per = np.array([
        evaluate_policy(row_level_policy(np.full(sig.size, s), 500.0), ds, "test").per_trajectory
        for s in grid
    ])  # [levels, n_test]
    # one level for every SKU never beats the σ-aware fractile
    assert per.mean(1).min() > bench
    # even the in-sample best level per σ improves it by < 0.5% (finite-sample fit only)
    te_sig = sig[ds.split_idx["test"]]
    best = sum(per[:, te_sig == s].mean(1).min() * (te_sig == s).sum() for s in np.unique(te_sig))
    best /= te_sig.size
    assert bench * 0.995 < best <= bench


def test_iid_needs_odd_day_demand():
    ds = dataset("s4_n5_t7")
    bad = dataclasses.replace(ds, demand=ds.demand + 1.0)
    with pytest.raises(DeepstockError, match="odd days"):
        run_benchmark(bad, "critical_fractile")


# --------------------------------------------------------------------------------- AR(1) DP
def _brute_ar1(phi, mu, sigma, *, T, M, delta, nsd, h=0.1, b=0.9):
    """Independent AR(1) DP: explicit (a, b) double sum and a brute-force window minimum."""
    K = math.ceil((mu + nsd * sigma / math.sqrt(1 - phi**2)) / delta - 1e-9)
    g = delta * np.arange(K + 1)
    P = np.empty((K + 1, K + 1))
    for i in range(K + 1):
        m = phi * g[i] + (1 - phi) * mu
        for k in range(K + 1):
            up = 1.0 if k == K else norm.cdf((g[k] + delta / 2 - m) / sigma)
            lo = 0.0 if k == 0 else norm.cdf((g[k] - delta / 2 - m) / sigma)
            P[i, k] = up - lo
    Y = 7 * K + 1
    y = delta * (np.arange(Y) - 4 * K)

    def cost(e):
        return h * np.maximum(e, 0) + b * np.maximum(-e, 0)

    C = np.array([[P[d] @ cost(yy - g) for d in range(K + 1)] for yy in y])
    V = C.copy()
    mstep = int(M / delta)
    levels = {}
    for t in range(T - 3, 1, -2):
        G = np.zeros((Y, K + 1))
        for a in range(K + 1):
            for bb in range(K + 1):
                idx = np.clip(np.arange(Y) - a - bb, 0, Y - 1)
                G += P[:, a][None, :] * P[a, bb] * (cost(y[idx]) + V[idx, bb])[:, None]
        newV = np.empty_like(V)
        for iy in range(Y):
            win = G[iy : min(iy + mstep, Y - 1) + 1]
            newV[iy] = win.min(0) + (C[iy] if t >= 3 else 0.0)
        levels[t] = y[np.argmin(G, axis=0)]
        V = newV
    return levels, V


def test_ar1_dp_matches_independent_brute_force():
    kw = dict(T=9, M=6.0, delta=0.5, nsd=3.0)
    brute_levels, brute_v = _brute_ar1(0.6, 3.0, 1.0, **kw)
    sol = solve_ar1_sku(0.6, 3.0, 1.0, **kw)
    for j, t in enumerate(sol.days):
        np.testing.assert_allclose(sol.levels[j], brute_levels[int(t)])
    np.testing.assert_allclose(sol.value_first, brute_v, rtol=1e-10, atol=1e-10)
    assert sol.K == 14  # ⌈(3 + 3·1/√(1 - 0.36)) / 0.5⌉ = ⌈13.5⌉
    np.testing.assert_allclose(ar1_kernel(0.6, 3.0, 1.0, 0.5, sol.K).sum(1), 1.0)


def test_ar1_sku1_levels_value_and_monte_carlo():
    ds = dataset("s2")
    phi, mu, sigma = (float(ds.demand_params[k][0]) for k in ("phi", "mu", "sigma"))
    sku = solve_ar1_sku(phi, mu, sigma)
    d = np.array([0.0, 5.0, 10.0, 15.0, 20.0])
    np.testing.assert_allclose(sku.level(2, d), [35.25, 39.5, 44.0, 48.25, 53.0], atol=0.5)
    np.testing.assert_allclose(sku.level(28, d), [35.25, 39.75, 44.25, 49.0, 53.5], atol=0.5)
    v = fresh_start_expected_loss(sku)
    assert v == pytest.approx(2.7496, abs=0.003)
    # 20,000 fresh trajectories of the generator (39 raw days, first 8 dropped)
    n = 20_000
    rng = np.random.default_rng(5)
    raw = np.empty((n, 39))
    raw[:, 0] = np.maximum(0.0, rng.normal(mu, sigma, n))
    for j in range(1, 39):
        raw[:, j] = np.maximum(0.0, phi * raw[:, j - 1] + (1 - phi) * mu + rng.normal(0, sigma, n))
    demand, x = raw[:, 8:], raw[:, 7:38]

    def mc(shift):
        s = dataclasses.replace(sku, levels=sku.levels + shift)
        pol = Ar1DPSolution(np.array([0]), [s], 100.0).policy()
        ro = simulate(demand, pol, R=2, L=1, x=x, index=np.zeros(n, dtype=np.int64))
        return np.asarray(trajectory_loss(ro))

    per = mc(0.0)
    se = per.std(ddof=1) / math.sqrt(n)
    assert abs(per.mean() - v) < 3 * se
    assert mc(2.0).mean() > per.mean() and mc(-2.0).mean() > per.mean()


def test_ar1_fixtures_delta_1_test_and_delta_025_train_val():
    ds = dataset("s2")
    test = ds.split_idx["test"]
    sol = solve_ar1_rows(ds, test, delta=1.0)
    assert rows_loss(sol.policy(), ds, test).mean() == pytest.approx(2.2516, abs=1e-3)
    train = ds.split_idx["train"]
    sol = solve_ar1_rows(ds, train, delta=0.25)
    assert evaluate_policy(sol.policy(), dataset("s2"), "train").loss == pytest.approx(
        2.3278, abs=1e-3
    )
    conv = ar1_refinement(ds, ds.split_idx["val"], delta=0.5)
    assert conv["loss_fine"] == pytest.approx(2.1188, abs=1e-3)
    assert conv["rel_change"] < 1e-3


def test_ar1_dp_reaches_the_spec_fixture_2_2503_on_the_test_skus_at_delta_025():
    """Spec §6.3 fixture: L*_DP = 2.2503 on SKUs 21–120 at δ = 0.25 (expected value 2.3244).

    The demand grid is cut at nsd = 4 instead of 6 to keep this under 20 s (13–19 s on the shared
    2-core machine, depending on its load, vs 30 s at nsd = 6; nsd = 3.5 is too small for SKU 65).
    Measured there: nsd = 4 gives 2.250239 (expected 2.324231), nsd = 6 gives
    2.250255 (2.324396), so the cut moves the test loss by 1.6e-5 and the expected value by
    1.7e-4. Bars: 1e-4 on the loss (fixture rounding 5e-5 plus the cut; δ = 0.5 lies 7.3e-4
    away, so the bar tells δ = 0.25 apart) and 3e-4 on the expected value.
    """
    ds = dataset("s2")
    test = ds.split_idx["test"]
    assert ds.ids[test].tolist() == list(range(21, 121))
    sol = solve_ar1_rows(ds, test, delta=0.25, nsd=4.0)
    assert rows_loss(sol.policy(), ds, test).mean() == pytest.approx(2.2503, abs=1e-4)
    assert sol.expected_losses(ds, test).mean() == pytest.approx(2.3244, abs=3e-4)


def test_ar1_grid_too_small_raises():
    ds = dataset("s2")
    with pytest.raises(DeepstockError, match="increase nsd"):
        solve_ar1_rows(ds, np.arange(3), delta=1.0, nsd=0.5)


# ----------------------------------------------------------------------------------- CLI
def _save(tmp_path, sid):
    path = tmp_path / f"{sid}.npz"
    dataset(sid).save(path)
    return path


def test_cli_s1_writes_json(tmp_path, capsys):
    data = _save(tmp_path, "s1")
    out = tmp_path / "res" / "s1.json"
    assert main(["benchmark", "s1", "--data", str(data), "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert res["setting"] == "s1" and res["method"] == "dp_empirical"
    assert res["test_loss"] == pytest.approx(0.8670, abs=5e-5)
    assert res["expected_value"] == pytest.approx(0.8225, abs=5e-5)
    assert res["policy"]["levels"][:3] == [44, 43, 45]
    assert {"train_loss", "val_loss", "wall_s", "options"} <= set(res)


def test_cli_ar1_writes_table(tmp_path):
    data = _save(tmp_path, "s2")
    out = tmp_path / "s2.json"
    argv = ["benchmark", "s2", "--data", str(data), "--out", str(out), "--delta", "1", "--quiet"]
    assert main(argv) == 0
    res = json.loads(out.read_text())
    assert res["method"] == "ar1_dp" and res["policy"]["table_file"] == "s2.npz"
    assert res["test_loss"] == pytest.approx(2.2516, abs=1e-3)
    with np.load(tmp_path / "s2.npz") as z:
        assert z["levels"].shape[:2] == (120, 14)
        assert z["ids"].tolist() == list(range(1, 121))


@pytest.mark.parametrize(
    "argv_tail, setting, match",
    [
        (["--data", "MISSING"], "s1", "not found"),
        (["--data", "{s1}"], "s2", "holds setting"),
        (["--data", "{s1}", "--method", "critical_fractile"], "s1", "does not apply"),
        (["--data", "{s1}", "--method", "nope"], "s1", None),
    ],
)
def test_cli_errors(tmp_path, capsys, argv_tail, setting, match):
    data = _save(tmp_path, "s1")
    out = tmp_path / "o.json"
    argv = ["benchmark", setting, "--out", str(out)]
    argv += [str(tmp_path / a) if a == "MISSING" else a.replace("{s1}", str(data)) for a in argv_tail]
    if match is None:  # argparse rejects an unknown choice
        with pytest.raises(SystemExit):
            main(argv)
    else:
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert match in err and len(err.splitlines()) == 1
    assert not out.exists()


def test_cli_grid_and_output_errors(tmp_path, capsys):
    data = _save(tmp_path, "s2")
    out = tmp_path / "o.json"
    argv = ["benchmark", "s2", "--data", str(data), "--out", str(out), "--delta", "1",
            "--nsd", "0.5"]
    assert main(argv) == 2 and "too small" in capsys.readouterr().err
    assert main(["benchmark", "s2", "--data", str(data), "--out", str(tmp_path / "o.txt")]) == 2
    assert not out.exists()


def test_ds_on_test_without_trainer(monkeypatch, tmp_path, capsys):
    for module in ("deepstock.training.ds", "deepstock.training.ds_population"):
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed (even if loaded)
    data = _save(tmp_path, "s2")
    argv = ["benchmark", "s2", "--data", str(data), "--out", str(tmp_path / "o.json"),
            "--method", "ds_on_test"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "the torch backend of ds cannot be loaded (deepstock.training.ds_population)" in err
    assert "\n" not in err.strip()


def test_ds_on_test_with_trainer(tmp_path):
    pytest.importorskip("deepstock.training.ds")
    data = _save(tmp_path, "s2")
    out = tmp_path / "ds.json"
    argv = ["benchmark", "s2", "--data", str(data), "--out", str(out), "--method", "ds_on_test",
            "--ds-hparams", '{"epochs": 2}', "--device", "cpu", "--quiet"]
    assert main(argv) == 0
    res = json.loads(out.read_text())
    assert res["method"] == "ds_on_test" and res["policy"]["config"]["train_split"] == "test"
    assert all(math.isfinite(res[f"{s}_loss"]) for s in ("train", "val", "test"))


def test_cli_distribution_true_and_convergence_check(tmp_path, capsys):
    from deepstock.cli import main

    s1 = _save(tmp_path, "s1")
    assert main(["benchmark", "s1", "--data", str(s1), "--out", str(tmp_path / "t.json"),
                 "--distribution", "true"]) == 0
    res = json.loads((tmp_path / "t.json").read_text())
    assert res["method"] == "dp_true"
    assert res["test_loss"] == pytest.approx(0.8592, abs=5e-5)  # spec §6.1, true pmf
    s2 = _save(tmp_path, "s2")
    assert main(["benchmark", "s2", "--data", str(s2), "--out", str(tmp_path / "a.json"),
                 "--delta", "1.0", "--check-convergence", "--quiet"]) == 0
    conv = json.loads((tmp_path / "a.json").read_text())["options"]["convergence"]
    assert conv["loss"] == pytest.approx(2.2516, abs=3e-4)  # spec §6.3: δ = 1
    assert conv["loss_fine"] == pytest.approx(2.2510, abs=3e-4)  # δ = 0.5
    assert conv["rel_change"] < 1e-3  # < 0.1 %
    assert main(["benchmark", "s2", "--data", str(s2), "--out", str(tmp_path / "b.json"),
                 "--distribution", "true"]) == 2
    assert "INDEP" in capsys.readouterr().err
