"""SB3's speed across the search space: stage-1 configurations of JAX cells retrained on SB3.

The SB3 backend's whole-protocol cost is an extrapolation (README, Cost); whole SB3 cells were
measured only for Setting 1 and Setting 2 DDPG-Base (``run_sb3_cell.sh``). This script takes every
``--every``-th stage-1 trial of a committed Base cell, repetition 0 (jax), and trains the same
configuration with the same seed on the SB3 backend, one process after the other, pinned to one
core. Early stopping differs between the backends (different random streams), so the number that
carries over is SB3's environment steps per second on that setting, which the extrapolation
multiplies by the environment steps the JAX protocol's cells of that setting and method took
(what one "step" costs differs between settings: their episodes and validation splits differ).

    python paper/reference-runs/paper-protocol/sb3_sample.py --method ppo --setting s1 --every 6
    python paper/reference-runs/paper-protocol/sb3_sample.py --method ddpg --setting s2 --every 5
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import pandas as pd
import yaml

HERE = Path(__file__).resolve().parent
OUT = Path("results/reference/sb3-sample")


def train(method: str, setting: str, trial: pd.Series, hparams: dict, core: int) -> dict:
    run = OUT / method / setting / f"trial{trial.trial:02d}"
    run.mkdir(parents=True, exist_ok=True)
    (run / "hparams.yaml").write_text(yaml.safe_dump({**hparams, **json.loads(trial.config)}))
    t0 = time.perf_counter()
    subprocess.run(["taskset", "-c", str(core), "deepstock", "train", setting, "--method", method,
                    "--reg", "base", "--backend", "sb3", "--device", "cpu", "--seed", str(trial.seed),
                    "--hparams", str(run / "hparams.yaml"), "--data", f"results/data/{setting}.npz",
                    "--out", str(run / "out")], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    metrics = json.loads((run / "out/metrics.json").read_text())
    return {"method": method, "setting": setting, "trial": int(trial.trial), "seed": int(trial.seed),
            "sb3_steps": int(metrics["iterations"]), "sb3_wall_s": wall, "sb3_val": metrics["val_loss"],
            "jax_steps": int(trial.iterations), "jax_wall_share_s": float(trial.wall_s),
            "jax_val": float(trial.val_loss), "config": trial.config}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=("ddpg", "ppo"), required=True)
    parser.add_argument("--setting", default="s1")
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument("--every", type=int, default=6)
    args = parser.parse_args()
    cell = HERE / args.setting / args.method / "base/rep0"
    csv = HERE / f"sb3-sample/{args.method}-{args.setting}.csv"
    csv.parent.mkdir(exist_ok=True)
    hparams = json.loads((cell / "winner.json").read_text())["hparams"]
    stage1 = pd.read_csv(cell / "stage1.csv")
    sample = stage1[(stage1.status == "ok") & ((stage1.trial - 1) % args.every == 0)]
    rows = []
    for _, trial in sample.iterrows():
        rows.append(train(args.method, args.setting, trial, hparams, args.core))
        print({k: v for k, v in rows[-1].items() if k != "config"}, flush=True)
        pd.DataFrame(rows).to_csv(csv, index=False)
    table = pd.DataFrame(rows)
    print(f"SB3 {args.method} {args.setting}: {table.sb3_steps.sum() / table.sb3_wall_s.sum():.0f} "
          f"env-steps/s over {len(table)} trainings ({table.sb3_wall_s.sum() / 60:.1f} min)")


if __name__ == "__main__":
    main()
