"""Stages 1 and 2, the winner, and the whole cell."""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from deepstock.errors import ConfigError, DataError
from deepstock.hparams import (
    decode_config,
    encode_choice,
)
from deepstock.io import (
    remove_stale_temps,
    write_csv,
    write_folder,
    write_json,
)
from deepstock.journal import CellLock, Journal
from deepstock.tuning.executors import ray_init, run_units
from deepstock.tuning.plan import (
    CellPlan,
    TuneOptions,
    check_run_folders,
    plan_cell,
    prepare_folder,
)
from deepstock.tuning.search import search_stage1
from deepstock.tuning.trials import (
    CELL_FILES,
    METRIC,
    Job,
    Progress,
    TuningFailed,
    check_rows,
    config_key,
    latest_row,
    row_provenance,
    run_is_complete,
)


# ----------------------------------------------------------------------------- stages
def stage1(plan: CellPlan, journal: Journal, out: Path) -> pd.DataFrame:
    """Run (or finish) stage 1 and return its table in suggestion order."""
    needed = ("trial", "config", "status", METRIC)
    trials = latest_row(check_rows(journal.rows(), journal, needed), lambda r: r["trial"])
    retry = [r for r in trials.values() if r["status"] != "ok"] if plan.opts.retry_failed else []
    remaining = max(plan.num_samples - len(trials), 0)
    progress = Progress(journal, len(retry) + remaining, "stage1", plan.opts.quiet)
    run_units(plan, [Job(r["trial"], r["config"]) for r in retry], progress, out / ".ray",
              "stage1_retry")
    if remaining:
        trials = latest_row(journal.rows(), lambda r: r["trial"])
        progress.rows.clear()
        search_stage1(plan, trials, progress, out / ".ray")
    return stage1_table(list(latest_row(journal.rows(), lambda r: r["trial"]).values()), plan.dims)


def stage1_table(rows: list[dict], dims: dict) -> pd.DataFrame:
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
    rows = check_rows(journal.rows(), journal, needed)
    latest = latest_row(rows, lambda r: (r["config_key"], r["seed"]))
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
    progress = Progress(journal, len(jobs), "stage2", plan.opts.quiet)
    run_units(plan, jobs, progress, out / ".ray", "stage2")
    latest = latest_row(journal.rows(), lambda r: (r["config_key"], r["seed"]))
    records = [
        {"config_index": i, "stage1_trial": int(top["trial"].iloc[i]), "config_key": key,
         "config": json.dumps(decode_config(configs[i]), sort_keys=True),
         **{k: latest.get((key, s), lost_row(s)).get(k) for k in (
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


def lost_row(seed: int) -> dict:
    """The stage-2 table's default row for a (configuration, seed) without a journal row. Not
    reached by a run whose Ray worker died: :func:`run_units` stops the cell first, so the
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
        return run_cell(plan, out, stage1_only)


def run_cell(plan: CellPlan, out: Path, stage1_only: bool) -> dict:
    """Under the cell's lock: remove stale temporary files, prepare the folder (restart, refuse
    changed inputs or foreign files: all before any training), run both stages, write the
    outputs, and warn in one stderr line (even when quiet) if some trials failed."""
    t0 = time.perf_counter()
    remove_stale_temps(out, CELL_FILES)
    journal1, journal2 = prepare_folder(out, plan)
    check_run_folders(out)
    if plan.opts.executor == "ray":
        ray_init(plan.opts.address, plan.opts.cpus or os.cpu_count())
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
        winner = write_winner(plan, out, table1, table2, time.perf_counter() - t0)
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


def write_winner(plan: CellPlan, out: Path, table1: pd.DataFrame, table2: pd.DataFrame,
                  wall_s: float) -> dict:
    """Pick the winner, copy its median-seed run to ``final/`` and write ``winner.json``."""
    win_idx, summaries = pick_winner(table2, plan.opts.stage2_winner)
    runs = table2[(table2["config_index"] == win_idx) & (table2["status"] == "ok")]
    reported = median_seed_row(runs)
    replace_dir(out / "stage2" / f"{reported['config_key']}_s{int(reported['seed'])}",
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
        "provenance": row_provenance(spec),
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


def replace_dir(src: Path, dst: Path) -> None:
    """Replace ``dst`` by a copy of the complete run folder ``src`` in one step."""
    if not (src / "metrics.json").is_file():
        raise DataError(f"run folder {src} is incomplete (no metrics.json)")

    def fill(tmp: Path) -> None:
        for item in src.iterdir():
            copy = shutil.copytree if item.is_dir() else shutil.copy2
            copy(item, tmp / item.name)

    from deepstock.training.common import is_run_file

    write_folder(dst, fill, owned=is_run_file)
