"""Does an unpinned JAX training round differently from a pinned one on this CPU? (diagnostic)

deepstock pins every JAX training process to one core (deepstock.training.jaxrt), so a training gives the
same bits on one and on many visible cores; ``tests/test_jax_runtime.py`` holds that promise.
Without the pin, XLA may split work over the visible cores and round differently — on some CPUs
it does (PPO-Base, Setting 1, seed 42: test 0.8926 against 0.8942 at the full budget on the
machine where the pin was introduced), on others the bits happen to agree. This script reports
which is the case here; it asserts nothing.

    python speed/jax_core_pin.py [--steps 4096]

It trains the same short PPO-Base run three times in fresh processes: on one visible core, on
every visible core with the pin (``DEEPSTOCK_JAX_CORE=auto``), and on every visible core without
it (``off``), and prints the test losses and whether each equals the one-core run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import json, os, sys
from tests.test_sb3 import hp, make_dataset
from deepstock.training import jax_ppo
steps = int(sys.argv[1])
over = {"total_steps": steps, "n_steps": 1024, "batch_size": 64, "eval_freq": 1024}
r = jax_ppo.train_ppo(make_dataset(1), "base", hp("ppo", **over), 42)
print(json.dumps({"cores": len(os.sched_getaffinity(0)), "test": r.test_loss,
                  "curve": r.curve["mean_return"].tolist()}))
"""


def probe(cache: Path, steps: int, pin: str, cores: set[int]) -> dict:
    env = {**os.environ, "DEEPSTOCK_JAX_CORE": pin, "DEEPSTOCK_JAX_CACHE": str(cache),
           "PYTHONPATH": str(ROOT)}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(var, None)
    out = subprocess.run([sys.executable, "-c", PROBE, str(steps)], env=env, check=True,
                         capture_output=True, text=True,
                         preexec_fn=lambda: os.sched_setaffinity(0, cores)).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=4096)
    args = ap.parse_args()
    allowed = os.sched_getaffinity(0)
    if len(allowed) < 2:
        sys.exit("needs at least two visible cores")
    with tempfile.TemporaryDirectory() as tmp:
        runs = {"one core": probe(Path(tmp), args.steps, "auto", {min(allowed)}),
                "all cores, pinned": probe(Path(tmp), args.steps, "auto", allowed),
                "all cores, unpinned": probe(Path(tmp), args.steps, "off", allowed)}
    ref = runs["one core"]
    print(f"CPU: {platform.processor() or platform.machine()}, {len(allowed)} visible cores")
    for name, r in runs.items():
        same = r["test"] == ref["test"] and r["curve"] == ref["curve"]
        print(f"{name:22s} cores used {r['cores']:2d}  test {r['test']:.12f}  "
              f"{'same bits as one core' if same else 'DIFFERENT bits'}")


if __name__ == "__main__":
    main()
