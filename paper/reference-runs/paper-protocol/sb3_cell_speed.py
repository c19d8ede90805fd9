"""The sequential SB3 tuner against the JAX tuners on the Setting 1 DDPG-Base cell, repetition 0.

Reads the SB3 cell's stage-1 journal (``run_sb3_cell.sh``; resumable, so possibly unfinished)
and the committed JAX cells of the same repetition (k = 1, sequential TPE) and of repetition 1
(k = 5, populations). With the same repetition and k = 1, TPE draws the same 10 random start-up
configurations for both backends; after that the backends' different validation losses steer it
apart, so later trials are compared only in total and per environment step.

    python paper/reference-runs/paper-protocol/sb3_cell_speed.py [SB3_CELL_FOLDER]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
SB3_CELL = Path("results/reference/sb3-cell/s1/ddpg/base/rep0")


def sb3_trials(cell: Path) -> pd.DataFrame:
    """Finished stage-1 trials of the SB3 journal (its first line is the fingerprint)."""
    lines = (cell / "stage1.jsonl").read_text().splitlines()[1:]
    rows = [json.loads(line) for line in lines if line.strip()]
    return pd.DataFrame({"trial": [r["trial"] for r in rows],
                         "config": [json.dumps(r["config"], sort_keys=True) for r in rows],
                         "wall_s": [r["wall_s"] for r in rows],
                         "steps": [r["iterations"] for r in rows]})


def jax_trials(rep: int) -> pd.DataFrame:
    table = pd.read_csv(HERE / f"s1/ddpg/base/rep{rep}/stage1.csv")
    return pd.DataFrame({"trial": table.trial,
                         "config": [json.dumps(json.loads(c), sort_keys=True) for c in table.config],
                         "wall_s": table.wall_s, "steps": table.iterations})


def totals(name: str, trials: pd.DataFrame) -> dict:
    return {"tuner": name, "trials": len(trials), "wall_min": trials.wall_s.sum() / 60,
            "env_steps": int(trials.steps.sum()),
            "steps_per_s": trials.steps.sum() / trials.wall_s.sum()}


def main(cell: Path) -> None:
    sb3 = sb3_trials(cell)
    n = len(sb3)
    jax1 = jax_trials(0)
    same = sb3.merge(jax1, on=["trial", "config"], suffixes=("_sb3", "_jax"))
    print(f"SB3 stage 1: {n} of 50 trials finished")
    print(f"same configurations (TPE start-up): {len(same)} trials; SB3 {same.wall_s_sb3.sum():.0f} s, "
          f"JAX k=1 {same.wall_s_jax.sum():.0f} s (includes compilation)")
    rows = [totals("SB3, k = 1 (rep 0)", sb3), totals("JAX, k = 1 (rep 0)", jax1[jax1.trial <= n])]
    print(pd.DataFrame(rows).round(1).to_string(index=False))
    # repetition 0's winner.json timed only its last resumed run; repetition 1 ran in one go
    winner = json.loads((HERE / "s1/ddpg/base/rep1/winner.json").read_text())
    print(f"JAX whole cell (stages 1 and 2), rep 1, k = 5: {winner['wall_s'] / 60:.1f} min")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else SB3_CELL)
