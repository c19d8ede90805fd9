"""Bad inputs give one-line errors, never a traceback and never NaN results.

Checked here: dataset files (``load_dataset`` and the ``train``/``benchmark`` CLI on them: meta,
dtypes, shapes, values, splits, the embedded setting), canonical setting ids (``get_setting``,
``is_builtin``, the Snakefile's wildcard constraints), the dataset size bound at generation and
at load time, and a seeded property test over ~200 randomly corrupted dataset files.
"""

from __future__ import annotations

import json
import math
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from deepstock.cli import main
from deepstock.errors import ConfigError, DataError, DeepstockError
from deepstock.problem.data import load_dataset
from deepstock.problem.families import setting_ids
from deepstock.problem.generators import generate_dataset
from deepstock.problem.settings import (
    MAX_DATASET_GB_ENV,
    DataOptions,
    get_setting,
    is_builtin,
    setting_from_dict,
)

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def s1_arrays(tmp_path_factory) -> dict[str, np.ndarray]:
    """The arrays of a generated Setting 1 file, as ``np.load`` gives them."""
    path = generate_dataset("s1").save(tmp_path_factory.mktemp("s1") / "s1.npz")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def write_npz(path: Path, arrays: dict, **changes) -> str:
    """``arrays`` with ``changes`` (a value of None drops the key), saved with ``np.savez``."""
    out = {**arrays, **changes}
    np.savez(path, **{k: v for k, v in out.items() if v is not None})
    return str(path)


def meta_with(arrays: dict, **fields) -> np.ndarray:
    meta = json.loads(str(arrays["meta"]))
    return np.array(json.dumps({**meta, **fields}))


def spec_with(arrays: dict, **fields) -> np.ndarray:
    meta = json.loads(str(arrays["meta"]))
    return np.array(json.dumps({**meta, "setting_spec": {**meta["setting_spec"], **fields}}))


def train_argv(setting: str, data: str, out: Path, epochs: int = 2) -> list[str]:
    return ["train", setting, "--method", "ds", "--reg", "base", "--data", data, "--out",
            str(out), "--set", f"epochs={epochs}", "--device", "cpu"]


def one_line_error(capsys, argv: list[str], *needles: str) -> str:
    """Run the CLI: exit 2 and exactly one stderr line holding every needle."""
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.endswith("\n") and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def refused_by_train_and_benchmark(capsys, tmp_path, data: str, *needles: str) -> None:
    one_line_error(capsys, train_argv("s1", data, tmp_path / "run"), *needles)
    one_line_error(capsys, ["benchmark", "s1", "--data", data, "--out",
                            str(tmp_path / "b.json"), "--quiet"], *needles)
    assert not (tmp_path / "run").exists() and not (tmp_path / "b.json").exists()


# --------------------------------------------------------------------------- good files pass
@pytest.mark.parametrize("sid, options", [
    ("s1", DataOptions()), ("s2", DataOptions(rng_mode="fresh", data_seed=3)),
    ("s3", DataOptions(s3_test="repo")), ("s3", DataOptions(rng_mode="fresh")),
    ("s4_n5_t7", DataOptions()), ("s4_n10_t19", DataOptions(rng_mode="fresh", iid_demand_days="all")),
])
def test_every_kind_of_generated_dataset_passes_the_checks(tmp_path, sid, options):
    d = generate_dataset(sid, options)
    back = load_dataset(d.save(tmp_path / "d.npz"), expect_setting=sid)
    assert back.setting == get_setting(sid)
    np.testing.assert_array_equal(back.coeff, d.coeff)
    custom = setting_from_dict({"id": "c", "family": d.setting.family, "T": 12, "R": 1, "L": 5,
                                "n_train": 3, "n_val": 2, "n_test": 7})
    path = generate_dataset(custom, DataOptions(rng_mode="fresh")).save(tmp_path / "c.npz")
    assert load_dataset(path, expect_setting="c").setting == custom


# --------------------------------------------------------------------------- meta
def test_a_dataset_with_malformed_meta_json_is_refused_with_one_line_naming_meta(
        s1_arrays, tmp_path, capsys):
    bad = write_npz(tmp_path / "bad.npz", s1_arrays, meta=np.array('{"setting": "s1",'))
    with pytest.raises(DataError, match=r"meta: not valid JSON"):
        load_dataset(bad)
    refused_by_train_and_benchmark(capsys, tmp_path, bad, "meta", "bad.npz", "JSON")


@pytest.mark.parametrize("meta", [np.array("[1, 2]"), np.array('"s1"'), np.array(b"{}"),
                                  np.array(["{}", "{}"])])
