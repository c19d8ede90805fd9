"""Two-stage hyper-parameter tuning with Optuna's TPE, in process or on Ray Tune (spec §8).

One call of :func:`tune_cell` handles one cell (setting × method × regularization × repetition):

1. **Stage 1** — ``TPESampler(n_startup_trials, seed=r)`` proposes ``num_samples``
   configurations, ``batch`` (k) at a time: the study is asked k configurations (TPE's constant
   liar when k > 1), they are trained — as one population where the backend has one — and told
   before the next batch is asked (:class:`_Search`). k = 1 is sequential TPE; the same
   repetition, k and scores give the same configurations on any executor. Each trial trains
   once (seed from the MD5 of the configuration, whose floats TPE proposed and which are rounded
   to the scale's ``significant_digits`` first: :meth:`_Search.proposal`). A scale with
   ``enqueue_defaults`` makes trial 1 the cell's default hyper-parameters (the authors' winners,
   where the spec gives them).
2. **Stage 2** — the ``top_k`` configurations × the scale's seeds, as one population where the
   backend has one.
3. **Winner** — lowest mean (or median) validation loss over successful seeds; the reported run is
   its median seed (sort by val, index ⌊n/2⌋), whose run folder is copied to ``final/``.

A **unit** (:func:`_units`) is what one process trains at once: a single run, or a population of
the cell's backend (:func:`deepstock.trainers.train_population`; each member's result equals its
single run, tested per backend). On the local executor a batch is one unit; on Ray it is split
into as many balanced units as run at once, each one Ray Tune trial.

Provenance and resume (:mod:`deepstock.journal`): the cell's fingerprint (dataset hash, resolved
hyper-parameters, search space, budgets and k, method/backend/reg/repetition, version) heads both
journals (``stage1.jsonl``, ``stage2.jsonl``) and is stored in every run folder and in
``winner.json``.
A rerun with the same fingerprint resumes at batch granularity: the study is rebuilt by asking
the journal's batches again and telling their scores (:func:`_replay`), so finished trials are
not re-run, an interrupted batch trains only its missing trials, and the search continues
exactly as the uninterrupted one would have; a stage-2 run is keyed by (configuration, seed), so it
is reused only for the very configuration that produced it, and only while its run folder is
complete. A rerun with another fingerprint is refused with a one-line error naming what changed,
or starts the cell afresh (``restart``, or ``restart_if_changed`` — what the workflow uses).
Later rows of the same trial supersede earlier ones, which is how ``retry_failed`` re-runs failed
trials in an append-only journal. A cell holds an exclusive lock on its folder. Every journal row
carries a checksum: a row edited by hand, or a journal of an older deepstock, is refused in one
line before any training (:mod:`deepstock.journal`).

Failures and faults. A training that fails by itself — it raises, diverges, or ends with a
non-finite validation loss — is journaled as ``failed``, excluded from the ranking and kept on
reruns unless ``retry_failed``; when some but not all trials failed, one warning line goes to
stderr, even when quiet. A fault of the machine (:func:`is_infrastructure_fault`) — a write the
storage refuses (disk full, quota, I/O error), a run folder that cannot be written,
``MemoryError``, a Ray unit that reported nothing (its worker died or was killed) — is not a
result: it is never journaled, the cell stops with a one-line :class:`InfrastructureFault` once
the unit in flight (local) or the stage's Ray trials are in, and a rerun trains it again.

Folders. The cell writes only known names in its folder: :data:`CELL_FILES` (and their
temporary files ``.{name}.*.tmp``), ``.ray/`` (Ray's scratch, removed whole), ``final/`` and
``stage2/<config key>_s<seed>/`` holding run files (:func:`deepstock.trainers.common.is_run_file`),
and the swap leftovers of those folders. ``final/`` and the stage-2 run folders are replaced
whole, so one that holds a file deepstock did not write is refused, naming the file, before any
training. ``restart`` removes exactly those names, without reading the journals (so it also
discards a cell whose journals are unreadable), and refuses, removing nothing, where a folder it
would replace holds a foreign file; every other file of the cell folder (``stage2/`` included) is
kept. Temporary files of a writer killed mid-write are removed when the next run takes the lock.

The training backend (``TuneOptions.backend``; None = the method's default, registry) is resolved
once per cell, trains every trial, and is recorded in the fingerprint and in ``winner.json``; the
trials' device follows from it (:func:`deepstock.trainers.backends.resolve_device`).

Executors (``auto``, the default, picks one: :func:`resolve_executor`): ``ray`` runs units as
Ray Tune trials, one CPU each (a fractional GPU for ``device='cuda'``), ``min(cpus, units)`` at a
time or on an existing cluster (``address``); ``local`` trains them one after the other in this
process — no Ray import, start-up or worker processes. Both ask the same configurations (tested).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepstock.errors import ConfigError, DataError, DeepstockError
from deepstock.hparams import (
    Dimension,
    Scale,
    decode_config,
    encode_choice,
    get_scale,
    read_mapping,
    resolve_hparams,
    search_space,
)
from deepstock.io import (
    STORAGE_ERRNOS,
    StorageError,
    os_error,
    remove_stale_temps,
    write_csv,
    write_folder,
    write_json,
)
from deepstock.journal import CellLock, Journal, JournalError, canonical_json, digest, file_sha256
from deepstock.registry import EXECUTORS, get_method
from deepstock.trainers.backends import resolve_device

METRIC = "val_loss"
CELL_FILES = ("stage1.jsonl", "stage2.jsonl", "stage1.csv", "stage2.csv", "winner.json")
_RUN_FOLDER = re.compile(r"[0-9a-f]{12}_s-?[0-9]+")  # stage2/<config key>_s<seed>
_SWAP_LEFTOVER = re.compile(r"\.(final|[0-9a-f]{12}_s-?[0-9]+)\.(tmp|old)-[0-9]+-.*")


class TuningFailed(DeepstockError):
    """Every trial of a stage failed."""


class InfrastructureFault(DeepstockError):
    """The machine, not a trial, failed (disk full, out of memory, a lost worker): the cell
    stopped without journaling the trial, so a rerun trains it again."""


def is_infrastructure_fault(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it was raised from or while handling, is the machine's
    fault: ``MemoryError``, or storage that refused a read or write
    (:data:`deepstock.io.STORAGE_ERRNOS`, :class:`deepstock.io.StorageError`)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (MemoryError, StorageError)) or (
                isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def config_seed(config: dict) -> int:
    """Trial seed: first 8 hex digits of the MD5 of the canonical JSON of the config, mod 10 000."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return int(hashlib.md5(text.encode()).hexdigest()[:8], 16) % 10_000


