"""JAX backend against the SB3 backend on one CPU core, measured side by side in one run.

Every measurement runs in a fresh process pinned to one core (``--core``), one after the other:

- ``steps``: env-steps/s of a fixed-length training (no early stop; validation included, compile
  excluded), Setting 1 Base with the authors' winners, for DDPG and PPO on both backends;
- ``whole``: a complete early-stopped training (authors' winners, full budget, each seed of
  ``--seeds``, default 42): wall time of the process's training call including compilation, JAX
  with a cold persistent cache (an empty folder) and with a warm one (the same folder, a new
  process), SB3 once; with several seeds also the totals over them (where a run stops depends
  on its seed and backend, so one seed's ratio also measures where the two runs stopped);
- ``population``: total agent-steps/s of 25 agents in one program (``lax.map`` and ``vmap``);
- compile seconds per shape (the cold runs of ``whole`` and of a second network size).

Run::

    python speed/bench_jax.py [--quick] [--json speed/bench_jax.json]
    python speed/bench_jax.py --only whole:sb3 whole:jax --methods ppo --seeds 42 43 44 45 46

With ``--gpu`` it instead measures total agent-steps/s of K = 25, 250 and 2 500 agents of each
algorithm on ``--device cuda`` (a JAX CUDA build; about 10 minutes), and prints a table for
docs/jax-backend.md.
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


def child(job: dict) -> dict:
    """One measurement, in this (fresh) process."""
    if job.get("core") is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(job["core"])})
    from deepstock.hparams import resolve_hparams
    from deepstock.problem.generators import generate_dataset
    from deepstock.training.backends import load_trainer

    ds = generate_dataset("s1")
    method, backend, kind = job["method"], job["backend"], job["kind"]
    over = dict(job.get("over", {}))
    if kind in ("steps", "population"):  # fixed length: no stopping before the cap
        over.update(total_steps=job["steps"], patience_evals=10**6)
    hp = resolve_hparams(method, ds.setting, "base", overrides=over)
    t0 = time.perf_counter()
    trainer = load_trainer(method, backend)
    if kind == "population":
        k = int(job["agents"])
        results = trainer.population(ds, "base", [hp] * k, list(range(k)),
                                     device=job.get("device", "cpu"),
                                     population=job.get("mode", "auto"))
    else:
        results = [trainer.train(ds, "base", hp, int(job.get("seed", 42)), device="cpu")]
    wall = time.perf_counter() - t0
    r = results[0]
    learn = r.extras.get("learn_seconds", wall)
    return {**job, "wall_s": wall, "learn_s": learn, "steps_done": r.iterations,
            "agent_steps_per_s": sum(x.iterations for x in results) / learn,
            "compile_s": r.extras.get("compile_seconds"), "test_loss": r.test_loss}


def run(job: dict, cache: str | None) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "DEEPSTOCK_JAX_CACHE": cache or "off"}
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(job)], env=env,
                         capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise SystemExit(f"{job}: failed\n{out.stderr[-2000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}),
          flush=True)
    return result


def cpu_jobs(quick: bool, core: int, seeds: list[int] | None = None,
             methods: tuple[str, ...] = ("ddpg", "ppo")) -> list[tuple[dict, str]]:
    n = {"sb3": {"ddpg": 3000 if quick else 6000, "ppo": 8192 if quick else 16384},
         "jax": {"ddpg": 10000 if quick else 30000, "ppo": 32768 if quick else 65536}}
    jobs: list[tuple[dict, str]] = []
    for method in methods:
        for backend in ("sb3", "jax"):
            jobs.append(({"kind": "steps", "method": method, "backend": backend,
                          "steps": n[backend][method], "core": core}, "warm"))
    for method in methods:
        for seed in seeds or [42]:
            whole = {"kind": "whole", "method": method, "core": core, "seed": seed}
            jobs.append(({**whole, "backend": "sb3"}, ""))
            jobs.append(({**whole, "backend": "jax", "cache": "cold"}, "cold"))
            jobs.append(({**whole, "backend": "jax", "cache": "warm"}, "warm-after-cold"))
    for method, steps in (("ddpg", 2000 if quick else 4000), ("ppo", 4096 if quick else 8192)):
        if method not in methods:
            continue
        for mode in ("sequential", "vmap"):
            jobs.append(({"kind": "population", "method": method, "backend": "jax",
                          "agents": 25, "mode": mode, "steps": steps, "core": core}, "warm"))
    wide = {"ddpg": {"net_arch": {"pi": [32, 32], "qf": [32, 32]}},
            "ppo": {"net_arch": {"pi": [64, 64], "vf": [64, 64]}}}
    for method in methods:
        jobs.append(({"kind": "steps", "method": method, "backend": "jax", "steps": 2048,
                      "over": wide[method], "core": core, "cache": "cold"}, "cold"))
    return jobs


def gpu_jobs() -> list[tuple[dict, str]]:
    return [({"kind": "population", "method": m, "backend": "jax", "agents": k, "mode": "vmap",
              "steps": steps, "device": "cuda"}, "warm")
            for m, steps in (("ddpg", 4096), ("ppo", 16384)) for k in (25, 250, 2500)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--gpu", action="store_true")
    p.add_argument("--core", type=int, default=0)
    p.add_argument("--json")
    p.add_argument("--seeds", nargs="+", type=int, default=[42], help="seeds of the whole runs")
    p.add_argument("--methods", nargs="+", choices=["ddpg", "ppo"], default=["ddpg", "ppo"])
    p.add_argument("--only", nargs="+", metavar="KIND:BACKEND",
                   help="run only these measurements, e.g. whole:jax steps:sb3")
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        warm = str(Path(tmp) / "warm")
        for job, cache in (gpu_jobs() if args.gpu else
                           cpu_jobs(args.quick, args.core, args.seeds, tuple(args.methods))):
            if args.only and f"{job['kind']}:{job['backend']}" not in args.only:
                continue
            folder = {"warm": warm, "": None}.get(cache)
            if cache == "cold":
                folder = str(Path(tmp) / f"cold-{job['method']}-{len(results)}")
            elif cache == "warm-after-cold":
                folder = str(Path(tmp) / f"cold-{job['method']}-{len(results) - 1}")
            results.append(run(job, folder))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    summarize(results)


def summarize(results: list[dict]) -> None:
    def get(kind, method, backend, **kw):
        for r in results:
            if r["kind"] == kind and r["method"] == method and r["backend"] == backend and all(
                    r.get(k) == v for k, v in kw.items()):
                return r
        return None

    for method in ("ddpg", "ppo"):
        sb3, jx = get("steps", method, "sb3"), get("steps", method, "jax", over=None)
        if sb3 and jx:
            print(f"{method}: env-steps/s sb3 {sb3['agent_steps_per_s']:.0f}, jax "
                  f"{jx['agent_steps_per_s']:.0f} ({jx['agent_steps_per_s'] / sb3['agent_steps_per_s']:.1f}x)")
        seeds = sorted({r["seed"] for r in results if r["kind"] == "whole" and r["method"] == method})
        totals = {"sb3": [0.0, 0], "cold": [0.0, 0], "warm": [0.0, 0]}
        for seed in seeds:
            w = get("whole", method, "sb3", seed=seed)
            for cache in ("cold", "warm"):
                j = get("whole", method, "jax", cache=cache, seed=seed)
                if w and j:
                    print(f"{method} seed {seed}: whole early-stopped run sb3 {w['wall_s']:.1f} s "
                          f"({w['steps_done']} steps), jax {cache} {j['wall_s']:.1f} s "
                          f"({j['steps_done']} steps, compile {j['compile_s']:.1f} s): "
                          f"{w['wall_s'] / j['wall_s']:.1f}x")
                    totals[cache][0] += j["wall_s"]
                    totals[cache][1] += j["steps_done"]
            if w:
                totals["sb3"][0] += w["wall_s"]
                totals["sb3"][1] += w["steps_done"]
        if len(seeds) > 1 and totals["sb3"][0] and totals["cold"][0]:
            (ws, ns), (cs, cn), hs = totals["sb3"], totals["cold"], totals["warm"][0]
            print(f"{method} seeds {seeds}: total sb3 {ws:.1f} s ({ns} steps), jax cold {cs:.1f} s"
                  f" / warm {hs:.1f} s ({cn} steps): {ws / cs:.1f}x cold, {ws / hs:.1f}x warm")
        for mode in ("sequential", "vmap"):
            pop = get("population", method, "jax", mode=mode)
            if pop:
                print(f"{method}: 25 agents ({mode}) {pop['agent_steps_per_s']:.0f} agent-steps/s")


if __name__ == "__main__":
    main()
