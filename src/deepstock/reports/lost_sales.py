"""The lost-sales table, figure and takeaways: gaps to the exact optimum beside base stock.

For each lost-sales setting (dist, L, p) the table gives the exact optimal average cost g*
(``expected_value`` of the ``ls_dp`` benchmark), L* (the optimal policy's cost on the test
paths), the best base-stock level S and its exact gap 100 (c_S − g*)/g*, Zipkin's (2008,
Table 3) printed base-stock gap where he gives one (Poisson), and for each (method, reg) the
gap 100 (L − L*)/L* of the reported run with its 95 % interval. The gap is paired: L and L*
are costs on the same test paths, so the test set's sampling noise largely cancels (L* itself is
within ±0.5 % of g*, ``docs/lost-sales.md``).

Inputs are the rows of ``summary.csv`` (tuned cells) or of single runs with the same columns
(``setting, method, reg, repetition, test_loss`` and optionally ``seed_*`` lists), and the
benchmark JSONs under ``results/benchmarks``.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from deepstock.errors import ConfigError, DataError
from deepstock.io import read_yaml
from deepstock.problem.losses import loss_gap
from deepstock.problem.settings import get_setting
from deepstock.reports import intervals

TABLE_COLUMNS = ["setting", "dist", "L", "p", "g_star", "L_star", "base_stock_level",
                 "base_stock_gap", "zipkin_base_stock_gap", "method", "reg", "n_reps",
                 "test_loss", "gap", "ci_low", "ci_high", "ci_kind"]


def is_lost_sales(setting: str) -> bool:
    try:
        return get_setting(setting).lost_sales
    except ConfigError:  # a custom or unknown id in a summary: not one of ours
        return False


def read_benchmarks(results: str | Path, settings: list[str]) -> dict[str, dict]:
    """{setting: its ls_dp benchmark JSON} for the settings that have one."""
    out = {}
    for s in settings:
        path = Path(results) / "benchmarks" / f"{s}.json"
        if path.is_file():
            try:
                b = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise DataError(f"cannot read {path}: {exc}") from None
            if b.get("method") == "ls_dp":
                out[s] = b
    return out


def rows_from_runs(root: str | Path) -> pd.DataFrame:
    """Rows like summary.csv's from single runs ``root/{setting}/{method}-{reg}/s{seed}``
    (``deepstock train``'s run folders): one row per (setting, method, reg), reporting the
    median-validation seed as the tuner does, with every seed's losses for the seed interval."""
    from deepstock.training.common import RUN_MARKER

    runs = []
    for path in sorted(Path(root).glob(f"*/*-*/s*/{RUN_MARKER}")):
        m = json.loads(path.read_text())
        runs.append({"setting": m["setting"], "method": m["method"], "reg": m["reg"],
                     "seed": int(m["seed"]), "val_loss": float(m["val_loss"]),
                     "test_loss": float(m["test_loss"]), "commit": m.get("commit", "")})
    out = []
    for (s, method, reg), g in pd.DataFrame(runs).groupby(["setting", "method", "reg"],
                                                          sort=False) if runs else ():
        g = g.sort_values(["val_loss", "seed"], kind="stable")
        med = g.iloc[len(g) // 2]
        out.append({"setting": s, "method": method, "reg": reg, "repetition": 0,
                    "val_loss": med["val_loss"], "test_loss": med["test_loss"],
                    "reported_seed": int(med["seed"]),
                    "seed_ids": json.dumps([int(x) for x in g["seed"]]),
                    "seed_val_losses": json.dumps([float(x) for x in g["val_loss"]]),
                    "seed_test_losses": json.dumps([float(x) for x in g["test_loss"]])})
    return pd.DataFrame(out, columns=["setting", "method", "reg", "repetition", "val_loss",
                                      "test_loss", "reported_seed", "seed_ids",
                                      "seed_val_losses", "seed_test_losses"])


def zipkin_gaps(path: str | Path | None) -> dict[tuple[str, int, int], float]:
    """{(dist, L, p): Zipkin's printed base-stock gap (%)} from paper/literature/zipkin2008.yaml."""
    if path is None or not Path(path).is_file():
        return {}
    data = read_yaml(path) or {}
    table = data.get("poisson_mean_5") or {}
    out = {}
    for p, opts in (table.get("optimal") or {}).items():
        for L, (opt, bs) in enumerate(zip(opts, table["best_base_stock"][p], strict=True), 1):
            out[("poisson", L, int(p))] = 100.0 * (bs - opt) / opt
    return out


def _interval(rows: pd.DataFrame, cell: tuple, lstar: float) -> tuple[float, float, str]:
    """The gap interval of a cell: hierarchical with repetitions, else seed-only, else none."""
    for kind in (intervals.TUNING, intervals.SEED_ONLY):
        iv = intervals.gap_interval(intervals.cell_interval(rows, cell, "test", kind=kind), lstar)
        if math.isfinite(iv.low):
            return iv.low, iv.high, kind
    return math.nan, math.nan, ""


def lost_sales_table(rows: pd.DataFrame, benchmarks: dict[str, dict],
                     zipkin: dict | None = None) -> pd.DataFrame:
    """One row per (setting, method, reg) of ``rows`` on a lost-sales setting with a benchmark."""
    zipkin = zipkin or {}
    out = []
    rows = rows[rows["setting"].map(is_lost_sales)] if len(rows) else rows
    for (s, m, r), cell in rows.groupby(["setting", "method", "reg"], sort=False):
        if s not in benchmarks:
            continue
        st, b = get_setting(s), benchmarks[s]
        g, lstar = float(b["expected_value"]), float(b["L_star"])
        bs = b["policy"]["base_stock"]
        loss = float(pd.to_numeric(cell["test_loss"]).mean())
        low, high, kind = _interval(cell, (s, m, r), lstar)
        out.append({
            "setting": s, "dist": st.dist, "L": st.L, "p": int(st.p), "g_star": g,
            "L_star": lstar, "base_stock_level": bs["level"],
            "base_stock_gap": loss_gap(bs["average_cost"], g),
            "zipkin_base_stock_gap": zipkin.get((st.dist, st.L, int(st.p)), math.nan),
            "method": m, "reg": r, "n_reps": len(cell), "test_loss": loss,
            "gap": loss_gap(loss, lstar), "ci_low": low, "ci_high": high, "ci_kind": kind})
    df = pd.DataFrame(out, columns=TABLE_COLUMNS)
    return df.sort_values(["dist", "p", "L", "method", "reg"], kind="stable").reset_index(drop=True)


def _cell_text(row: pd.Series) -> str:
    if math.isfinite(row["ci_low"]):
        return f"{row['gap']:.2f} [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"
    return f"{row['gap']:.2f}"


def to_markdown(table: pd.DataFrame) -> str:
    """Wide Markdown: one line per setting, one column per (method, reg) gap (%) [95 % CI]."""
    if table.empty:
        return "No lost-sales results.\n"
    cells = table["method"].str.upper() + "-" + table["reg"].str.capitalize()
    names = list(dict.fromkeys(cells))
    header = ["dist", "L", "p", "g*", "L*", "best base stock gap %", "Zipkin's %", *names]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, rows in table.groupby("setting", sort=False):
        w = rows.iloc[0]
        z = w["zipkin_base_stock_gap"]
        texts = dict(zip(cells[rows.index], rows.apply(_cell_text, axis=1), strict=True))
        vals = [w["dist"], str(w["L"]), str(w["p"]), f"{w['g_star']:.4f}", f"{w['L_star']:.4f}",
                f"{w['base_stock_gap']:.2f}", "" if not np.isfinite(z) else f"{z:.2f}",
                *[texts.get(n, "") for n in names]]
        lines.append("| " + " | ".join(vals) + " |")
    return "\n".join(lines) + "\n"


def takeaways(rows: pd.DataFrame) -> str:
    """Whether Base helps or hurts each method on lost sales: the mean over the settings where
    both cells exist of test loss(Base) − test loss(None), with its 95 % interval."""
    rows = rows[rows["setting"].map(is_lost_sales)] if len(rows) else rows
    lines = ["Base against None on lost sales (mean over settings of the test-loss difference, "
             "cost per period; 95 % interval):", ""]
    for m in dict.fromkeys(rows["method"]) if len(rows) else ():
        mine = rows[rows["method"] == m]
        both = sorted(set(mine[mine["reg"] == "base"]["setting"])
                      & set(mine[mine["reg"] == "none"]["setting"]))
        if not both:
            continue
        w = {**{(s, m, "base"): 1 / len(both) for s in both},
             **{(s, m, "none"): -1 / len(both) for s in both}}
        means = mine.groupby(["setting", "reg"])["test_loss"].mean()
        diffs = np.array([means[(s, "base")] - means[(s, "none")] for s in both])
        iv = intervals.contrast(rows, w, "test", kind=intervals.SEED_ONLY)
        low, high, how = iv.low, iv.high, "seed bootstrap"
        if not math.isfinite(low) and len(both) >= 3:
            low, high = _settings_bootstrap(diffs)
            how = f"bootstrap over the {len(both)} settings"
        wins = int((diffs < 0).sum())
        if math.isfinite(low):
            verdict = ("Base helps" if high < 0 else "Base hurts" if low > 0
                       else "no significant difference")
            text = (f"{diffs.mean():+.4f} [{low:+.4f}, {high:+.4f}] ({how}): {verdict}; "
                    f"Base lower in {wins} of {len(both)} settings")
        else:
            text = (f"{diffs.mean():+.4f} (no interval: one seed per cell and fewer than 3 "
                    "settings; not testable at this scale)")
        lines.append(f"- {m.upper()} ({len(both)} settings): {text}")
    return "\n".join(lines) + "\n"


def _settings_bootstrap(diffs: np.ndarray) -> tuple[float, float]:
    """95 % percentile bootstrap of the mean of per-setting differences (the settings are the
    resampled unit: it covers seed noise and how the effect varies across settings)."""
    from scipy.stats import bootstrap

    if np.ptp(diffs) == 0:
        return float(diffs[0]), float(diffs[0])
    res = bootstrap((diffs,), np.mean, n_resamples=10_000, method="percentile",
                    random_state=np.random.default_rng(intervals.SEED))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def figure(table: pd.DataFrame, out: str | Path) -> list[Path]:
    """Gap (%) against L, one panel per (dist, p): each (method, reg) with its interval, the
    best base stock's exact gap dashed, and Zipkin's printed base-stock gap as crosses."""
    import seaborn as sns
    from matplotlib.figure import Figure

    from deepstock.reports.figures import save_figure

    sns.set_theme(style="whitegrid", context="paper")
    panels = list(dict.fromkeys(zip(table["dist"], table["p"], strict=True))) or [("", 0)]
    ncols = min(4, len(panels))
    nrows = -(-len(panels) // ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.8 * nrows + 0.6))
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True)
    labels = table["method"].str.upper() + "-" + table["reg"].str.capitalize()
    palette = dict(zip(sorted(set(labels)), sns.color_palette("colorblind"), strict=False))
    legend: dict[str, object] = {}
    for ax, (d, p) in zip(axes.flat, panels, strict=False):
        sub = table[(table["dist"] == d) & (table["p"] == p)]
        bs = sub.drop_duplicates("L").sort_values("L")
        (line,) = ax.plot(bs["L"], bs["base_stock_gap"], "k--", lw=1)
        legend["best base stock (exact)"] = line
        if bs["zipkin_base_stock_gap"].notna().any():
            (mark,) = ax.plot(bs["L"], bs["zipkin_base_stock_gap"], "kx")
            legend["Zipkin's base stock"] = mark
        for k, (lab, cell) in enumerate(sub.groupby(labels[sub.index], sort=True)):
            cell = cell.sort_values("L")
            yerr = np.vstack([cell["gap"] - cell["ci_low"], cell["ci_high"] - cell["gap"]])
            bar = ax.errorbar(cell["L"] + 0.06 * (k - 1.5), cell["gap"], fmt="o-", ms=3, lw=1,
                              yerr=np.where(np.isfinite(yerr), yerr, 0), capsize=2,
                              color=palette[lab])
            legend[lab] = bar
        ax.axhline(0, color="grey", lw=0.5)
        ax.set_yscale("symlog", linthresh=1.0)  # gaps of 0-5 % beside runs that failed
        low = np.nanmin(np.r_[sub["ci_low"], sub["gap"], bs["base_stock_gap"], 0.0])
        ax.set_ylim(bottom=min(-0.5, 1.2 * low))
        ax.set_title(f"{d}, p = {p}")
        ax.set_xticks([1, 2, 3, 4])
        ax.set_xlabel("lead time L")
        ax.set_ylabel("gap to optimum (%, symlog)")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.legend(list(legend.values()), list(legend), loc="upper center", frameon=False,
               ncol=min(len(legend), 4))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / (2.8 * nrows + 0.6)))
    out = Path(out)
    return save_figure(fig, out.parent, out.name)
