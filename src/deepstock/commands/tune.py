"""``deepstock tune``: two-stage TPE tuning of one cell, resumable (spec §8).

Examples::

    deepstock tune s1 --method ds --reg base --repetition 0 --scale quick \\
        --data results/data/s1.npz --out results/s1/ds/base/rep0
    deepstock tune s2 --method ppo --reg none --scale paper --address auto   # on a Ray cluster
    deepstock tune s1 --method ddpg --reg base --backend sb3 --data ... --out ...

``--backend`` (default: the method's) is part of the cell's fingerprint and of winner.json.
``--restart`` removes only what the cell wrote (known names, never a journal read; a foreign file
inside final/ or a stage-2 run folder makes it refuse). Some failed trials print one warning line
on stderr even with ``--quiet`` (deepstock.tuning, "Failures and faults" and "Folders").
"""

from __future__ import annotations

import argparse

from deepstock import registry
from deepstock.commands.train import add_backend_option, check_backend
from deepstock.hparams import SCALES


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "tune",
        help="tune one cell: TPE stage 1 + top-k x seeds stage 2 (Ray Tune)",
        description="Tune one (setting, method, regularization, repetition) cell; writes "
        "stage1.csv, stage2.csv, winner.json and final/ into --out. Re-running resumes.",
    )
    p.add_argument("setting", help="setting id, e.g. s1 or s4_n5_t7")
    p.add_argument("--method", required=True, choices=list(registry.METHODS))
    p.add_argument("--reg", required=True, choices=list(registry.REGULARIZATIONS))
    p.add_argument("--repetition", type=int, default=0,
                   help="repetition r >= 0; seeds the TPE sampler with r (spec §8)")
    p.add_argument("--scale", default="quick", choices=SCALES, help="budget profile")
    p.add_argument("--data", required=True, help="dataset .npz of the setting")
    p.add_argument("--out", required=True, help="cell output folder")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                   help="device of trials whose backend runs on a GPU (torch, jax): auto = CUDA "
                   "when present for torch (DS), the CPU for jax; cuda: each Ray trial asks for "
                   "0.25 GPU; CPU-only backends (sb3) ignore it")
    add_backend_option(p)
    p.add_argument("--executor", default="auto", choices=registry.EXECUTORS,
                   help="ray: Ray Tune trials; local: the same TPE study, trials one after the "
                   "other in this process; auto (default): ray with --address, or at a scale "
                   "that asks for it (paper) when more than one trial can run at once")
    p.add_argument("--address", default=None, help="address of an existing Ray cluster")
    p.add_argument("--cpus", type=int, default=None,
                   help="CPUs for a local Ray instance (default: all); ignored with --address")
    p.add_argument("--max-concurrent", type=int, default=None,
                   help="trials at a time (default min(cpus, configs)); 1 = reproducible TPE")
    p.add_argument("--num-samples", type=int, default=None,
                   help="stage-1 configurations (default: the scale's)")
    p.add_argument("--batch", type=int, default=None,
                   help="stage-1 configurations asked from TPE and trained at a time, as one "
                        "population where the backend has one (default: the scale's; 1 = "
                        "sequential TPE)")
    p.add_argument("--space", default=None, help="search-space YAML (default: Tables 3-5)")
    p.add_argument("--hparams", default=None, help="YAML of fixed hyper-parameter overrides")
    p.add_argument("--stage2-winner", default="mean", choices=["mean", "median"])
    p.add_argument("--fit-on", default="train", choices=["train", "test"],
                   help="test: train and validate on the test split (the AR(1) DS benchmark)")
    p.add_argument("--restart", action="store_true",
                   help="discard what the cell wrote in --out (journals, tables, winner.json, "
                   "the run folders of final/ and stage2/, .ray/) and start afresh; the journals "
                   "are not read, so an unreadable one is discarded too. Other files are kept; "
                   "one inside final/ or a stage-2 run folder (which the cell replaces whole) "
                   "makes it refuse, removing nothing")
    p.add_argument("--restart-if-changed", action="store_true",
                   help="start afresh only if the journals in --out belong to other inputs "
                   "(dataset, backend, hyper-parameters, space, budgets); default: refuse with an error")
    p.add_argument("--retry-failed", action="store_true",
                   help="re-run trials that failed before (default: a failure is kept as the "
                   "trial's result). A fault of the machine (disk full, I/O error, out of "
                   "memory, a lost worker) is never kept: the run stops with one line and a "
                   "rerun trains that trial again")
    p.add_argument("--quiet", action="store_true", help="no per-trial progress lines")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from deepstock.tuning import TuneOptions, tune_cell

    backend = check_backend(args.method, args.backend)
    train_options = {}
    if args.fit_on == "test":
        train_options = {"train_split": "test", "val_split": "test"}
    opts = TuneOptions(
        scale=args.scale, repetition=args.repetition, device=args.device, backend=backend,
        address=args.address, max_concurrent=args.max_concurrent, stage2_winner=args.stage2_winner,
        space_path=args.space, hparams_path=args.hparams, train_options=train_options,
        quiet=args.quiet, num_samples=args.num_samples, batch=args.batch,
        executor=args.executor, cpus=args.cpus, restart=args.restart,
        restart_if_changed=args.restart_if_changed, retry_failed=args.retry_failed,
    )
    winner = tune_cell(args.setting, args.method, args.reg, args.data, args.out, opts)
    print(
        f"{args.setting}/{args.method}/{args.reg} rep{args.repetition} ({backend}): winner config "
        f"{winner['winner_index']} (stage-1 trial {winner['stage1_trial']}), seed "
        f"{winner['reported_seed']}: val {winner['val_loss']:.4f} test {winner['test_loss']:.4f} "
        f"({winner['wall_s']:.1f}s)"
    )
    return 0
