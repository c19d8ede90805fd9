"""Reference runs: the small outputs of a results tree, kept so that a report can show them.

``export_reference(results, out)`` copies, for every tuned cell of ``results``, the files that
describe it without its weights — ``winner.json``, ``stage1.csv``, ``stage2.csv``, the journals
``stage1.jsonl`` and ``stage2.jsonl`` (so that ``deepstock verify`` can re-execute the exported
cell) and the reported run's ``final/curve.csv`` and ``final/metrics.json`` — to the same relative paths under
``out``, and writes ``out/summary.csv`` (:func:`deepstock.reports.collect.build_summary` of the
source tree, so the benchmarks' L* and the per-seed columns are those of the run). The project
commits such folders under ``paper/reference-runs/<name>/``.

``load_reference(root)`` reads every ``<root>/*/summary.csv`` and returns the repetition means per
(setting, method, reg, metric) with the run's name, scale, backends and repetition count: the
"our reference run" column of the report, beside the paper and the user's run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from deepstock.errors import DataError
from deepstock.io import write_csv
from deepstock.reports.collect import build_summary, find_cells

CELL_FILES = ("winner.json", "stage1.csv", "stage2.csv", "stage1.jsonl", "stage2.jsonl")
FINAL_FILES = ("curve.csv", "metrics.json")
METRICS = ("val_loss", "val_gap", "test_loss", "test_gap")


def export_reference(results: str | Path, out: str | Path, reported: dict | None = None,
                     ar1_gap_reference: str = "ds_on_test") -> list[Path]:
    """Copy the small files of every tuned cell of ``results`` and its summary to ``out``."""
    results, out = Path(results), Path(out)
    written = []
    for winner in find_cells(results):
        cell = winner.parent
        target = out / cell.relative_to(results)
        pairs = [(cell / f, target / f) for f in CELL_FILES]
        pairs += [(cell / "final" / f, target / "final" / f) for f in FINAL_FILES]
        for src, dst in pairs:
            if src.is_file():
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)
                written.append(dst)
    summary, _ = build_summary(results, reported, ar1_gap_reference)
    written.append(write_csv(out / "summary.csv", summary))
    return written


CELL = ("setting", "method", "reg", "repetition")
ID_COLUMNS = (*CELL, "scale", "backend")


def _line(i: int) -> int:
    """The file line of data row ``i`` of a CSV read by pandas (line 1 is the header)."""
    return int(i) + 2


def _checked(path: Path, s: pd.DataFrame) -> pd.DataFrame:
    """The rows of one reference summary, their metrics as floats, or a one-line DataError with
    the file and line: a missing column, a repeated (setting, method, reg, repetition) and a loss
    or gap that is not a finite number. A gap may be empty only where the row has no benchmark
    (no L*: that gap is not counted)."""
    missing = [c for c in (*ID_COLUMNS, *METRICS) if c not in s.columns]
    if missing:
        raise DataError(f"{path}: missing column {missing[0]!r}")
    dup = s.duplicated(list(CELL), keep="first")
    if dup.any():
        i = int(dup.to_numpy().nonzero()[0][0])
        key = s.loc[s.index[i], list(CELL)]
        first = int((s[list(CELL)] == key).all(axis=1).to_numpy().nonzero()[0][0])
        raise DataError(f"{path}:{_line(i)}: duplicate row of {key['setting']}/{key['method']}/"
                        f"{key['reg']} repetition {key['repetition']} (first at line "
                        f"{_line(first)}); each repetition may appear once")
    out = s.copy()
    no_lstar = (pd.to_numeric(s["benchmark"], errors="coerce").isna() if "benchmark" in s
                else pd.Series(False, index=s.index))
    for metric in METRICS:
        values = pd.to_numeric(s[metric], errors="coerce").astype(float)
        bad = ~np.isfinite(values.to_numpy())
        if metric.endswith("_gap"):
            bad &= ~(s[metric].isna() & no_lstar).to_numpy()  # an empty gap without an L*
        if bad.any():
            i = int(bad.nonzero()[0][0])
            row = s.iloc[i]
            raise DataError(f"{path}:{_line(i)}: {metric} of {row['setting']}/{row['method']}/"
                            f"{row['reg']} repetition {row['repetition']} is "
                            f"{s[metric].iloc[i]!r}, not a finite number")
        out[metric] = values
    return out


def load_reference(root: str | Path) -> pd.DataFrame:
    """Repetition means of every reference run under ``root`` (empty when there is none).

    ``n_reps`` counts the rows each mean is over. A summary with a repeated repetition or a
    non-finite loss or gap is refused (one-line DataError with the file and line), so a mean is
    never over fewer rows than it says."""
    columns = ["run", "setting", "method", "reg", "metric", "mean", "n_reps", "scale", "backend"]
    frames = []
    for path in sorted(Path(root).glob("*/summary.csv")):
        s = _checked(path, pd.read_csv(path))
        if s.empty:
            continue
        long = s.melt(id_vars=list(ID_COLUMNS), value_vars=list(METRICS), var_name="metric",
                      value_name="value").dropna(subset=["value"])  # gaps without an L*
        if long.empty:
            continue
        g = long.groupby(["setting", "method", "reg", "metric"])
        frame = g.agg(mean=("value", "mean"), n_reps=("value", "size"),
                      scale=("scale", lambda v: ",".join(sorted(set(map(str, v))))),
                      backend=("backend", lambda v: ",".join(sorted(set(map(str, v))))))
        frames.append(frame.reset_index().assign(run=path.parent.name))
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]
