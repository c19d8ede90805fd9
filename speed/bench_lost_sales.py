"""Speed and numbers of the exact lost-sales DP with lead time (Zipkin 2008) on one CPU core.

Solves the 32 settings ``ls_{poisson|geometric}_l{L}_p{p}`` (demand mean 5, h = 1, L = 1..4,
p ∈ {4, 9, 19, 39}): the optimal average cost by relative value iteration and the best base-stock
level by exact evaluation, and prints them next to Zipkin's Table 3 (Poisson only). Run::

    python speed/bench_lost_sales.py [--dist poisson|geometric|both] [--tol 1e-9] [--check-cap]

``--check-cap`` also re-solves every setting with cap + 5 and prints the largest cost change
(not timed in the table). ``--sizing`` simulates the optimal policy of eight cells on 1 000
seeded demand paths of 120 periods (the first 20 not counted, from an empty pipeline) and
prints how far the simulated average cost lies from the exact one, its standard error, and how
many paths of 100 counted periods put ±0.5 % at two standard errors (the test-set size the
lost-sales datasets need).

Target: all 32 settings in well under 10 minutes on one core.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np
import yaml

from deepstock.benchmarks.lost_sales_dp import (
    best_base_stock,
    cap_is_slack,
    demand_pmf,
    optimal_policy,
    simulate_policy,
)

PENALTIES = (4, 9, 19, 39)
LEADS = (1, 2, 3, 4)
ZIPKIN_TABLE3 = yaml.safe_load(
    (Path(__file__).resolve().parents[1] / "paper" / "literature" / "zipkin2008.yaml").read_text()
)["poisson_mean_5"]
ZIPKIN_OPTIMAL = {p: tuple(v) for p, v in ZIPKIN_TABLE3["optimal"].items()}
ZIPKIN_BASE_STOCK = {p: tuple(v) for p, v in ZIPKIN_TABLE3["best_base_stock"].items()}
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
    ap.add_argument("--sizing", action="store_true", help="test-set size for ±0.5 %% (only)")
    args = ap.parse_args()
    if args.sizing:
        _sizing()
        return
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


def _sizing(paths: int = 1000, periods: int = 120, warmup: int = 20) -> None:
    """The optimal policy simulated on seeded paths against its exact average cost."""
    print(f"{'setting':<22}{'exact':>9}{'simulated':>11}{'diff %':>8}{'se %':>7}{'paths':>8}")
    for dist, L, p in itertools.product(("poisson", "geometric"), (1, 2, 4), (4, 39)):
        pmf = demand_pmf(dist, 5.0)
        sol = optimal_policy(pmf, 1.0, p, L)
        rng = np.random.default_rng(0)
        D = rng.poisson(5.0, (paths, periods)) if dist == "poisson" else \
            rng.geometric(1 / 6, (paths, periods)) - 1
        per = simulate_policy(sol.order, D, L, 1.0, p, np.zeros(L, dtype=np.int64))[:, warmup:]
        per = per.mean(1)
        m, sd = per.mean(), per.std(ddof=1)
        need = int(np.ceil((2 * sd / m / 0.005) ** 2))
        print(f"{f'ls_{dist}_l{L}_p{p}':<22}{sol.average_cost:>9.4f}{m:>11.4f}"
              f"{100 * (m / sol.average_cost - 1):>+8.2f}{100 * sd / np.sqrt(paths) / m:>7.2f}"
              f"{need:>8}", flush=True)


if __name__ == "__main__":
    main()
