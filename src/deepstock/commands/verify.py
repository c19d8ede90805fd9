"""``deepstock verify``: re-execute a committed tuning cell and compare it row by row.

Examples::

    deepstock verify paper/reference-runs/locked/s1/ds/base/rep0              # the whole cell
    deepstock verify results/s1/ppo/base/rep0 --trials 5 --data results/data/s1.npz

Prints one verdict per part (stage 1, stage 2, the winner): identical, within tolerance, or
diverged at trial i with both rows (:mod:`deepstock.verify`). Exit status 0 when nothing
diverged, 1 otherwise, 2 on bad input.
"""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "verify",
        help="re-execute a tuning cell under its recorded settings and compare",
        description="Re-run a tuning cell (all of it or its first --trials stage-1 trials) in a "
        "scratch folder with its recorded settings and compare every row with the recorded one.",
    )
    p.add_argument("cell", help="the cell folder (winner.json, stage1.jsonl, stage2.jsonl)")
    p.add_argument("--trials", type=int, default=None,
                   help="re-run only the first n stage-1 trials (default: the whole cell)")
    p.add_argument("--data", default=None,
                   help="the cell's dataset .npz (default: regenerate the setting's paper-exact "
                   "dataset; its SHA-256 must be the recorded one)")
    p.add_argument("--rtol", type=float, default=1e-9,
                   help="relative loss difference still called 'within tolerance' (default 1e-9)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deepstock.errors import ConfigError
    from deepstock.verify import verify_cell

    if args.trials is not None and args.trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {args.trials}")
    if not args.rtol >= 0:
        raise ConfigError(f"--rtol must be >= 0, got {args.rtol}")
    verdicts = verify_cell(args.cell, args.data, args.trials, args.rtol)
    for note in verdicts[0][1].notes:
        print(f"note: {note}")
    for part, verdict in verdicts:
        print(f"{args.cell}: {part}: {verdict.line()}")
    return int(any(v.status == "diverged" for _, v in verdicts))
