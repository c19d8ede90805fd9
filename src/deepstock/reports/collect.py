"""Collect a results tree into ``summary.csv`` and ``benchmarks.csv`` (spec §3, §6, §8, §9).

Inputs (all optional; a subset run gives a subset of rows):

- ``{results}/benchmarks/{setting}.json``  — ``deepstock benchmark`` (dp_empirical, ar1_dp, ...);
- ``{results}/benchmarks/ds_on_test/{setting}/winner.json`` — AR(1) π* ≈ DS-Base tuned on the
  test set (spec §6.3(a)); its ``test_loss`` is L*;
- ``{results}/{setting}/{method}/{reg}/rep{r}/winner.json`` — ``deepstock tune`` cells.

Each cell row names the training ``backend`` its ``winner.json`` records (sb3, jax, torch, ...);
a ``winner.json`` written before the tuner recorded backends leaves it empty, not guessed.

Per-seed values: ``seed_ids``, ``seed_val_losses`` and ``seed_test_losses`` are aligned JSON lists
of the winning configuration's successful stage-2 runs (``stage2.csv`` rows with the
``winner_index`` of ``winner.json`` and status ok), the input of the 95 % intervals
(:mod:`deepstock.reports.intervals`). A missing or unreadable ``stage2.csv``, an older
``winner.json`` without ``winner_index``, or seeds whose median-validation run is not the
``winner.json`` run give empty lists (and a note for the last two cases); the row stays.

Loss gap (spec §3): ``gap = 100 (L − L*) / L*`` with L* the benchmark's **test** loss, for both the
validation and the test gap. AR(1) L* follows ``ar1_gap_reference``: ``ds_on_test`` (default),
``paper`` (2.2838) or ``dp``; a missing ``ds_on_test`` falls back to ``dp`` with a note.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from deepstock.errors import ConfigError, DataError
from deepstock.problem.families import setting_ids
from deepstock.problem.settings import get_setting
from deepstock.reports.reported import paper_lstar

AR1_REFERENCES = ("ds_on_test", "paper", "dp")
# the winner's successful stage-2 runs, as aligned JSON lists (reports.intervals resamples them)
SEED_COLUMNS = ("seed_ids", "seed_val_losses", "seed_test_losses")
# what produced each cell (deepstock.provenance): the commit and stack that wrote winner.json,
# its CPU, and whether the cell's rows mix commits, stacks or CPUs (a resume elsewhere)
PROVENANCE_COLUMNS = ("commit", "dirty", "stack_hash", "cpu", "mixed_provenance")
SUMMARY_COLUMNS = [
    "setting", "family", "N", "T", "H", "method", "reg", "backend", "repetition", "scale",
    "train_loss", "val_loss", "test_loss", "benchmark", "benchmark_method", "val_gap", "test_gap",
    "wall_s", "trial_wall_s", "num_samples", "stage1_failed", "reported_seed", "note",
    *SEED_COLUMNS,
    *PROVENANCE_COLUMNS,
]
BENCHMARK_COLUMNS = [
    "setting", "family", "kind", "train_loss", "val_loss", "test_loss", "expected_value",
    "reference", "source", "note",
]


def loss_gap(loss, lstar):
    """Gap(%) = 100 (L − L*) / L* (spec §3); NaN where L* is missing or not positive."""
    loss = np.asarray(loss, dtype=float)
    lstar = np.asarray(lstar, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(lstar > 0, 100.0 * (loss - lstar) / lstar, np.nan)
    return out if out.ndim else float(out)


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def _f(value) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return math.nan
    return v


def _setting_cols(setting: str) -> dict:
    st = get_setting(setting)
    return {"setting": setting, "family": st.family, "N": st.N, "T": st.T, "H": st.H}


# ----------------------------------------------------------------------------- benchmarks
def collect_benchmarks(results: str | Path, reported: dict | None = None,
                       settings: list[str] | None = None) -> pd.DataFrame:
    """One row per (setting, benchmark kind) found, plus the paper's implied L* when known.

    ``settings`` adds paper rows for settings without any computed benchmark.
    """
    root = Path(results) / "benchmarks"
    rows = []
    seen = set(settings or ())
    for path in sorted(root.glob("*.json")) if root.is_dir() else []:
        if path.stem not in setting_ids():
            continue
        b = _read(path)
        seen.add(path.stem)
        rows.append({
            **_setting_cols(path.stem), "kind": b.get("method", "unknown"),
            "train_loss": _f(b.get("train_loss")), "val_loss": _f(b.get("val_loss")),
            "test_loss": _f(b.get("test_loss", b.get("L_star"))),
            "expected_value": _f(b.get("expected_value")), "source": str(path), "note": "",
        })
    ds_root = root / "ds_on_test"
    for path in sorted(ds_root.glob("*/winner.json")) if ds_root.is_dir() else []:
        setting = path.parent.name
        if setting not in setting_ids():
            continue
        w = _read(path)
        seen.add(setting)
        rows.append({
            **_setting_cols(setting), "kind": "ds_on_test",
            "train_loss": _f(w.get("train_loss")), "val_loss": _f(w.get("val_loss")),
            "test_loss": _f(w.get("test_loss")), "expected_value": math.nan,
            "source": str(path),
            "note": f"DS-Base tuned on the test set, scale {w.get('scale', '?')}",
        })
    if reported is not None:
        for setting in sorted(seen, key=setting_ids().index):
            lstar = paper_lstar(reported, setting)
            if lstar is not None:
                rows.append({
                    **_setting_cols(setting), "kind": "paper", "train_loss": math.nan,
                    "val_loss": math.nan, "test_loss": lstar, "expected_value": math.nan,
                    "source": "paper/reported.yaml", "note": "L* implied by the paper's gaps",
                })
    df = pd.DataFrame(rows, columns=[c for c in BENCHMARK_COLUMNS if c != "reference"]
                      + ["N", "T", "H"])
    df["reference"] = False
    return df


def choose_reference(benchmarks: pd.DataFrame, setting: str,
                     ar1_gap_reference: str = "ds_on_test") -> tuple[float, str, str]:
    """(L*, kind, note) used as the gap denominator of ``setting`` (spec §3, §6.3)."""
    if ar1_gap_reference not in AR1_REFERENCES:
        raise ConfigError(
            f"ar1_gap_reference must be one of {list(AR1_REFERENCES)}, got {ar1_gap_reference!r}"
        )
    family = get_setting(setting).family
    rows = benchmarks[benchmarks["setting"] == setting]

    def pick(kind: str) -> float | None:
        r = rows[rows["kind"] == kind]
        return float(r["test_loss"].iloc[0]) if len(r) and math.isfinite(r["test_loss"].iloc[0]) else None

    if family == "ar1":
        order = {"ds_on_test": ["ds_on_test", "ar1_dp"], "dp": ["ar1_dp"],
                 "paper": ["paper"]}[ar1_gap_reference]
        for i, kind in enumerate(order):
            v = pick(kind)
            if v is not None:
                note = "" if i == 0 else f"{order[0]} missing: fell back to {kind}"
                return v, kind, note
        return math.nan, "", f"no {ar1_gap_reference} benchmark"
    computed = rows[rows["kind"] != "paper"]
    if len(computed):
        return float(computed["test_loss"].iloc[0]), str(computed["kind"].iloc[0]), ""
    return math.nan, "", "no benchmark"


# ----------------------------------------------------------------------------- cells
def find_cells(results: str | Path) -> list[Path]:
    """All ``{setting}/{method}/{reg}/rep{r}/winner.json`` under ``results`` (setting ids only)."""
    root = Path(results)
    out = []
    for path in sorted(root.glob("*/*/*/rep*/winner.json")):
        if path.parts[-5] in setting_ids():
            out.append(path)
    return out


def _seed_lists(path: Path, w: dict) -> tuple[dict, str]:
    """(the SEED_COLUMNS of one cell row as JSON lists, note) from the winner's stage-2 runs."""
    empty = {c: "[]" for c in SEED_COLUMNS}
    csv = path.with_name("stage2.csv")
    if not csv.is_file():
        return empty, ""
    if w.get("winner_index") is None:
        return empty, "winner.json has no winner_index: no seed interval"
    try:
        t = pd.read_csv(csv)
        t = t[(t["config_index"] == int(w["winner_index"])) & (t["status"] == "ok")]
        seeds = [int(s) for s in t["seed"]]
        val = [float(v) for v in t["val_loss"]]
        test = [float(v) for v in t["test_loss"]]
    except (OSError, ValueError, KeyError, TypeError, pd.errors.ParserError,
            pd.errors.EmptyDataError):
        return empty, f"{csv.name} unreadable: no seed interval"
    if seeds:  # the median-validation seed must be the reported run (tuning.median_seed_row)
        i = sorted(range(len(seeds)), key=lambda k: (val[k], seeds[k]))[len(seeds) // 2]
        same = (seeds[i] == w.get("reported_seed")
                and math.isclose(test[i], _f(w.get("test_loss")), rel_tol=1e-9, abs_tol=1e-12)
                and math.isclose(val[i], _f(w.get("val_loss")), rel_tol=1e-9, abs_tol=1e-12))
        if not same:
            return empty, f"{csv.name} disagrees with winner.json: no seed interval"
    return {c: json.dumps(v) for c, v in zip(SEED_COLUMNS, (seeds, val, test), strict=True)}, ""


def _cell_row(path: Path) -> dict:
    w = _read(path)
    seeds, seed_note = _seed_lists(path, w)
    setting, method, reg, rep_dir = path.parts[-5:-1]
    rep = w.get("repetition")
    if rep is None:
        try:
            rep = int(rep_dir.removeprefix("rep"))
        except ValueError:
            rep = -1
    return {
        **_setting_cols(w.get("setting", setting)),
        "method": w.get("method", method), "reg": w.get("reg", reg),
        "backend": str(w.get("backend") or ""), "repetition": int(rep),
        "scale": w.get("scale", ""),
        "train_loss": _f(w.get("train_loss")), "val_loss": _f(w.get("val_loss")),
        "test_loss": _f(w.get("test_loss")),
        "wall_s": _f(w.get("wall_s")), "trial_wall_s": _f(w.get("trial_wall_s")),
        "num_samples": w.get("num_samples"), "stage1_failed": w.get("stage1_failed"),
        "reported_seed": w.get("reported_seed"), "seed_note": seed_note, **seeds,
        **_provenance_cols(w),
    }


def _provenance_cols(winner: dict) -> dict:
    """The summary's provenance columns of one winner.json (``unknown`` before provenance)."""
    p = winner.get("provenance") or {}
    return {"commit": p.get("commit", "unknown"), "dirty": p.get("dirty"),
            "stack_hash": p.get("stack_hash", ""), "cpu": (p.get("cpu") or {}).get("model", ""),
            "mixed_provenance": len(winner.get("trained_by") or []) > 1}


def build_summary(results: str | Path, reported: dict | None = None,
                  ar1_gap_reference: str = "ds_on_test") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(summary, benchmarks): one row per tuned cell × repetition, gaps against L* (spec §3)."""
    if ar1_gap_reference == "paper" and reported is None:
        raise ConfigError("ar1_gap_reference 'paper' needs the reported values (--reported)")
    cells = [_cell_row(p) for p in find_cells(results)]
    settings = sorted({c["setting"] for c in cells}, key=setting_ids().index)
    bench = collect_benchmarks(results, reported, settings)
    refs = {}
    for setting in sorted(set(settings) | set(bench["setting"]), key=setting_ids().index):
        refs[setting] = choose_reference(bench, setting, ar1_gap_reference)
        kind = refs[setting][1]
        if kind:
            bench.loc[(bench["setting"] == setting) & (bench["kind"] == kind), "reference"] = True
    for c in cells:
        lstar, kind, note = refs[c["setting"]]
        note = "; ".join(n for n in (note, c.pop("seed_note")) if n)
        c.update(benchmark=lstar, benchmark_method=kind, note=note,
                 val_gap=loss_gap(c["val_loss"], lstar), test_gap=loss_gap(c["test_loss"], lstar))
    summary = pd.DataFrame(cells, columns=SUMMARY_COLUMNS)
    order = {s: i for i, s in enumerate(setting_ids())}
    summary = summary.sort_values(
        ["setting", "method", "reg", "repetition"],
        key=lambda col: col.map(order) if col.name == "setting" else col,
    ).reset_index(drop=True)
    for col in ("N", "T", "H", "num_samples", "stage1_failed", "reported_seed"):
        summary[col] = summary[col].astype("Int64")
    bench = bench.sort_values(["setting", "kind"], key=lambda col: col.map(order)
                              if col.name == "setting" else col).reset_index(drop=True)
    bench = bench[["setting", "family", "N", "T", "H"] + BENCHMARK_COLUMNS[2:]]
    for col in ("N", "T", "H"):
        bench[col] = bench[col].astype("Int64")
    return summary, bench


# ----------------------------------------------------------------------------- compute
def collect_compute(logs: str | Path) -> pd.DataFrame:
    """Compute per Snakemake rule from ``{logs}/timing/{rule}/{name}.tsv`` files.

    Columns: rule, jobs, wall_s (sum of ``s``), cpu_s (sum of ``cpu_time``), max_rss_mb (max).
    Files that cannot be parsed are skipped; a missing folder gives an empty table.
    """
    root = Path(logs) / "timing"
    rows = []
    for path in sorted(root.glob("*/*.tsv")) if root.is_dir() else []:
        try:
            t = pd.read_csv(path, sep="\t")
        except (OSError, ValueError, pd.errors.EmptyDataError):
            continue
        if "s" not in t.columns:
            continue
        rows.append({
            "rule": path.parent.name, "job": path.stem,
            "wall_s": float(pd.to_numeric(t["s"], errors="coerce").sum()),
            "cpu_s": float(pd.to_numeric(t.get("cpu_time"), errors="coerce").sum())
            if "cpu_time" in t else math.nan,
            "max_rss_mb": float(pd.to_numeric(t.get("max_rss"), errors="coerce").max())
            if "max_rss" in t else math.nan,
        })
    cols = ["rule", "jobs", "wall_s", "cpu_s", "max_rss_mb"]
    if not rows:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame(rows)
    out = df.groupby("rule").agg(
        jobs=("job", "count"), wall_s=("wall_s", "sum"), cpu_s=("cpu_s", "sum"),
        max_rss_mb=("max_rss_mb", "max"),
    ).reset_index()
    return out.sort_values("wall_s", ascending=False).reset_index(drop=True)[cols]