def test_a_dataset_whose_meta_is_not_the_json_text_of_an_object_is_refused(
        s1_arrays, tmp_path, capsys, meta):
    bad = write_npz(tmp_path / "bad.npz", s1_arrays, meta=meta)
    refused_by_train_and_benchmark(capsys, tmp_path, bad, "meta")


# --------------------------------------------------------------------------- demand, features, coeff
@pytest.mark.parametrize("value, needle", [
    (np.nan, "demand: 1 of 3720 values non-finite (first at [3, 7]: nan)"),
    (np.inf, "values non-finite (first at [3, 7]: inf)"),
    (-2.0, "1 of 3720 values negative (first at [3, 7]: -2.0)"),
    (1e300, "values beyond ±1e+06"),
])
def test_a_dataset_with_nan_inf_negative_or_huge_demand_is_refused_with_one_line_naming_demand(
        s1_arrays, tmp_path, capsys, value, needle):
    demand = s1_arrays["demand"].copy()
    demand[3, 7] = value
    bad = write_npz(tmp_path / "bad.npz", s1_arrays, demand=demand)
    refused_by_train_and_benchmark(capsys, tmp_path, bad, "demand", needle)


@pytest.mark.parametrize("demand, needle", [
    (lambda d: d.astype(str), "<U"),
    (lambda d: d[:, 0], "shape (120,)"),
    (lambda d: d.astype(object), "object"),
    (lambda d: d.astype(np.int64), "int64"),
    (lambda d: d[None], "shape (1, 120, 31)"),
])
def test_a_demand_array_of_the_wrong_type_or_rank_is_refused_naming_demand(
        s1_arrays, tmp_path, capsys, demand, needle):
    bad = write_npz(tmp_path / "bad.npz", s1_arrays, demand=demand(s1_arrays["demand"]))
    with pytest.raises(DataError, match="demand: must be a 2-D float array"):
        load_dataset(bad)
    refused_by_train_and_benchmark(capsys, tmp_path, bad, "demand", needle)


@pytest.mark.parametrize("key, change, needle", [
    ("features", lambda a: a[..., 0], "features: must be a float array [n=120, T=31, k>=1]"),
    ("features", lambda a: a[:, :, :0], "shape (120, 31, 0)"),
    ("features", lambda a: a[:60], "shape (60, 31, 1)"),
    ("features", lambda a: np.where(a > 5, np.inf, a), "features: "),
    ("coeff", lambda a: a[..., :3], "coeff: must be a float array [n=120, T=31, 4]"),
    ("coeff", lambda a: np.where(a > 20, np.nan, a), "coeff: "),
    ("coeff", lambda a: a.astype(np.complex128), "complex128"),
    ("ids", lambda a: a[:, None], "ids: must be a 1-D integer array [n=120]"),
    ("ids", lambda a: a.astype(float), "ids: "),
    ("ids", lambda a: a[:100], "shape (100,)"),
    ("ids", lambda a: np.zeros_like(a), "ids: 120 of 120 values below 1"),
    ("ids", lambda a: np.ones_like(a), "ids: 119 repeated ids"),
    ("param_lower", lambda a: np.full(a.shape, np.nan), "param_lower: "),
])
def test_features_coeff_and_ids_inconsistent_with_demand_are_refused_naming_the_key(
        s1_arrays, tmp_path, capsys, key, change, needle):
    bad = write_npz(tmp_path / "bad.npz", s1_arrays, **{key: change(s1_arrays[key])})
    with pytest.raises(DataError, match=re.escape(needle)):
        load_dataset(bad)
    refused_by_train_and_benchmark(capsys, tmp_path, bad, key, needle)


# --------------------------------------------------------------------------- splits
def _splits(arrays: dict) -> dict[str, np.ndarray]:
    return {s: arrays[f"{s}_idx"].copy() for s in ("train", "val", "test")}


