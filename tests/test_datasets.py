"""Datasets (spec §5): paper-exact fixtures, Coeff features, splits, determinism, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from deepstock import __version__
from deepstock.cli import main
from deepstock.errors import ConfigError
from deepstock.problem.data import load_dataset
from deepstock.problem.families import setting_ids
from deepstock.problem.generators import generate_dataset, write_dataset
from deepstock.problem.settings import DataOptions, get_setting


@pytest.fixture(scope="module")
def s1():
    return generate_dataset("s1")


@pytest.fixture(scope="module")
def s2():
    return generate_dataset("s2")


# ----------------------------------------------------------------- independent brute force
def naive_coeff(d: np.ndarray) -> np.ndarray:
    """φ_1..φ_4 without noise by explicit windows (spec §5.4); NaN where no day is available.

    φ_3, φ_4 are rolling means of the series shifted by -1 (authors' code), whose first value is
    d_1: d_0 never enters them, so their windows start at day 1.
    """
    n = len(d)
    out = np.full((n, 4), np.nan)
    windows = [(0, -28, -1), (0, -7, -1), (1, -5, 1), (1, -26, 1)]  # (first day, from, to)
    for t in range(n):
        for i, (first, a, b) in enumerate(windows):
            w = [d[j] for j in range(max(t + a, first), min(t + b, n - 1) + 1)]
            if w:
                out[t, i] = sum(w) / len(w)
    return out


def authors_ar1(n_skus: int, raw_days: int = 39):
    """AR(1) pool with the authors' scalar call sequence on a legacy global-style stream."""
    rs = np.random.RandomState(42)
    params, paths = [], []
    for _ in range(n_skus):
        phi, mu, sigma = rs.uniform(0.3, 0.9), rs.uniform(5, 10), rs.uniform(2, 8)
        d = [max(0, rs.normal(mu, sigma))]
        for j in range(1, raw_days):
            eps = rs.normal(0, sigma)
            d.append(max(0, phi * d[j - 1] + (1 - phi) * mu + eps))
        params.append((phi, mu, sigma))
        paths.append(d)
    noise3 = [rs.normal(0, 3, size=raw_days) for _ in range(n_skus)]
    noise4 = [rs.normal(0, 3, size=raw_days) for _ in range(n_skus)]
    return np.array(params), np.array(paths, dtype=float), np.array(noise3), np.array(noise4)


# ----------------------------------------------------------------- INDEP (spec §5.1)
LOWER = [11, 9, 12, 16, 9, 9, 16, 13, 8, 12, 8, 8, 10, 2, 3, 7, 5, 11, 6, 4, 15, 9, 10, 4, 7, 10,
         5, 11, 7, 8, 7]
SKU1 = [11, 12, 15, 18, 11, 13, 16, 16, 9, 12, 10, 12, 13, 5, 6, 10, 7, 11, 10, 6, 17, 10, 10, 8,
        10, 13, 7, 15, 9, 10, 9]
SKU21 = [13, 11, 12, 18, 12, 10, 17, 14, 10, 13, 11, 9, 12, 3, 3, 10, 6, 12, 9, 8, 18, 13, 14, 6,
         10, 11, 7, 13, 11, 12, 9]


def test_indep_fixtures(s1):
    assert s1.demand_params["lower"].tolist() == LOWER
    assert s1.demand[0].tolist() == SKU1
    assert s1.demand[20].tolist() == SKU21
    assert s1.demand.sum() == 40078
    assert s1.demand.dtype == np.float64
    lower = np.array(LOWER)
    assert np.all(s1.demand >= lower) and np.all(s1.demand <= lower + 4)
    assert s1.x[5].tolist() == [t // 2 for t in range(31)]


def test_indep_coeff_noise_reuses_lower_normals(s1):
    # spec §5.4: the generator is re-seeded to 42, so SKU 1's η is 3 z where 10 + 4 z made ℓ_t.
    eta = s1.coeff[0, :, 2] - naive_coeff(s1.demand[0])[:, 2]
    normals = 10 + 4 * eta / 3
    np.testing.assert_allclose(normals[:4], [11.987, 9.447, 12.591, 16.092], atol=5e-4)
    assert np.trunc(np.clip(normals, 0, 100)).astype(int).tolist() == LOWER


def test_coeff_definitions_indep(s1):
    rs = np.random.RandomState(42)
    noise3, noise4 = rs.normal(0, 3, size=(120, 31)), rs.normal(0, 3, size=(120, 31))
    for k in (0, 7, 119):
        ref = naive_coeff(s1.demand[k])
        assert np.isnan(ref[0, :2]).all() and (s1.coeff[k, 0, :2] == 0).all()  # NaN -> 0 at t=0
        ref[0, :2] = 0.0
        ref[:, 2] += noise3[k]
        ref[:, 3] += noise4[k]
        np.testing.assert_allclose(s1.coeff[k], ref, rtol=0, atol=1e-12)


def test_indep_feature_t():
    d = generate_dataset("s1", DataOptions(indep_feature="t"))
    assert d.x[3].tolist() == list(range(31))


# ----------------------------------------------------------------- AR(1) (spec §5.2)
def test_ar1_fixtures(s2):
    p = s2.demand_params
    assert (p["phi"][0], p["mu"][0], p["sigma"][0]) == (
        0.5247240713084176, 9.75357153204958, 6.391963650868431)
    assert (p["phi"][1], p["mu"][1], p["sigma"][1]) == (
        0.4628094190643376, 9.143687545759647, 4.1405199601615355)
    assert s2.demand[0, :6].tolist() == [0.0, 10.710366232723025, 15.474312023164487,
                                         3.014821788254862, 3.481532447845274, 1.7170441313584277]
    assert s2.x[0, :3].tolist() == [0.9950806338071247, 0.0, 10.710366232723025]
    assert s2.demand[20:120, 3:].mean() == pytest.approx(8.4772, abs=5e-5)
    assert s2.demand[10:110, 3:].mean() == pytest.approx(8.4440, abs=5e-5)


def test_ar1_matches_scalar_call_sequence(s2):
    """Whole pool, parameters and Coeff noise equal the authors' scalar loop bit for bit."""
    params, raw, noise3, noise4 = authors_ar1(120)
    assert raw.max() == pytest.approx(38.767, abs=5e-4)
    np.testing.assert_array_equal(np.stack([s2.demand_params[k] for k in ("phi", "mu", "sigma")], 1), params)
    np.testing.assert_array_equal(s2.demand, raw[:, 8:])
    np.testing.assert_array_equal(s2.x, raw[:, 7:-1])
    for k in (0, 1, 64, 119):
        ref = naive_coeff(raw[k])
        ref[:, 2] += noise3[k]
        ref[:, 3] += noise4[k]
        np.testing.assert_allclose(s2.coeff[k], ref[8:], rtol=0, atol=1e-12)


def test_s3_splits_and_pool(s2):
    shared = generate_dataset("s3")
    repo = generate_dataset("s3", DataOptions(s3_test="repo"))
    ids = {k: shared.ids[v].tolist() for k, v in shared.split_idx.items()}
    assert ids == {"train": list(range(1, 6)), "val": list(range(6, 11)),
                   "test": list(range(21, 121))}
    np.testing.assert_array_equal(shared.demand, s2.demand)
    np.testing.assert_array_equal(shared.coeff, s2.coeff)
    ids = {k: repo.ids[v].tolist() for k, v in repo.split_idx.items()}
    assert ids == {"train": list(range(1, 6)), "val": list(range(6, 11)),
                   "test": list(range(11, 111))}
    np.testing.assert_array_equal(repo.demand, s2.demand[:110])  # prefix of the pool
    assert repo.split("test").demand[:, 3:].mean() == pytest.approx(8.4440, abs=5e-5)
    assert shared.split("test").demand[:, 3:].mean() == pytest.approx(8.4772, abs=5e-5)
    # a 110-SKU run continues the stream after 110 SKUs: its Coeff noise differs
    _, raw, noise3, _ = authors_ar1(110)
    eta = repo.coeff[3, :, 2] - naive_coeff(raw[3])[8:, 2]
    np.testing.assert_allclose(eta, noise3[3, 8:], rtol=0, atol=1e-12)
    assert not np.allclose(repo.coeff[3, :, 2], s2.coeff[3, :, 2])


# ----------------------------------------------------------------- IID (spec §5.3)
SIGMAS = [10.618101782710436, 19.260714596148745, 15.979909127171076, 13.979877262955549,
          7.340279606636548, 7.33991780504304, 5.871254182522992, 17.99264218662403,
          14.016725176148132, 15.621088666940683, 5.308767414437037, 19.548647782429917,
          17.48663961200633, 8.185086660174143, 7.727374508106509, 7.7510676478015075,
          9.563633644393066, 12.871346474483568, 11.479175279631736, 9.368437102970628]


@pytest.mark.parametrize("n", [5, 10, 20])
def test_iid_sigma_prefix_chain_and_layout(n):
    d = generate_dataset(f"s4_n{n}_t19")
    sig = d.demand_params["sigma"]
    assert sig.shape == (102 * n,)
    assert sig[:n].tolist() == SIGMAS[:n]
    assert sig[n:2 * n].tolist() == SIGMAS[:n]
    for k in range(n):
        assert (sig[2 * n + 100 * k: 2 * n + 100 * (k + 1)] == SIGMAS[k]).all()
    np.testing.assert_array_equal(d.x, np.repeat(sig[:, None], 19, axis=1))
    odd = np.array([t >= 3 and t % 2 == 1 for t in range(19)])
    assert (d.demand[:, ~odd] == 0).all() and (d.demand[:, odd] > 0).mean() > 0.99


def test_iid_fixture_and_streams():
    d = generate_dataset("s4_n5_t7")
    assert d.demand[0].tolist() == [0, 0, 0, 103.23551696776285, 0, 88.95734290753728, 0]
    # brute force: default_rng(42) scalar draws in id order, odd days t >= 3
    rng = np.random.default_rng(42)
    ref = np.zeros_like(d.demand)
    for k in range(d.demand.shape[0]):
        for t in (3, 5):
            ref[k, t] = max(0, rng.normal(100, d.demand_params["sigma"][k]))
    np.testing.assert_array_equal(d.demand, ref)
    # Coeff noise: legacy stream re-seeded to 42 after the σ's; NaN -> 0 at t = 0
    rs = np.random.RandomState(42)
    noise3, noise4 = rs.normal(0, 3, size=(510, 7)), rs.normal(0, 3, size=(510, 7))
    for k in (0, 9, 509):
        ref_c = naive_coeff(d.demand[k])
        ref_c[0, :2] = 0.0
        ref_c[:, 2] += noise3[k]
        ref_c[:, 3] += noise4[k]
        np.testing.assert_allclose(d.coeff[k], ref_c, rtol=0, atol=1e-12)
    other_h = generate_dataset("s4_n5_t19")
    np.testing.assert_array_equal(other_h.demand_params["sigma"], d.demand_params["sigma"])
    assert other_h.demand[0, 3] == d.demand[0, 3]  # both restart default_rng(42) ...
    assert other_h.demand[1, 3] != d.demand[1, 3]  # ... but SKU 2 starts at another draw


def test_iid_all_days_option():
    d = generate_dataset("s4_n5_t7", DataOptions(iid_demand_days="all"))
    assert (d.demand > 0).mean() > 0.99
    assert d.meta["parameters"]["demand_days"] == "all"


# ----------------------------------------------------------------- all settings
@pytest.mark.parametrize("sid", setting_ids())
def test_shapes_splits_meta(sid):
    s = get_setting(sid)
    d = generate_dataset(sid)
    n = d.demand.shape[0]
    assert d.demand.shape == (n, s.T) and d.features.shape == (n, s.T, 1)
    assert d.coeff.shape == (n, s.T, 4) and np.isfinite(d.coeff).all()
    assert d.demand.dtype == d.features.dtype == d.coeff.dtype == np.float64
    assert d.ids.tolist() == list(range(1, n + 1))
    sizes = {k: len(v) for k, v in d.split_idx.items()}
    assert sizes == {"train": s.n_train, "val": s.n_val, "test": s.n_test}
    rows = np.concatenate(list(d.split_idx.values()))
    assert len(set(rows.tolist())) == len(rows) and rows.max() < n
    assert (d.demand >= 0).all()
    expected_n = {"indep": 120, "ar1": 120, "iid": 102 * (s.N or 0),
                  "lost_sales": s.n_train + s.n_val + s.n_test}[s.family]
    assert n == expected_n
    assert d.meta["setting"] == sid and d.meta["version"] == __version__
    assert d.meta["rng_mode"] == "paper_exact" and d.meta["seed"] == 42
    assert {"generator", "parameters", "data_options"} <= set(d.meta)


# ----------------------------------------------------------------- fresh mode and determinism
def test_same_options_same_bytes_and_roundtrip(tmp_path):
    for sid, opts in [("s2", DataOptions()), ("s4_n5_t7", DataOptions(rng_mode="fresh", data_seed=3))]:
        a, b = tmp_path / f"{sid}_a.npz", tmp_path / f"{sid}_b.npz"
        write_dataset(sid, a, opts)
        write_dataset(sid, b, opts)
        assert a.read_bytes() == b.read_bytes()
        back = load_dataset(a, expect_setting=sid)
        ref = generate_dataset(sid, opts)
        np.testing.assert_array_equal(back.coeff, ref.coeff)
        assert back.meta == json.loads(json.dumps(ref.meta))
        for k in ref.demand_params:
            np.testing.assert_array_equal(back.demand_params[k], ref.demand_params[k])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["s2_a.npz", "s2_b.npz", "s4_n5_t7_a.npz", "s4_n5_t7_b.npz"])  # no temp files left


@pytest.mark.parametrize("sid", ["s1", "s2", "s4_n5_t7"])
def test_fresh_seeds_differ(sid):
    exact = generate_dataset(sid)
    f1 = generate_dataset(sid, DataOptions(rng_mode="fresh", data_seed=1))
    f1b = generate_dataset(sid, DataOptions(rng_mode="fresh", data_seed=1))
    f2 = generate_dataset(sid, DataOptions(rng_mode="fresh", data_seed=2))
    np.testing.assert_array_equal(f1.demand, f1b.demand)
    np.testing.assert_array_equal(f1.coeff, f1b.coeff)
    assert not np.array_equal(f1.demand, f2.demand)
    assert not np.array_equal(f1.demand, exact.demand)
    assert f1.demand.shape == exact.demand.shape
    assert {k: len(v) for k, v in f1.split_idx.items()} == {k: len(v) for k, v in exact.split_idx.items()}


def test_fresh_iid_prefix_chain():
    o = DataOptions(rng_mode="fresh", data_seed=5)
    s5 = generate_dataset("s4_n5_t7", o).demand_params["sigma"][:5]
    s20 = generate_dataset("s4_n20_t7", o).demand_params["sigma"][:20]
    np.testing.assert_array_equal(s5, s20[:5])
    assert ((s20 >= 5) & (s20 < 20)).all()


def test_fresh_truncnorm_lower():
    d = generate_dataset("s1", DataOptions(rng_mode="fresh", data_seed=0, indep_lower="truncnorm"))
    lower = d.demand_params["lower"]
    assert lower.shape == (31,) and ((lower >= 0) & (lower <= 100)).all()
    assert np.all(d.demand >= lower) and np.all(d.demand <= lower + 4)
    with pytest.raises(ConfigError):
        DataOptions(indep_lower="truncnorm")  # paper-exact mode has no truncnorm


# ----------------------------------------------------------------- CLI
def test_cli_list(capsys):
    assert main(["data", "--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split()[0] for ln in lines] == list(setting_ids())


def test_cli_writes_dataset(tmp_path, capsys):
    out = tmp_path / "sub" / "s3.npz"
    assert main(["data", "s3", "--out", str(out), "--s3-test", "repo"]) == 0
    d = load_dataset(out, expect_setting="s3")
    assert d.demand.shape == (110, 31) and d.meta["data_options"]["s3_test"] == "repo"
    assert [p.name for p in out.parent.iterdir()] == ["s3.npz"]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["data", "s9", "--out", "{tmp}/x.npz"], "unknown setting 's9'"),
        (["data", "s1", "--out", "/proc/x.npz"], "cannot write /proc/x.npz"),
        (["data", "s1", "--out", "{tmp}"], "cannot write"),
        (["data", "s1", "--out", "{tmp}/x.npz", "--data-seed", "-1"], "data_seed"),
        (["data", "s1"], "--out"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, argv, needle):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("deepstock data: error:") and needle in err
    assert list(tmp_path.iterdir()) == []  # nothing written, no temp file left


def test_generate_dataset_unknown_setting():
    with pytest.raises(ConfigError, match="unknown setting"):
        generate_dataset("s5")
