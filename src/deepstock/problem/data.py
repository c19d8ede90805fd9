"""Dataset container and its on-disk format (one ``.npz`` file per setting; see docs/data-format.md).

Keys in the file (numpy arrays, loaded with ``allow_pickle=False``):

- ``demand``  float64 [n, T]   demand D_t per trajectory and day
- ``features`` float64 [n, T, k] context features; ``features[..., 0]`` is x_t (k = 1 here)
- ``coeff``   float64 [n, T, 4] Coeff features φ_1..φ_4 (raw, NaN at t = 0 replaced by 0)
- ``ids``     int64 [n]        1-based trajectory ("SKU") ids
- ``train_idx``, ``val_idx``, ``test_idx`` int64   0-based rows of each split
- ``param_<name>``              generating parameters (e.g. ``param_sigma`` [n], ``param_lower`` [T])
- ``meta``    0-d unicode      JSON: setting id, setting_spec (all Setting fields), generator,
  parameters, seed, rng mode, version; a custom setting is rebuilt from setting_spec

:func:`load_dataset` checks a file before returning it; every defect is a one-line DataError that
names the file and the key (a misspelt ``expect_setting`` id is a ConfigError):

- the file is a zip of ``.npy`` members with every key above but ``param_*``; only headers are
  read first, and all arrays together must fit the dataset size bound
  (``settings.check_dataset_bytes``, ``$DEEPSTOCK_MAX_DATASET_GB``) before any data is read;
- ``meta`` is the JSON text of an object; ``meta["setting"]`` is a canonical built-in id, whose
  embedded ``setting_spec`` (if any) must equal the built-in field for field, or a custom id whose
  ``setting_spec`` passes ``settings.setting_from_spec`` (the checks of a custom setting file,
  size bound included);
- dtypes and shapes: demand float [n, T] with T of the setting, features float [n, T, k >= 1],
  coeff float [n, T, 4], ids integer [n], each ``<split>_idx`` a non-empty integer [k]
  (a subset of the setting's rows is allowed), ``param_*`` numeric;
- values: demand, features, coeff and ``param_*`` finite with magnitude <= ``MAX_ABS_VALUE``,
  demand >= 0, ids >= 1 and unique, split rows in [0, n), unique within a split, and the three
  splits pairwise disjoint.

Float arrays are returned as native float64, ids and split rows as int64.
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepstock.errors import ConfigError, DataError
from deepstock.io import write_bytes
from deepstock.problem.settings import (
    Setting,
    canonical_setting_id,
    check_dataset_bytes,
    get_setting,
    is_builtin,
    setting_from_spec,
)

SPLITS = ("train", "val", "test")
REQUIRED_KEYS = ("demand", "features", "coeff", "ids", "meta") + tuple(f"{s}_idx" for s in SPLITS)
#: Largest magnitude accepted in demand, features, coeff and param_*: generated values stay
#: below ~200, and far larger ones overflow float32 network inputs or size the benchmarks' grids.
MAX_ABS_VALUE = 1e6


@dataclass
class Split:
    """The rows of one split, ready for the simulator."""

    name: str
    demand: np.ndarray  # [n, T]
    x: np.ndarray  # [n, T]
    phi: np.ndarray  # [n, T, 4]
    index: np.ndarray  # [n] rows in the dataset
    ids: np.ndarray  # [n] 1-based ids

    def __len__(self) -> int:
        return self.demand.shape[0]


@dataclass
class Dataset:
    """Demand trajectories of one setting with features, splits and generating parameters."""

    setting: Setting
    demand: np.ndarray
    features: np.ndarray
    coeff: np.ndarray
    ids: np.ndarray
    split_idx: dict[str, np.ndarray]
    demand_params: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict = field(default_factory=dict)

    @property
    def x(self) -> np.ndarray:
        return self.features[..., 0]

    def split(self, name: str) -> Split:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; expected one of {list(SPLITS)}")
        idx = self.split_idx[name]
        return Split(name, self.demand[idx], self.x[idx], self.coeff[idx], idx, self.ids[idx])

    # ------------------------------------------------------------------ I/O
    def to_arrays(self) -> dict[str, np.ndarray]:
        arrays = {
            "demand": np.ascontiguousarray(self.demand, dtype=np.float64),
            "features": np.ascontiguousarray(self.features, dtype=np.float64),
            "coeff": np.ascontiguousarray(self.coeff, dtype=np.float64),
            "ids": np.asarray(self.ids, dtype=np.int64),
        }
        for s in SPLITS:
            arrays[f"{s}_idx"] = np.asarray(self.split_idx[s], dtype=np.int64)
        for k, v in self.demand_params.items():
            arrays[f"param_{k}"] = np.asarray(v)
        arrays["meta"] = np.array(json.dumps(self.meta, sort_keys=True))
        return arrays

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (temp file in the same folder, then rename); bytes are deterministic."""
        path = Path(path)
        arrays = self.to_arrays()
        atomic_write_npz(path, arrays)
        return path


