"""Benchmarks π* (spec §6): INDEP DP, IID critical fractile, AR(1) DP, DS on the test set.

``run_benchmark(dataset, method)`` computes π* and its losses through the shared simulator;
``write_benchmark(result, out)`` writes the JSON (and an adjacent .npz for AR(1) level tables).
"""

from deepstock.benchmarks.ar1_dp import (
    Ar1DPSolution,
    Ar1SkuSolution,
    ar1_refinement,
    fresh_start_expected_loss,
    solve_ar1_rows,
    solve_ar1_sku,
)
from deepstock.benchmarks.critical_fractile import (
    critical_fractile_levels,
    expected_newsvendor_cost,
    fractile_z,
)
from deepstock.benchmarks.indep_dp import IndepDPSolution, indep_pmf, solve_indep_dp
from deepstock.benchmarks.run import (
    BenchmarkResult,
    resolve_method,
    run_benchmark,
    write_benchmark,
)

__all__ = [
    "Ar1DPSolution",
    "Ar1SkuSolution",
    "BenchmarkResult",
    "IndepDPSolution",
    "ar1_refinement",
    "critical_fractile_levels",
    "expected_newsvendor_cost",
    "fractile_z",
    "fresh_start_expected_loss",
    "indep_pmf",
    "resolve_method",
    "run_benchmark",
    "solve_ar1_rows",
    "solve_ar1_sku",
    "solve_indep_dp",
    "write_benchmark",
]
