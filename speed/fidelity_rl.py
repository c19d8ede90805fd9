"""Backend fidelity: the authors' winners (default hyper-parameters) at seeds 42-46, full budget.

Trains every requested (setting, method, reg) cell on one backend and writes one CSV row per run
(test/val loss, steps, wall time) to ``--out`` as soon as the run ends (a rerun skips the rows
already there). The JAX backend trains the five seeds of a cell as one population; SB3 one run
after the other. ``--summary`` prints the means per cell of every CSV given, side by side, and Base − None per
method and backend with bootstrap intervals.

Run (one CPU core each; docs/validation.md has the numbers)::

    python speed/fidelity_rl.py --backend jax --cells s1:ddpg:none s1:ddpg:base s1:ppo:none \
        s1:ppo:base s2:ddpg:base s2:ppo:base --out paper/reference-runs/backend-fidelity/jax.csv
    python speed/fidelity_rl.py --summary paper/reference-runs/backend-fidelity/*.csv
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import pandas as pd  # noqa: E402

SEEDS = (42, 43, 44, 45, 46)
COLUMNS = ["backend", "setting", "method", "reg", "seed", "test_loss", "val_loss", "best_val",
           "iterations", "stopped_early", "wall_s", "cell_wall_s"]


def _done(out: Path) -> set[tuple]:
    if not out.is_file():
        return set()
    df = pd.read_csv(out)
    return {(r.setting, r.method, r.reg, int(r.seed)) for r in df.itertuples()}


def _append(out: Path, rows: list[dict]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    new = pd.DataFrame(rows, columns=COLUMNS)
    old = pd.read_csv(out) if out.is_file() else None
    df = new if old is None else pd.concat([old, new], ignore_index=True)
    tmp = out.with_suffix(".tmp")
    df.to_csv(tmp, index=False)
    tmp.replace(out)


def run_cell(backend: str, cell: str, seeds: list[int], dataset_cache: dict) -> list[dict]:
    from deepstock.hparams import resolve_hparams
    from deepstock.problem.generators import generate_dataset
    from deepstock.training.backends import load_trainer

    setting, method, reg = cell.split(":")
    ds = dataset_cache.setdefault(setting, generate_dataset(setting))
    hp = resolve_hparams(method, ds.setting, reg)
    t0 = time.perf_counter()
    trainer = load_trainer(method, backend)
    if trainer.population is not None:
        results = trainer.population(ds, reg, [hp] * len(seeds), seeds, device="cpu")
    else:
        results = [trainer.train(ds, reg, hp, s, device="cpu") for s in seeds]
    cell_wall = time.perf_counter() - t0
    return [{"backend": backend, "setting": setting, "method": method, "reg": reg,
             "seed": r.seed, "test_loss": r.test_loss, "val_loss": r.val_loss,
             "best_val": r.best_val, "iterations": r.iterations,
             "stopped_early": r.extras.get("stopped_early"), "wall_s": r.wall_s,
             "cell_wall_s": cell_wall} for r in results]


def _runs(paths: list[str]) -> pd.DataFrame:
    """The rows of every CSV, one per run (a run in several files counts once)."""
    df = pd.concat([pd.read_csv(p) for p in paths], ignore_index=True)
    return df.drop_duplicates(["backend", "setting", "method", "reg", "seed"], keep="last")


def _mean_difference(a, b, axis):
    return a.mean(axis) - b.mean(axis)


def _interval(samples, statistic) -> str:
    """95 % bootstrap interval (scipy's BCa, independent samples) of ``statistic``."""
    from scipy.stats import bootstrap

    ci = bootstrap(samples, statistic, n_resamples=10000, random_state=0).confidence_interval
    return f"[{ci.low:+.4f}, {ci.high:+.4f}]"


def summary(paths: list[str], seeds: list[int] | None = None) -> pd.DataFrame:
    """Per cell and backend: runs, mean/min/max test loss and mean steps; where both backends
    ran, the relative gap of the JAX mean and a 95 % bootstrap interval of the difference of
    means (scipy.stats.bootstrap, two independent samples; whether the gap exceeds seed noise)."""
    df = _runs(paths)
    if seeds:
        df = df[df["seed"].isin(seeds)]
    rows = []
    for (setting, method, reg), cell in df.groupby(["setting", "method", "reg"]):
        row = {"cell": f"{setting} {method}-{reg}"}
        for backend, runs in cell.groupby("backend"):
            row[f"{backend} n"] = len(runs)
            row[f"{backend} mean"] = runs["test_loss"].mean()
            row[f"{backend} range"] = f"{runs['test_loss'].min():.4f}-{runs['test_loss'].max():.4f}"
            row[f"{backend} steps"] = int(runs["iterations"].mean())
        both = {b: r["test_loss"].to_numpy() for b, r in cell.groupby("backend")}
        if {"sb3", "jax"} <= set(both) and min(len(both["sb3"]), len(both["jax"])) > 1:
            row["gap %"] = 100 * (both["jax"].mean() / both["sb3"].mean() - 1)
            row["diff 95% CI"] = _interval((both["jax"], both["sb3"]), _mean_difference)
        rows.append(row)
    return pd.DataFrame(rows).set_index("cell").round(4)


def base_effects(paths: list[str], seeds: list[int] | None = None) -> pd.DataFrame:
    """Per setting, method and backend: mean test loss of Base minus None over the runs of
    both, with a 95 % bootstrap interval (independent samples); where both backends ran, the
    difference between their effects (JAX's minus SB3's) and its interval: whether the two
    backends disagree about Base beyond seed noise."""
    df = _runs(paths)
    if seeds:
        df = df[df["seed"].isin(seeds)]
    rows = []
    for (setting, method), cell in df.groupby(["setting", "method"]):
        loss = {(b, r): g["test_loss"].to_numpy() for (b, r), g in cell.groupby(["backend", "reg"])}
        row = {"cell": f"{setting} {method}"}
        for backend in ("sb3", "jax"):
            base, none = loss.get((backend, "base")), loss.get((backend, "none"))
            if base is None or none is None or min(len(base), len(none)) < 2:
                continue
            row[f"{backend} n base/none"] = f"{len(base)}/{len(none)}"
            row[f"{backend} base-none"] = base.mean() - none.mean()
            row[f"{backend} 95% CI"] = _interval((base, none), _mean_difference)
        if "sb3 base-none" in row and "jax base-none" in row:
            row["jax-sb3 effect 95% CI"] = _interval(
                tuple(loss[k] for k in (("jax", "base"), ("jax", "none"), ("sb3", "base"),
                                        ("sb3", "none"))),
                lambda a, b, c, d, axis: (a.mean(axis) - b.mean(axis))
                - (c.mean(axis) - d.mean(axis)))
        rows.append(row)
    return pd.DataFrame(rows).set_index("cell").round(4)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=["sb3", "jax"])
    p.add_argument("--cells", nargs="+", default=[])
    p.add_argument("--seeds", nargs="+", type=int, default=None,
                   help="seeds to train (default 42-46) or, with --summary, to summarize")
    p.add_argument("--out")
    p.add_argument("--summary", nargs="+", help="CSV files to summarize (with --seeds: only those)")
    args = p.parse_args()
    if args.summary:
        with pd.option_context("display.width", 200, "display.max_columns", 50):
            print(summary(args.summary, args.seeds).to_string())
            effects = base_effects(args.summary, args.seeds)
            if effects.shape[1]:
                print("\nBase - None (negative: Base better)")
                print(effects.to_string())
        return
    out = Path(args.out)
    cache: dict = {}
    for cell in args.cells:
        done = _done(out)
        s, m, r = cell.split(":")
        seeds = [x for x in args.seeds or SEEDS if (s, m, r, x) not in done]
        if not seeds:
            continue
        if args.backend == "jax":
            _append(out, run_cell("jax", cell, seeds, cache))
        else:
            for seed in seeds:
                _append(out, run_cell(args.backend, cell, [seed], cache))
        print(f"{cell} done", flush=True)


if __name__ == "__main__":
    main()
