"""Two-stage hyper-parameter tuning on Ray Tune with Optuna's TPE (spec §8).

One call of :func:`tune_cell` handles one cell (setting × method × regularization × repetition):

1. **Stage 1** — a Ray Tune ``Tuner`` with ``OptunaSearch(TPESampler(n_startup_trials, seed=r))``
   samples ``num_samples`` configurations; each trial trains once (seed from the configuration's
   MD5) through :func:`deepstock.trainers.train`, in-process in a Ray worker.
2. **Stage 2** — the ``top_k`` configurations × the scale's seeds, as a second ``Tuner``.
3. **Winner** — lowest mean (or median) validation loss over successful seeds; the reported run is
   its median seed (sort by val, index ⌊n/2⌋), whose run folder is copied to ``final/``.

Resume: every finished trial is appended to a journal (``stage1.jsonl``/``stage2.jsonl``) by a
Tune callback in the driver. A restarted cell replays stage-1 results into Optuna
(``points_to_evaluate`` + ``evaluated_rewards``), so finished trials are never re-run, and skips
finished stage-2 runs. Failed trials (exception or NaN) score +inf, are recorded and excluded.

Executors (``auto``, the default, picks one: :func:`resolve_executor`): ``ray`` runs trials as
Ray Tune trials, one CPU each (a fractional GPU for ``device='cuda'``), ``min(cpus, configs)`` at
a time or on an existing cluster (``address``).
``local`` asks the *same* Optuna TPE study that ``OptunaSearch`` wraps, sequentially in this
process — no Ray import, start-up or worker processes — for small runs and CI; with
``max_concurrent=1`` both executors give the same trials (tested).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepstock.errors import ConfigError, DeepstockError
from deepstock.hparams import (
    Scale,
    decode_config,
    encode_choice,
    get_scale,
    resolve_hparams,
    search_space,
)
from deepstock.io import write_csv, write_json

METRIC = "val_loss"
FAULTS = ("none", "first", "first_nan", "all")
EXECUTORS = ("auto", "ray", "local")


class TuningFailed(DeepstockError):
    """Every trial of a stage failed."""


def config_seed(config: dict) -> int:
    """Trial seed: first 8 hex digits of the MD5 of the canonical JSON of the config, mod 10 000."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return int(hashlib.md5(text.encode()).hexdigest()[:8], 16) % 10_000


@dataclass
class CellSpec:
    """Everything a trial needs, shipped to Ray workers (plain, picklable data)."""

    setting: str
    method: str
    reg: str
    data_path: str
    base_hparams: dict
    device: str = "cpu"
    train_options: dict = field(default_factory=dict)
    fault: str = "none"
    fault_marker: str = ""


_DATASETS: dict[str, Any] = {}


def _load(spec: CellSpec):
    from deepstock.data import load_dataset

    if spec.data_path not in _DATASETS:
        _DATASETS[spec.data_path] = load_dataset(spec.data_path, expect_setting=spec.setting)
    return _DATASETS[spec.data_path]


def run_trial(spec: CellSpec, sampled: dict, seed: int | None, run_dir: str | None) -> dict:
    """Train one configuration; never raises: failures return ``val_loss = inf`` with the error."""
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    hp = {**spec.base_hparams, **decode_config(sampled)}
    seed = config_seed(decode_config(sampled)) if seed is None else seed
    row: dict[str, Any] = {"seed": seed}
    try:
        if spec.fault == "all" or (
            spec.fault in ("first", "first_nan") and _claim_marker(spec.fault_marker)
        ):
            if spec.fault == "first_nan":
                row.update(val_loss=float("nan"))
                raise FloatingPointError("injected NaN validation loss")
            raise RuntimeError("injected trial failure")
        from deepstock.hparams import validate_hparams
        from deepstock.trainers import save_run, train

        hp = validate_hparams(spec.method, hp)
        result = train(
            _load(spec), spec.method, spec.reg, hp, seed, device=spec.device, **spec.train_options
        )
        if not math.isfinite(result.best_val):
            raise FloatingPointError(f"non-finite validation loss {result.best_val}")
        if run_dir:
            save_run(result, run_dir)
        row.update(
            val_loss=float(result.best_val),
            train_loss=float(result.train_loss),
            test_loss=float(result.test_loss),
            selected_val_loss=float(result.val_loss),
            iterations=int(result.iterations),
            status="ok",
            error="",
        )
    except Exception as exc:  # noqa: BLE001 - a crashing trial must not kill the tuning run
        row.update(val_loss=float("inf"), status="failed", error=f"{type(exc).__name__}: {exc}")
    row["wall_s"] = time.perf_counter() - t0
    return row


