"""Speed and numbers of the benchmarks π* (spec §6) on one CPU core.

Times the Setting 1 DP (both pmfs), the 15 IID critical-fractile cells (both z) and the exact
AR(1) DP on all 120 SKUs of Setting 2, and prints each result next to its spec fixture. Run::

    python speed/bench_optimal.py [--delta 0.25] [--skip-ar1] [--refine]

Targets: s1 DP < 0.2 s; all 15 IID cells < 1 s together; s2 AR(1) DP (120 SKUs, δ = 0.25) < 60 s.
Dataset generation is not timed.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

from deepstock.benchmarks import ar1_refinement, run_benchmark  # noqa: E402
from deepstock.problem.generators import generate_dataset  # noqa: E402
from deepstock.registry import IID_N, IID_T, iid_setting_id  # noqa: E402

S1_FIXTURE = {"dp_empirical": (0.8225, 0.7618, 0.8789, 0.8670),
              "dp_true": (0.8543, 0.7761, 0.8789, 0.8592)}
S2_FIXTURE = {0.25: (2.3244, 2.3278, 2.1188, 2.2503), 0.5: (None, None, None, 2.2510),
              1.0: (None, None, None, 2.2516)}
TARGETS = {"s1": 0.2, "iid": 1.0, "s2": 60.0}


def _line(name, res, want, wall, target):
    got = (res.expected_value, res.losses["train"], res.losses["val"], res.losses["test"])
    fmt = lambda v: "   -   " if v is None else f"{v:.4f}"  # noqa: E731
    print(f"{name:<22} expected/train/val/test = {' '.join(fmt(v) for v in got)}"
          f"   spec {' '.join(fmt(v) for v in want)}   {wall:.3f}s (target < {target:g}s)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--delta", type=float, default=0.25)
    ap.add_argument("--skip-ar1", action="store_true")
    ap.add_argument("--refine", action="store_true", help="also δ -> δ/2 on the s2 test SKUs")
    args = ap.parse_args()

    s1 = generate_dataset("s1")
    for method, want in S1_FIXTURE.items():
        t0 = time.perf_counter()
        res = run_benchmark(s1, method)
        _line(f"s1 {method}", res, want, time.perf_counter() - t0, TARGETS["s1"])
        print(f"{'':<22} S_t = {res.policy['levels']}")

    cells = {(n, t): generate_dataset(iid_setting_id(n, t)) for n in IID_N for t in IID_T}
    for iid_z in ("1.282", "exact"):
        t0 = time.perf_counter()
        out = {k: run_benchmark(ds, "critical_fractile", iid_z=iid_z).losses["test"]
               for k, ds in cells.items()}
        wall = time.perf_counter() - t0
        print(f"IID z={iid_z}: {len(cells)} cells in {wall:.3f}s (target < {TARGETS['iid']:g}s)")
        for n in IID_N:
            print(f"  N={n:<3}" + "  ".join(f"T={t}: {out[(n, t)]:.5f}" for t in IID_T))

    if args.skip_ar1:
        return
    s2 = generate_dataset("s2")
    t0 = time.perf_counter()
    res = run_benchmark(s2, "ar1_dp", delta=args.delta)
    wall = time.perf_counter() - t0
    want = S2_FIXTURE.get(args.delta, (None,) * 4)
    _line(f"s2 ar1_dp δ={args.delta:g}", res, want, wall, TARGETS["s2"])
    print(f"{'':<22} SKU 1 S_2(d=0,5,..,20) = {res.policy['first_sku']['levels_by_day']['2']}")
    if args.refine:
        t0 = time.perf_counter()
        conv = ar1_refinement(s2, s2.split_idx["test"], delta=args.delta)
        print(f"refinement δ={conv['delta']:g} -> {conv['delta_fine']:g}: {conv['loss']:.4f} -> "
              f"{conv['loss_fine']:.4f}, relative change {100 * conv['rel_change']:.3f}% "
              f"({time.perf_counter() - t0:.1f}s)")


if __name__ == "__main__":
    main()
