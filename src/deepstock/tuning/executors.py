"""Executors: a unit of jobs as a Ray Tune trial, or in this process."""

from __future__ import annotations

import json
import os
from pathlib import Path

from deepstock.errors import ConfigError
from deepstock.tuning.plan import CellPlan, concurrency
from deepstock.tuning.trials import CellSpec, InfrastructureFault, Job, Progress, run_jobs

# ----------------------------------------------------------------------------- ray helpers
RAY_CONNECT_TIMEOUT_S = 10.0  # how long `address` may take to accept a TCP connection


def ray_init(address: str | None, num_cpus: int | None) -> None:
    """Start a local Ray instance of ``num_cpus`` CPUs, or join the cluster at ``address``.

    Joining checks first (:func:`check_ray_address`) that the address — ``HOST:PORT``, ``auto``
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
        check_ray_address(address)
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False,
                     runtime_env=env)
        except Exception as exc:  # noqa: BLE001 - Ray's errors are many and multi-line
            raise InfrastructureFault(f"cannot join the Ray cluster at {address}: "
                                      f"{one_line(exc)}") from None
    else:
        ray.init(
            num_cpus=num_cpus, include_dashboard=False, log_to_driver=False,
            configure_logging=False, logging_level="ERROR", runtime_env=env,
        )


def check_ray_address(address: str) -> None:
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
                                      f"{one_line(exc)}") from None
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


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` of an exception, at most 300 characters."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def trial_resources(device: str) -> dict:
    return {"cpu": 1, "gpu": 0.25} if device == "cuda" else {"cpu": 1}


def unit_trainable(config: dict, spec: CellSpec, units: list[list[Job]]) -> dict:
    """One Ray Tune trial: train unit ``config["unit"]`` and report its rows (JSON) once.

    :func:`run_jobs` never raises, so a trial that reports nothing — its worker process died
    or was killed (OOM killer, a node lost, ``os._exit``), or the trial could not start there —
    is an infrastructure fault, never a trial result (:func:`run_units`)."""
    return {"rows": json.dumps(run_jobs(spec, units[int(config["unit"])]))}


def journal_callback(progress: Progress, units: list[list[Job]]):
    """A Tune callback that journals the rows of each finished unit (one Tune trial).

    Its ``reported`` set holds the units whose rows arrived (each journaled once, whatever Tune
    calls again); a unit missing from it after the Tuner reported nothing (:func:`run_units`).
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


def fit_trials(trainable, param_space, tune_config, callbacks, storage: Path, name: str, resources):
    """Run one Ray Tune ``Tuner`` (no retries: ``max_failures=0``; the other trials go on when
    one errs) and return its ``ResultGrid``. Trials that end in error are left to the caller
    (:func:`run_units` checks which units reported); a Tuner that fails as a whole is one line of
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
        raise InfrastructureFault(f"Ray Tune failed in {name}: {one_line(exc)}; nothing of its "
                                  "unreported trials was journaled: rerun the same command "
                                  "to train them again") from None


def units_lost(callback, units: list[list[Job]], grid) -> tuple[list[int], str]:
    """The units of a Tuner that reported nothing, and Ray's first error for them (one line)."""
    lost = [i for i in range(len(units)) if i not in callback.reported]
    errors = (getattr(grid, "errors", None) or []) if lost else []
    return lost, one_line(errors[0]) if errors else ""


def lost_units_fault(plan: CellPlan, name: str, units: list[list[Job]], lost: list[int],
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


# ----------------------------------------------------------------------------- running jobs
def units_of(plan: CellPlan, jobs: list[Job]) -> list[list[Job]]:
    """How ``jobs`` are trained: one job per unit, unless the backend trains populations; then
    as many balanced populations as can run at once (local executor: one; Ray: the number of
    concurrent trials), each one Ray task."""
    if not jobs:
        return []
    from deepstock.training.backends import load_trainer

    if load_trainer(plan.spec.method, plan.spec.backend).population is None:
        return [[job] for job in jobs]
    n = 1 if plan.opts.executor == "local" else concurrency(plan.opts, len(jobs))
    return [jobs[i::n] for i in range(n)]


def run_units(plan: CellPlan, jobs: list[Job], progress: Progress, storage: Path,
              name: str) -> None:
    """Train fixed (configuration, seed) jobs: in this process, or each unit as a Ray Tune trial
    (one CPU; a fractional GPU on CUDA). Returns with every job journaled, else raises
    :class:`InfrastructureFault` after the unit (local) or the Ray trials (:meth:`Progress.check`).

    On Ray every trial of the Tuner runs to its end first (the others' rows are journaled). A
    unit that reported nothing — its worker died or was killed — is an infrastructure fault,
    not a trial result: its jobs are not journaled, the caller never tells TPE a score for them
    (the raise comes before :meth:`Search.tell`), and the one line names how many of the
    Tuner's trials died (``1 of 4 Ray trials of stage1_1 died without reporting (stage-1 trial
    2; ActorDiedError: ...)``). A rerun of the same command trains exactly those jobs again, so
    the search after it is the uninterrupted one's (tests/test_ray_faults.py); a cell whose
    every worker died stops the same way.
    """
    units = units_of(plan, jobs)
    if not units:
        return
    if plan.opts.executor == "local":
        for unit in units:
            for job, row in zip(unit, run_jobs(plan.spec, unit), strict=True):
                progress.record(job, row)
            progress.check(unit)
        return
    from ray import tune

    callback = journal_callback(progress, units)
    grid = fit_trials(
        tune.with_parameters(unit_trainable, spec=plan.spec, units=units),
        {"unit": tune.grid_search(list(range(len(units))))},
        tune.TuneConfig(num_samples=1, reuse_actors=True,
                        max_concurrent_trials=concurrency(plan.opts, len(units))),
        [callback], storage, name, trial_resources(plan.spec.device),
    )
    lost, why = units_lost(callback, units, grid)
    if lost and progress.fault is None:
        raise lost_units_fault(plan, name, units, lost, why)
    progress.check(jobs)