SPLIT_FAULTS = [
    # (change to the split arrays, words of the error)
    (lambda s: {"test_idx": s["train"]}, ["train_idx and test_idx", "share 10 rows"]),
    (lambda s: {"val_idx": s["train"]}, ["train_idx and val_idx", "share 10 rows"]),
    (lambda s: {"test_idx": s["test"][:0]}, ["test_idx: no rows"]),
    (lambda s: {"test_idx": np.r_[s["test"][:-1], 0]}, ["train_idx and test_idx", "row 0"]),
    (lambda s: {"train_idx": np.r_[s["train"][:-1], 120]}, ["train_idx", "outside the rows [0, 120)"]),
    (lambda s: {"val_idx": np.r_[s["val"][:-1], -1]}, ["val_idx", "outside"]),
    (lambda s: {"test_idx": np.r_[s["test"][:-1], s["test"][0]]}, ["test_idx", "1 repeated rows"]),
    (lambda s: {"train_idx": s["train"].astype(float)}, ["train_idx", "float64"]),
    (lambda s: {"train_idx": s["train"][:, None]}, ["train_idx", "shape (10, 1)"]),
    (lambda s: {"train_idx": None}, ["lacks keys ['train_idx']"]),
]


@pytest.mark.parametrize("change, needles", SPLIT_FAULTS)
def test_split_indices_out_of_range_duplicated_or_overlapping_are_refused_naming_the_splits(
        s1_arrays, tmp_path, capsys, change, needles):
    bad = write_npz(tmp_path / "bad.npz", s1_arrays, **change(_splits(s1_arrays)))
    with pytest.raises(DataError, match=re.escape(needles[0])):
        load_dataset(bad)
    refused_by_train_and_benchmark(capsys, tmp_path, bad, *needles)


def test_shuffled_split_indices_and_float32_arrays_still_load_and_train(s1_arrays, tmp_path,
                                                                        capsys):
    rng = np.random.default_rng(0)
    good = write_npz(tmp_path / "ok.npz", s1_arrays,
                     test_idx=rng.permutation(s1_arrays["test_idx"]),
                     demand=s1_arrays["demand"].astype(np.float32),
                     coeff=s1_arrays["coeff"].astype(">f8"))
    d = load_dataset(good, expect_setting="s1")
    assert d.demand.dtype == d.coeff.dtype == np.float64 and d.coeff.dtype.isnative
    assert main(train_argv("s1", good, tmp_path / "run", epochs=1)) == 0, capsys.readouterr().err
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert all(math.isfinite(m[k]) for k in ("train_loss", "val_loss", "test_loss"))


# --------------------------------------------------------------------------- embedded setting
CUSTOM = {"id": "my_set", "family": "indep", "T": 31, "n_train": 10, "n_val": 10, "n_test": 100,
          "R": 2, "L": 1, "M": 100.0, "N": None, "H": None}


@pytest.mark.parametrize("spec, needle", [
    ({"id": "../../x"}, "'id'='../../x' must match [a-z0-9_]+"),
    ({"R": 40}, "horizon T=31 must be >= R + L + 1 = 42"),
    ({"M": -1.0}, "M=-1.0 must be > 0"),
    ({"n_test": 10**9}, "would need"),
    ({"id": "s4_n7_t9"}, "clashes with a built-in"),
    ({"colour": "red"}, "unknown setting field 'colour'"),
    ({"N": 4}, "'N'=4 does not match"),
])
def test_an_embedded_custom_setting_is_validated_like_a_setting_file(
        s1_arrays, tmp_path, capsys, spec, needle):
    full = {**CUSTOM, **spec}
    meta = meta_with(s1_arrays, setting=full["id"], setting_spec=full)
    bad = write_npz(tmp_path / "bad.npz", s1_arrays, meta=meta)
    with pytest.raises(DataError, match=re.escape(needle)):
        load_dataset(bad)
    one_line_error(capsys, train_argv(full["id"], bad, tmp_path / "run"),
                   "meta.setting_spec", needle)


@pytest.mark.parametrize("field, value", [("T", 41), ("M", 50.0), ("n_test", 90), ("N", 3)])
def test_a_builtin_id_whose_embedded_spec_disagrees_with_the_builtin_is_refused(
        s1_arrays, tmp_path, capsys, field, value):
    bad = write_npz(tmp_path / "bad.npz", s1_arrays, meta=spec_with(s1_arrays, **{field: value}))
    with pytest.raises(DataError, match=f"field '{field}'={value!r} differs from the built-in"):
        load_dataset(bad)
    refused_by_train_and_benchmark(capsys, tmp_path, bad, "meta.setting_spec", "'s1'")


def test_a_dataset_labelled_with_another_builtin_id_is_refused(s1_arrays, tmp_path, capsys):
    bad = write_npz(tmp_path / "bad.npz", s1_arrays, meta=meta_with(s1_arrays, setting="s2"))
    with pytest.raises(DataError, match="meta.setting_spec: must be a mapping with id 's2'"):
        load_dataset(bad)
    one_line_error(capsys, train_argv("s2", bad, tmp_path / "run"), "meta.setting_spec")