def config_key(config: dict) -> str:
    """Name of a (decoded) configuration: 12 hex digits of the SHA-256 of its canonical JSON."""
    return hashlib.sha256(canonical_json(decode_config(config)).encode()).hexdigest()[:12]


@dataclass
class CellSpec:
    """Everything a trial needs, shipped to Ray workers (plain, picklable data)."""

    setting: str
    method: str
    reg: str
    data_path: str
    base_hparams: dict
    device: str = "cpu"
    backend: str | None = None  # registry backend of the method; None = its default
    train_options: dict = field(default_factory=dict)
    fingerprint: str = ""  # digest of the cell's fingerprint, stored in every run folder
    run: dict = field(default_factory=dict)  # executor and batch k, for each row's provenance


@dataclass(frozen=True)
class Job:
    """One training to run: journal number, configuration (encoded), seed, run folder."""

    number: int
    config: dict
    seed: int | None = None
    run_dir: str | None = None


_DATASETS: dict[str, Any] = {}


def _load(spec: CellSpec):
    from deepstock.data import load_dataset

    if spec.data_path not in _DATASETS:
        _DATASETS[spec.data_path] = load_dataset(spec.data_path, expect_setting=spec.setting)
    return _DATASETS[spec.data_path]


def cell_job(spec: CellSpec):
    """The cell's typed job (:class:`deepstock.trainers.backends.TrainJob`) at its base
    hyper-parameters: built once per process from the plain spec a Ray worker receives; each
    trial is :meth:`~deepstock.trainers.backends.TrainJob.with_hparams` of it."""
    from deepstock.trainers.backends import make_job

    return make_job(_load(spec).setting, spec.method, spec.reg, spec.base_hparams,
                    backend=spec.backend, device=spec.device, options=spec.train_options)


def run_jobs(spec: CellSpec, jobs: list[Job]) -> list[dict]:
    """Train one unit of jobs and return their journal rows in order; never raises.

    A unit of several jobs is one population of the cell's backend
    (:func:`deepstock.trainers.train_population`); each row is what the job's own run gives.
    A failing job scores ``val_loss = inf`` with its error; if a population fails as a whole,
    its jobs are retried one by one, so that one bad configuration fails alone. A job stopped by
    an infrastructure fault (:func:`is_infrastructure_fault`, or its run folder cannot be
    written) gets a ``status = "fault"`` row instead, which the driver never journals.
    """
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    searched = [decode_config(job.config) for job in jobs]
    seeds = [config_seed(c) if job.seed is None else job.seed
             for job, c in zip(jobs, searched, strict=True)]
    try:
        results = cell_job(spec).train_population(
            _load(spec), [{**spec.base_hparams, **c} for c in searched], seeds)
    except Exception as exc:  # noqa: BLE001 - a crashing trial must not kill the tuning run
        if is_infrastructure_fault(exc):
            return [_fault_row(seed, exc) for seed in seeds]
        if len(jobs) > 1:
            return [row for job in jobs for row in run_jobs(spec, [job])]
        return [_failed_row(spec, seeds[0], exc, time.perf_counter() - t0)]
    wall = (time.perf_counter() - t0) / len(jobs)
    return [_result_row(spec, job, c, seed, result, wall, len(jobs))
            for job, c, seed, result in zip(jobs, searched, seeds, results, strict=True)]


def _provenance(spec: CellSpec) -> dict:
    """The provenance of a row trained now, in this process (a Ray worker: that machine)."""
    from deepstock import provenance

    return provenance.record(backend=spec.backend, **spec.run)


def _result_row(spec: CellSpec, job: Job, searched: dict, seed: int, result, wall: float,
                population: int) -> dict:
    """The journal row of one finished training (and its run folder, if the job has one): failed
    for a non-finite validation loss, a fault row if the run folder cannot be written."""
    from deepstock.trainers import save_run

    if not math.isfinite(result.best_val):
        return _failed_row(spec, seed, FloatingPointError(
            f"non-finite validation loss {result.best_val}"), wall)
    if job.run_dir:
        try:
            result.extras["cell"] = {"fingerprint": spec.fingerprint, "config": searched}
            save_run(result, job.run_dir, spec.run)
        except Exception as exc:  # noqa: BLE001
            if is_infrastructure_fault(exc) or isinstance(exc, DataError):  # a write, not the
                return _fault_row(seed, exc)  # trial (a non-finite loss fails the trial)
            return _failed_row(spec, seed, exc, wall)
    return {
        "seed": seed, "val_loss": float(result.best_val), "train_loss": float(result.train_loss),
        "test_loss": float(result.test_loss), "selected_val_loss": float(result.val_loss),
        "iterations": int(result.iterations), "status": "ok", "error": "", "wall_s": wall,
        "population": population, "provenance": _provenance(spec),
    }


def _failed_row(spec: CellSpec, seed: int, exc: BaseException, wall: float) -> dict:
    return {"seed": seed, METRIC: float("inf"), "status": "failed",
            "error": f"{type(exc).__name__}: {exc}", "wall_s": wall, "population": 1,
            "provenance": _provenance(spec)}


def _fault_row(seed: int, exc: BaseException) -> dict:
    """The row of a job stopped by an infrastructure fault: reported, never journaled."""
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
    return {"seed": seed, METRIC: float("inf"), "status": "fault", "error": text}


def run_is_complete(run_dir: Path, fingerprint: str) -> bool:
    """A run folder counts only with a readable ``metrics.json`` of this cell's fingerprint."""
    from deepstock.trainers.common import read_run

    try:
        metrics = read_run(run_dir)
    except DeepstockError:
        return False
    extras = metrics.get("extras")
    cell = extras.get("cell") if isinstance(extras, dict) else None
    return isinstance(cell, dict) and cell.get("fingerprint") == fingerprint


# ----------------------------------------------------------------------------- journal rows
_ROW_KEYS = {
    "seed", "val_loss", "train_loss", "test_loss", "selected_val_loss", "iterations", "status",
    "error", "wall_s", "population", "provenance",
}


