"""The population tuner against the sequential SB3 tuner on one CPU core, one paper-scale batch.

Setting 1 DDPG-Base at the paper's budgets (200 000 steps, early stopping), stage 1's first batch
of k = 5 configurations: the batch's configurations come from TPE's random start-up, so both
backends train the very same five configurations with the same seeds. Each side runs in a fresh
process pinned to ``--core``, through the tuner's own code (:func:`deepstock.tuning.run_jobs`):

- ``jax``: the five as one population (``lax.map``; stopped members skipped), compilation
  included, persistent compilation cache off (a cold start);
- ``sb3``: the five one after the other, as the sequential SB3 tuner trains them.

The cell estimate scales the batch's wall time to the cell's 75 trainings (50 stage-1
configurations and 5 × 5 stage-2 runs) and is labelled as an estimate. Run::

    python speed/bench_tuner.py [--core 0] [--json results/bench_tuner.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TRAININGS_PER_CELL = 50 + 5 * 5


def child(job: dict) -> dict:
    """Train the first stage-1 batch of the cell on ``job['backend']`` in this process."""
    if job.get("core") is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(job["core"])})
    from deepstock.problem.generators import generate_dataset
    from deepstock.tuning import Job, Search, TuneOptions, plan_cell, run_jobs

    data = Path(job["tmp"]) / "s1.npz"
    if not data.exists():
        generate_dataset("s1").save(data)
    opts = TuneOptions(scale="paper", backend=job["backend"], executor="local", batch=job["k"],
                       quiet=True)
    plan = plan_cell("s1", "ddpg", "base", data, opts)
    asked = Search(plan).ask(job["k"])
    jobs = [Job(i + 1, dict(t.params)) for i, t in enumerate(asked)]
    t0 = time.perf_counter()
    rows = run_jobs(plan.spec, jobs)
    wall = time.perf_counter() - t0
    return {"backend": job["backend"], "k": job["k"], "wall_s": wall,
            "configs": [j.config for j in jobs],
            "rows": [{k: r.get(k) for k in ("seed", "val_loss", "test_loss", "iterations",
                                             "status", "error")} for r in rows]}


def run_child(job: dict) -> dict:
    env = {**os.environ, "DEEPSTOCK_JAX_CACHE": "off", "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--core", type=int, default=0)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--backends", nargs="+", default=["jax", "sb3"])
    ap.add_argument("--json", default=None)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    out = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        for backend in args.backends:
            r = run_child({"backend": backend, "k": args.k, "core": args.core, "tmp": tmp})
            out["runs"].append(r)
            steps = sum(row["iterations"] or 0 for row in r["rows"])
            print(f"{backend}: batch of {args.k} in {r['wall_s']:.1f} s ({steps} env steps); "
                  f"cell estimate {r['wall_s'] * TRAININGS_PER_CELL / args.k / 3600:.2f} h",
                  flush=True)
    by = {r["backend"]: r for r in out["runs"]}
    if {"jax", "sb3"} <= set(by):
        assert by["jax"]["configs"] == by["sb3"]["configs"], "both sides must train one batch"
        out["speedup"] = by["sb3"]["wall_s"] / by["jax"]["wall_s"]
        print(f"population tuner / sequential SB3 tuner: {out['speedup']:.1f}x faster")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