# --------------------------------------------------------------------------- canonical ids
@pytest.mark.parametrize("alias, canonical", [("s4_n05_t7", "s4_n5_t7"), ("s4_n5_t007", "s4_n5_t7"),
                                              ("S1", "s1"), (" s1", "s1"), ("s2\n", "s2"),
                                              ("S4_N10_T19", "s4_n10_t19")])
def test_a_non_canonical_setting_id_is_refused_naming_the_canonical_one(
        tmp_path, capsys, alias, canonical):
    with pytest.raises(ConfigError, match=f"did you mean '{canonical}'"):
        get_setting(alias)
    assert not is_builtin(alias) and is_builtin(canonical)
    out = tmp_path / "x.npz"
    one_line_error(capsys, ["data", alias, "--out", str(out)], f"did you mean '{canonical}'?")
    assert not out.exists()


def test_is_builtin_agrees_with_get_setting():
    spellings = list(setting_ids()) + ["s4_n05_t7", "S1", "s1 ", "s4_n7_t9", "s4_n5_t8", "s0",
                                     "s4_n5_t7\n", "s4_n٥_t7", "all", "", "s01"]
    for sid in spellings:
        try:
            get_setting(sid)
            accepted = True
        except ConfigError:
            accepted = False
        assert accepted == is_builtin(sid), sid
        if accepted:
            assert get_setting(sid).id == sid
    assert [s for s in spellings if is_builtin(s)] == list(setting_ids())


def test_training_on_a_zero_padded_alias_is_refused_with_the_canonical_id(tmp_path, capsys):
    data = str(generate_dataset("s4_n5_t7").save(tmp_path / "s4.npz"))
    one_line_error(capsys, train_argv("s4_n05_t7", data, tmp_path / "run"),
                   "did you mean 's4_n5_t7'?")
    d = generate_dataset("s4_n5_t7")
    d.meta["setting"] = d.meta["setting_spec"]["id"] = "s4_n05_t7"
    bad = str(d.save(tmp_path / "alias.npz"))
    with pytest.raises(DataError, match="meta.setting: .*did you mean 's4_n5_t7'"):
        load_dataset(bad)


def test_a_custom_setting_may_not_take_a_padded_spelling_of_a_builtin_id():
    for sid in ("s4_n05_t7", "s4_n5_t07", "s4_n0_t0", "all"):
        with pytest.raises(ConfigError, match="clashes with a built-in"):
            setting_from_dict({**{k: CUSTOM[k] for k in ("family", "T", "n_train", "n_val",
                                                         "n_test")}, "id": sid})


def _wildcard_constraints() -> dict[str, str]:
    text = (ROOT / "Snakefile").read_text()
    block = text.split("wildcard_constraints:", 1)[1].split("\n\n", 1)[0]
    assert 'setting="|".join(families.setting_ids())' in block
    return {**dict(re.findall(r'(\w+)=r?"([^"]*)"', block)),
            "setting": "|".join(setting_ids())}


def test_snakefile_wildcards_accept_only_canonical_settings_and_repetitions():
    c = _wildcard_constraints()
    for rep in ("0", "1", "12"):
        assert re.fullmatch(c["rep"], rep)
    for rep in ("00", "01", "", "-1", "1a"):
        assert not re.fullmatch(c["rep"], rep), rep
    for sid in setting_ids():
        assert re.fullmatch(c["setting"], sid), sid
    for sid in ("s4_n05_t7", "s4_n5_t07", "S1", "s4_n0_t7"):
        assert not re.fullmatch(c["setting"], sid), sid


# --------------------------------------------------------------------------- size bound
@pytest.mark.parametrize("sizes", [{"n_test": 10**9},
                                   {"T": 10**7, "n_train": 100, "n_val": 100, "n_test": 1000},
                                   {"T": 10**12}])
def test_a_custom_setting_file_too_large_for_memory_is_refused_before_allocation(
        tmp_path, capsys, sizes):
    f = tmp_path / "big.yaml"
    f.write_text(yaml.safe_dump({"id": "big", "family": "ar1", "T": 61, "n_train": 4, "n_val": 3,
                                 "n_test": 6, **sizes}))
    out = tmp_path / "big.npz"
    err = one_line_error(capsys, ["data", "--setting-file", str(f), "--out", str(out)],
                         "big.yaml", "would need", "for demand/features/coeff",
                         "the limit is 8.0 GiB", MAX_DATASET_GB_ENV)
    assert "trajectories x" in err and not out.exists()


