"""Tables 6–9 in the paper's layout and the reproduced-vs-paper comparison (spec §9.1, §9.2).

Every value is the mean over the repetitions present in ``summary.csv``. Gaps are linear in the
loss with one L* per setting, so the mean gap equals the gap of the mean loss. Missing cells are
NaN in the CSV and "—" in Markdown/LaTeX.

Beside each mean: two 95 % bootstrap intervals (:mod:`deepstock.reports.intervals`; the paper
gives none): the **seed-only** interval (repetitions are strata, seeds resampled) and the
**hierarchical** one (repetitions resampled within the cell, then seeds: tuning + seed noise).
``cell_stats`` and ``comparison.csv`` have ``ci_seed_low``/``ci_seed_high`` and
``ci_tuning_low``/``ci_tuning_high``; the CSV tables have numeric rows "<row> 95% CI seeds low",
"<row> 95% CI seeds high", "<row> 95% CI tuning+seeds low" and "<row> 95% CI tuning+seeds high"
under each mean row, which Markdown and LaTeX merge into "<row> 95% CI seeds" and "<row> 95% CI
tuning+seeds" reading "[low, high]" (gaps 2 dp, losses 4 dp). A summary without per-seed values
gives NaN / "—" intervals, and so does the hierarchical one of a cell with one repetition (its
tuning noise cannot be measured).

:func:`rerun_spread`: per cell, the min and max over repetitions of the reported test loss —
the measured effect of re-tuning that the hierarchical interval resamples.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from deepstock import registry
from deepstock.errors import ConfigError
from deepstock.io import write_csv, write_text
from deepstock.reports.intervals import (
    SEED_ONLY,
    TUNING,
    Interval,
    cell_interval,
    cell_lstar,
    gap_interval,
)
from deepstock.reports.reported import TABLE_SETTINGS, paper_cells

ROW_LABELS = {
    "val_loss": "Validation Loss",
    "val_gap": "Validation Loss Gap (%)",
    "test_loss": "Testing Loss",
    "test_gap": "Testing Loss Gap (%)",
    "benchmark": "Benchmark Loss",
}
CI = " 95% CI"  # start of an interval row's suffix; the CSV adds " low" / " high"
CI_KINDS = {SEED_ONLY: CI + " seeds", TUNING: CI + " tuning+seeds"}  # kind -> row suffix
CI_COLUMNS = [f"ci_{kind}_{end}" for kind in CI_KINDS for end in ("low", "high")]
CI_METRICS = ("val_loss", "val_gap", "test_loss", "test_gap")  # metrics with an interval
TITLE_SUFFIX = (" (reproduced, mean over repetitions; 95% bootstrap intervals: seeds only, and "
                "tuning+seeds = repetitions then seeds resampled)")
METHOD_LABELS = {name: m.label for name, m in registry.METHODS.items()}
DASH = "—"


def reg_label(reg: str) -> str:
    r = registry.REGULARIZATIONS.get(reg)
    return r.title if r is not None else reg


def cell_label(method: str, reg: str) -> str:
    return f"{METHOD_LABELS.get(method, method)}-{reg_label(reg)}"


def columns_of(stats: pd.DataFrame, setting: str) -> list[tuple[str, str]]:
    """Tables 6-8 columns: the paper's (method, reg) pairs, then any other pair with results."""
    sub = stats[stats["setting"] == setting] if len(stats) else stats
    present = set(zip(sub["method"], sub["reg"], strict=True)) if len(sub) else set()
    return registry.table_columns(present)


