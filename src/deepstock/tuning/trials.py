"""Trials: seeds, specs, one unit of jobs trained in a worker, journal rows and progress."""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepstock.errors import DataError, DeepstockError
from deepstock.hparams import (
    decode_config,
)
from deepstock.io import (
    STORAGE_ERRNOS,
    StorageError,
)
from deepstock.journal import Journal, JournalError, canonical_json

METRIC = "val_loss"
CELL_FILES = ("stage1.jsonl", "stage2.jsonl", "stage1.csv", "stage2.csv", "winner.json")
RUN_FOLDER = re.compile(r"[0-9a-f]{12}_s-?[0-9]+")  # stage2/<config key>_s<seed>
SWAP_LEFTOVER = re.compile(r"\.(final|[0-9a-f]{12}_s-?[0-9]+)\.(tmp|old)-[0-9]+-.*")


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


DATASETS: dict[str, Any] = {}


def load_cell_dataset(spec: CellSpec):
    from deepstock.problem.data import load_dataset

    if spec.data_path not in DATASETS:
        DATASETS[spec.data_path] = load_dataset(spec.data_path, expect_setting=spec.setting)
    return DATASETS[spec.data_path]


def cell_job(spec: CellSpec):
    """The cell's typed job (:class:`deepstock.training.backends.TrainJob`) at its base
    hyper-parameters: built once per process from the plain spec a Ray worker receives; each
    trial is :meth:`~deepstock.training.backends.TrainJob.with_hparams` of it."""
    from deepstock.training.backends import make_job

    return make_job(load_cell_dataset(spec).setting, spec.method, spec.reg, spec.base_hparams,
                    backend=spec.backend, device=spec.device, options=spec.train_options)


def run_jobs(spec: CellSpec, jobs: list[Job]) -> list[dict]:
    """Train one unit of jobs and return their journal rows in order; never raises.

    A unit of several jobs is one population of the cell's backend
    (:func:`deepstock.training.train_population`); each row is what the job's own run gives.
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
            load_cell_dataset(spec), [{**spec.base_hparams, **c} for c in searched], seeds)
    except Exception as exc:  # noqa: BLE001 - a crashing trial must not kill the tuning run
        if is_infrastructure_fault(exc):
            return [fault_row(seed, exc) for seed in seeds]
        if len(jobs) > 1:
            return [row for job in jobs for row in run_jobs(spec, [job])]
        return [failed_row(spec, seeds[0], exc, time.perf_counter() - t0)]
    wall = (time.perf_counter() - t0) / len(jobs)
    return [result_row(spec, job, c, seed, result, wall, len(jobs))
            for job, c, seed, result in zip(jobs, searched, seeds, results, strict=True)]


def row_provenance(spec: CellSpec) -> dict:
    """The provenance of a row trained now, in this process (a Ray worker: that machine)."""
    from deepstock import provenance

    return provenance.record(backend=spec.backend, **spec.run)


def result_row(spec: CellSpec, job: Job, searched: dict, seed: int, result, wall: float,
                population: int) -> dict:
    """The journal row of one finished training (and its run folder, if the job has one): failed
    for a non-finite validation loss, a fault row if the run folder cannot be written."""
    from deepstock.training import save_run

    if not math.isfinite(result.best_val):
        return failed_row(spec, seed, FloatingPointError(
            f"non-finite validation loss {result.best_val}"), wall)
    if job.run_dir:
        try:
            result.extras["cell"] = {"fingerprint": spec.fingerprint, "config": searched}
            save_run(result, job.run_dir, spec.run)
        except Exception as exc:  # noqa: BLE001
            if is_infrastructure_fault(exc) or isinstance(exc, DataError):  # a write, not the
                return fault_row(seed, exc)  # trial (a non-finite loss fails the trial)
            return failed_row(spec, seed, exc, wall)
    return {
        "seed": seed, "val_loss": float(result.best_val), "train_loss": float(result.train_loss),
        "test_loss": float(result.test_loss), "selected_val_loss": float(result.val_loss),
        "iterations": int(result.iterations), "status": "ok", "error": "", "wall_s": wall,
        "population": population, "provenance": row_provenance(spec),
    }


def failed_row(spec: CellSpec, seed: int, exc: BaseException, wall: float) -> dict:
    return {"seed": seed, METRIC: float("inf"), "status": "failed",
            "error": f"{type(exc).__name__}: {exc}", "wall_s": wall, "population": 1,
            "provenance": row_provenance(spec)}


def fault_row(seed: int, exc: BaseException) -> dict:
    """The row of a job stopped by an infrastructure fault: reported, never journaled."""
    text = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
    return {"seed": seed, METRIC: float("inf"), "status": "fault", "error": text}


def run_is_complete(run_dir: Path, fingerprint: str) -> bool:
    """A run folder counts only with a readable ``metrics.json`` of this cell's fingerprint."""
    from deepstock.training.common import read_run

    try:
        metrics = read_run(run_dir)
    except DeepstockError:
        return False
    extras = metrics.get("extras")
    cell = extras.get("cell") if isinstance(extras, dict) else None
    return isinstance(cell, dict) and cell.get("fingerprint") == fingerprint


# ----------------------------------------------------------------------------- journal rows
ROW_KEYS = {
    "seed", "val_loss", "train_loss", "test_loss", "selected_val_loss", "iterations", "status",
    "error", "wall_s", "population", "provenance",
}


class Progress:
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
        row = {k: result[k] for k in result if k in ROW_KEYS}
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


def latest_row(rows: list[dict], key) -> dict:
    """Later journal rows supersede earlier rows of the same key (a retried trial)."""
    out: dict = {}
    for r in rows:
        out[key(r)] = r
    return out


def check_rows(rows: list[dict], journal: Journal, needed: tuple[str, ...]) -> list[dict]:
    for i, r in enumerate(rows, start=2):
        if any(k not in r for k in needed) or not isinstance(r.get("config"), dict):
            raise JournalError(f"{journal.path} line {i} lacks {', '.join(needed)}; remove it or "
                               "rerun with --restart")
    return rows
