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
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from deepstock.errors import DataError
from deepstock.io import write_bytes
from deepstock.settings import Setting, get_setting, is_builtin

SPLITS = ("train", "val", "test")


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
    params: dict[str, np.ndarray] = field(default_factory=dict)
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
        for k, v in self.params.items():
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


def _setting_of(path: Path, meta: dict) -> Setting:
    """Built-in ids via ``get_setting``; a custom setting from ``meta["setting_spec"]``."""
    sid = meta.get("setting")
    if not isinstance(sid, str):
        raise DataError(f"dataset {path}: meta lacks the setting id")
    if is_builtin(sid):
        return get_setting(sid)
    spec = meta.get("setting_spec")
    if not isinstance(spec, dict) or spec.get("id") != sid:
        raise DataError(f"dataset {path}: custom setting {sid!r} without a matching setting_spec")
    try:
        return Setting(**spec)
    except TypeError as exc:
        raise DataError(f"dataset {path}: bad setting_spec ({exc})") from None


def load_dataset(path: str | os.PathLike, expect_setting: str | None = None) -> Dataset:
    """Load a dataset file; raise DataError if missing, malformed or of another setting."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"dataset file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
        raise DataError(f"cannot read dataset {path}: {exc}") from None
    missing = [k for k in ("demand", "features", "coeff", "ids", "meta") if k not in arrays]
    missing += [f"{s}_idx" for s in SPLITS if f"{s}_idx" not in arrays]
    if missing:
        raise DataError(f"dataset {path} lacks keys {missing}")
    meta = json.loads(str(arrays["meta"]))
    setting = _setting_of(path, meta)
    if expect_setting is not None and setting.id != expect_setting:
        raise DataError(
            f"dataset {path} holds setting {setting.id!r}, but {expect_setting!r} was asked for"
        )
    if arrays["demand"].shape[1] != setting.T:
        raise DataError(f"dataset {path}: horizon {arrays['demand'].shape[1]} != T={setting.T}")
    params = {k[len("param_"):]: v for k, v in arrays.items() if k.startswith("param_")}
    return Dataset(
        setting=setting,
        demand=arrays["demand"],
        features=arrays["features"],
        coeff=arrays["coeff"],
        ids=arrays["ids"],
        split_idx={s: arrays[f"{s}_idx"] for s in SPLITS},
        params=params,
        meta=meta,
    )
