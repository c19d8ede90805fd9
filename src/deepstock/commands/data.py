"""``deepstock data``: generate the synthetic dataset of a setting (spec §5) as one ``.npz`` file.

Examples::

    deepstock data s1 --out data/s1.npz
    deepstock data s3 --out data/s3_repo.npz --s3-test repo
    deepstock data all --out data/            # every setting, data/{setting}.npz
    deepstock data --list
    deepstock data --setting-file my_setting.yaml --out data/my.npz   # custom setting

Data flags given on the command line override the ``options`` of a setting file.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path

from deepstock.errors import ConfigError, DataError
from deepstock.problem.families import setting_ids
from deepstock.problem.settings import DataOptions, load_setting_file


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "data",
        help="generate a synthetic dataset (.npz)",
        description="Generate the dataset of a setting (spec §5); see docs/data-format.md.",
    )
    p.add_argument("setting", nargs="?", help="setting id (see --list), or 'all'")
    p.add_argument("--out", help="output .npz file (a folder for 'all')")
    p.add_argument("--list", action="store_true", help="list the setting ids and exit")
    p.add_argument("--setting-file", metavar="FILE.yaml",
                   help="custom setting (docs/data-format.md, 'Custom settings') instead of an id")
    d = DataOptions()  # defaults None: only flags given explicitly override a setting file
    p.add_argument("--rng-mode", choices=["paper_exact", "fresh"], default=None,
                   help=f"default {d.rng_mode} (fresh for --setting-file)")
    p.add_argument("--data-seed", type=int, default=None,
                   help=f"seed, default {d.data_seed} (42 = the authors' datasets in paper_exact mode)")
    p.add_argument("--s3-test", choices=["shared", "repo"], default=None)
    p.add_argument("--indep-feature", choices=["half_t", "t"], default=None)
    p.add_argument("--indep-lower", choices=["clip_trunc", "truncnorm"], default=None,
                   help="truncnorm needs --rng-mode fresh")
    p.add_argument("--iid-demand-days", choices=["odd", "all"], default=None)
    p.set_defaults(func=run)


_OPTION_FLAGS = ("rng_mode", "data_seed", "s3_test", "indep_feature", "indep_lower",
                 "iid_demand_days")


def options_from_args(args: argparse.Namespace, base: DataOptions | None = None) -> DataOptions:
    """``base`` (DataOptions() by default) with the flags given on the command line."""
    given = {k: getattr(args, k) for k in _OPTION_FLAGS if getattr(args, k, None) is not None}
    return DataOptions(**{**asdict(base or DataOptions()), **given})


def run(args: argparse.Namespace) -> int:
    from deepstock.problem import generators

    if args.list:
        for sid in setting_ids():
            print(f"{sid}\t{generators.describe(sid)}")
        return 0
    if args.setting_file:
        return _run_custom(args, generators)
    if not args.setting:
        raise ConfigError("give a setting id (or 'all', or --list, or --setting-file)")
    if not args.out:
        raise ConfigError("--out PATH is required")
    options = options_from_args(args)
    ids = list(setting_ids()) if args.setting == "all" else [args.setting]
    for sid in ids:
        dataset = generators.generate_dataset(sid, options)  # unknown id -> ConfigError
        path = Path(args.out) / f"{sid}.npz" if args.setting == "all" else Path(args.out)
        try:
            dataset.save(path)
        except OSError as exc:
            raise DataError(f"cannot write {path}: {exc.strerror or exc}") from None
        print(f"wrote {path} ({sid}: {dataset.demand.shape[0]} trajectories x {dataset.setting.T} days)")
    return 0


def _run_custom(args: argparse.Namespace, generators) -> int:
    """``--setting-file``: validate the custom setting, generate it and write ``--out``."""
    if args.setting:
        raise ConfigError("give either a setting id or --setting-file, not both")
    if not args.out:
        raise ConfigError("--out PATH is required")
    setting, file_options = load_setting_file(args.setting_file)
    options = options_from_args(args, base=file_options)
    dataset = generators.generate_dataset(setting, options)
    path = Path(args.out)
    try:
        dataset.save(path)
    except OSError as exc:
        raise DataError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"wrote {path} (custom {setting.id}, {setting.family}: {dataset.demand.shape[0]} "
          f"trajectories x {setting.T} days)")
    return 0