def _claim_marker(path: str) -> bool:
    """True exactly once per marker path (fault injection for tests)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.close(fd)
    return True


# ----------------------------------------------------------------------------- journal
def _read_journal(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill: ignore it, the trial re-runs
            continue
    return rows


def _append_journal(path: Path, row: dict) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(row, sort_keys=True, default=float) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


# ----------------------------------------------------------------------------- ray helpers
def _ray_init(address: str | None, num_cpus: int | None) -> None:
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    else:
        ray.init(
            num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
            configure_logging=False, logging_level="ERROR",
        )


def _trial_device(method: str, device: str) -> str:
    """DS trials use ``device`` ('auto' = CUDA when present); SB3 methods always run on the CPU."""
    if method != "ds":
        return "cpu"
    from deepstock.trainers.common import resolve_device

    return resolve_device(device)


def _trial_resources(device: str) -> dict:
    return {"cpu": 1, "gpu": 0.25} if device == "cuda" else {"cpu": 1}


def _stage1_trainable(config: dict, spec: CellSpec) -> dict:
    return run_trial(spec, config, None, None)


def _stage2_trainable(config: dict, spec: CellSpec, configs: list, root: str) -> dict:
    idx, seed = int(config["job"][0]), int(config["job"][1])
    row = run_trial(spec, configs[idx], seed, f"{root}/c{idx}_s{seed}")
    return {**row, "config_index": idx}


class _Progress:
    """Appends finished trials to the journal and prints one progress line per trial."""

    def __init__(self, journal: Path, offset: int, total: int, label: str, quiet: bool) -> None:
        self.journal, self.offset, self.total = journal, offset, total
        self.label, self.quiet = label, quiet
        self.done = 0
        self.best = math.inf

    def record(self, trial: int, config: dict, result: dict) -> None:
        row = {k: result[k] for k in result if k in _ROW_KEYS}
        row["config"] = dict(config)
        row["trial"] = trial
        _append_journal(self.journal, row)
        self.done += 1
        v = row.get(METRIC, math.inf)
        if isinstance(v, float) and math.isfinite(v):
            self.best = min(self.best, v)
        if not self.quiet:
            print(
                f"[{self.label}] {self.offset + self.done}/{self.total} {row.get('status')} "
                f"val={v:.4f} best={self.best:.4f} ({row.get('wall_s', 0):.1f}s)",
                file=sys.stderr, flush=True,
            )


def _make_journal_callback(journal: Path, offset: int, total: int, label: str, quiet: bool):
    from ray.tune import Callback

    progress = _Progress(journal, offset, total, label, quiet)

    class JournalCallback(Callback):
        """Numbers trials in suggestion order (trial start) and journals each finished one."""

        def __init__(self) -> None:
            self.order: dict[str, int] = {}

        def on_trial_start(self, iteration, trials, trial, **info):
            self.order.setdefault(trial.trial_id, offset + len(self.order) + 1)

        def on_trial_result(self, iteration, trials, trial, result, **info):
            number = self.order.get(trial.trial_id, offset + len(self.order) + 1)
            progress.record(number, trial.config, result)

    return JournalCallback()


_ROW_KEYS = {
    "seed", "val_loss", "train_loss", "test_loss", "selected_val_loss", "iterations", "status",
    "error", "wall_s", "config_index",
}


def _fit(trainable, param_space, tune_config, callbacks, storage: Path, name: str, resources):
    from ray import tune

    trainable = tune.with_resources(trainable, resources)
    tuner = tune.Tuner(
        trainable,
        param_space=param_space,
        tune_config=tune_config,
        run_config=tune.RunConfig(
            name=name, storage_path=str(storage.resolve()), verbose=0, callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
        ),
    )
    tuner.fit()


# ----------------------------------------------------------------------------- stages
@dataclass
class TuneOptions:
    scale: str = "quick"
    repetition: int = 0
    device: str = "auto"
    address: str | None = None
    max_concurrent: int | None = None
    stage2_winner: str = "mean"
    space_path: str | None = None
    hparams_path: str | None = None
    train_options: dict = field(default_factory=dict)
    fault: str = "none"
    quiet: bool = False
    num_samples: int | None = None  # override of the scale's budget
    executor: str = "auto"  # ray: Ray Tune Tuner; local: same TPE study in this process; auto
    cpus: int | None = None  # CPUs of a local Ray instance (None: all)


def resolve_executor(opts: TuneOptions, scale: Scale) -> str:
    """``auto`` -> ``ray`` with a cluster address, or where the scale asks for Ray and a cell can
    run several trials at once (more than one CPU, ``max_concurrent`` not 1); else ``local``."""
    if opts.executor not in EXECUTORS:
        raise ConfigError(f"executor must be one of {EXECUTORS}, got {opts.executor!r}")
    if opts.address and opts.executor == "local":
        raise ConfigError("address needs executor 'ray' (or 'auto'); the local executor runs "
                          "trials in this process")
    if opts.executor != "auto":
        return opts.executor
    if opts.address:
        return "ray"
    cpus = opts.cpus or os.cpu_count() or 1
    parallel = cpus > 1 and opts.max_concurrent != 1
    return "ray" if scale.executor == "ray" and parallel else "local"


def _concurrency(opts: TuneOptions, n: int) -> int:
    if opts.max_concurrent:
        return max(1, min(opts.max_concurrent, n))
    import ray

    cpus = int(ray.available_resources().get("CPU", 1)) or 1
    return max(1, min(cpus, n))


def _tpe_sampler(scale: Scale, repetition: int):
    """Spec §8's sampler, shared by both executors: TPE, random start-up, seeded with r."""
    from optuna.samplers import TPESampler

    return TPESampler(n_startup_trials=scale.n_startup_trials, seed=repetition)


