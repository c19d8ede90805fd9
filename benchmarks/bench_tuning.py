"""Overhead of the tuner itself (spec §8 / docs/tuning.md): cell wall time minus trial time.

    python benchmarks/bench_tuning.py --executor local --num-samples 22
    python benchmarks/bench_tuning.py --executor ray --num-samples 22

Runs a `tiny` DS-Base cell on Setting 1 in-process and prints wall time, summed trial time and
overhead per trial (imports of torch and ray.tune are counted in the overhead).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--executor", choices=["local", "ray"], default="local")
    ap.add_argument("--num-samples", type=int, default=2, help="stage-1 configurations")
    args = ap.parse_args()
    t0 = time.perf_counter()
    from deepstock.generators import generate_dataset
    from deepstock.tuning import TuneOptions, tune_cell

    work = tempfile.mkdtemp(prefix="bench_tuning_")
    try:
        data = os.path.join(work, "s1.npz")
        generate_dataset("s1").save(data)
        t1 = time.perf_counter()
        w = tune_cell("s1", "ds", "base", data, os.path.join(work, "cell"),
                      TuneOptions(scale="tiny", executor=args.executor, quiet=True,
                                  num_samples=args.num_samples))
        wall = time.perf_counter() - t1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    trials = w["num_samples"] + len(w["seeds"])
    overhead = wall - w["trial_wall_s"]
    print(json.dumps({
        "executor": args.executor, "trials": trials, "setup_s": round(t1 - t0, 2),
        "cell_wall_s": round(wall, 2), "trial_wall_s": round(w["trial_wall_s"], 2),
        "overhead_s": round(overhead, 2), "overhead_per_trial_s": round(overhead / trials, 3),
        "overhead_share": round(overhead / wall, 3),
    }))


if __name__ == "__main__":
    main()
