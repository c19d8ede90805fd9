"""Reference runs: the small outputs of a results tree, kept so that a report can show them.

``export_reference(results, out)`` copies, for every tuned cell of ``results``, the files that
describe it without its weights — ``winner.json``, ``stage1.csv``, ``stage2.csv`` and the
reported run's ``final/curve.csv`` and ``final/metrics.json`` — to the same relative paths under
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

import pandas as pd

from deepstock.io import write_csv
from deepstock.reports.collect import build_summary, find_cells

CELL_FILES = ("winner.json", "stage1.csv", "stage2.csv")
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


def load_reference(root: str | Path) -> pd.DataFrame:
    """Repetition means of every reference run under ``root`` (empty when there is none)."""
    columns = ["run", "setting", "method", "reg", "metric", "mean", "n_reps", "scale", "backend"]
    frames = []
    for path in sorted(Path(root).glob("*/summary.csv")):
        s = pd.read_csv(path)
        if s.empty:
            continue
        long = s.melt(id_vars=["setting", "method", "reg", "repetition", "scale", "backend"],
                      value_vars=list(METRICS), var_name="metric", value_name="value")
        g = long.groupby(["setting", "method", "reg", "metric"])
        frame = g.agg(mean=("value", "mean"), n_reps=("repetition", "nunique"),
                      scale=("scale", lambda v: ",".join(sorted(set(map(str, v))))),
                      backend=("backend", lambda v: ",".join(sorted(set(map(str, v))))))
        frames.append(frame.reset_index().assign(run=path.parent.name))
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True)[columns]