def atomic_write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an uncompressed npz atomically; ``np.savez`` uses fixed zip timestamps: same bytes."""
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_bytes(path, buf.getvalue())


# --------------------------------------------------------------------------- loading and checks
@dataclass(frozen=True)
class _Header:
    """Shape and dtype of one ``.npy`` member, read from its header without reading the data."""

    member: str
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize

    def describe(self) -> str:
        return f"{self.dtype} array of shape {self.shape}"


def _fail(path: Path, field: str, message: str) -> DataError:
    """The one-line error for ``field`` of the dataset file ``path``."""
    return DataError(" ".join(f"dataset {path}: {field}: {message}".splitlines()))


def _read_header(path: Path, zf: zipfile.ZipFile, key: str, member: str) -> _Header:
    try:
        with zf.open(member) as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f".npy format version {version} is not supported")
        if any(int(n) < 0 for n in shape):
            raise ValueError(f"negative shape {shape}")
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad member
        raise _fail(path, key, f"not a readable .npy array ({type(exc).__name__}: {exc})") from None
    return _Header(member, tuple(int(n) for n in shape), np.dtype(dtype))


def _read_headers(path: Path, zf: zipfile.ZipFile) -> dict[str, _Header]:
    """Headers of every ``.npy`` member; the required keys present, the total size bounded."""
    members = {name[: -len(".npy")]: name for name in zf.namelist() if name.endswith(".npy")}
    missing = [k for k in REQUIRED_KEYS if k not in members]
    if missing:
        raise DataError(f"dataset {path} lacks keys {missing}")
    headers = {k: _read_header(path, zf, k, m) for k, m in members.items()}
    total = sum(h.nbytes for h in headers.values())
    try:
        check_dataset_bytes(total, f"dataset {path}", content="its arrays")
    except ConfigError as exc:
        raise DataError(str(exc)) from None
    return headers


def _read_array(path: Path, zf: zipfile.ZipFile, key: str, header: _Header) -> np.ndarray:
    try:
        with zf.open(header.member) as f:
            return np.lib.format.read_array(f, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt member
        raise _fail(path, key, f"cannot read the array ({type(exc).__name__}: {exc})") from None


def _read_meta(path: Path, zf: zipfile.ZipFile, header: _Header) -> dict:
    """``meta``: a 0-d unicode array holding the JSON text of an object."""
    if header.dtype.kind != "U" or header.shape != ():
        raise _fail(path, "meta", f"must be a 0-d unicode (JSON text) array, got {header.describe()}")
    text = str(_read_array(path, zf, "meta", header))
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail(path, "meta", f"not valid JSON ({exc.msg} at line {exc.lineno} "
                                  f"column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:  # e.g. an integer of over 4300 digits
        raise _fail(path, "meta", f"not valid JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(meta, dict):
        raise _fail(path, "meta", f"must be a JSON object, got {type(meta).__name__}")
    return meta


def _setting_of(path: Path, meta: dict) -> Setting:
    """The Setting named by ``meta["setting"]``, its ``setting_spec`` checked like a setting file.

    A built-in id (canonical only) is the built-in Setting; an embedded spec must then equal it
    field for field (a file whose spec disagrees with its id is refused). Any other id needs a
    ``setting_spec`` of that id, validated by :func:`deepstock.problem.settings.setting_from_spec`.
    """
    sid = meta.get("setting")
    if not isinstance(sid, str):
        raise DataError(f"dataset {path}: meta lacks the setting id")
    spec = meta.get("setting_spec")
    if not is_builtin(sid) and canonical_setting_id(sid) is not None:
        raise _fail(path, "meta.setting", f"setting id {sid!r} is not canonical; did you mean "
                                          f"{canonical_setting_id(sid)!r}?")
    if not is_builtin(sid) and (not isinstance(spec, dict) or spec.get("id") != sid):
        raise DataError(f"dataset {path}: custom setting {sid!r} without a matching setting_spec")
    if spec is None:
        return get_setting(sid)
    if not isinstance(spec, dict) or spec.get("id") != sid:
        raise _fail(path, "meta.setting_spec", f"must be a mapping with id {sid!r}")
    try:
        return setting_from_spec(spec)
    except ConfigError as exc:
        raise _fail(path, "meta.setting_spec", str(exc)) from None


def _check_array(path: Path, key: str, h: _Header, kinds: str, what: str, shape: tuple) -> None:
    """dtype kind in ``kinds`` and ``shape`` (None entries are free; -1 entries must be >= 1)."""
    ok = h.dtype.kind in kinds and not h.dtype.hasobject and len(h.shape) == len(shape)
    ok = ok and all(want is None or (got >= 1 if want == -1 else got == want)
                    for got, want in zip(h.shape, shape, strict=True))
    if not ok:
        raise _fail(path, key, f"must be {what}, got {h.describe()}")


def _check_layout(path: Path, headers: dict[str, _Header], setting: Setting) -> None:
    """dtypes and shapes of every known key, consistent with ``demand`` [n, T] and the setting."""
    demand = headers["demand"]
    _check_array(path, "demand", demand, "f", f"a 2-D float array [n, T={setting.T}]", (-1, None))
    n, horizon = demand.shape
    if horizon != setting.T:
        raise DataError(f"dataset {path}: horizon {horizon} != T={setting.T}")
    _check_array(path, "features", headers["features"], "f",
                 f"a float array [n={n}, T={horizon}, k>=1]", (n, horizon, -1))
    _check_array(path, "coeff", headers["coeff"], "f",
                 f"a float array [n={n}, T={horizon}, 4]", (n, horizon, 4))
    _check_array(path, "ids", headers["ids"], "iu", f"a 1-D integer array [n={n}]", (n,))
    for s in SPLITS:
        _check_array(path, f"{s}_idx", headers[f"{s}_idx"], "iu", "a 1-D integer array of rows",
                     (None,))
    for key, h in headers.items():
        if key.startswith("param_"):
            _check_array(path, key, h, "iuf", "a numeric array", (None,) * len(h.shape))


def _first_bad(path: Path, key: str, values: np.ndarray, bad: np.ndarray, what: str) -> None:
    """Refuse ``key`` if any entry is ``bad``: how many, and the first position and value."""
    if bad.any():
        first = np.unravel_index(int(bad.argmax()), bad.shape)
        where = ", ".join(str(int(i)) for i in first)
        raise _fail(path, key, f"{int(bad.sum())} of {bad.size} values {what} "
                               f"(first at [{where}]: {values[first].item()!r})")


def _check_values(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Finite, bounded numbers; demand >= 0; ids unique and >= 1."""
    for key, a in arrays.items():
        if key in ("demand", "features", "coeff") or key.startswith("param_"):
            _first_bad(path, key, a, ~np.isfinite(a), "non-finite")
            _first_bad(path, key, a, np.abs(a) > MAX_ABS_VALUE, f"beyond ±{MAX_ABS_VALUE:g}")
    _first_bad(path, "demand", arrays["demand"], arrays["demand"] < 0, "negative")
    ids = arrays["ids"]
    _first_bad(path, "ids", ids, ids < 1, "below 1")
    repeated = ids.size - np.unique(ids).size
    if repeated:
        raise _fail(path, "ids", f"{repeated} repeated ids (ids must be unique)")