class _Progress:
    """Appends finished trials to the journal and prints one progress line per trial.

    Never raises (it runs in Ray Tune callbacks): a fault row, or a failed append, is kept out of
    the journal and remembered; after a failed append nothing more is appended (a torn line
    must stay last). :meth:`check` raises the first such fault as one line.
    """

    def __init__(self, journal: Journal, total: int, label: str, quiet: bool) -> None:
        self.journal, self.total, self.label, self.quiet = journal, total, label, quiet
        self.done = 0
        self.best = math.inf
        self.rows: dict[int, dict] = {}  # job number -> its journal row
        self.fault: str | None = None  # the first infrastructure fault, as one phrase
        self.journal_failed = False

    def record(self, job: Job, result: dict) -> None:
        if result.get("status") == "fault":
            self._fault(job, result.get("error", ""))
            return
        if self.journal_failed:
            return
        row = {k: result[k] for k in result if k in _ROW_KEYS}
        row.update(config=dict(job.config), config_key=config_key(job.config), trial=job.number)
        try:
            self.journal.append(row)
        except DeepstockError as exc:
            self.journal_failed = True
            self._fault(job, str(exc))
            return
        self.rows[job.number] = row
        self.done += 1
        v = row.get(METRIC, math.inf)
        if isinstance(v, float) and math.isfinite(v):
            self.best = min(self.best, v)
        if not self.quiet:
            print(
                f"[{self.label}] {self.done}/{self.total} {row.get('status')} "
                f"val={v:.4f} best={self.best:.4f} ({row.get('wall_s', 0):.1f}s)",
                file=sys.stderr, flush=True,
            )

    def _fault(self, job: Job, error: str) -> None:
        if self.fault is None:
            self.fault = f"{self._name(job)}: {error}"

    def _name(self, job: Job) -> str:
        if job.seed is None:
            return f"{self.label} trial {job.number}"
        return f"{self.label} run of config {config_key(job.config)} seed {job.seed}"

    def check(self, jobs: list[Job]) -> None:
        """Raise :class:`InfrastructureFault` (one line) if a fault was recorded, or if one of
        ``jobs`` reported nothing (its Ray worker died); else return."""
        missing = [job for job in jobs if job.number not in self.rows]
        if self.fault is None and missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            self.fault = (f"{self._name(missing[0])}{more} reported nothing (a Ray worker died "
                          "or was killed)")
        if self.fault is not None:
            raise InfrastructureFault(f"{self.fault}; not journaled as a trial failure: fix the "
                                      "cause and rerun the same command to train it again")


def _latest(rows: list[dict], key) -> dict:
    """Later journal rows supersede earlier rows of the same key (a retried trial)."""
    out: dict = {}
    for r in rows:
        out[key(r)] = r
    return out


def _check_rows(rows: list[dict], journal: Journal, needed: tuple[str, ...]) -> list[dict]:
    for i, r in enumerate(rows, start=2):
        if any(k not in r for k in needed) or not isinstance(r.get("config"), dict):
            raise JournalError(f"{journal.path} line {i} lacks {', '.join(needed)}; remove it or "
                               "rerun with --restart")
    return rows


# ----------------------------------------------------------------------------- ray helpers
RAY_CONNECT_TIMEOUT_S = 10.0  # how long `address` may take to accept a TCP connection


def _ray_init(address: str | None, num_cpus: int | None) -> None:
    """Start a local Ray instance of ``num_cpus`` CPUs, or join the cluster at ``address``.

    Joining checks first (:func:`_check_ray_address`) that the address — ``HOST:PORT``, ``auto``
    (the cluster of the latest ``ray start`` on this machine, or ``RAY_ADDRESS``) or
    ``ray://HOST:PORT`` — accepts a TCP connection within :data:`RAY_CONNECT_TIMEOUT_S` (10 s,
    name resolution included): where nothing listens, Ray would retry for many minutes. An
    address that fails the check, or that ``ray.init`` refuses, is one line of
    :class:`InfrastructureFault` naming it, before any trial. (A port where some other service
    than Ray listens passes the check and is left to Ray's own retries.)
    """
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    import ray

    if ray.is_initialized():
        return
    from deepstock import numerics

    # workers (here or on a cluster) get this process's numerics before they load torch or XLA
    env = {"env_vars": {k: os.environ[k] for k in numerics.RECORDED if k in os.environ}}
    if address:
        _check_ray_address(address)
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False,
                     runtime_env=env)
        except Exception as exc:  # noqa: BLE001 - Ray's errors are many and multi-line
            raise InfrastructureFault(f"cannot join the Ray cluster at {address}: "
                                      f"{_one_line(exc)}") from None
    else:
        ray.init(
            num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
            configure_logging=False, logging_level="ERROR", runtime_env=env,
        )


def _check_ray_address(address: str) -> None:
    """Raise :class:`InfrastructureFault` (one line naming ``address``) unless the Ray cluster
    it names accepts a TCP connection within :data:`RAY_CONNECT_TIMEOUT_S` seconds.

    ``HOST:PORT`` and ``auto`` are resolved as ``ray.init`` resolves them (``auto``: the
    latest ``ray start`` on this machine, ``RAY_ADDRESS`` first; ``localhost`` becomes the
    node's address); ``ray://HOST:PORT`` is Ray Client's server. The connection is tried in a
    daemon thread, so a slow name lookup cannot stretch the bound either.
    """
    import socket
    import threading

    from ray._private import services

    if address.startswith("ray://"):
        target: str | None = address[len("ray://"):]
    else:
        try:
            target = services.canonicalize_bootstrap_address(address)
        except Exception as exc:  # noqa: BLE001 - auto with no cluster, a malformed address
            raise InfrastructureFault(f"no Ray cluster at --address {address}: "
                                      f"{_one_line(exc)}") from None
    if target is None:  # "local": ray.init starts an instance of its own
        return
    host, _, port = target.rpartition(":")
    host = host.strip("[]")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address} is not HOST:PORT, auto or ray://HOST:PORT")
    timeout = RAY_CONNECT_TIMEOUT_S
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, int(port)), timeout=timeout).close()
            outcome.append(None)
        except Exception as exc:  # noqa: BLE001 - refused, unreachable, unknown host, ...
            outcome.append(getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)

    probe = threading.Thread(target=connect, name="ray-address-check", daemon=True)
    probe.start()
    probe.join(timeout)
    why = outcome[0] if outcome else f"no answer within {timeout:g} s"
    if why is not None:
        where = (address if target in (address, address.removeprefix("ray://"))
                 else f"{address} ({target})")
        raise InfrastructureFault(
            f"cannot reach the Ray cluster at {where}: {why}; start it (`ray start --head`) "
            "or fix --address")


