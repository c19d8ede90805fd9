"""``deepstock`` command line: one subcommand per stage of the workflow.

Each stage lives in ``deepstock.commands.<name>`` with a ``register(subparsers)`` function. User
errors (:class:`~deepstock.errors.DeepstockError`) print one line and exit with status 2.
"""

from __future__ import annotations

import os

# One BLAS/OpenMP thread per process before numpy loads: the workloads here are many small
# matrix products, and a multi-threaded BLAS on a shared machine is up to 20x slower (measured on
# the AR(1) DP). Parallelism comes from Snakemake jobs and Ray trials instead.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import importlib  # noqa: E402
import sys  # noqa: E402

from deepstock import __version__  # noqa: E402
from deepstock.errors import DeepstockError  # noqa: E402

COMMANDS = ("data", "benchmark", "train", "tune", "report")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepstock",
        description="DeepStock replication workbench: datasets, benchmarks, training, tuning, reports.",
    )
    parser.add_argument("--version", action="version", version=f"deepstock {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"deepstock.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 1
    try:
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
