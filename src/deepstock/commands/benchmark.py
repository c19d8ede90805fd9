"""``deepstock benchmark``: compute the benchmark π* of a setting and its losses (spec §6).

Examples::

    deepstock benchmark s1 --data data/s1.npz --out results/benchmarks/s1.json
    deepstock benchmark s1 --data data/s1.npz --out s1_true.json --method dp_true
    deepstock benchmark s4_n5_t7 --data data/s4_n5_t7.npz --out b.json --iid-z exact
    deepstock benchmark s2 --data data/s2.npz --out s2.json --method ar1_dp --delta 0.25

``auto`` = dp_empirical (INDEP), critical_fractile (IID), ar1_dp (AR(1)), ls_dp (lost sales: the
exact DP optimum, the best base stock and L* of the optimal policy). The AR(1) DP writes its
full S_t(d) tables to the .npz next to the JSON.
"""

from __future__ import annotations

import argparse
import json
import math

from deepstock.errors import ConfigError
from deepstock.problem.families import benchmark_methods


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "benchmark",
        help="compute the benchmark policy π* and its train/val/test losses",
        description="Benchmark π* of a setting (spec §6); losses via the shared simulator.",
    )
    p.add_argument("setting", help="setting id, e.g. s1, s2, s3, s4_n5_t7")
    p.add_argument("--data", required=True, help="dataset .npz of that setting")
    p.add_argument("--out", required=True, help="output .json (AR(1) DP tables go to .npz beside)")
    p.add_argument("--method", default="auto",
                   choices=benchmark_methods())
    p.add_argument("--distribution", default=None, choices=["empirical", "true"],
                   help="INDEP DP pmf: empirical (training data, default) or the true uniform one; "
                   "shorthand for --method dp_empirical / dp_true")
    p.add_argument("--check-convergence", action="store_true",
                   help="AR(1) DP: also solve at δ/2 and record the relative test-loss change "
                   "(spec §6.3 asks < 0.1 %%; costs ~8x the δ run)")
    p.add_argument("--iid-z", default="1.282", choices=["1.282", "exact"],
                   help="IID critical-fractile z: the authors' 1.282 or Φ⁻¹(0.9)")
    p.add_argument("--delta", type=float, default=0.25, help="AR(1) DP grid step δ")
    p.add_argument("--nsd", type=float, default=6.0,
                   help="AR(1) DP demand grid range in stationary standard deviations")
    p.add_argument("--loss-h", type=float, default=0.1, help="overage weight h (b = 1 - h)")
    p.add_argument("--ds-hparams", default=None,
                   help="ds_on_test: JSON object of DS hyper-parameter overrides")
    p.add_argument("--seed", type=int, default=45, help="ds_on_test: run seed")
    p.add_argument("--device", default="auto", help="ds_on_test: auto, cpu or cuda")
    p.add_argument("--quiet", action="store_true", help="do not print the summary line")
    p.set_defaults(func=run)


def check_options(args: argparse.Namespace) -> dict | None:
    """One-line ConfigError for a bad option; returns the parsed ``--ds-hparams``."""
    if not args.out.endswith(".json"):
        raise ConfigError(f"--out must name a .json file, got {args.out!r}")
    if not 0.0 < args.loss_h < 1.0:
        raise ConfigError(f"--loss-h must be in (0, 1), got {args.loss_h}")
    for name in ("delta", "nsd"):
        value = getattr(args, name)
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"--{name} must be a positive finite number, got {value}")
    if not args.ds_hparams:
        return None
    try:
        hparams = json.loads(args.ds_hparams)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--ds-hparams is not valid JSON: {exc.msg}") from None
    if not isinstance(hparams, dict):
        raise ConfigError("--ds-hparams must be a JSON object")
    return hparams


def run(args: argparse.Namespace) -> int:
    from deepstock.benchmarks import run_benchmark, write_benchmark
    from deepstock.benchmarks.run import check_benchmark_out, resolve_method
    from deepstock.journal import dataset_provenance
    from deepstock.problem.data import load_dataset

    hparams = check_options(args)
    dataset = load_dataset(args.data, expect_setting=args.setting)  # custom settings too
    setting = dataset.setting
    method = args.method
    if args.distribution is not None:
        if setting.family != "indep" or method not in ("auto", f"dp_{args.distribution}"):
            raise ConfigError("--distribution applies to the INDEP DP (s1) only")
        method = f"dp_{args.distribution}"
    # refuse a bad --out before any compute; the AR(1) DP also writes its tables beside it
    check_benchmark_out(args.out, tables=resolve_method(setting.family, method) == "ar1_dp")
    if args.check_convergence:
        if setting.family != "ar1":
            raise ConfigError("--check-convergence applies to the AR(1) DP (s2, s3) only")
        from deepstock.benchmarks import ar1_dp

        half = args.delta / 2  # the refinement's grid: refuse it now, not after the δ run
        rows = dataset.split_idx["test"]
        ar1_dp.check_dp_memory(ar1_dp.grid_sizes(dataset, rows, half, args.nsd), half, args.nsd)
    result = run_benchmark(
        dataset, method, iid_z=args.iid_z, delta=args.delta, nsd=args.nsd,
        loss=setting.loss(args.loss_h), ds_hparams=hparams, seed=args.seed, device=args.device,
    )
    if args.check_convergence:
        from deepstock.benchmarks.ar1_dp import ar1_refinement

        check = ar1_refinement(dataset, dataset.split_idx["test"], delta=args.delta,
                               nsd=args.nsd, loss=setting.loss(args.loss_h))
        result.options["convergence"] = check
        if not args.quiet:
            print(f"grid check: test loss {check['loss']:.5f} at δ={check['delta']} vs "
                  f"{check['loss_fine']:.5f} at δ={check['delta_fine']} "
                  f"({100 * check['rel_change']:.3f} %)")
    result.options["provenance"] = dataset_provenance(args.data)
    write_benchmark(result, args.out)
    if not args.quiet:
        ev = "" if result.expected_value is None else f" expected={result.expected_value:.4f}"
        print(
            f"{setting.id} {result.method}: train={result.losses['train']:.4f} "
            f"val={result.losses['val']:.4f} test={result.losses['test']:.4f}{ev} "
            f"({result.wall_s:.2f}s) -> {args.out}"
        )
    return 0
