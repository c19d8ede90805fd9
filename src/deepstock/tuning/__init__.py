"""Two-stage hyper-parameter tuning with Optuna's TPE, in process or on Ray Tune (spec §8).

One call of :func:`tune_cell` handles one cell (setting × method × regularization × repetition):

1. **Stage 1** — ``TPESampler(n_startup_trials, seed=r)`` proposes ``num_samples``
   configurations, ``batch`` (k) at a time: the study is asked k configurations (TPE's constant
   liar when k > 1), they are trained — as one population where the backend has one — and told
   before the next batch is asked (:class:`Search`). k = 1 is sequential TPE; the same
   repetition, k and scores give the same configurations on any executor. Each trial trains
   once (seed from the MD5 of the configuration, whose floats TPE proposed and which are rounded
   to the scale's ``significant_digits`` first: :meth:`Search.proposal`). A scale with
   ``enqueue_defaults`` makes trial 1 the cell's default hyper-parameters (the authors' winners,
   where the spec gives them).
2. **Stage 2** — the ``top_k`` configurations × the scale's seeds, as one population where the
   backend has one.
3. **Winner** — lowest mean (or median) validation loss over successful seeds; the reported run is
   its median seed (sort by val, index ⌊n/2⌋), whose run folder is copied to ``final/``.

A **unit** (:func:`units_of`) is what one process trains at once: a single run, or a population of
the cell's backend (:func:`deepstock.training.train_population`; each member's result equals its
single run, tested per backend). On the local executor a batch is one unit; on Ray it is split
into as many balanced units as run at once, each one Ray Tune trial.

Provenance and resume (:mod:`deepstock.journal`): the cell's fingerprint (dataset hash, resolved
hyper-parameters, search space, budgets and k, method/backend/reg/repetition, version) heads both
journals (``stage1.jsonl``, ``stage2.jsonl``) and is stored in every run folder and in
``winner.json``.
A rerun with the same fingerprint resumes at batch granularity: the study is rebuilt by asking
the journal's batches again and telling their scores (:func:`replay`), so finished trials are
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
``stage2/<config key>_s<seed>/`` holding run files (:func:`deepstock.training.common.is_run_file`),
and the swap leftovers of those folders. ``final/`` and the stage-2 run folders are replaced
whole, so one that holds a file deepstock did not write is refused, naming the file, before any
training. ``restart`` removes exactly those names, without reading the journals (so it also
discards a cell whose journals are unreadable), and refuses, removing nothing, where a folder it
would replace holds a foreign file; every other file of the cell folder (``stage2/`` included) is
kept. Temporary files of a writer killed mid-write are removed when the next run takes the lock.

The training backend (``TuneOptions.backend``; None = the method's default, registry) is resolved
once per cell, trains every trial, and is recorded in the fingerprint and in ``winner.json``; the
trials' device follows from it (:func:`deepstock.training.backends.resolve_device`).

Executors (``auto``, the default, picks one: :func:`resolve_executor`): ``ray`` runs units as
Ray Tune trials, one CPU each (a fractional GPU for ``device='cuda'``), ``min(cpus, units)`` at a
time or on an existing cluster (``address``); ``local`` trains them one after the other in this
process — no Ray import, start-up or worker processes. Both ask the same configurations (tested).


The package, in the order a cell runs: :mod:`.plan` (options, validation, fingerprint, the cell
folder), :mod:`.search` (stage 1's TPE batches and their replay on resume), :mod:`.executors`
(units of jobs in this process or as Ray Tune trials), :mod:`.trials` (what one worker trains
and the journal rows it returns) and :mod:`.stages` (stages 1 and 2, the winner, the cell).
"""

from deepstock.tuning.executors import check_ray_address, fit_trials, trial_resources
from deepstock.tuning.plan import CellPlan, TuneOptions, plan_cell, resolve_executor
from deepstock.tuning.search import Search, score
from deepstock.tuning.stages import (
    failure_summary,
    median_seed_row,
    pick_winner,
    provenance_columns,
    stage1_table,
    trained_by,
    tune_cell,
)
from deepstock.tuning.trials import (
    CELL_FILES,
    METRIC,
    CellSpec,
    InfrastructureFault,
    Job,
    Progress,
    TuningFailed,
    cell_job,
    config_key,
    config_seed,
    is_infrastructure_fault,
    run_jobs,
)

__all__ = [
    "CELL_FILES", "METRIC", "CellPlan", "CellSpec", "InfrastructureFault", "Job", "Progress",
    "Search", "TuneOptions", "TuningFailed", "cell_job", "check_ray_address", "config_key",
    "config_seed", "failure_summary", "fit_trials", "is_infrastructure_fault", "median_seed_row",
    "pick_winner", "plan_cell", "provenance_columns", "resolve_executor", "run_jobs", "score",
    "stage1_table", "trained_by", "trial_resources", "tune_cell",
]
