"""Collect the lost-sales reference runs (run.sh, run_rl.sh) into this folder's small files.

    python paper/reference-runs/lost-sales/collect.py RESULTS   # RESULTS = results/lost-sales

Writes benchmarks.csv (one row per setting: g*, L*, its standard error, the best base stock,
the DP's size and wall time), runs.csv (one row per training with its provenance), and, through
``deepstock report lostsales --runs``, lost_sales.{csv,md}, lost_sales_takeaways.md and
lost_sales.{png,pdf}.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

from deepstock.cli import main
from deepstock.io import write_csv

HERE = Path(__file__).resolve().parent


def benchmarks(results: Path) -> pd.DataFrame:
    rows = []
    for path in sorted((results / "benchmarks").glob("ls_*.json")):
        b = json.loads(path.read_text())
        pol = b["policy"]
        rows.append({"setting": b["setting"], "g_star": b["expected_value"], "L_star": b["L_star"],
                     "L_star_vs_g_star_pct": 100 * (b["L_star"] / b["expected_value"] - 1),
                     "test_standard_error": pol["test_standard_error"],
                     "base_stock_level": pol["base_stock"]["level"],
                     "base_stock_cost": pol["base_stock"]["average_cost"],
                     "cap": pol["cap"], "max_position": pol["max_position"],
                     "states": pol["states"], "wall_s": b["wall_s"]})
    return pd.DataFrame(rows)


def runs(results: Path) -> pd.DataFrame:
    rows = []
    for path in sorted((results / "runs").glob("*/*/s*/metrics.json")):
        m = json.loads(path.read_text())
        prov = m.get("provenance") or {}
        rows.append({**{k: m.get(k) for k in ("setting", "method", "reg", "backend", "seed",
                                              "train_loss", "val_loss", "test_loss",
                                              "iterations", "wall_s")},
                     "commit": prov.get("commit"), "dirty": prov.get("dirty"),
                     "stack_hash": prov.get("stack_hash"),
                     "cpu": (prov.get("cpu") or {}).get("model"),
                     "numerics": (prov.get("numerics") or {}).get("mode")})
    return pd.DataFrame(rows)


if __name__ == "__main__":
    results = Path(sys.argv[1] if len(sys.argv) > 1 else "results/lost-sales")
    write_csv(HERE / "benchmarks.csv", benchmarks(results))
    write_csv(HERE / "runs.csv", runs(results))
    sys.exit(main(["report", "lostsales", "--results", str(results), "--runs",
                   str(results / "runs"), "--tables-out", str(HERE),
                   "--figures-out", str(HERE)]))
