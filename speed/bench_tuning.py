"""The tuner's own overhead (issue 6): a tuned cell against the same trainings run bare.

    python speed/bench_tuning.py --executor local            # the default tiny cell
    python speed/bench_tuning.py --executor ray --num-samples 22
    python speed/bench_tuning.py --executor ray --address auto   # after `ray start --head`

Each repeat runs, in fresh processes, on Setting 1 DS-Base:

1. ``deepstock tune`` for one cell (wall time of the whole command: ``cell_s``);
2. a *bare* loop that imports the trainer, loads the dataset and trains exactly the cell's
   (configuration, seed) pairs with :func:`deepstock.training.train`, saving the stage-2 runs as
   the tuner does (``bare_s``).

``overhead_s = cell_s - bare_s`` is what the tuner adds — the search library's import, Ray's
start-up and shutdown, scheduling, journals, CSV/JSON outputs — while interpreter start-up, torch's
import and the trainings themselves count for both. The median over ``--repeat`` is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ENV = {**os.environ, "RAY_AUTH_MODE": "disabled", "OPENBLAS_NUM_THREADS": "1",
       "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def bare(jobs_file: str) -> None:
    """Train the listed (config, seed) pairs in one process: the baseline without a tuner."""
    from deepstock.hparams import decode_config
    from deepstock.problem.data import load_dataset
    from deepstock.training import save_run, train

    spec = json.loads(Path(jobs_file).read_text())
    data = load_dataset(spec["data"], expect_setting="s1")
    for job in spec["jobs"]:  # the winner's hparams = the cell's fixed ones + searched keys
        hp = {**spec["hparams"], **decode_config(job["config"])}
        result = train(data, "ds", "base", hp, job["seed"], device="cpu")
        if job["run_dir"]:
            save_run(result, job["run_dir"])


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def one_repeat(work: Path, data: Path, args: argparse.Namespace) -> dict:
    cell = work / "cell"
    shutil.rmtree(cell, ignore_errors=True)
    cmd = ["deepstock", "tune", "s1", "--method", "ds", "--reg", "base", "--scale", "tiny",
           "--executor", args.executor, "--device", "cpu", "--data", str(data), "--out", str(cell)]
    if args.num_samples:
        cmd += ["--num-samples", str(args.num_samples)]
    if args.address:
        cmd += ["--address", args.address]
    cell_s = timed(cmd)
    # journals: a fingerprint header line, then one row per training
    s1 = [json.loads(x) for x in (cell / "stage1.jsonl").read_text().splitlines()[1:]]
    s2 = [json.loads(x) for x in (cell / "stage2.jsonl").read_text().splitlines()[1:]]
    winner = json.loads((cell / "winner.json").read_text())
    jobs = [{"config": r["config"], "seed": r["seed"], "run_dir": ""} for r in s1]
    jobs += [{"config": r["config"], "seed": r["seed"],
              "run_dir": str(work / "bare" / f"{r['config_key']}_s{r['seed']}")} for r in s2]
    jobs_file = work / "jobs.json"
    jobs_file.write_text(json.dumps({"data": str(data), "hparams": winner["hparams"], "jobs": jobs}))
    bare_s = timed([sys.executable, __file__, "--bare", str(jobs_file)])
    return {"trials": len(jobs), "cell_s": cell_s, "bare_s": bare_s}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--executor", choices=["local", "ray"], default="local")
    ap.add_argument("--num-samples", type=int, default=None, help="stage-1 configurations "
                    "(default: the tiny scale's)")
    ap.add_argument("--address", default=None, help="Ray cluster address (ray executor)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bare", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare:
        return bare(args.bare)
    work = Path(tempfile.mkdtemp(prefix="bench_tuning_"))
    try:
        data = work / "s1.npz"
        subprocess.run(["deepstock", "data", "s1", "--out", str(data)], check=True, env=ENV,
                       stdout=subprocess.DEVNULL)
        runs = [one_repeat(work, data, args) for _ in range(args.repeat)]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cell = statistics.median(r["cell_s"] for r in runs)
    bare_s = statistics.median(r["bare_s"] for r in runs)
    over = statistics.median(r["cell_s"] - r["bare_s"] for r in runs)
    trials = runs[0]["trials"]
    print(json.dumps({
        "executor": args.executor, "address": args.address, "trials": trials,
        "cell_s": round(cell, 2), "bare_s": round(bare_s, 2), "overhead_s": round(over, 2),
        "overhead_per_trial_s": round(over / trials, 3), "overhead_share": round(over / cell, 3),
        "repeats": [{k: round(v, 2) for k, v in r.items()} for r in runs],
    }))


if __name__ == "__main__":
    main()
