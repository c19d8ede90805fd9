"""``deepstock data``: generate the synthetic dataset of a setting (spec §5) as one ``.npz`` file.

Examples::

    deepstock data s1 --out data/s1.npz
    deepstock data s3 --out data/s3_repo.npz --s3-test repo
    deepstock data all --out data/            # every setting, data/{setting}.npz
    deepstock data --list
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deepstock.errors import ConfigError, DataError
from deepstock.settings import SETTING_IDS, DataOptions


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "data",
        help="generate a synthetic dataset (.npz)",
        description="Generate the dataset of a setting (spec §5); see docs/data-format.md.",
    )
    p.add_argument("setting", nargs="?", help="setting id (see --list), or 'all'")
    p.add_argument("--out", help="output .npz file (a folder for 'all')")
    p.add_argument("--list", action="store_true", help="list the setting ids and exit")
    d = DataOptions()
    p.add_argument("--rng-mode", choices=["paper_exact", "fresh"], default=d.rng_mode)
    p.add_argument("--data-seed", type=int, default=d.data_seed,
                   help="seed (42 = the authors' datasets in paper_exact mode)")
    p.add_argument("--s3-test", choices=["shared", "repo"], default=d.s3_test)
    p.add_argument("--indep-feature", choices=["half_t", "t"], default=d.indep_feature)
    p.add_argument("--indep-lower", choices=["clip_trunc", "truncnorm"], default=d.indep_lower,
                   help="truncnorm needs --rng-mode fresh")
    p.add_argument("--iid-demand-days", choices=["odd", "all"], default=d.iid_demand_days)
    p.set_defaults(func=run)


def options_from_args(args: argparse.Namespace) -> DataOptions:
    return DataOptions(
        rng_mode=args.rng_mode,
        data_seed=args.data_seed,
        s3_test=args.s3_test,
        indep_feature=args.indep_feature,
        indep_lower=args.indep_lower,
        iid_demand_days=args.iid_demand_days,
    )


def run(args: argparse.Namespace) -> int:
    from deepstock import generators

    if args.list:
        for sid in SETTING_IDS:
            print(f"{sid}\t{generators.describe(sid)}")
        return 0
    if not args.setting:
        raise ConfigError("give a setting id (or 'all', or --list)")
    if not args.out:
        raise ConfigError("--out PATH is required")
    options = options_from_args(args)
    ids = list(SETTING_IDS) if args.setting == "all" else [args.setting]
    for sid in ids:
        dataset = generators.generate_dataset(sid, options)  # unknown id -> ConfigError
        path = Path(args.out) / f"{sid}.npz" if args.setting == "all" else Path(args.out)
        try:
            dataset.save(path)
        except OSError as exc:
            raise DataError(f"cannot write {path}: {exc.strerror or exc}") from None
        print(f"wrote {path} ({sid}: {dataset.demand.shape[0]} trajectories x {dataset.setting.T} days)")
    return 0