def test_the_size_bound_follows_the_environment_variable(tmp_path, capsys, monkeypatch):
    f = tmp_path / "s.yaml"
    f.write_text(yaml.safe_dump({"id": "mid", "family": "indep", "T": 100, "n_train": 100,
                                 "n_val": 100, "n_test": 800}))  # 4.6 MiB
    monkeypatch.setenv(MAX_DATASET_GB_ENV, "0.001")
    one_line_error(capsys, ["data", "--setting-file", str(f), "--out", str(tmp_path / "a.npz")],
                   "would need 4.6 MiB", "the limit is 1.0 MiB")
    monkeypatch.setenv(MAX_DATASET_GB_ENV, "lots")
    one_line_error(capsys, ["data", "--setting-file", str(f), "--out", str(tmp_path / "a.npz")],
                   f"{MAX_DATASET_GB_ENV}='lots' must be a positive number")
    monkeypatch.setenv(MAX_DATASET_GB_ENV, "0.01")
    assert main(["data", "--setting-file", str(f), "--out", str(tmp_path / "a.npz")]) == 0


def test_a_dataset_file_over_the_size_bound_is_refused_from_its_headers(
        s1_arrays, tmp_path, capsys, monkeypatch):
    good = write_npz(tmp_path / "s1.npz", s1_arrays)
    monkeypatch.setenv(MAX_DATASET_GB_ENV, "0.0001")  # 105 KiB; the arrays take ~180 KiB
    refused_by_train_and_benchmark(capsys, tmp_path, good, "would need", "for its arrays",
                                   MAX_DATASET_GB_ENV)
    monkeypatch.delenv(MAX_DATASET_GB_ENV)
    # a header that claims 10^12 x 31 float64 values: refused without reading the data
    bad = tmp_path / "huge.npz"
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for name in src.namelist():
            if name == "demand.npy":
                with dst.open(name, "w") as f:
                    np.lib.format.write_array_header_1_0(
                        f, {"descr": "<f8", "fortran_order": False, "shape": (10**12, 31)})
            else:
                dst.writestr(name, src.read(name))
    with pytest.raises(DataError, match=r"would need 225\.\d TiB for its arrays"):
        load_dataset(bad)


# --------------------------------------------------------------------------- property test
MUST_REFUSE = {"nan", "inf", "neg_demand", "drop_required", "out_of_range", "duplicate",
               "overlap", "corrupt_meta", "truncate", "random_bytes", "too_huge",
               "meta_setting", "spec_field"}
REQUIRED = ["demand", "features", "coeff", "ids", "meta", "train_idx", "val_idx", "test_idx"]


def _values(rng, a: dict, kind: str) -> str:
    """NaN, inf, 1e3..1e6 or 1e7..1e308 into a few cells of demand, features or coeff."""
    key = str(rng.choice(["demand", "features", "coeff"]))
    value = {"nan": np.nan, "inf": -np.inf, "huge": 10 ** rng.uniform(3, 6),
             "too_huge": 10 ** rng.uniform(7, 308)}[kind]
    a[key].flat[rng.integers(0, a[key].size, size=rng.integers(1, 5))] = value
    return key


def _negative(rng, a: dict, kind: str) -> str:
    key = "demand" if kind == "neg_demand" else str(rng.choice(["features", "coeff"]))
    a[key].flat[rng.integers(a[key].size)] = -rng.uniform(0.01, 50)
    return key


def _drop(rng, a: dict, kind: str) -> str:
    key = str(rng.choice(REQUIRED)) if kind == "drop_required" else "param_lower"
    del a[key]
    return key


def _dtype(rng, a: dict, kind: str) -> str:
    key = str(rng.choice(list(a)))
    try:
        a[key] = a[key].astype(rng.choice(["U8", "O", "int32", "float32", "bool", "complex64",
                                           "uint8"]))
    except (TypeError, ValueError):
        a[key] = a[key].astype("U8")
    return key


def _ndim(rng, a: dict, kind: str) -> str:
    key = str(rng.choice(list(a)))
    a[key] = a[key].reshape(-1) if a[key].ndim > 1 or rng.random() < 0.5 else a[key][None]
    return key


def _split(rng, a: dict, kind: str) -> str:
    """Shuffle a split, or give it a repeated, out-of-range or another split's row."""
    key = f"{rng.choice(['train', 'val', 'test'])}_idx"
    idx = a[key]
    if kind == "shuffle":
        a[key] = rng.permutation(idx)
    elif kind == "duplicate":
        idx[-1] = idx[0]
    elif kind == "out_of_range":
        idx[rng.integers(idx.size)] = rng.choice([-1, 120, 10**12, -(2**62)])
    else:
        other = a["test_idx" if key != "test_idx" else "train_idx"]
        idx[rng.integers(idx.size)] = other[rng.integers(other.size)]
    return key


