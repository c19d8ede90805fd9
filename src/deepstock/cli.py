"""``deepstock`` command line: one subcommand per stage of the workflow.

Each stage lives in ``deepstock.commands.<name>`` with a ``register(subparsers)`` function. User
errors (:class:`~deepstock.errors.DeepstockError`) print one line and exit with status 2.
:func:`main` first pins the CPU numerics (:func:`deepstock.numerics.configure`: one BLAS/OpenMP
thread, AVX2 kernels), before any command loads numpy's BLAS, torch or XLA.
"""

from __future__ import annotations

import argparse
import sys

from deepstock import __version__, numerics, provenance
from deepstock.commands import benchmark, data, report, train, tune, verify
from deepstock.errors import DeepstockError

#: The subcommands, in the order of the workflow; each module has ``register(subparsers)``.
COMMANDS = (data, benchmark, train, tune, verify, report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepstock",
        description="DeepStock replication workbench: datasets, benchmarks, training, tuning, reports.",
    )
    parser.add_argument("--version", action="version", version=f"deepstock {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.register(sub)
    return parser


#: Commands that produce results: they warn when the installed stack is not the lock's.
PRODUCING = ("benchmark", "train", "tune", "verify")


def _warn_if_unlocked(command: str) -> None:
    """One warning naming the packages whose installed version is not the lock's."""
    from deepstock.provenance import lock_mismatch

    differ = lock_mismatch() if command in PRODUCING else []
    if differ:
        print(f"deepstock {command}: warning: the installed stack is not the lock's "
              f"(requirements/lock-cpu-py311.txt): {', '.join(differ)}; results may differ in "
              "the last bits from the committed ones", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Set the numerics (before torch, MKL or XLA load), then run one subcommand."""
    try:
        numerics.configure()
        provenance.commit()  # the code this process runs: read now, not when a row is written
    except DeepstockError as exc:
        print(f"deepstock: error: {exc}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
        _warn_if_unlocked(args.command)
        rc = args.func(args)
    except DeepstockError as exc:
        print(f"deepstock {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"deepstock {args.command}: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
