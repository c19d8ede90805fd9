"""The sequential SB3 tuner against the JAX tuners on the Setting 1 DDPG-Base cell, repetition 0.

Reads the SB3 cell's stage tables (``run_sb3_cell.sh``, exported to ``../sb3-cell/``) and the
committed JAX cells of the same repetition (k = 1, sequential TPE) and of repetition 1 (k = 5,
populations). With the same repetition and k = 1, TPE draws the same 10 random start-up
configurations for both backends; after that the backends' different validation losses steer it
apart, so later trials are compared only in total and per environment step.

A cell's tuner time is the sum of its trainings' wall times on the pinned core (the stage tables'
``wall_s``, as the journals recorded them): stage 1 (50 configurations) plus stage 2 (top 5 ×
seeds 42–46). The JAX k = 1 cell's trial 45 includes two pauses of that run (``pauses.log``, 05:44:54–06:22:00 and
06:22:14–06:40:26 on 2026-12-02), which are subtracted.

    python paper/reference-runs/paper-protocol/sb3_cell_speed.py [SB3_CELL_FOLDER]
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
SB3_RUN = HERE.parent / "sb3-cell"
SB3_CELL = SB3_RUN / "s1/ddpg/base/rep0"
PAUSES = [("2026-12-02T05:44:54", "2026-12-02T06:22:00"), ("2026-12-02T06:22:14", "2026-12-02T06:40:26")]


def paused_s() -> float:
    return sum((datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds() for a, b in PAUSES)


def trials(cell: Path, stage: int) -> pd.DataFrame:
    """One stage's trainings of an exported cell: configuration, wall time and env steps."""
    table = pd.read_csv(cell / f"stage{stage}.csv")
    trial = table.trial if stage == 1 else table.index
    return pd.DataFrame({"trial": trial,
                         "config": [json.dumps(json.loads(c), sort_keys=True) for c in table.config],
                         "wall_s": table.wall_s, "steps": table.iterations})


def totals(name: str, stage1: pd.DataFrame, stage2: pd.DataFrame, minus_s: float = 0.0,
           test_loss: float | None = None) -> dict:
    wall = stage1.wall_s.sum() + stage2.wall_s.sum() - minus_s
    steps = int(stage1.steps.sum() + stage2.steps.sum())
    return {"tuner": name, "stage1": len(stage1), "stage2": len(stage2), "wall_min": wall / 60,
            "env_steps": steps, "steps_per_s": steps / wall, "winner_test": test_loss}


def winner_test(folder: Path) -> float | None:
    path = folder / "winner.json"
    return json.loads(path.read_text())["test_loss"] if path.exists() else None


def main(cell: Path) -> None:
    jax = HERE / "s1/ddpg/base"
    sb3_1, sb3_2 = trials(cell, 1), trials(cell, 2)
    jax1_1, jax1_2 = trials(jax / "rep0", 1), trials(jax / "rep0", 2)
    same = sb3_1.merge(jax1_1, on=["trial", "config"], suffixes=("_sb3", "_jax"))
    print(f"SB3 cell: stage 1 {len(sb3_1)} of 50 trainings, stage 2 {len(sb3_2)} of 25")
    print(f"same configurations (TPE start-up): {len(same)} trials; SB3 {same.wall_s_sb3.sum():.0f} s, "
          f"JAX k=1 {same.wall_s_jax.sum():.0f} s (includes compilation)")
    rows = [totals("SB3, k = 1 (rep 0)", sb3_1, sb3_2, test_loss=winner_test(cell)),
            totals("JAX, k = 1 (rep 0)", jax1_1, jax1_2, paused_s(), winner_test(HERE / "s1/ddpg/base/rep0")),
            totals("JAX, k = 5 (rep 1)", trials(jax / "rep1", 1), trials(jax / "rep1", 2),
                   test_loss=winner_test(HERE / "s1/ddpg/base/rep1"))]
    table = pd.DataFrame(rows)
    table["sb3_over"] = table.wall_min.iloc[0] / table.wall_min
    print(table.round(4).to_string(index=False))


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else SB3_CELL)
