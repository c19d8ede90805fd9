"""Speed of DS training (spec §7.5) on Setting 1, one CPU core (or ``--device cuda``).

Measures ms/epoch (one epoch = the mini-batch pass over the 10 training trajectories plus the
no-grad train and val evaluations) on a fixed-length run, and the wall time and losses of the full
DS-Base (and DS-None) run with the authors' Setting 1 winner at seed 45. Run::

    python speed/bench_ds.py [--device cpu] [--epochs 200] [--seed 45]

Targets (CPU, one thread): < 20 ms/epoch (batch 5, [64, 64]) and < 30 s for the full DS-Base run.
Paper Table 6 (means of 3 repetitions): DS-Base test 1.0959, DS-None test 1.2540.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

from deepstock.problem.generators import generate_dataset  # noqa: E402
from deepstock.training import train  # noqa: E402

EPOCH_TARGET_MS = 20.0
RUN_TARGET_S = 30.0
PAPER_TEST = {"base": 1.0959, "none": 1.2540}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--epochs", type=int, default=200, help="length of the fixed timing run")
    ap.add_argument("--seed", type=int, default=45)
    ap.add_argument("--regs", nargs="+", default=["base", "none"])
    args = ap.parse_args(argv)

    ds = generate_dataset("s1")
    fixed = {"epochs": args.epochs, "patience_epochs": args.epochs}
    train(ds, "ds", "base", {"epochs": 2}, args.seed, device=args.device)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    r = train(ds, "ds", "base", fixed, args.seed, device=args.device)
    ms = 1000 * (time.perf_counter() - t0) / r.iterations
    cpu_ms = 1000 * (time.process_time() - c0) / r.iterations
    ok = "OK" if ms < EPOCH_TARGET_MS else "SLOW"
    print(f"DS-Base s1 [64,64] bs5 on {r.device}: {ms:.2f} ms/epoch wall, {cpu_ms:.2f} ms/epoch "
          f"CPU, over {r.iterations} epochs (target < {EPOCH_TARGET_MS:.0f}) {ok}")

    for reg in args.regs:
        t0, c0 = time.perf_counter(), time.process_time()
        r = train(ds, "ds", reg, {}, args.seed, device=args.device)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        gap = 100 * (r.test_loss - PAPER_TEST[reg]) / PAPER_TEST[reg]
        ok = "OK" if wall < RUN_TARGET_S else "SLOW"
        print(f"DS-{reg} s1 seed {args.seed}: {r.iterations} epochs, {wall:.1f} s wall ({cpu:.1f} s CPU) "
              f"({1000 * wall / r.iterations:.1f} ms/epoch) {ok}; train {r.train_loss:.4f} "
              f"val {r.val_loss:.4f} test {r.test_loss:.4f} (paper {PAPER_TEST[reg]:.4f}, "
              f"{gap:+.1f}%)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