def _stage1_local(spec: CellSpec, dims: dict, sampler, finite: list[dict], log: _Progress,
                  first: int, n: int) -> None:
    """Ask and tell the Optuna study that ``OptunaSearch`` would build, without importing Ray.

    Same sampler, same distributions (:meth:`Dimension.to_optuna` mirrors
    ``OptunaSearch.convert_search_space``), same warm start (finished trials added as completed),
    so with concurrency 1 both executors ask for the same configurations (tested). Failed trials
    score +inf, as the Ray executor reports them.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {k: d.to_optuna() for k, d in dims.items()}
    study = optuna.create_study(sampler=sampler, pruner=optuna.pruners.NopPruner(),
                                direction="minimize")
    for r in finite:
        study.add_trial(optuna.trial.create_trial(
            params=r["config"], distributions=dists, value=r[METRIC]))
    for number in range(first, first + n):
        trial = study.ask(fixed_distributions=dists)
        config = dict(trial.params)
        row = run_trial(spec, config, None, None)
        study.tell(trial, row[METRIC])
        log.record(number, config, row)


def stage1(spec: CellSpec, scale: Scale, opts: TuneOptions, dims: dict, out: Path) -> pd.DataFrame:
    """Run (or finish) stage 1 and return its table in suggestion order."""
    journal = out / "stage1.jsonl"
    done = _read_journal(journal)
    total = opts.num_samples or scale.num_samples
    remaining = total - len(done)
    finite = [r for r in done if math.isfinite(r[METRIC])]
    if remaining > 0 and opts.executor == "local":
        log = _Progress(journal, len(done), total, "stage1", opts.quiet)
        _stage1_local(spec, dims, _tpe_sampler(scale, opts.repetition), finite, log,
                      len(done) + 1, remaining)
    elif remaining > 0:
        from ray import tune
        from ray.tune.search import ConcurrencyLimiter
        from ray.tune.search.optuna import OptunaSearch

        searcher = OptunaSearch(
            sampler=_tpe_sampler(scale, opts.repetition),
            metric=METRIC,
            mode="min",
            points_to_evaluate=[r["config"] for r in finite] or None,
            evaluated_rewards=[r[METRIC] for r in finite] or None,
        )
        conc = _concurrency(opts, remaining)
        _fit(
            tune.with_parameters(_stage1_trainable, spec=spec),
            {k: d.to_tune() for k, d in dims.items()},
            tune.TuneConfig(
                num_samples=remaining, reuse_actors=True,
                search_alg=ConcurrencyLimiter(searcher, max_concurrent=conc),
            ),
            [_make_journal_callback(journal, len(done), total, "stage1", opts.quiet)],
            out / ".ray", "stage1", _trial_resources(spec.device),
        )
    return _stage_table(_read_journal(journal), dims)


def _stage_table(rows: list[dict], dims: dict) -> pd.DataFrame:
    rows = sorted(rows, key=lambda r: r["trial"])
    df = pd.DataFrame(
        [
            {
                "trial": r["trial"],
                **{f"config.{k}": json.dumps(decode_config(r["config"]).get(k)) for k in dims},
                "config": json.dumps(decode_config(r["config"]), sort_keys=True),
                **{k: r.get(k) for k in ("seed", METRIC, "train_loss", "test_loss", "status",
                                        "error", "wall_s", "iterations")},
            }
            for r in rows
        ]
    )
    if len(df):
        vals = df[METRIC].where(df["status"] == "ok", np.inf).astype(float)
        df["best_so_far"] = vals.cummin()
    return df


def stage2(
    spec: CellSpec, scale: Scale, opts: TuneOptions, s1: pd.DataFrame, out: Path
) -> pd.DataFrame:
    """Re-run the top-k stage-1 configurations over the scale's seeds; resumable."""
    ok = s1[s1["status"] == "ok"].sort_values([METRIC, "trial"])
    if ok.empty:
        raise TuningFailed(
            f"{spec.setting}/{spec.method}/{spec.reg}: all {len(s1)} stage-1 trials failed "
            f"(first error: {s1['error'].iloc[0] if len(s1) else 'none'})"
        )
    top = ok.head(scale.top_k)
    configs = [json.loads(c) for c in top["config"]]
    configs = [{k: encode_choice(v) for k, v in c.items()} for c in configs]
    journal = out / "stage2.jsonl"
    done = {(r["config_index"], r["seed"]) for r in _read_journal(journal)}
    jobs = [[i, s] for i in range(len(configs)) for s in scale.seeds if (i, s) not in done]
    if jobs and opts.executor == "local":
        log = _Progress(journal, len(done), len(done) + len(jobs), "stage2", opts.quiet)
        root = (out / "stage2").resolve()
        for n, (i, seed) in enumerate(jobs):
            row = run_trial(spec, configs[i], seed, str(root / f"c{i}_s{seed}"))
            log.record(len(done) + n + 1, {"job": [i, seed]}, {**row, "config_index": i})
    elif jobs:
        from ray import tune

        _fit(
            tune.with_parameters(
                _stage2_trainable, spec=spec, configs=configs, root=str((out / "stage2").resolve())
            ),
            {"job": tune.grid_search(jobs)},
            tune.TuneConfig(
                num_samples=1, reuse_actors=True,
                max_concurrent_trials=_concurrency(opts, len(jobs)),
            ),
            [_make_journal_callback(journal, len(done), len(done) + len(jobs), "stage2", opts.quiet)],
            out / ".ray", "stage2", _trial_resources(spec.device),
        )
    rows = _read_journal(journal)
    df = pd.DataFrame(
        [
            {
                "config_index": r["config_index"],
                "stage1_trial": int(top["trial"].iloc[r["config_index"]]),
                "config": json.dumps(decode_config(configs[r["config_index"]]), sort_keys=True),
                **{k: r.get(k) for k in ("seed", METRIC, "train_loss", "test_loss", "status",
                                        "error", "wall_s", "iterations")},
            }
            for r in rows
        ]
    )
    return df.sort_values(["config_index", "seed"]).reset_index(drop=True)