def _meta(rng, a: dict, kind: str) -> str:
    """Cut the meta JSON, relabel the setting, or change one field of the embedded spec."""
    if kind == "corrupt_meta":
        text = str(a["meta"])
        cut = int(rng.integers(0, len(text) - 1))
        a["meta"] = np.array(text[:cut] + rng.choice(["", "}", "{", "\x00", "]]"]))
        return "meta"
    if kind == "meta_setting":
        sid = str(rng.choice(["s2", "s4_n5_t7", "S1", "s4_n05_t7", "../../x", "", "5"]))
        a["meta"] = meta_with(a, setting=sid)
        return sid
    key = str(rng.choice(["T", "R", "L", "M", "n_test", "id", "family", "extra"]))
    values = [-1, 0, 10**12, "x", None, 1e308, 2.5]
    a["meta"] = spec_with(a, **{key: values[rng.integers(len(values))]})
    return key


def _file_bytes(rng, path: Path, kind: str) -> None:
    """Truncate the file, replace it by random bytes, or flip 8 of its bytes."""
    raw = bytearray(path.read_bytes())
    if kind == "truncate":
        raw = raw[: int(rng.integers(0, len(raw) - 1))]
    elif kind == "random_bytes":
        raw = bytearray(rng.bytes(int(rng.integers(0, 4096))))
    else:
        for pos in rng.integers(0, len(raw), size=8):
            raw[pos] ^= 0xFF
    path.write_bytes(bytes(raw))


MUTATIONS = {
    "nan": _values, "inf": _values, "huge": _values, "too_huge": _values,
    "neg_demand": _negative, "neg_other": _negative, "drop_required": _drop, "drop_param": _drop,
    "dtype": _dtype, "ndim": _ndim, "shuffle": _split, "duplicate": _split,
    "out_of_range": _split, "overlap": _split, "corrupt_meta": _meta, "meta_setting": _meta,
    "spec_field": _meta, "truncate": None, "random_bytes": None, "flip_bytes": None,
}


def _mutate(rng: np.random.Generator, arrays: dict, path: Path) -> str:
    """Write one randomly corrupted copy of ``arrays`` to ``path``; return ``kind:key``."""
    a = {k: v.copy() for k, v in arrays.items()}
    kind = str(rng.choice(list(MUTATIONS)))
    key = MUTATIONS[kind](rng, a, kind) if MUTATIONS[kind] else "file"
    np.savez(path, **a)
    if MUTATIONS[kind] is None:
        _file_bytes(rng, path, kind)
    return f"{kind}:{key}"


def _train_in_process(capsys, data: str, out: Path, what: str) -> int:
    """Train on a mutated file: rc 0 with finite losses, or rc 2 with one stderr line."""
    try:
        rc = main(train_argv("s1", data, out, epochs=1))
    except SystemExit as exc:  # argparse
        rc = exc.code
    except Exception as exc:  # noqa: BLE001 - the property: nothing else escapes
        pytest.fail(f"{what}: uncaught {type(exc).__name__}: {exc}")
    err = capsys.readouterr().err
    if rc == 0:
        m = json.loads((out / "metrics.json").read_text())
        losses = [m[k] for k in ("train_loss", "val_loss", "test_loss")]
        assert all(math.isfinite(x) for x in losses), f"{what}: losses {losses}"
    else:
        assert rc == 2 and len(err.splitlines()) == 1, f"{what}: rc {rc}, stderr {err!r}"
    return rc


def _benchmark_in_process(capsys, data: str, out: Path, what: str) -> int:
    """The INDEP DP on a mutated file: rc 0 with finite losses, or rc 2 with one stderr line."""
    try:
        rc = main(["benchmark", "s1", "--data", data, "--out", str(out), "--quiet"])
    except Exception as exc:  # noqa: BLE001 - the property: nothing else escapes
        pytest.fail(f"{what}: benchmark: uncaught {type(exc).__name__}: {exc}")
    err = capsys.readouterr().err
    if rc == 0:
        b = json.loads(out.read_text())
        losses = [b[k] for k in ("train_loss", "val_loss", "test_loss")]
        assert all(math.isfinite(x) for x in losses), f"{what}: benchmark losses {losses}"
    else:
        assert rc == 2 and len(err.splitlines()) == 1, f"{what}: benchmark rc {rc}, {err!r}"
    return rc