def _check_splits(path: Path, arrays: dict[str, np.ndarray], setting: Setting) -> None:
    """Rows in [0, n), unique within a split, splits pairwise disjoint and non-empty."""
    n, seen = arrays["demand"].shape[0], {}
    for s in SPLITS:
        key, idx = f"{s}_idx", arrays[f"{s}_idx"]
        _first_bad(path, key, idx, (idx < 0) | (idx >= n), f"outside the rows [0, {n})")
        unique = np.unique(idx)
        if unique.size != idx.size:
            raise _fail(path, key, f"{idx.size - unique.size} repeated rows (rows must be unique)")
        for other, rows in seen.items():
            shared = np.intersect1d(rows, unique)
            if shared.size:
                raise _fail(path, f"{other}_idx and {key}", f"the splits share {shared.size} rows "
                                                            f"(first: row {int(shared[0])})")
        seen[s] = unique
    for s in SPLITS:  # a subset of the setting's rows is allowed (smaller experiments)
        if arrays[f"{s}_idx"].size == 0:
            raise _fail(path, f"{s}_idx", "no rows (every split needs at least one)")


def _check_requested(expect_setting: str) -> None:
    """A non-canonical spelling of a built-in id is refused, naming the canonical one."""
    if canonical_setting_id(expect_setting) is not None:
        get_setting(expect_setting)


