"""``deepstock train``: one training run of DS, DDPG or PPO (spec §7), saved to a run folder.

Examples::

    deepstock train s1 --method ds --reg base --seed 45 --data data/s1.npz --out runs/s1/ds-base
    deepstock train s1 --method ds --reg none --hparams my.yaml --set epochs=50 --data ... --out ...
    deepstock train s1 --method ddpg --reg base --log-critic --data ... --out ...
    deepstock train s1 --method ppo --reg base --backend sb3 --data ... --out ...

The training backend is ``--backend`` (one of the method's in :mod:`deepstock.registry`; default:
the method's default, or with ``--from-winner`` the winner's); metrics.json records it. A winner
tuned on another setting than SETTING is refused (its hyper-parameters, the order cap M among
them, are that setting's) unless ``--force`` is given.

Hyper-parameters: the spec defaults of the cell (``deepstock/conf/hparams.yaml``), then the
``--hparams`` YAML file, then ``--set key=value`` (values parsed as YAML: ``--set
neurons_per_hidden_layer=[32,32]``). The run folder gets metrics.json, curve.csv and the weights.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

import yaml

from deepstock import registry
from deepstock.errors import ConfigError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train one policy (ds, ddpg, ppo) and save the run",
        description="Train one policy (spec §7) and write metrics.json, curve.csv and weights.",
    )
    p.add_argument("setting", help="setting id, e.g. s1, s2, s3, s4_n5_t7 (or a custom id of --data)")
    p.add_argument("--method", required=True, choices=list(registry.METHODS))
    p.add_argument("--reg", required=True, choices=list(registry.REGULARIZATIONS))
    p.add_argument("--seed", type=int, default=None,
                   help="run seed (default 45, spec §7.5; with --from-winner its reported seed)")
    p.add_argument("--hparams", metavar="FILE.yaml", help="YAML mapping of hyper-parameters")
    p.add_argument("--from-winner", metavar="winner.json", default=None,
                   help="retrain a tuned cell's winner: its hyper-parameters, reported seed and "
                   "backend")
    p.add_argument("--force", action="store_true",
                   help="with --from-winner: train a winner tuned on another setting anyway")
    p.add_argument("--data", required=True, metavar="PATH", help="dataset .npz of the setting")
    p.add_argument("--out", required=True, metavar="DIR", help="run folder to write")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    add_backend_option(p)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override one hyper-parameter (repeatable)")
    p.add_argument("--log-critic", action="store_true",
                   help="DDPG: store every critic loss (Figure 3)")
    p.add_argument("--train-split", default=None, choices=["train", "val", "test"],
                   help="DS: split to train on (e.g. test for the AR(1) benchmark)")
    p.add_argument("--val-split", default=None, choices=["train", "val", "test"],
                   help="DS: split used for early stopping and selection")
    p.set_defaults(func=run)


def add_backend_option(p: argparse.ArgumentParser) -> None:
    """``--backend``: the names of every method's backends (registry); None = the default."""
    p.add_argument("--backend", default=None, choices=registry.backend_names(),
                   help="training backend (default: the method's, "
                   + ", ".join(f"{name}: {m.default_backend}" for name, m in
                               registry.METHODS.items())
                   + "); a method supports only its own: "
                   + ", ".join(f"{name}: {'|'.join(m.backends)}" for name, m in
                               registry.METHODS.items()))


def check_backend(method: str, backend: str | None, option: str = "--backend") -> str:
    """The backend name ``method`` trains with; a one-line ConfigError naming ``option``."""
    try:
        return registry.get_method(method).backend(backend).name
    except ConfigError as exc:
        raise ConfigError(f"{option} {backend}: {exc}") from None


#: A number in exponent notation that YAML 1.1 (PyYAML) reads as text: 1e300, 1.5E-3, 2e+6.
_EXPONENT_FLOAT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+")