def cell_stats(summary: pd.DataFrame) -> pd.DataFrame:
    """Mean, std, min, max, count and the two 95 % intervals over repetitions per cell and metric.

    ``ci_seed_*``: the seed-only bootstrap of the repetition mean, ``ci_tuning_*``: the
    hierarchical one (val/test loss; for the gaps the loss interval mapped through the cell's
    L*); NaN without per-seed values and for the benchmark row, and ``ci_tuning_*`` NaN for a
    cell with one repetition.
    """
    metrics = ["val_loss", "val_gap", "test_loss", "test_gap", "benchmark"]
    cols = ["setting", "method", "reg", "metric", "mean", "std", "min", "max", "n_reps",
            *CI_COLUMNS]
    if summary.empty:
        return pd.DataFrame(columns=cols)
    long = summary.melt(id_vars=["setting", "method", "reg", "repetition"], value_vars=metrics,
                        var_name="metric", value_name="value")
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    g = long.groupby(["setting", "method", "reg", "metric"])["value"]
    out = g.agg(["mean", "std", "min", "max", "count"]).reset_index()
    out = out.rename(columns={"count": "n_reps"})
    ci = _cell_intervals(summary)
    keys = list(zip(out["setting"], out["method"], out["reg"], out["metric"], strict=True))
    for kind in CI_KINDS:
        out[f"ci_{kind}_low"] = [ci[k][kind].low if k in ci else math.nan for k in keys]
        out[f"ci_{kind}_high"] = [ci[k][kind].high if k in ci else math.nan for k in keys]
    return out[cols]


def _cell_intervals(summary: pd.DataFrame) -> dict[tuple, dict[str, Interval]]:
    """{(setting, method, reg, metric): {kind: interval}} for the val/test losses and gaps."""
    out: dict[tuple, dict[str, Interval]] = {}
    for cell, rows in summary.groupby(["setting", "method", "reg"]):
        lstar = cell_lstar(rows, cell)
        for kind in CI_KINDS:
            for split in ("val", "test"):
                loss = cell_interval(rows, cell, split, kind=kind)
                out.setdefault((*cell, f"{split}_loss"), {})[kind] = loss
                out.setdefault((*cell, f"{split}_gap"), {})[kind] = gap_interval(loss, lstar)
    return out


def rerun_spread(summary: pd.DataFrame, metric: str = "test_loss") -> pd.DataFrame:
    """Per cell: repetitions, min and max of ``metric`` over them, range = max − min and
    ``rel_spread`` = range / mean in % (how far re-tuning the same cell moved its number)."""
    cols = ["setting", "method", "reg", "n_reps", "min", "max", "mean", "range", "rel_spread"]
    if summary.empty:
        return pd.DataFrame(columns=cols)
    values = summary.assign(_v=pd.to_numeric(summary[metric], errors="coerce"))
    out = (values.groupby(["setting", "method", "reg"], sort=False)["_v"]
           .agg(n_reps="count", min="min", max="max", mean="mean").reset_index())
    out["range"] = out["max"] - out["min"]
    out["rel_spread"] = 100 * out["range"] / out["mean"]
    return out[cols]


def _lookup(stats: pd.DataFrame, setting: str, method: str, reg: str, metric: str,
            col: str = "mean") -> float:
    r = stats[(stats["setting"] == setting) & (stats["method"] == method)
              & (stats["reg"] == reg) & (stats["metric"] == metric)]
    return float(r[col].iloc[0]) if len(r) else math.nan


def _rows(metric: str) -> list[tuple[str, str]]:
    """(row label, stats column) of a metric: the mean, then the ends of its seed-only and
    hierarchical intervals if it has them."""
    label = ROW_LABELS[metric]
    if metric not in CI_METRICS:
        return [(label, "mean")]
    return [(label, "mean")] + [(label + suffix + f" {end}", f"ci_{kind}_{end}")
                                for kind, suffix in CI_KINDS.items() for end in ("low", "high")]


