"""Speed of the shared simulator (spec §2-3) on one core.

Measures SKU-days/s of the batched numpy simulator under a base-stock policy, the torch forward
and forward+backward speed of the same code, and the time to evaluate a base-stock policy on all
of Setting 1 (skipped when ``deepstock.problem.generators`` is absent). Run::

    python speed/bench_simulator.py --n 8192 --T 31 --repeat 20

Targets: >= 20 million SKU-days/s (numpy) and < 10 ms for the Setting 1 evaluation.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from deepstock.problem.dynamics import Observation, simulate  # noqa: E402
from deepstock.problem.evaluation import base_stock_policy, evaluate_all, evaluate_policy  # noqa: E402
from deepstock.problem.losses import trajectory_loss  # noqa: E402

NUMPY_TARGET = 20e6  # SKU-days/s
S1_TARGET = 10e-3  # seconds


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def best_time(fn: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """(best, median) wall time of ``fn`` over ``repeat`` calls after two warm-up calls, and the
    minor page faults per call (fresh memory from the OS, expensive in VMs)."""
    fn()
    fn()
    times = []
    f0 = _minor_faults()
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times)), (_minor_faults() - f0) / repeat


def bench_numpy(demand: np.ndarray, R: int, L: int, repeat: int) -> dict[str, float]:
    policy = base_stock_policy(40.0, 100.0)
    best, med, flt = best_time(lambda: simulate(demand, policy, R=R, L=L), repeat)
    return {"best_s": best, "median_s": med, "faults": flt, "sku_days_per_s": demand.size / best}


def bench_numpy_loss(demand: np.ndarray, R: int, L: int, repeat: int) -> dict[str, float]:
    policy = base_stock_policy(40.0, 100.0)

    def run() -> float:
        return float(trajectory_loss(simulate(demand, policy, R=R, L=L)).mean())

    best, med, flt = best_time(run, repeat)
    return {"best_s": best, "median_s": med, "faults": flt, "sku_days_per_s": demand.size / best}


def bench_torch(demand: np.ndarray, R: int, L: int, repeat: int, backward: bool) -> dict[str, float]:
    d = torch.as_tensor(demand)
    level = torch.full((demand.shape[0],), 40.0, dtype=d.dtype, requires_grad=backward)

    def policy(obs: Observation) -> torch.Tensor:
        return (level - obs.position).clamp(0.0, 100.0)

    def run() -> None:
        if backward:
            trajectory_loss(simulate(d, policy, R=R, L=L)).mean().backward()
            level.grad = None
        else:
            with torch.no_grad():
                trajectory_loss(simulate(d, policy, R=R, L=L))

    best, med, flt = best_time(run, repeat)
    return {"best_s": best, "median_s": med, "faults": flt, "sku_days_per_s": demand.size / best}


def bench_setting1(repeat: int) -> dict[str, float] | None:
    try:
        from deepstock.problem.generators import generate_dataset
    except ImportError:
        return None
    ds = generate_dataset("s1")
    policy = base_stock_policy(20.0, ds.setting.M)
    best_all, med_all, _ = best_time(lambda: evaluate_all(policy, ds), repeat)
    best_test, med_test, _ = best_time(lambda: evaluate_policy(policy, ds, "test"), repeat)
    return {
        "n_sku": float(ds.demand.shape[0]),
        "evaluate_all_best_s": best_all,
        "evaluate_all_median_s": med_all,
        "evaluate_test_best_s": best_test,
        "evaluate_test_median_s": med_test,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8192, help="trajectories in the batch")
    ap.add_argument("--T", type=int, default=31, help="days per trajectory")
    ap.add_argument("--R", type=int, default=2)
    ap.add_argument("--L", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=20, help="timed calls per measurement")
    ap.add_argument("--small-n", type=int, default=10, help="DS-sized batch for torch (S1 train)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    demand = rng.integers(5, 20, size=(args.n, args.T)).astype(np.float64)
    print(f"batch n={args.n} T={args.T} R={args.R} L={args.L}, repeat={args.repeat}, 1 thread")

    def show(name: str, r: dict[str, float]) -> None:
        print(
            f"{name:<28} best {1e3 * r['best_s']:8.2f} ms  median {1e3 * r['median_s']:8.2f} ms"
            f"  {r['sku_days_per_s'] / 1e6:8.2f} M SKU-days/s  {r['faults']:6.0f} page faults/call"
        )

    r_np = bench_numpy(demand, args.R, args.L, args.repeat)
    show("numpy simulate", r_np)
    show("numpy simulate + loss", bench_numpy_loss(demand, args.R, args.L, args.repeat))
    for dtype in (torch.float64, torch.float32):
        dem = demand.astype(np.float64 if dtype == torch.float64 else np.float32)
        tag = "f64" if dtype == torch.float64 else "f32"
        show(f"torch {tag} forward + loss", bench_torch(dem, args.R, args.L, args.repeat, False))
        show(f"torch {tag} forward + backward", bench_torch(dem, args.R, args.L, args.repeat, True))
    small = demand[: args.small_n]
    show(f"torch f64 n={args.small_n} fwd + loss", bench_torch(small, args.R, args.L, args.repeat, False))
    show(f"torch f64 n={args.small_n} fwd + bwd", bench_torch(small, args.R, args.L, args.repeat, True))
    show(f"numpy n={args.small_n} simulate", bench_numpy(small, args.R, args.L, args.repeat))
    ok_np = r_np["sku_days_per_s"] >= NUMPY_TARGET
    print(f"numpy target >= {NUMPY_TARGET / 1e6:.0f} M SKU-days/s: {'met' if ok_np else 'MISSED'}")

    s1 = bench_setting1(args.repeat)
    if s1 is None:
        print("setting 1 evaluation: skipped (deepstock.problem.generators not available)")
    else:
        ok = s1["evaluate_all_best_s"] < S1_TARGET
        print(
            f"setting 1 ({int(s1['n_sku'])} SKUs) evaluate_all best "
            f"{1e3 * s1['evaluate_all_best_s']:.2f} ms (median {1e3 * s1['evaluate_all_median_s']:.2f}),"
            f" test split only best {1e3 * s1['evaluate_test_best_s']:.2f} ms;"
            f" target < {1e3 * S1_TARGET:.0f} ms: {'met' if ok else 'MISSED'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