def parse_overrides(items: list[str]) -> dict:
    """``["k=v", ...]`` -> ``{k: yaml(v)}``; a malformed item is a ConfigError naming it.
    A number in exponent notation (``1e300``, ``1e-3``) is a number, as in YAML 1.2."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"--set {key.strip()}: cannot parse value {value!r}") from None
        if isinstance(parsed, str) and _EXPONENT_FLOAT.fullmatch(parsed.strip()):
            parsed = float(parsed)
        out[key.strip()] = parsed
    return out


def read_winner(path: str, method: str) -> tuple[dict, int, str | None]:
    """(hyper-parameters, reported seed, backend or None) of a ``winner.json``; a one-line error
    if malformed or of a backend ``method`` lacks."""
    from deepstock.hparams import validate_hparams
    from deepstock.io import read_json

    winner = read_json(path)
    where = f"--from-winner {path}"
    if not isinstance(winner, dict) or winner.get("method") != method or "hparams" not in winner:
        raise ConfigError(f"{where}: not a {method} winner.json of deepstock tune")
    if not isinstance(winner["hparams"], dict):
        raise ConfigError(f"{where}: 'hparams' must be a mapping, got "
                          f"{type(winner['hparams']).__name__}")
    seed = winner.get("reported_seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"{where}: 'reported_seed' must be a non-negative integer, got {seed!r}")
    backend = winner.get("backend")
    if backend is not None:
        backend = check_backend(method, str(backend), f"{where}: backend")
    try:
        return validate_hparams(method, winner["hparams"], source="hparams"), seed, backend
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def check_winner_setting(path: str, winner_setting, setting: str, force: bool) -> None:
    """Refuse (one line, naming both settings) a winner.json tuned on another setting than the
    one trained now: its hyper-parameters (the order cap M among them) are that setting's.
    ``--force`` trains it anyway; a winner that records no setting is not checked."""
    if winner_setting is None or force or winner_setting == setting:
        return
    raise ConfigError(f"--from-winner {path}: the winner was tuned on setting "
                      f"{winner_setting!r}, not on {setting!r} (its hyper-parameters, M among "
                      f"them, are {winner_setting!r}'s); pass --force to train it on "
                      f"{setting!r} anyway")


def show_progress() -> bool:
    """Progress bar only on an interactive terminal, never under Snakemake or CI."""
    return sys.stderr.isatty() and not os.environ.get("SNAKEMAKE") and not os.environ.get("CI")


def _options(args: argparse.Namespace, trainer) -> dict:
    """The backend options the flags ask for, each refused in one line where the trainer lacks
    it (a capability, not a method name, decides)."""
    options: dict = {}
    if args.log_critic:
        if "critic_log" not in trainer.capabilities:
            raise ConfigError(f"--log-critic: the {args.method} trainer does not log its critic "
                              "(the ddpg trainers do, for Figure 3)")
        options["log_critic"] = True
    for name in ("train_split", "val_split"):
        if getattr(args, name) is not None:
            if name not in trainer.options:
                raise ConfigError(f"--{name.replace('_', '-')}: the {args.method} trainer has no "
                                  "such option")
            options[name] = getattr(args, name)
    return options


def run(args: argparse.Namespace) -> int:
    from deepstock.hparams import resolve_hparams
    from deepstock.io import read_json
    from deepstock.journal import dataset_provenance
    from deepstock.problem.data import load_dataset
    from deepstock.training import save_run
    from deepstock.training.backends import load_trainer, make_job
    from deepstock.training.common import check_run_dir

    seed = 45 if args.seed is None else args.seed
    backend = check_backend(args.method, args.backend)
    overrides = parse_overrides(args.overrides)
    if args.from_winner:
        winner_hparams, winner_seed, winner_backend = read_winner(args.from_winner, args.method)
        overrides = {**winner_hparams, **overrides}
        if args.seed is None:
            seed = winner_seed
        if args.backend is None and winner_backend is not None:
            backend = winner_backend
    options = _options(args, load_trainer(args.method, backend))
    check_run_dir(args.out)  # refuse a bad --out before any compute
    dataset = load_dataset(args.data, expect_setting=args.setting)
    if args.from_winner:
        check_winner_setting(args.from_winner, read_json(args.from_winner).get("setting"),
                             dataset.setting.id, args.force)
    elif args.force:
        raise ConfigError("--force applies to --from-winner only")
    # the loaded Setting (not the id) so that a custom setting gets its family's defaults
    hparams = resolve_hparams(args.method, dataset.setting, args.reg,
                              overrides=overrides, path=args.hparams)
    job = make_job(dataset.setting, args.method, args.reg, hparams, backend=backend,
                   device=args.device, options=options)
    result = job.train(dataset, seed, progress=show_progress())
    result.extras["provenance"] = dataset_provenance(args.data)
    save_run(result, args.out)
    print(f"{args.setting} {args.method}-{args.reg} seed {seed}: train {result.train_loss:.4f} "
          f"val {result.val_loss:.4f} test {result.test_loss:.4f} ({result.iterations} "
          f"{job.method.iterations}, {result.wall_s:.1f} s, {result.device}, "
          f"{job.backend.name}) -> {args.out}")
    return 0