def table_6_8(stats: pd.DataFrame, setting: str) -> pd.DataFrame:
    """Rows val loss/gap, test loss/gap, each followed by its two 95 % intervals' low and high rows;
    columns DDPG-None … DS-Base (spec §9.1), then every other regularization with results, in
    the registry's order."""
    rows = [r for k in CI_METRICS for r in _rows(k)]
    cells = columns_of(stats, setting)  # (method, reg) names: the table's keys
    labels = unique_labels(cells)
    data = [[_lookup(stats, setting, m, r, k, col) for k in CI_METRICS for _, col in _rows(k)]
            for m, r in cells]
    df = pd.DataFrame(np.array(data, dtype=float).T if data else None,
                      index=[label for label, _ in rows], columns=labels)
    df.index.name = "row"
    return df


def unique_labels(cells: list[tuple[str, str]]) -> list[str]:
    """The column labels of (method, reg) ``cells``, in order; two cells that would share a label
    (only a regularization put into ``registry.REGULARIZATIONS`` by hand can: registration
    refuses a label in use) are a one-line ConfigError naming both, never one column."""
    seen: dict[str, tuple[str, str]] = {}
    for cell in cells:
        label = cell_label(*cell)
        if label in seen:
            raise ConfigError(f"table columns {'-'.join(seen[label])} and {'-'.join(cell)} "
                              f"share the label {label!r}; regularization labels must be unique")
        seen[label] = cell
    return list(seen)


