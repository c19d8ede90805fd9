"""Stage 1's search: TPE asked in batches, journaled, replayed on resume."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from deepstock.tuning.executors import run_units
from deepstock.tuning.plan import CellPlan
from deepstock.tuning.trials import METRIC, InfrastructureFault, Job, Progress


class Search:
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


def replay(search: Search, trials: dict[int, dict], num_samples: int) -> tuple[int, list]:
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
            return as_history(search, trials)
        if len(present) < len(numbers):
            missing = [Job(t, search.proposal(asked[t - number].params)) for t in numbers
                       if t not in trials]
            return number + len(numbers), [(asked, numbers, missing)]
        search.tell(asked, [trials[t][METRIC] for t in numbers])
        number += len(numbers)
    return number, []


def as_history(search: Search, trials: dict[int, dict]) -> tuple[int, list]:
    print(f"note: {search.plan.spec.setting}/{search.plan.spec.method}/{search.plan.spec.reg}: "
          "the stage-1 journal is not what the sampler proposes (a retried trial, or another "
          "Optuna); its trials are kept as history", file=sys.stderr, flush=True)
    search.study = Search(search.plan, enqueue=False).study
    search.add([r for r in trials.values() if math.isfinite(r[METRIC])])
    return max(trials) + 1, []


def search_stage1(plan: CellPlan, trials: dict[int, dict], progress: Progress, storage: Path) -> None:
    """Ask, train and tell batches until stage 1 holds ``num_samples`` trials."""
    search = Search(plan)
    number, pending = replay(search, trials, plan.num_samples)
    for asked, numbers, missing in pending:  # an interrupted batch: train its missing trials
        run_units(plan, missing, progress, storage, "stage1_resume")
        search.tell(asked, [score({**trials, **progress.rows}, t) for t in numbers])
    done = set(trials) | set(progress.rows)
    while len(done) < plan.num_samples:
        asked = search.ask(min(search.k, plan.num_samples - len(done)))
        jobs = [Job(number + i, search.proposal(t.params)) for i, t in enumerate(asked)]
        run_units(plan, jobs, progress, storage, f"stage1_{number}")
        search.tell(asked, [score(progress.rows, job.number) for job in jobs])
        done.update(job.number for job in jobs)
        number += len(jobs)


def score(rows: dict[int, dict], number: int) -> float:
    """A journaled trial's score for TPE (a failed trial's is +inf).

    A trial without a row is never told: :func:`run_units` has already stopped the cell when a
    unit reported nothing (its Ray worker died), and telling it +inf would steer every later
    proposal — and a rerun's — away from the uninterrupted search. Reaching here without a row
    raises :class:`InfrastructureFault` instead."""
    if number not in rows:
        raise InfrastructureFault(f"stage-1 trial {number} reported nothing; it is not told to "
                                  "the search as a score: rerun the same command to train it")
    return rows[number][METRIC]
