"""The SB3 backend's cost for the whole paper protocol, from measured SB3 speeds.

Nobody ran the protocol's 36 DDPG/PPO cells on SB3. What was measured:
- the whole Setting 1 DDPG-Base cell on SB3 (``run_sb3_cell.sh``, exported to ``../sb3-cell/``), and
- samples of stage-1 configurations retrained on SB3 for the other (method, setting) pairs
  (``sb3_sample.py``; ``sb3-sample/*.csv``).
Each gives SB3's environment steps per second of tuner time for that method and setting. SB3's
cost per step hardly depends on the network (its Python loop dominates), but it differs between
settings, whose episodes and validation splits differ; the JAX backend's cost per step depends on
the networks, which the settings' fixed hyper-parameters make smaller in Settings 2–3. The
estimate multiplies each SB3 speed by the environment steps the committed JAX cells of that
method and setting took (all Base and None cells, repetitions 0–2, both stages), and puts the
measured JAX tuner time beside it. The JAX cells' early stopping, not SB3's, fixes the steps;
on the samples (for Setting 1 DDPG: the whole cell against the JAX k = 1 cell of the same
repetition) the two backends' step counts are printed for comparison. Whole SB3 cells of pairs
whose speed comes from a sample (``../sb3-cell/<setting>/<method>/base/rep0``) check it: their
measured speed and tuner time beside the sample's speed and the average SB3 cell the estimate
implies. The JAX hours leave out the two pauses inside Setting 1 DDPG-Base repetition 0
(``sb3_cell_speed.paused_s``).

    python paper/reference-runs/paper-protocol/sb3_cost.py
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from sb3_cell_speed import SB3_CELL, SB3_RUN, paused_s, trials

HERE = Path(__file__).resolve().parent
PAIRS = [(m, s) for m in ("ddpg", "ppo") for s in ("s1", "s2", "s3")]


def sb3_speeds() -> pd.DataFrame:
    """SB3 env-steps per second and the sample's step counts on both backends, per pair."""
    rows = []
    for method, setting in PAIRS:
        sample = HERE / f"sb3-sample/{method}-{setting}.csv"
        if sample.exists():
            t = pd.read_csv(sample)
            rows.append({"method": method, "setting": setting, "source": f"{len(t)} sampled trials",
                         "sb3_steps_per_s": t.sb3_steps.sum() / t.sb3_wall_s.sum(),
                         "sample_sb3_over_jax_steps": t.sb3_steps.sum() / t.jax_steps.sum()})
        elif (method, setting) == ("ddpg", "s1") and (SB3_CELL / "stage2.csv").exists():
            cell = pd.concat([trials(SB3_CELL, 1), trials(SB3_CELL, 2)])
            jax_rep0 = pd.concat([trials(HERE / "s1/ddpg/base/rep0", stage) for stage in (1, 2)])
            rows.append({"method": method, "setting": setting,
                         "source": f"whole SB3 cell ({len(cell)} trainings)",
                         "sb3_steps_per_s": cell.steps.sum() / cell.wall_s.sum(),
                         "sample_sb3_over_jax_steps": cell.steps.sum() / jax_rep0.steps.sum()})
    return pd.DataFrame(rows)


def jax_protocol() -> pd.DataFrame:
    """Environment steps and tuner hours of the committed JAX cells, per (method, setting)."""
    rows = []
    for method, setting in PAIRS:
        tables = [pd.read_csv(f) for f in sorted((HERE / setting / method).glob("*/rep*/stage[12].csv"))]
        rows.append({"method": method, "setting": setting, "cells": len(tables) // 2,
                     "env_steps_M": sum(t.iterations.sum() for t in tables) / 1e6,
                     "jax_hours": (sum(t.wall_s.sum() for t in tables)
                                   - (paused_s() if (method, setting) == ("ddpg", "s1") else 0.0)) / 3600})
    return pd.DataFrame(rows)


def whole_cell_checks(table: pd.DataFrame) -> pd.DataFrame:
    """Whole SB3 cells of sampled pairs against what the sample-based estimate implies."""
    rows = []
    for row in table[table.source.str.contains("sampled", na=False)].itertuples():
        cell = SB3_RUN / row.setting / row.method / "base/rep0"
        if not (cell / "stage2.csv").exists():
            continue
        runs = pd.concat([trials(cell, 1), trials(cell, 2)])
        rows.append({"method": row.method, "setting": row.setting,
                     "sb3_cell_min": runs.wall_s.sum() / 60,
                     "sb3_cell_steps_per_s": runs.steps.sum() / runs.wall_s.sum(),
                     "sample_steps_per_s": row.sb3_steps_per_s,
                     "estimate_mean_cell_min": row.sb3_hours * 60 / row.cells,
                     "jax_mean_cell_min": row.jax_hours * 60 / row.cells})
    return pd.DataFrame(rows)


def main() -> None:
    table = jax_protocol().merge(sb3_speeds(), on=["method", "setting"], how="left")
    table["sb3_hours"] = table.env_steps_M * 1e6 / table.sb3_steps_per_s / 3600
    table["sb3_over_jax"] = table.sb3_hours / table.jax_hours
    print(table.round(2).to_string(index=False))
    known = table.dropna(subset=["sb3_hours"])
    print(f"\nDDPG/PPO, {int(known.cells.sum())} cells: SB3 ≈ {known.sb3_hours.sum():.1f} core-hours "
          f"(extrapolated), JAX {known.jax_hours.sum():.1f} core-hours (measured)")
    checks = whole_cell_checks(table)
    if len(checks):
        print("\nwhole SB3 cells against the sample-based estimate (repetition 0, Base):")
        print(checks.round(1).to_string(index=False))
    if len(known) < len(table):
        print("missing SB3 speeds: " + ", ".join(f"{m} {s}" for m, s in
                                                  table[table.sb3_hours.isna()][["method", "setting"]].values))


if __name__ == "__main__":
    main()