def median_seed_row(runs: pd.DataFrame) -> pd.Series:
    """Sort a configuration's successful runs by (val, seed) ascending and take index ⌊n/2⌋."""
    ordered = runs.sort_values([METRIC, "seed"])
    return ordered.iloc[len(ordered) // 2]


def pick_winner(s2: pd.DataFrame, rule: str = "mean") -> tuple[int, list[dict]]:
    """Index of the winning configuration and per-configuration summaries (spec §8)."""
    if rule not in ("mean", "median"):
        raise ConfigError(f"stage2_winner must be 'mean' or 'median', got {rule!r}")
    summaries = []
    for idx, g in s2.groupby("config_index"):
        ok = g[(g["status"] == "ok") & np.isfinite(g[METRIC].astype(float))]
        vals = ok[METRIC].astype(float)
        summaries.append(
            {
                "config_index": int(idx),
                "stage1_trial": int(g["stage1_trial"].iloc[0]),
                "config": json.loads(g["config"].iloc[0]),
                "seeds": [int(s) for s in ok["seed"]],
                "val_losses": [float(v) for v in vals],
                "mean": float(vals.mean()) if len(vals) else math.inf,
                "median": float(vals.median()) if len(vals) else math.inf,
                "n_failed": int(len(g) - len(ok)),
            }
        )
    finite = [s for s in summaries if math.isfinite(s[rule])]
    if not finite:
        raise TuningFailed("all stage-2 runs failed")
    best = min(finite, key=lambda s: (s[rule], s["config_index"]))
    return best["config_index"], summaries


def tune_cell(
    setting: str, method: str, reg: str, data_path: str | Path, out_dir: str | Path,
    opts: TuneOptions | None = None,
) -> dict:
    """Run both stages for one cell and write stage1.csv, stage2.csv, winner.json and final/."""
    opts = opts or TuneOptions()
    if opts.cpus is not None and opts.cpus < 1:
        raise ConfigError(f"cpus must be >= 1, got {opts.cpus}")
    if opts.fault not in FAULTS:
        raise ConfigError(f"fault must be one of {FAULTS}")
    from deepstock.data import load_dataset

    data_path = str(Path(data_path).resolve())
    # fail on a wrong or missing dataset before any compute; custom settings come from the file
    cell_setting = load_dataset(data_path, expect_setting=setting).setting
    scale = get_scale(opts.scale)
    opts = replace(opts, executor=resolve_executor(opts, scale))
    budget = scale.budget(method)
    base = resolve_hparams(method, cell_setting, reg, overrides=budget, path=opts.hparams_path)
    dims = search_space(method, cell_setting, reg, path=opts.space_path)
    for key in budget:  # a scale that fixes a searched key (e.g. tiny n_steps) removes it
        dims.pop(key, None)
    if not dims:
        raise ConfigError(f"empty search space for {method}/{setting}/{reg}")
    if opts.repetition < 0:
        raise ConfigError(f"repetition must be >= 0, got {opts.repetition}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec = CellSpec(
        setting=setting, method=method, reg=reg, data_path=data_path, base_hparams=base,
        device=_trial_device(method, opts.device), train_options=dict(opts.train_options),
        fault=opts.fault,
        fault_marker=str((out / ".fault_marker").resolve()),
    )
    t0 = time.perf_counter()
    if opts.executor == "ray":
        _ray_init(opts.address, opts.cpus or os.cpu_count())
    s1 = stage1(spec, scale, opts, dims, out)
    write_csv(out / "stage1.csv", s1)
    n_ok = int((s1["status"] == "ok").sum())
    if n_ok == 0:
        raise TuningFailed(
            f"{setting}/{method}/{reg}: all {len(s1)} stage-1 trials failed; first error: "
            f"{s1['error'].iloc[0]}"
        )
    s2 = stage2(spec, scale, opts, s1, out)
    write_csv(out / "stage2.csv", s2)
    win_idx, summaries = pick_winner(s2, opts.stage2_winner)
    runs = s2[(s2["config_index"] == win_idx) & (s2["status"] == "ok")]
    rep = median_seed_row(runs)
    src = out / "stage2" / f"c{win_idx}_s{int(rep['seed'])}"
    _replace_dir(src, out / "final")
    winner = {
        "setting": setting, "method": method, "reg": reg, "repetition": opts.repetition,
        "scale": scale.name, "stage2_winner": opts.stage2_winner, "executor": opts.executor,
        "hparams": {**base, **summaries[win_idx]["config"]},
        "searched": summaries[win_idx]["config"],
        "winner_index": win_idx, "stage1_trial": summaries[win_idx]["stage1_trial"],
        "reported_seed": int(rep["seed"]),
        "train_loss": float(rep["train_loss"]), "val_loss": float(rep[METRIC]),
        "test_loss": float(rep["test_loss"]),
        "stage1_best_val": float(s1.loc[s1["status"] == "ok", METRIC].min()),
        "stage1_failed": int(len(s1) - n_ok),
        "configs": summaries,
        "wall_s": time.perf_counter() - t0,
        "trial_wall_s": float(s1["wall_s"].sum() + s2["wall_s"].sum()),
        "num_samples": int(len(s1)),
        "seeds": list(scale.seeds),
    }
    write_json(out / "winner.json", winner)
    shutil.rmtree(out / ".ray", ignore_errors=True)
    return winner


def _replace_dir(src: Path, dst: Path) -> None:
    """Copy a run folder to ``dst`` atomically (copy to a temp name, then rename)."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)
