"""Speed and Setting 1 fidelity of the RL stack (spec §7.1-7.4) on one CPU core.

Measures
- raw ``InventoryEnv.step`` decisions/s per regularization (direct construction, no gymnasium
  checker wrappers; target >= 50 000/s for None/Base);
- DDPG and PPO training throughput (env steps/s of ``learn``) and the share of that wall time
  spent in the batched validation (target < 5 %), on fixed-length runs (no early stop);
- with ``--full``: the complete runs (200 000-step cap, early stopping, best checkpoint) with the
  authors' Setting 1 winners (spec §8) at ``--seed`` (45), printed next to Table 6.

Run::

    python speed/bench_rl.py [--steps 4096] [--full] [--methods ddpg ppo] [--regs base none]
                                  [--seed 45] [--json out.json]

Table 6 test losses (means of 3 repetitions): DDPG-Base 0.9356, DDPG-None 0.9443,
PPO-Base 0.8966, PPO-None 0.9104; L* = 0.8670.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

from deepstock.hparams import resolve_hparams  # noqa: E402
from deepstock.problem.generators import generate_dataset  # noqa: E402
from deepstock.training.envs import InventoryEnv  # noqa: E402
from deepstock.training.sb3 import train_ddpg, train_ppo  # noqa: E402

TABLE6 = {("ddpg", "base"): 0.9356, ("ddpg", "none"): 0.9443, ("ppo", "base"): 0.8966,
          ("ppo", "none"): 0.9104}
L_STAR = 0.8670
TRAINERS = {"ddpg": train_ddpg, "ppo": train_ppo}


def env_speed(ds, reg: str, n: int = 200_000) -> float:
    env = InventoryEnv(ds, "train", reg)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.uniform(0, env.action_space.high, size=(1024, *env.action_space.shape))
    t0 = time.perf_counter()
    for k in range(n):
        _, _, term, _, _ = env.step(actions[k & 1023])
        if term:
            env.reset()
    return n / (time.perf_counter() - t0)


def run(method: str, reg: str, seed: int, overrides: dict | None = None) -> dict:
    ds = generate_dataset("s1")
    hp = resolve_hparams(method, "s1", reg, overrides or {})
    r = TRAINERS[method](ds, reg, hp, seed)
    return {
        "method": method, "reg": reg, "seed": seed, "steps": r.iterations,
        "wall_s": round(r.wall_s, 2), "steps_per_s": round(r.extras["steps_per_s"], 1),
        "eval_share": round(r.extras["eval_share"], 4), "n_evals": r.extras["n_evals"],
        "best_step": r.extras["best_step"], "stopped_early": r.extras["stopped_early"],
        "train_loss": round(r.train_loss, 4), "val_loss": round(r.val_loss, 4),
        "test_loss": round(r.test_loss, 4),
        "table6_test": TABLE6.get((method, reg)),
        "test_gap_pct": round(100 * (r.test_loss - L_STAR) / L_STAR, 2),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4096, help="length of the throughput runs")
    ap.add_argument("--env-steps", type=int, default=200_000)
    ap.add_argument("--full", action="store_true", help="also the full Setting 1 runs")
    ap.add_argument("--methods", nargs="+", default=["ddpg", "ppo"])
    ap.add_argument("--regs", nargs="+", default=["base", "none"])
    ap.add_argument("--seed", type=int, default=45)
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    out: dict = {"env_steps_per_s": {}, "throughput": [], "full": []}
    ds = generate_dataset("s1")
    if not args.skip_throughput:
        for reg in ("none", "base", "coeff", "both"):
            sps = env_speed(ds, reg, args.env_steps)
            out["env_steps_per_s"][reg] = round(sps)
            print(f"env.step {reg:<5}: {sps:>9,.0f} decisions/s"
                  + ("   (target >= 50,000)" if reg in ("none", "base") else ""))
        for method in args.methods:
            # fixed length: no early stop (patience never reached), the winner's eval_freq
            res = run(method, "base", args.seed,
                      {"total_steps": args.steps, "patience_evals": 10**6})
            out["throughput"].append(res)
            print(f"{method}-base {res['steps']} steps: {res['steps_per_s']:.0f} env steps/s, "
                  f"eval share {100 * res['eval_share']:.2f}% ({res['n_evals']} evals; "
                  "target < 5%)")
    if args.full:
        for method in args.methods:
            for reg in args.regs:
                res = run(method, reg, args.seed)
                out["full"].append(res)
                print(f"{method}-{reg} seed {args.seed}: test {res['test_loss']:.4f} "
                      f"(Table 6 {res['table6_test']}), val {res['val_loss']:.4f}, "
                      f"train {res['train_loss']:.4f}, gap {res['test_gap_pct']:+.2f}%, "
                      f"{res['steps']} steps, best at {res['best_step']}, {res['wall_s']:.0f}s, "
                      f"{res['steps_per_s']:.0f} steps/s, eval {100 * res['eval_share']:.2f}%",
                      flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
