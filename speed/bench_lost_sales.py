"""Speed and numbers of the exact lost-sales DP with lead time (Zipkin 2008) on one CPU core.

Solves the 32 settings ``ls_{poisson|geometric}_l{L}_p{p}`` (demand mean 5, h = 1, L = 1..4,
p ∈ {4, 9, 19, 39}): the optimal average cost by relative value iteration and the best base-stock
level by exact evaluation, and prints them next to Zipkin's Table 3 (Poisson only). Run::

    python speed/bench_lost_sales.py [--dist poisson|geometric|both] [--tol 1e-9] [--check-cap]

``--check-cap`` also re-solves every setting with cap + 5 and prints the largest cost change
(not timed in the table).

Target: all 32 settings in well under 10 minutes on one core.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import itertools  # noqa: E402
import time  # noqa: E402

from deepstock.benchmarks.lost_sales_dp import (  # noqa: E402
    best_base_stock,
    cap_is_slack,
    demand_pmf,
    optimal_policy,
)

PENALTIES = (4, 9, 19, 39)
LEADS = (1, 2, 3, 4)
ZIPKIN_OPTIMAL = {4: (4.04, 4.40, 4.60, 4.73), 9: (5.44, 6.09, 6.53, 6.84),
                  19: (6.68, 7.66, 8.36, 8.89), 39: (7.84, 9.11, 10.04, 10.79)}
ZIPKIN_BASE_STOCK = {4: (4.16, 4.64, 4.98, 5.20), 9: (5.55, 6.32, 6.86, 7.27),
                     19: (6.73, 7.84, 8.60, 9.23), 39: (7.86, 9.19, 10.22, 11.06)}
HEADER = (f"{'setting':<22}{'optimal':>9}{'Zipkin':>8}{'S':>4}{'base stock':>12}{'Zipkin':>8}"
          f"{'gap %':>7}{'cap':>5}{'max pos':>8}{'states':>9}{'iters':>7}{'seconds':>9}")


def _row(dist: str, L: int, p: int, tol: float) -> float:
    t0 = time.perf_counter()
    sol = optimal_policy(demand_pmf(dist, 5.0), 1.0, p, L, tol=tol)
    res = best_base_stock(demand_pmf(dist, 5.0), 1.0, p, L, tol=tol)
    wall = time.perf_counter() - t0
    zo = f"{ZIPKIN_OPTIMAL[p][L - 1]:.2f}" if dist == "poisson" else "-"
    zb = f"{ZIPKIN_BASE_STOCK[p][L - 1]:.2f}" if dist == "poisson" else "-"
    gap = 100 * (res.average_cost - sol.average_cost) / sol.average_cost
    print(f"{f'ls_{dist}_l{L}_p{p}':<22}{sol.average_cost:>9.4f}{zo:>8}{res.level:>4}"
          f"{res.average_cost:>12.4f}{zb:>8}{gap:>7.2f}{sol.cap:>5}{sol.max_position:>8}"
          f"{sol.states.shape[0]:>9}{sol.iterations:>7}{wall:>9.2f}", flush=True)
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dist", choices=("poisson", "geometric", "both"), default="both")
    ap.add_argument("--tol", type=float, default=1e-9)
    ap.add_argument("--check-cap", action="store_true", help="re-solve with cap + 5 (slow)")
    args = ap.parse_args()
    dists = ("poisson", "geometric") if args.dist == "both" else (args.dist,)
    print(HEADER)
    t0 = time.perf_counter()
    n = 0
    for dist, L, p in itertools.product(dists, LEADS, PENALTIES):
        _row(dist, L, p, args.tol)
        n += 1
    print(f"{n} settings in {time.perf_counter() - t0:.1f}s on one core "
          "(optimal + best base stock per setting; target well under 600s)")
    if args.check_cap:
        _check_caps(dists)


def _check_caps(dists: tuple[str, ...]) -> None:
    """Largest |g(cap + 5) − g(cap)| (tol 1e-11) and whether any max position reaches the cap."""
    worst, binds = 0.0, []
    for dist, L, p in itertools.product(dists, LEADS, PENALTIES):
        first, raised = cap_is_slack(demand_pmf(dist, 5.0), 1.0, p, L, extra=5)
        worst = max(worst, abs(raised.average_cost - first.average_cost))
        if first.binds or first.max_position > first.backorder_level:
            binds.append(f"ls_{dist}_l{L}_p{p}")
    print(f"cap + 5: largest cost change {worst:.2e}; max position above S̄ or at the cap in "
          f"{binds or 'no setting'}")


if __name__ == "__main__":
    main()