def _one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` of an exception, at most 300 characters."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def _trial_resources(device: str) -> dict:
    return {"cpu": 1, "gpu": 0.25} if device == "cuda" else {"cpu": 1}


def _unit_trainable(config: dict, spec: CellSpec, units: list[list[Job]]) -> dict:
    """One Ray Tune trial: train unit ``config["unit"]`` and report its rows (JSON) once.

    :func:`run_jobs` never raises, so a trial that reports nothing — its worker process died
    or was killed (OOM killer, a node lost, ``os._exit``), or the trial could not start there —
    is an infrastructure fault, never a trial result (:func:`_run_jobs`)."""
    return {"rows": json.dumps(run_jobs(spec, units[int(config["unit"])]))}


def _journal_callback(progress: _Progress, units: list[list[Job]]):
    """A Tune callback that journals the rows of each finished unit (one Tune trial).

    Its ``reported`` set holds the units whose rows arrived (each journaled once, whatever Tune
    calls again); a unit missing from it after the Tuner reported nothing (:func:`_run_jobs`).
    """
    from ray.tune import Callback

    class JournalCallback(Callback):
        reported: set[int]

        def __init__(self) -> None:
            self.reported = set()

        def on_trial_result(self, iteration, trials, trial, result, **info):
            index = int(trial.config["unit"])
            if index in self.reported or "rows" not in result:
                return
            self.reported.add(index)
            for job, row in zip(units[index], json.loads(result["rows"]), strict=True):
                progress.record(job, row)

    return JournalCallback()


def _fit(trainable, param_space, tune_config, callbacks, storage: Path, name: str, resources):
    """Run one Ray Tune ``Tuner`` (no retries: ``max_failures=0``; the other trials go on when
    one errs) and return its ``ResultGrid``. Trials that end in error are left to the caller
    (:func:`_run_jobs` checks which units reported); a Tuner that fails as a whole is one line of
    :class:`InfrastructureFault`."""
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
    try:
        return tuner.fit()
    except Exception as exc:  # noqa: BLE001 - Ray's own failure, not a trial's (run_jobs never raises)
        raise InfrastructureFault(f"Ray Tune failed in {name}: {_one_line(exc)}; nothing of its "
                                  "unreported trials was journaled: rerun the same command "
                                  "to train them again") from None


def _units_lost(callback, units: list[list[Job]], grid) -> tuple[list[int], str]:
    """The units of a Tuner that reported nothing, and Ray's first error for them (one line)."""
    lost = [i for i in range(len(units)) if i not in callback.reported]
    errors = (getattr(grid, "errors", None) or []) if lost else []
    return lost, _one_line(errors[0]) if errors else ""


def _lost_units_fault(plan: CellPlan, name: str, units: list[list[Job]], lost: list[int],
                      why: str) -> InfrastructureFault:
    """The one line of a Tuner whose units ``lost`` reported nothing (item 6 of "Nothing lost")."""
    spec, jobs = plan.spec, [job for i in lost for job in units[i]]
    what = (f"stage-1 trial{'s' if len(jobs) > 1 else ''} "
            f"{', '.join(str(j.number) for j in jobs)}" if jobs[0].seed is None
            else f"{len(jobs)} stage-2 run{'s' if len(jobs) > 1 else ''}")
    return InfrastructureFault(
        f"{spec.setting}/{spec.method}/{spec.reg}: {len(lost)} of {len(units)} Ray trials of "
        f"{name} died without reporting ({what}{'; ' + why if why else ''}): an infrastructure "
        "fault, not a trial result, so they were neither journaled nor scored; rerun the same "
        "command to train them again")


# ----------------------------------------------------------------------------- options
@dataclass
class TuneOptions:
    scale: str = "quick"
    repetition: int = 0
    device: str = "auto"
    backend: str | None = None  # the method's training backend (registry); None = its default
    address: str | None = None
    max_concurrent: int | None = None
    stage2_winner: str = "mean"
    space_path: str | None = None
    hparams_path: str | None = None
    train_options: dict = field(default_factory=dict)
    quiet: bool = False
    num_samples: int | None = None  # override of the scale's budget
    batch: int | None = None  # stage-1 configurations asked at a time (None: the scale's)
    executor: str = "auto"  # ray: Ray Tune Tuner; local: same TPE study in this process; auto
    cpus: int | None = None  # CPUs of a local Ray instance (None: all)
    restart: bool = False  # discard the cell's journals and runs, start afresh
    restart_if_changed: bool = False  # start afresh only if the fingerprint changed
    retry_failed: bool = False  # re-run trials whose journal row says failed


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


def _check_options(opts: TuneOptions) -> None:
    """Every numeric option in range before any file is touched."""
    for name in ("cpus", "max_concurrent", "num_samples", "batch"):
        value = getattr(opts, name)
        if value is not None and value < 1:
            raise ConfigError(f"{name.replace('_', '-')} must be >= 1, got {value}")
    if opts.repetition < 0:
        raise ConfigError(f"repetition must be >= 0, got {opts.repetition}")
    if opts.stage2_winner not in ("mean", "median"):
        raise ConfigError(f"stage2_winner must be 'mean' or 'median', got {opts.stage2_winner!r}")
    if opts.restart and opts.restart_if_changed:
        raise ConfigError("give either restart or restart-if-changed, not both")


def _concurrency(opts: TuneOptions, n: int) -> int:
    if opts.max_concurrent:
        return max(1, min(opts.max_concurrent, n))
    import ray

    cpus = int(ray.available_resources().get("CPU", 1)) or 1
    return max(1, min(cpus, n))


# ----------------------------------------------------------------------------- the cell plan
@dataclass
class CellPlan:
    """A validated cell: what its trials need, its budgets and its fingerprint (no compute)."""

    spec: CellSpec
    scale: Scale
    opts: TuneOptions
    dims: dict[str, Dimension]
    num_samples: int
    fingerprint: dict
    batch: int = 1  # stage-1 configurations asked and trained at a time
    first_config: dict | None = None  # stage-1 trial 1 (encoded), when the scale enqueues one
    notes: list[str] = field(default_factory=list)  # where user values replace the scale's


def plan_cell(setting: str, method: str, reg: str, data_path: str | Path,
              opts: TuneOptions) -> CellPlan:
    """Validate every input of a cell and compute its fingerprint; writes nothing."""
    from deepstock import __version__, numerics, provenance
    from deepstock.data import load_dataset

    _check_options(opts)
    backend = get_method(method).backend(opts.backend).name
    opts = replace(opts, backend=backend)
    data_path = str(Path(data_path).resolve())
    # fail on a wrong or missing dataset before any compute; custom settings come from the file
    cell_setting = load_dataset(data_path, expect_setting=setting).setting
    scale = get_scale(opts.scale)
    opts = replace(opts, executor=resolve_executor(opts, scale))
    notes: list[str] = []
    base = resolve_hparams(method, cell_setting, reg, path=opts.hparams_path, scale=scale,
                           notes=notes)
    dims = search_space(method, cell_setting, reg, path=opts.space_path)
    fixed = dict(scale.budget(method))
    if opts.hparams_path is not None:
        fixed.update(read_mapping(opts.hparams_path))
    for key in sorted(set(dims) & set(fixed)):  # a value fixed by the scale or the user
        notes.append(f"{key} is fixed at {base[key]!r}: not searched")
        del dims[key]
    if not dims:
        raise ConfigError(f"empty search space for {method}/{setting}/{reg}")
    device = resolve_device(method, opts.device, backend)
    num_samples = opts.num_samples or scale.num_samples
    batch = opts.batch or scale.batch
    first = _default_config(base, dims) if scale.enqueue_defaults else None
    fingerprint = {
        "setting": setting, "method": method, "backend": backend, "reg": reg,
        "repetition": opts.repetition, "dataset_sha256": file_sha256(data_path),
        "scale": {"name": scale.name, "num_samples": num_samples,
                  "n_startup_trials": scale.n_startup_trials, "top_k": scale.top_k,
                  "seeds": list(scale.seeds), "batch": batch, "first_config": first,
                  "significant_digits": scale.significant_digits},
        "hparams": base,
        "search_space": {k: [d.dist, list(d.args)] for k, d in sorted(dims.items())},
        "device": device, "train_options": dict(opts.train_options), "version": __version__,
        # the libraries' versions and the numerics mode decide bits: another stack is another
        # cell (the commit and CPU of each row are recorded in the row, not here)
        "stack_hash": provenance.stack_hash(), "numerics": numerics.mode(),
    }
    spec = CellSpec(setting=setting, method=method, reg=reg, data_path=data_path,
                    base_hparams=base, device=device, backend=backend,
                    train_options=dict(opts.train_options),
                    fingerprint=digest(fingerprint),
                    run={"executor": opts.executor, "batch": batch})
    return CellPlan(spec, scale, opts, dims, num_samples, fingerprint, batch, first, notes)


def _default_config(base: dict, dims: dict[str, Dimension]) -> dict:
    """The cell's default values of the searched keys (encoded), those inside the search space."""
    return {k: encode_choice(base[k]) for k, d in sorted(dims.items()) if d.contains(base[k])}


def _prepare_folder(out: Path, plan: CellPlan) -> tuple[Journal, Journal]:
    """The two journals of ``out``, after clearing the cell if asked (``restart``: the journals
    are not read, so an unreadable one is discarded too) or if its inputs changed. Every row of
    a kept journal has passed its checksum here, before any training."""
    journals = (Journal(out / "stage1.jsonl", plan.fingerprint),
                Journal(out / "stage2.jsonl", plan.fingerprint))
    if plan.opts.restart:
        _clear_cell(out)
        return journals
    changes = [c for c in (j.change() for j in journals) if c is not None]
    if changes and plan.opts.restart_if_changed:
        _clear_cell(out)
    elif changes:
        raise JournalError(f"{out} holds trials of other inputs ({changes[0]}); rerun with "
                           "--restart to start the cell afresh")
    for journal in journals:
        if journal.path.exists():
            journal.rows()  # a row edited by hand is refused now, not after stage 1
    return journals


def _run_folders(out: Path) -> list[Path]:
    """The cell's run folders present: ``final`` and ``stage2/<config key>_s<seed>``."""
    found = [out / "final"] if os.path.lexists(out / "final") else []
    stage2 = out / "stage2"
    if stage2.is_dir() and not stage2.is_symlink():
        found += sorted(p for p in stage2.iterdir() if _RUN_FOLDER.fullmatch(p.name))
    return found


def _foreign_entry(out: Path) -> Path | None:
    """The first path deepstock did not write where the cell replaces folders whole: ``stage2``
    or a run folder that is a link or not a folder, or an entry of a run folder that is not a
    run file (:func:`deepstock.trainers.common.is_run_file`); None if there is none."""
    from deepstock.trainers.common import is_run_file

    stage2 = out / "stage2"
    if os.path.lexists(stage2) and (stage2.is_symlink() or not stage2.is_dir()):
        return stage2
    for folder in _run_folders(out):
        if folder.is_symlink() or not folder.is_dir():
            return folder
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise os_error("read", folder, exc) from None
        for entry in entries:
            if not (entry.is_file(follow_symlinks=False) and is_run_file(entry.name)):
                return folder / entry.name
    return None


def _check_run_folders(out: Path) -> None:
    """Refuse (one line naming the file), before any training, a cell whose ``final/`` or a
    stage-2 run folder holds a file deepstock did not write: the cell replaces those whole."""
    foreign = _foreign_entry(out)
    if foreign is not None:
        raise DataError(f"cannot write {foreign.parent}: it holds {foreign.name!r}, which "
                        "deepstock did not write; it replaces only its own folders: move it away")


def _clear_cell(out: Path) -> None:
    """Remove what the cell wrote (module docstring, "Folders") and nothing else, reading no
    journal; refuse (one line naming the file), removing nothing, if a folder it would replace
    holds a file deepstock did not write."""
    from deepstock.trainers.common import is_run_file

    foreign = _foreign_entry(out)
    if foreign is not None:
        raise DataError(f"cannot restart {out}: {foreign} was not written by deepstock, and "
                        "--restart removes only the cell's own files; move it away first")
    for folder in _run_folders(out):
        for entry in folder.iterdir():
            if entry.is_file() and not entry.is_symlink() and is_run_file(entry.name):
                entry.unlink()
        _remove_empty(folder)
    for folder in (out, out / "stage2"):
        for entry in folder.glob(".*") if folder.is_dir() else []:
            if _SWAP_LEFTOVER.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
    _remove_empty(out / "stage2")
    for name in CELL_FILES:
        if (out / name).is_symlink() or (out / name).is_file():
            (out / name).unlink()
    remove_stale_temps(out, CELL_FILES)
    ray = out / ".ray"
    if ray.is_symlink():
        ray.unlink()
    elif ray.is_dir():
        shutil.rmtree(ray, ignore_errors=True)


def _remove_empty(folder: Path) -> None:
    """Remove ``folder`` if it is an empty folder (not a link); else leave it."""
    if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
        folder.rmdir()


# ----------------------------------------------------------------------------- running jobs
def _units(plan: CellPlan, jobs: list[Job]) -> list[list[Job]]:
    """How ``jobs`` are trained: one job per unit, unless the backend trains populations; then
    as many balanced populations as can run at once (local executor: one; Ray: the number of
    concurrent trials), each one Ray task."""
    if not jobs:
        return []
    from deepstock.trainers.backends import load_trainer

    if load_trainer(plan.spec.method, plan.spec.backend).population is None:
        return [[job] for job in jobs]
    n = 1 if plan.opts.executor == "local" else _concurrency(plan.opts, len(jobs))
    return [jobs[i::n] for i in range(n)]


def _run_jobs(plan: CellPlan, jobs: list[Job], progress: _Progress, storage: Path,
              name: str) -> None:
    """Train fixed (configuration, seed) jobs: in this process, or each unit as a Ray Tune trial
    (one CPU; a fractional GPU on CUDA). Returns with every job journaled, else raises
    :class:`InfrastructureFault` after the unit (local) or the Ray trials (:meth:`_Progress.check`).

    On Ray every trial of the Tuner runs to its end first (the others' rows are journaled). A
    unit that reported nothing — its worker died or was killed — is an infrastructure fault,
    not a trial result: its jobs are not journaled, the caller never tells TPE a score for them
    (the raise comes before :meth:`_Search.tell`), and the one line names how many of the
    Tuner's trials died (``1 of 4 Ray trials of stage1_1 died without reporting (stage-1 trial
    2; ActorDiedError: ...)``). A rerun of the same command trains exactly those jobs again, so
    the search after it is the uninterrupted one's (tests/test_ray_faults.py); a cell whose
    every worker died stops the same way.
    """
    units = _units(plan, jobs)
    if not units:
        return
    if plan.opts.executor == "local":
        for unit in units:
            for job, row in zip(unit, run_jobs(plan.spec, unit), strict=True):
                progress.record(job, row)
            progress.check(unit)
        return
    from ray import tune

    callback = _journal_callback(progress, units)
    grid = _fit(
        tune.with_parameters(_unit_trainable, spec=plan.spec, units=units),
        {"unit": tune.grid_search(list(range(len(units))))},
        tune.TuneConfig(num_samples=1, reuse_actors=True,
                        max_concurrent_trials=_concurrency(plan.opts, len(units))),
        [callback], storage, name, _trial_resources(plan.spec.device),
    )
    lost, why = _units_lost(callback, units, grid)
    if lost and progress.fault is None:
        raise _lost_units_fault(plan, name, units, lost, why)
    progress.check(jobs)


class _Search:
    """Stage 1's Optuna study: TPE asked ``batch`` configurations at a time.

    With ``batch`` k > 1 the sampler is TPE's constant liar (the configurations of the batch in
    flight count as failures), so a batch is k different configurations; k = 1 is plain
    sequential TPE. Every batch is told before the next is asked, so the configurations depend
    only on (repetition, k, the scores) — not on the executor, on timing or on an interruption.
    :func:`_distributions` are what ``OptunaSearch`` would build for Ray Tune.
    """

    def __init__(self, plan: CellPlan, *, enqueue: bool = True) -> None:
        import optuna
        from optuna.samplers import TPESampler

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.plan, self.k = plan, plan.batch
        self.dists = {k: d.to_optuna() for k, d in plan.dims.items()}
        sampler = TPESampler(n_startup_trials=plan.scale.n_startup_trials,
                             seed=plan.opts.repetition, constant_liar=self.k > 1)
        self.study = optuna.create_study(sampler=sampler, pruner=optuna.pruners.NopPruner(),
                                         direction="minimize")
        if enqueue and plan.first_config:
            self.study.enqueue_trial(plan.first_config)

    def ask(self, n: int) -> list:
        return [self.study.ask(fixed_distributions=self.dists) for _ in range(n)]

    def proposal(self, params: dict) -> dict:
        """The configuration an asked trial's ``params`` train (and the journal records): TPE's
        floats rounded to the scale's significant digits (:meth:`Dimension.rounded`), so that a
        proposal one ulp apart on another CPU or library is the same configuration with the
        same seed; the enqueued defaults are trained as given."""
        params = dict(params)
        if params == self.plan.first_config:
            return params
        digits = self.plan.scale.significant_digits
        return {k: self.plan.dims[k].rounded(v, digits) for k, v in params.items()}

    def tell(self, trials: list, values: list[float]) -> None:
        for trial, value in zip(trials, values, strict=True):
            self.study.tell(trial, value)

    def add(self, rows: list[dict]) -> None:
        """Finished trials as history, without replaying how they were asked."""
        import optuna

        for r in rows:
            self.study.add_trial(optuna.trial.create_trial(
                params=r["config"], distributions=self.dists, value=r[METRIC]))


def _replay(search: _Search, trials: dict[int, dict], num_samples: int) -> tuple[int, list]:
    """Rebuild the study from the journal by asking its batches again and telling their scores.

    Returns the number of the first trial not yet asked, and the jobs of an interrupted batch
    (asked, some of its trials not journaled) with that batch's asked trials. If the sampler does
    not propose what the journal holds (a retried trial changed a score, or another Optuna),
    the journal's trials become plain history and the search continues after them.
    """
    number = 1
    while number <= num_samples:
        numbers = list(range(number, min(number + search.k, num_samples + 1)))
        present = [t for t in numbers if t in trials]
        if not present:
            return number, []
        asked = search.ask(len(numbers))
        if any(search.proposal(asked[t - number].params) != trials[t]["config"] for t in present):
            return _as_history(search, trials)
        if len(present) < len(numbers):
            missing = [Job(t, search.proposal(asked[t - number].params)) for t in numbers
                       if t not in trials]
            return number + len(numbers), [(asked, numbers, missing)]
        search.tell(asked, [trials[t][METRIC] for t in numbers])
        number += len(numbers)
    return number, []


def _as_history(search: _Search, trials: dict[int, dict]) -> tuple[int, list]:
    print(f"note: {search.plan.spec.setting}/{search.plan.spec.method}/{search.plan.spec.reg}: "
          "the stage-1 journal is not what the sampler proposes (a retried trial, or another "
          "Optuna); its trials are kept as history", file=sys.stderr, flush=True)
    search.study = _Search(search.plan, enqueue=False).study
    search.add([r for r in trials.values() if math.isfinite(r[METRIC])])
    return max(trials) + 1, []


def _search(plan: CellPlan, trials: dict[int, dict], progress: _Progress, storage: Path) -> None:
    """Ask, train and tell batches until stage 1 holds ``num_samples`` trials."""
    search = _Search(plan)
    number, pending = _replay(search, trials, plan.num_samples)
    for asked, numbers, missing in pending:  # an interrupted batch: train its missing trials
        _run_jobs(plan, missing, progress, storage, "stage1_resume")
        search.tell(asked, [_score({**trials, **progress.rows}, t) for t in numbers])
    done = set(trials) | set(progress.rows)
    while len(done) < plan.num_samples:
        asked = search.ask(min(search.k, plan.num_samples - len(done)))
        jobs = [Job(number + i, search.proposal(t.params)) for i, t in enumerate(asked)]
        _run_jobs(plan, jobs, progress, storage, f"stage1_{number}")
        search.tell(asked, [_score(progress.rows, job.number) for job in jobs])
        done.update(job.number for job in jobs)
        number += len(jobs)


def _score(rows: dict[int, dict], number: int) -> float:
    """A journaled trial's score for TPE (a failed trial's is +inf).

    A trial without a row is never told: :func:`_run_jobs` has already stopped the cell when a
    unit reported nothing (its Ray worker died), and telling it +inf would steer every later
    proposal — and a rerun's — away from the uninterrupted search. Reaching here without a row
    raises :class:`InfrastructureFault` instead."""
    if number not in rows:
        raise InfrastructureFault(f"stage-1 trial {number} reported nothing; it is not told to "
                                  "the search as a score: rerun the same command to train it")
    return rows[number][METRIC]


# ----------------------------------------------------------------------------- stages
def stage1(plan: CellPlan, journal: Journal, out: Path) -> pd.DataFrame:
    """Run (or finish) stage 1 and return its table in suggestion order."""
    needed = ("trial", "config", "status", METRIC)
    trials = _latest(_check_rows(journal.rows(), journal, needed), lambda r: r["trial"])
    retry = [r for r in trials.values() if r["status"] != "ok"] if plan.opts.retry_failed else []
    remaining = max(plan.num_samples - len(trials), 0)
    progress = _Progress(journal, len(retry) + remaining, "stage1", plan.opts.quiet)
    _run_jobs(plan, [Job(r["trial"], r["config"]) for r in retry], progress, out / ".ray",
              "stage1_retry")
    if remaining:
        trials = _latest(journal.rows(), lambda r: r["trial"])
        progress.rows.clear()
        _search(plan, trials, progress, out / ".ray")
    return _stage1_table(list(_latest(journal.rows(), lambda r: r["trial"]).values()), plan.dims)


def _stage1_table(rows: list[dict], dims: dict) -> pd.DataFrame:
    """Stage 1's table: one row per journaled trial, in suggestion order. Trials lost with a Ray
    worker have no journal row, so they are neither here nor in ``winner.json``'s
    ``num_samples`` / ``stage1_failed``; without any row the table is empty but has every
    column."""
    if not rows:
        return pd.DataFrame(columns=[
            "trial", *(f"config.{k}" for k in dims), "config", "seed", METRIC, "train_loss",
            "test_loss", "status", "error", "wall_s", "iterations", "population",
            *provenance_columns({}), "best_so_far"])
    rows = sorted(rows, key=lambda r: r["trial"])
    df = pd.DataFrame(
        [
            {
                "trial": r["trial"],
                **{f"config.{k}": json.dumps(decode_config(r["config"]).get(k)) for k in dims},
                "config": json.dumps(decode_config(r["config"]), sort_keys=True),
                **{k: r.get(k) for k in ("seed", METRIC, "train_loss", "test_loss", "status",
                                        "error", "wall_s", "iterations", "population")},
                **provenance_columns(r),
            }
            for r in rows
        ]
    )
    if len(df):
        vals = df[METRIC].where(df["status"] == "ok", np.inf).astype(float)
        df["best_so_far"] = vals.cummin()
    return df


def stage2(plan: CellPlan, journal: Journal, table1: pd.DataFrame, out: Path) -> pd.DataFrame:
    """Re-run the top-k stage-1 configurations over the scale's seeds; resumable.

    A (configuration, seed) is done when its latest row succeeded with a complete run folder of
    this fingerprint (or failed, unless ``retry_failed``); everything else is (re-)run.
    """
    ok = table1[table1["status"] == "ok"].sort_values([METRIC, "trial"])
    top = ok.head(plan.scale.top_k)
    configs = [{k: encode_choice(v) for k, v in json.loads(c).items()} for c in top["config"]]
    keys = [config_key(c) for c in configs]
    root = (out / "stage2").resolve()
    needed = ("config", "config_key", "seed", "status", METRIC)
    rows = _check_rows(journal.rows(), journal, needed)
    latest = _latest(rows, lambda r: (r["config_key"], r["seed"]))
    jobs = []
    for config, key in zip(configs, keys, strict=True):
        for seed in plan.scale.seeds:
            run_dir = root / f"{key}_s{seed}"
            r = latest.get((key, seed))
            done = r is not None and (
                run_is_complete(run_dir, plan.spec.fingerprint) if r["status"] == "ok"
                else not plan.opts.retry_failed)
            if not done:
                jobs.append(Job(len(rows) + len(jobs) + 1, config, seed, str(run_dir)))
    progress = _Progress(journal, len(jobs), "stage2", plan.opts.quiet)
    _run_jobs(plan, jobs, progress, out / ".ray", "stage2")
    latest = _latest(journal.rows(), lambda r: (r["config_key"], r["seed"]))
    records = [
        {"config_index": i, "stage1_trial": int(top["trial"].iloc[i]), "config_key": key,
         "config": json.dumps(decode_config(configs[i]), sort_keys=True),
         **{k: latest.get((key, s), _lost(s)).get(k) for k in (
             "seed", METRIC, "train_loss", "test_loss", "status", "error", "wall_s",
             "iterations", "population")},
         **provenance_columns(latest.get((key, s), {}))}
        for i, key in enumerate(keys) for s in plan.scale.seeds
    ]
    return pd.DataFrame(records).sort_values(["config_index", "seed"]).reset_index(drop=True)


def provenance_columns(row: dict) -> dict:
    """A stage table's provenance columns of one journal row (empty where it has none)."""
    p = row.get("provenance") or {}
    return {"commit": p.get("commit", ""), "dirty": p.get("dirty"),
            "stack_hash": p.get("stack_hash", ""), "cpu": (p.get("cpu") or {}).get("model", "")}


def _lost(seed: int) -> dict:
    """The stage-2 table's default row for a (configuration, seed) without a journal row. Not
    reached by a run whose Ray worker died: :func:`_run_jobs` stops the cell first, so the
    stage-2 table holds journaled runs only; kept as a failure should a row ever be missing."""
    return {"seed": seed, METRIC: math.inf, "status": "failed", "error": "no result reported",
            "wall_s": 0.0}


def median_seed_row(runs: pd.DataFrame) -> pd.Series:
    """Sort a configuration's successful runs by (val, seed) ascending and take index ⌊n/2⌋."""
    ordered = runs.sort_values([METRIC, "seed"])
    return ordered.iloc[len(ordered) // 2]


def pick_winner(table2: pd.DataFrame, rule: str = "mean") -> tuple[int, list[dict]]:
    """Index of the winning configuration and per-configuration summaries (spec §8)."""
    if rule not in ("mean", "median"):
        raise ConfigError(f"stage2_winner must be 'mean' or 'median', got {rule!r}")
    summaries = []
    for idx, g in table2.groupby("config_index"):
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
        errors = [e for e in table2.get("error", []) if isinstance(e, str) and e]
        first = f"; first error: {errors[0].splitlines()[0]}" if errors else ""
        raise TuningFailed(f"all {len(table2)} stage-2 runs failed{first} (after fixing the "
                           "cause, rerun with --retry-failed)")
    best = min(finite, key=lambda s: (s[rule], s["config_index"]))
    return best["config_index"], summaries


# ----------------------------------------------------------------------------- the cell
def tune_cell(
    setting: str, method: str, reg: str, data_path: str | Path, out_dir: str | Path,
    opts: TuneOptions | None = None, *, stage1_only: bool = False,
) -> dict:
    """Run both stages for one cell and write stage1.csv, stage2.csv, winner.json and final/
    (``stage1_only``: stop after stage1.csv and return ``{}``; ``deepstock verify --trials``)."""
    plan = plan_cell(setting, method, reg, data_path, opts or TuneOptions())
    for note in plan.notes:
        print(f"note: {note}", file=sys.stderr, flush=True)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the cell folder {out}: {exc.strerror}") from None
    with CellLock(out):
        return _run_cell(plan, out, stage1_only)


def _run_cell(plan: CellPlan, out: Path, stage1_only: bool) -> dict:
    """Under the cell's lock: remove stale temporary files, prepare the folder (restart, refuse
    changed inputs or foreign files: all before any training), run both stages, write the
    outputs, and warn in one stderr line (even when quiet) if some trials failed."""
    t0 = time.perf_counter()
    remove_stale_temps(out, CELL_FILES)
    journal1, journal2 = _prepare_folder(out, plan)
    _check_run_folders(out)
    if plan.opts.executor == "ray":
        _ray_init(plan.opts.address, plan.opts.cpus or os.cpu_count())
    table1 = stage1(plan, journal1, out)
    write_csv(out / "stage1.csv", table1)
    if int((table1["status"] == "ok").sum()) == 0:
        spec = plan.spec
        raise TuningFailed(
            f"{spec.setting}/{spec.method}/{spec.reg}: all {len(table1)} stage-1 trials failed; "
            f"first error: {table1['error'].iloc[0]} (after fixing the cause, rerun with "
            "--retry-failed)")
    table2 = None if stage1_only else stage2(plan, journal2, table1, out)
    winner = {}
    if table2 is not None:
        write_csv(out / "stage2.csv", table2)
        winner = _write_winner(plan, out, table1, table2, time.perf_counter() - t0)
        shutil.rmtree(out / ".ray", ignore_errors=True)
    warning = failure_summary(plan, table1, table2)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    return winner


def failure_summary(plan: CellPlan, table1: pd.DataFrame,
                    table2: pd.DataFrame | None = None) -> str | None:
    """One line on the trials of a finished cell that failed, or None if none did."""
    parts, errors = [], []
    for name, table in (("stage-1 trials", table1), ("stage-2 runs", table2)):
        if table is None or not len(table):
            continue
        failed = table[table["status"] != "ok"]
        if len(failed):
            parts.append(f"{len(failed)} of {len(table)} {name}")
            errors += [e for e in failed.get("error", []) if isinstance(e, str) and e]
    if not parts:
        return None
    spec = plan.spec
    first = f" (first error: {errors[0].splitlines()[0]})" if errors else ""
    return (f"warning: {spec.setting}/{spec.method}/{spec.reg} rep{plan.opts.repetition}: "
            f"{' and '.join(parts)} failed{first}; the winner is chosen among the others and "
            "a rerun keeps the failures: after fixing a cause outside the inputs, rerun with "
            "--retry-failed")


def _write_winner(plan: CellPlan, out: Path, table1: pd.DataFrame, table2: pd.DataFrame,
                  wall_s: float) -> dict:
    """Pick the winner, copy its median-seed run to ``final/`` and write ``winner.json``."""
    win_idx, summaries = pick_winner(table2, plan.opts.stage2_winner)
    runs = table2[(table2["config_index"] == win_idx) & (table2["status"] == "ok")]
    reported = median_seed_row(runs)
    _replace_dir(out / "stage2" / f"{reported['config_key']}_s{int(reported['seed'])}",
                 out / "final")
    spec, ok1 = plan.spec, table1["status"] == "ok"
    winner = {
        "setting": spec.setting, "method": spec.method, "backend": spec.backend, "reg": spec.reg,
        "repetition": plan.opts.repetition, "scale": plan.scale.name,
        "stage2_winner": plan.opts.stage2_winner, "executor": plan.opts.executor,
        "hparams": {**spec.base_hparams, **summaries[win_idx]["config"]},
        "searched": summaries[win_idx]["config"],
        "winner_index": win_idx, "stage1_trial": summaries[win_idx]["stage1_trial"],
        "reported_seed": int(reported["seed"]),
        "train_loss": float(reported["train_loss"]), "val_loss": float(reported[METRIC]),
        "test_loss": float(reported["test_loss"]),
        "stage1_best_val": float(table1.loc[ok1, METRIC].min()),
        "stage1_failed": int(len(table1) - ok1.sum()),
        "configs": summaries,
        "wall_s": wall_s,
        "trial_wall_s": float(table1["wall_s"].sum() + table2["wall_s"].sum()),
        "num_samples": int(len(table1)),
        "batch": plan.batch,
        "seeds": list(plan.scale.seeds),
        "fingerprint": plan.fingerprint, "fingerprint_digest": spec.fingerprint,
        "provenance": _provenance(spec),
        "trained_by": trained_by(pd.concat([table1, table2], ignore_index=True)),
    }
    write_json(out / "winner.json", winner)
    return winner


def trained_by(table: pd.DataFrame) -> list[dict]:
    """The distinct (commit, dirty, stack_hash, cpu) that trained a cell's rows, with counts:
    more than one entry means the cell mixes code, stacks or CPUs (a resume on another machine
    or after an upgrade); rows without provenance count as commit "unknown"."""
    cols = ("commit", "dirty", "stack_hash", "cpu")
    counts: dict[tuple, int] = {}
    for r in table.reindex(columns=list(cols)).to_dict("records"):
        key = tuple(None if pd.isna(r[c]) or r[c] == "" else r[c] for c in cols)
        key = ("unknown", *key[1:]) if key[0] is None else key
        counts[key] = counts.get(key, 0) + 1
    return [{**dict(zip(cols, k, strict=True)), "rows": n} for k, n in sorted(
        counts.items(), key=lambda kv: -kv[1])]


def _replace_dir(src: Path, dst: Path) -> None:
    """Replace ``dst`` by a copy of the complete run folder ``src`` in one step."""
    if not (src / "metrics.json").is_file():
        raise DataError(f"run folder {src} is incomplete (no metrics.json)")

    def fill(tmp: Path) -> None:
        for item in src.iterdir():
            copy = shutil.copytree if item.is_dir() else shutil.copy2
            copy(item, tmp / item.name)

    from deepstock.trainers.common import is_run_file

    write_folder(dst, fill, owned=is_run_file)