def table_9(stats: pd.DataFrame, benchmarks: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows per N (benchmark, val loss/gap, test loss/gap, each loss and gap with its two
    intervals' low and high rows); columns T (spec §9.2).

    The benchmark row uses the summary's L* and, for (N, T) without a tuned cell, the reference
    row of ``benchmarks.csv`` when given.
    """
    rows = []
    for n in registry.IID_N:
        for metric in ("benchmark", "val_loss", "val_gap", "test_loss", "test_gap"):
            for label, col in _rows(metric):
                values = []
                for t in registry.IID_T:
                    setting = registry.iid_setting_id(n, t)
                    v = _lookup(stats, setting, *registry.TABLE9_CELL, metric, col)
                    if metric == "benchmark" and not math.isfinite(v) and benchmarks is not None:
                        b = benchmarks[(benchmarks["setting"] == setting)
                                       & benchmarks["reference"]]
                        if len(b):
                            v = float(b["test_loss"].iloc[0])
                    values.append(v)
                rows.append({"N": n, "row": label,
                             **{f"T={t}": v for t, v in zip(registry.IID_T, values, strict=True)}})
    return pd.DataFrame(rows)


def _fmt(v, metric_label: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return DASH
    return f"{v:.2f}" if "Gap" in metric_label else f"{v:.4f}"


def _formatted(df: pd.DataFrame) -> pd.DataFrame:
    """Format every value column (all but ``N``/``row``) by its row label: gaps 2 dp, losses 4;
    a "… 95% CI <kind> low" row and the "… 95% CI <kind> high" row after it become one
    "… 95% CI <kind>" row reading "[low, high]" ("—" when either end is missing)."""
    value_cols = [c for c in df.columns if c not in ("N", "row")]
    labels = [str(v) for v in df["row"]]
    rows, i = [], 0
    while i < len(df):
        label = labels[i]
        row = {c: df[c].iloc[i] for c in df.columns if c in ("N", "row")}
        pair = (CI in label and label.endswith(" low") and i + 1 < len(df)
                and labels[i + 1] == label.removesuffix(" low") + " high")
        if pair:
            row["row"] = label.removesuffix(" low")
            for c in value_cols:
                lo, hi = _fmt(df[c].iloc[i], label), _fmt(df[c].iloc[i + 1], label)
                row[c] = DASH if DASH in (lo, hi) else f"[{lo}, {hi}]"
            i += 2
        else:
            row.update({c: _fmt(df[c].iloc[i], label) for c in value_cols})
            i += 1
        rows.append(row)
    return pd.DataFrame(rows, columns=list(df.columns)).astype(object)


def to_markdown(df: pd.DataFrame, title: str) -> str:
    """Markdown (GitHub pipe table) with the paper's number formatting."""
    flat = df.reset_index() if df.index.name else df
    fmt = _formatted(flat)
    return f"**{title}**\n\n" + fmt.to_markdown(index=False, disable_numparse=True) + "\n"


def _tex_escape(s: str) -> str:
    return str(s).replace("%", r"\%").replace("_", r"\_").replace("—", "--")


def to_latex(df: pd.DataFrame, title: str, kind: str) -> str:
    """A booktabs tabular; Tables 6–8 get the paper's two header rows (method, regularization)."""
    flat = df.reset_index() if df.index.name else df
    fmt = _formatted(flat)
    lines = [f"% {title}", r"\begin{tabular}{l" + "r" * (len(fmt.columns) - 1) + "}", r"\toprule"]
    if kind == "6-8":
        lines += _latex_header(list(fmt.columns[1:]))
        body_cols = list(fmt.columns[1:])
        lines.append(r"\midrule")
        for i in range(len(fmt)):
            cells = [_tex_escape(fmt["row"].iloc[i])] + [_tex_escape(fmt[c].iloc[i]) for c in body_cols]
            lines.append(" & ".join(cells) + r" \\")
    else:
        t_cols = [c for c in fmt.columns if c.startswith("T=")]
        lines.append(" & ".join(["$N$", ""] + [f"$T={c[2:]}$" for c in t_cols]) + r" \\")
        lines.append(r"\midrule")
        last_n = None
        for i in range(len(fmt)):
            n = fmt["N"].iloc[i]
            if last_n is not None and n != last_n:
                lines.append(r"\midrule")
            cells = [str(n) if n != last_n else "", _tex_escape(fmt["row"].iloc[i])]
            cells += [_tex_escape(fmt[c].iloc[i]) for c in t_cols]
            lines.append(" & ".join(cells) + r" \\")
            last_n = n
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    if kind != "6-8":
        lines[1] = r"\begin{tabular}{rl" + "r" * len(registry.IID_T) + "}"
    return "\n".join(lines)


def _latex_header(labels: list[str]) -> list[str]:
    """The paper's two header rows: methods over their regularizations (one group per run)."""
    pairs = [label.split("-", 1) for label in labels]
    groups: list[list] = []
    for method, reg in pairs:
        if groups and groups[-1][0] == method:
            groups[-1][1].append(reg)
        else:
            groups.append([method, [reg]])
    rules, col = [], 2
    for _, regs in groups:
        rules.append(rf"\cmidrule(lr){{{col}-{col + len(regs) - 1}}}")
        col += len(regs)
    return [
        "DRL Method & " + " & ".join(
            rf"\multicolumn{{{len(regs)}}}{{c}}{{{m}}}" for m, regs in groups) + r" \\",
        "".join(rules),
        "Policy Regularization & " + " & ".join(r for _, regs in groups for r in regs) + r" \\",
    ]


def comparison(stats: pd.DataFrame, reported: dict) -> pd.DataFrame:
    """Every reported number beside the reproduced repetition mean: diff = reproduced − paper;
    rep_std/min/max over repetitions; ``ci_seed_low``/``ci_seed_high`` = the seed-only and
    ``ci_tuning_low``/``ci_tuning_high`` = the hierarchical 95 % interval of ``reproduced``."""
    paper = paper_cells(reported)
    keyed = stats.set_index(["setting", "method", "reg", "metric"])
    keys = list(zip(paper["setting"], paper["method"], paper["reg"], paper["metric"],
                    strict=True))
    out = paper.copy()

    def column(col: str) -> list[float]:
        return [float(keyed.loc[k, col]) if k in keyed.index else math.nan for k in keys]

    out["reproduced"] = column("mean")
    out["diff"] = out["reproduced"] - out["paper"]
    out["rep_std"], out["rep_min"], out["rep_max"] = column("std"), column("min"), column("max")
    out["n_reps"] = [int(keyed.loc[k, "n_reps"]) if k in keyed.index else 0 for k in keys]
    for col in CI_COLUMNS:
        out[col] = column(col)
    for col in ("N", "T", "H"):
        out[col] = out[col].astype("Int64")
    return out


def provenance_footnote(rows: pd.DataFrame) -> str:
    """A footnote (markdown) when a table's cells mix commits or library stacks, when cells were
    resumed across them, or when cells carry no provenance; "" when all agree."""
    if rows.empty:
        return ""
    if "commit" not in rows.columns:
        return "*Provenance: not recorded (cells written before deepstock recorded it).*"
    def values(col: str) -> set[str]:
        return {"unknown" if pd.isna(v) or v == "" else str(v) for v in rows[col]}

    commits, stacks = sorted(values("commit")), sorted(values("stack_hash"))
    mixed = rows["mixed_provenance"].fillna(False).astype(bool) if "mixed_provenance" in rows \
        else pd.Series(dtype=bool)
    parts = []
    if len(commits) > 1:
        parts.append(f"{len(commits)} commits ({', '.join(c[:7] for c in commits)})")
    if len(stacks) > 1:
        parts.append(f"{len(stacks)} library stacks ({', '.join(stacks)})")
    if mixed.any():
        parts.append(f"{int(mixed.sum())} cells resumed across commits, stacks or CPUs")
    if not parts:
        return ""
    return f"*Note: these numbers mix {'; '.join(parts)}; see the report's provenance table.*"


def _with_note(text: str, note: str) -> str:
    return text + (f"\n{note}\n" if note else "")


def write_tables(summary: pd.DataFrame, reported: dict, out: str | Path,
                 benchmarks: pd.DataFrame | None = None) -> list[Path]:
    """Write table6..table9 (.csv/.md/.tex) and comparison.csv into ``out``; return the paths."""
    out = Path(out)
    stats = cell_stats(summary)
    written = []
    titles = {name: t.get("title", name) for name, t in reported["tables_6_8"].items()}
    for name, setting in TABLE_SETTINGS.items():
        df = table_6_8(stats, setting)
        title = titles.get(name, name) + TITLE_SUFFIX
        written.append(write_csv(out / f"{name}.csv", df.reset_index()))
        note = provenance_footnote(summary[summary["setting"] == setting])
        written.append(write_text(out / f"{name}.md", _with_note(to_markdown(df, title), note)))
        written.append(write_text(out / f"{name}.tex", to_latex(df, title, "6-8")))
    t9 = table_9(stats, benchmarks)
    title = reported["table9"].get("title", "Table 9") + TITLE_SUFFIX
    written.append(write_csv(out / "table9.csv", t9))
    note = provenance_footnote(summary[summary["setting"].astype(str).str.startswith("s4")])
    written.append(write_text(out / "table9.md", _with_note(to_markdown(t9, title), note)))
    written.append(write_text(out / "table9.tex", to_latex(t9, title, "9")))
    comp = comparison(stats, reported)
    written.append(write_csv(out / "comparison.csv", comp))
    return written


def read_summary(path: str | Path) -> pd.DataFrame:
    """Read ``summary.csv``; a missing file is a one-line DataError."""
    from deepstock.errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"summary not found: {path} (run `deepstock report summary` first)")
    df = pd.read_csv(path)
    for col in ("setting", "method", "reg"):
        if col not in df.columns:
            raise DataError(f"{path}: missing column {col!r}")
    return df


def mean_by_cell(summary: pd.DataFrame, metric: str) -> dict[tuple[str, str, str], float]:
    """{(setting, method, reg): repetition mean of ``metric``} (used by figures and takeaways)."""
    if summary.empty:
        return {}
    g = summary.groupby(["setting", "method", "reg"])[metric].mean()
    return {k: float(v) for k, v in g.items() if np.isfinite(v)}