def load_dataset(path: str | os.PathLike, expect_setting: str | None = None) -> Dataset:
    """Load and check a dataset file (module docstring); any defect is a one-line DataError.

    ``expect_setting``: refuse a file of another setting (a misspelt built-in id: ConfigError).
    """
    path = Path(path)
    if expect_setting is not None:
        _check_requested(expect_setting)
    if not path.is_file():
        raise DataError(f"dataset file not found: {path}")
    try:
        zf = zipfile.ZipFile(path)
    except OSError as exc:
        raise DataError(f"cannot read dataset {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # noqa: BLE001 - BadZipFile and any other parse failure
        raise DataError(f"cannot read dataset {path}: not an .npz archive ({exc})") from None
    with zf:
        headers = _read_headers(path, zf)
        meta = _read_meta(path, zf, headers["meta"])
        setting = _setting_of(path, meta)
        if expect_setting is not None and setting.id != expect_setting:
            raise DataError(
                f"dataset {path} holds setting {setting.id!r}, but {expect_setting!r} was asked for"
            )
        _check_layout(path, headers, setting)
        keys = [k for k in headers if k.startswith("param_") or (k in REQUIRED_KEYS and k != "meta")]
        arrays = {k: _read_array(path, zf, k, headers[k]) for k in keys}
    _check_values(path, arrays)
    _check_splits(path, arrays, setting)
    floats = {k: np.ascontiguousarray(arrays[k], dtype=np.float64)
              for k in ("demand", "features", "coeff")}
    return Dataset(
        setting=setting,
        **floats,
        ids=np.asarray(arrays["ids"], dtype=np.int64),
        split_idx={s: np.asarray(arrays[f"{s}_idx"], dtype=np.int64) for s in SPLITS},
        demand_params={k[len("param_"):]: v for k, v in arrays.items() if k.startswith("param_")},
        meta=meta,
    )