def test_two_hundred_randomly_corrupted_datasets_give_a_dataset_or_one_line_never_a_traceback(
        s1_arrays, tmp_path, capsys):
    rng = np.random.default_rng(20240607)
    loaded, trained = [], 0
    for i in range(200):
        path = tmp_path / f"m{i}.npz"
        what = f"mutation {i} {_mutate(rng, s1_arrays, path)}"
        try:
            load_dataset(path, expect_setting="s1")
            loaded.append(what)
        except DeepstockError as exc:
            assert "\n" not in str(exc), f"{what}: {exc!r}"
        except Exception as exc:  # noqa: BLE001 - the property: nothing else escapes
            pytest.fail(f"{what}: uncaught {type(exc).__name__}: {exc}")
        else:
            assert what.split()[2].split(":")[0] not in MUST_REFUSE, f"{what} was accepted"
        _benchmark_in_process(capsys, str(path), tmp_path / f"b{i}.json", what)
        if i % 20 == 0 or (loaded and loaded[-1] == what and trained < 12):
            trained += 1
            _train_in_process(capsys, str(path), tmp_path / f"run{i}", what)
    assert 10 <= len(loaded) <= 120, loaded  # both outcomes are exercised


# --------------------------------------------------------------------------- order cap M, metrics
@pytest.fixture(scope="module")
def s1_file(tmp_path_factory) -> str:
    return str(generate_dataset("s1").save(tmp_path_factory.mktemp("s1f") / "s1.npz"))


@pytest.mark.parametrize("method, backend", [("ds", "torch"), ("ddpg", "jax"), ("ppo", "jax"),
                                             ("ddpg", "sb3"), ("ppo", "sb3")])
def test_an_order_cap_above_its_bound_given_by_set_is_one_line_before_any_training(
        s1_file, tmp_path, capsys, swap_train, method, backend):
    from deepstock.registry import M_MAX

    trained: list[str] = []
    swap_train(lambda method, backend: lambda *a, **k: trained.append("called"))
    out = tmp_path / "run"
    one_line_error(capsys, ["train", "s1", "--method", method, "--reg", "base", "--backend",
                            backend, "--set", "M=1e300", "--data", s1_file, "--out", str(out)],
                   "'M'", "above its maximum")
    assert trained == [] and not out.exists()
    from deepstock.hparams import resolve_hparams

    assert resolve_hparams(method, "s1", "base", {"M": M_MAX})["M"] == M_MAX  # the bound itself
    with pytest.raises(ConfigError, match="above its maximum"):
        resolve_hparams(method, "s1", "base", {"M": 2 * M_MAX})
    with pytest.raises(ConfigError, match="'M' must be finite"):
        resolve_hparams(method, "s1", "base", {"M": 10**400})


@pytest.mark.parametrize("M", [1e308, 2e6, float("inf"), 10**400])
def test_a_custom_setting_with_an_order_cap_above_its_bound_is_refused_naming_m(M):
    with pytest.raises(ConfigError, match="setting field M=.* is above the order cap's maximum"):
        setting_from_dict({**{k: v for k, v in CUSTOM.items() if k not in ("N", "H")}, "M": M})


def test_a_dataset_whose_custom_setting_has_m_1e308_is_one_line_for_train_and_benchmark(
        s1_arrays, tmp_path, capsys):
    spec = {**CUSTOM, "M": 1e308}
    bad = write_npz(tmp_path / "bad.npz", s1_arrays,
                    meta=meta_with(s1_arrays, setting="my_set", setting_spec=spec))
    one_line_error(capsys, train_argv("my_set", bad, tmp_path / "run"), "M=1e+308",
                   "above the order cap's maximum")
    one_line_error(capsys, ["benchmark", "my_set", "--data", bad, "--out",
                            str(tmp_path / "b.json"), "--quiet"], "M=1e+308")
    assert not (tmp_path / "run").exists() and not (tmp_path / "b.json").exists()


def test_the_benchmark_and_the_ds_network_refuse_an_order_cap_above_its_bound_from_python():
    """Past the file checks (a Setting built in Python): one-line ConfigErrors, not numpy's
    'Maximum allowed size exceeded' or torch's float overflow."""
    import dataclasses

    from deepstock.benchmarks.run import run_benchmark
    from deepstock.training.policies import build_ds_network
    from deepstock.training.regularizations import get_regularization

    data = generate_dataset("s1")
    huge = dataclasses.replace(data, setting=dataclasses.replace(data.setting, M=1e308))
    with pytest.raises(ConfigError, match=r"order cap M=1e\+308 is outside"):
        run_benchmark(huge)
    with pytest.raises(ConfigError, match=r"order cap M=1e\+308 is outside"):
        build_ds_network(get_regularization("base"), 1, [8, 8], b0=0.5, M=1e308)
    assert build_ds_network(get_regularization("base"), 1, [8], b0=0.5, M=1e6).last.bias[0] \
        == 5e5


