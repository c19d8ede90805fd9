"""What the pinned CPU numerics cost, and whether they change bits here (measured side by side).

deepstock pins the kernels' instruction set to AVX2 by default (``DEEPSTOCK_NUMERICS=pinned``,
:mod:`deepstock.numerics`); ``native`` lets torch, MKL, oneDNN and XLA pick their fastest. This
script trains the same short runs under both modes, alternating, each in a fresh process on one
core, and prints per workload the median wall time of each mode, the ratio, and whether the two
modes gave the same bits on this CPU:

- ``ds``: DS-Base on Setting 1, 60 epochs (torch);
- ``ppo-jax``: PPO-Base on Setting 1, 16 384 env steps, compiled JAX (compile excluded);
- ``ddpg-sb3``: DDPG-Base on Setting 1, 3 000 env steps on stable-baselines3 (torch).

    python speed/bench_numerics.py [--repeats 3] [--core 0]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = r"""
import json, sys, time
from deepstock import numerics
numerics.configure()
from deepstock.problem.generators import generate_dataset
from deepstock.training import train
work = sys.argv[1]
ds = generate_dataset("s1")
over = {
    "ds": ("ds", "torch", {"epochs": 60, "patience_epochs": 60}),
    "ppo-jax": ("ppo", "jax", {"total_steps": 16384, "patience_evals": 100, "eval_freq": 4096}),
    "ddpg-sb3": ("ddpg", "sb3", {"total_steps": 3000, "patience_evals": 100, "eval_freq": 1024,
                                 "learning_starts": 500}),
}[work]
t0 = time.perf_counter()
r = train(ds, over[0], "base", over[2], 42, backend=over[1], device="cpu")
wall = time.perf_counter() - t0 - float(r.extras.get("compile_seconds", 0.0))
print(json.dumps({"wall": wall, "bits": [r.train_loss, r.val_loss, r.test_loss]}))
"""
WORKLOADS = ("ds", "ppo-jax", "ddpg-sb3")


def probe(work: str, mode: str, core: int, cache: Path) -> dict:
    env = {**os.environ, "DEEPSTOCK_NUMERICS": mode, "DEEPSTOCK_JAX_CACHE": str(cache),
           "PYTHONPATH": str(ROOT)}
    for var in ("XLA_FLAGS", "ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA"):
        env.pop(var, None)  # each mode sets its own
    out = subprocess.run(["taskset", "-c", str(core), sys.executable, "-c", PROBE, work],
                         env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--core", type=int, default=0)
    args = ap.parse_args()
    print(f"{'workload':10s} {'pinned s':>9s} {'native s':>9s} {'ratio':>6s}  bits")
    with tempfile.TemporaryDirectory() as tmp:
        for work in WORKLOADS:
            probe(work, "pinned", args.core, Path(tmp) / "pinned")  # warm the compile caches
            probe(work, "native", args.core, Path(tmp) / "native")
            runs: dict[str, list] = {"pinned": [], "native": []}
            for _ in range(args.repeats):
                for mode in runs:
                    runs[mode].append(probe(work, mode, args.core, Path(tmp) / mode))
            wall = {m: statistics.median(r["wall"] for r in rs) for m, rs in runs.items()}
            same = runs["pinned"][0]["bits"] == runs["native"][0]["bits"]
            print(f"{work:10s} {wall['pinned']:9.2f} {wall['native']:9.2f} "
                  f"{wall['pinned'] / wall['native']:6.3f}  "
                  f"{'same in both modes' if same else 'DIFFERENT between modes'}")


if __name__ == "__main__":
    main()