def test_the_indep_dp_refuses_an_order_cap_whose_grids_exceed_the_memory_bound(monkeypatch):
    import dataclasses

    from deepstock.benchmarks.run import run_benchmark

    monkeypatch.setenv("DEEPSTOCK_MAX_DP_GB", "0.001")
    data = generate_dataset("s1")
    big = dataclasses.replace(data, setting=dataclasses.replace(data.setting, M=1e5))
    with pytest.raises(ConfigError, match="the INDEP DP of setting 's1'.*DEEPSTOCK_MAX_DP_GB"):
        run_benchmark(big)


@pytest.mark.parametrize("key", ["train_loss", "val_loss", "test_loss", "best_val"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_training_whose_loss_comes_out_non_finite_fails_in_one_line_and_writes_nothing(
        s1_file, tmp_path, capsys, fake_trainers, monkeypatch, key, value):
    import dataclasses

    import deepstock.training as trainers
    import deepstock.training.backends as backends
    from deepstock.training.common import NonFiniteMetric, metrics_dict

    fake = backends.load_trainer  # the fake_trainers stand-in

    def diverging(method, backend=None):
        t = fake(method, backend)

        def trainer(*args, **kwargs):
            return dataclasses.replace(t.train(*args, **kwargs), **{key: value})
        return dataclasses.replace(t, train=trainer, population=None)

    monkeypatch.setattr(backends, "load_trainer", diverging)
    out = tmp_path / "run"
    one_line_error(capsys, ["train", "s1", "--method", "ppo", "--reg", "base", "--backend", "jax",
                            "--data", s1_file, "--out", str(out)],
                   f"non-finite {key}", "s1 ppo-base seed 45")
    assert not out.exists()
    result = trainers.train(generate_dataset("s1"), "ppo", "base", {}, 45, backend="jax")
    with pytest.raises(NonFiniteMetric):
        metrics_dict(result)
    assert issubclass(NonFiniteMetric, DeepstockError)


# --------------------------------------------------------------------------- --from-winner
def _winner_of(path: Path, setting: str, M: float) -> str:
    path.write_text(json.dumps({"setting": setting, "method": "ds", "reg": "base",
                                "reported_seed": 43, "backend": "torch",
                                "hparams": {"M": M, "epochs": 2}}))
    return str(path)


def test_a_winner_of_another_setting_is_refused_naming_both_settings_unless_forced(
        s1_file, tmp_path, capsys, swap_train):
    seen: list[dict] = []

    def capturing(method, backend=None):
        def trainer(dataset, reg, hparams, seed, **kwargs):
            seen.append(hparams)
            raise ConfigError("captured")
        return trainer

    swap_train(capturing)
    winner = _winner_of(tmp_path / "winner.json", "s4_n5_t7", 500.0)
    argv = ["train", "s1", "--method", "ds", "--reg", "base", "--from-winner", winner,
            "--data", s1_file, "--out", str(tmp_path / "run")]
    one_line_error(capsys, argv, "'s4_n5_t7'", "'s1'", "--force")
    assert seen == []
    one_line_error(capsys, [*argv, "--force"], "captured")  # trains, with the winner's M
    assert seen[0]["M"] == 500.0
    own = _winner_of(tmp_path / "own.json", "s1", 100.0)  # the same setting needs no --force
    one_line_error(capsys, [*argv[:7], own, *argv[8:]], "captured")
    one_line_error(capsys, ["train", "s1", "--method", "ds", "--reg", "base", "--force",
                            "--data", s1_file, "--out", str(tmp_path / "run")],
                   "--force applies to --from-winner only")


def test_set_reads_a_number_in_exponent_notation_as_a_number_as_yaml_1_2_does():
    from deepstock.commands.train import parse_overrides

    assert parse_overrides(["M=1e300", "learning_rate=1e-3", "tau=2.5E+2", "checkpoint=best",
                            "net_arch={pi: [8], qf: [8]}"]) == {
        "M": 1e300, "learning_rate": 1e-3, "tau": 250.0, "checkpoint": "best",
        "net_arch": {"pi": [8], "qf": [8]}}
