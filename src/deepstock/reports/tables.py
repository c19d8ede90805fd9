"""Tables 6–9 in the paper's layout and the reproduced-vs-paper comparison (spec §9.1, §9.2).

Every value is the mean over the repetitions present in ``summary.csv``. Gaps are linear in the
loss with one L* per setting, so the mean gap equals the gap of the mean loss. Missing cells are
NaN in the CSV and "—" in Markdown/LaTeX.

Beside each mean: its 95 % stratified-bootstrap interval (:mod:`deepstock.reports.intervals`;
the paper gives none). ``cell_stats`` has ``ci_low``/``ci_high``; the CSV tables have numeric rows
"<row> 95% CI low" and "<row> 95% CI high" under each mean row, which Markdown and LaTeX merge
into one row "<row> 95% CI" reading "[low, high]" (gaps 2 dp, losses 4 dp). A summary without
per-seed values gives NaN / "—" intervals.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from deepstock import registry
from deepstock.io import write_csv, write_text
from deepstock.reports.intervals import cell_interval, cell_lstar, gap_interval
from deepstock.reports.reported import TABLE_SETTINGS, paper_cells

ROW_LABELS = {
    "val_loss": "Validation Loss",
    "val_gap": "Validation Loss Gap (%)",
    "test_loss": "Testing Loss",
    "test_gap": "Testing Loss Gap (%)",
    "benchmark": "Benchmark Loss",
}
CI = " 95% CI"  # suffix of an interval row; the CSV adds " low" / " high"
CI_METRICS = ("val_loss", "val_gap", "test_loss", "test_gap")  # metrics with an interval
TITLE_SUFFIX = " (reproduced, mean over repetitions [95% stratified-bootstrap interval])"
METHOD_LABELS = {name: m.label for name, m in registry.METHODS.items()}
TABLE9_T = registry.IID_T
TABLE9_N = registry.IID_N
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
    """Mean, std, min, max, count and 95 % interval over repetitions per cell and metric.

    ``ci_low``/``ci_high``: the stratified bootstrap of the repetition mean (val/test loss), and
    for the gaps that interval mapped through the cell's L*; NaN without per-seed values and for
    the benchmark row.
    """
    metrics = ["val_loss", "val_gap", "test_loss", "test_gap", "benchmark"]
    cols = ["setting", "method", "reg", "metric", "mean", "std", "min", "max", "n_reps",
            "ci_low", "ci_high"]
    if summary.empty:
        return pd.DataFrame(columns=cols)
    long = summary.melt(id_vars=["setting", "method", "reg", "repetition"], value_vars=metrics,
                        var_name="metric", value_name="value")
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    g = long.groupby(["setting", "method", "reg", "metric"])["value"]
    out = g.agg(["mean", "std", "min", "max", "count"]).reset_index()
    out = out.rename(columns={"count": "n_reps"})
    ci = {}
    for cell, rows in summary.groupby(["setting", "method", "reg"]):
        loss = {m: cell_interval(rows, cell, m.split("_")[0]) for m in ("val_loss", "test_loss")}
        lstar = cell_lstar(rows, cell)
        for split in ("val", "test"):
            ci[(*cell, f"{split}_loss")] = loss[f"{split}_loss"]
            ci[(*cell, f"{split}_gap")] = gap_interval(loss[f"{split}_loss"], lstar)
    keys = list(zip(out["setting"], out["method"], out["reg"], out["metric"], strict=True))
    out["ci_low"] = [ci[k].low if k in ci else math.nan for k in keys]
    out["ci_high"] = [ci[k].high if k in ci else math.nan for k in keys]
    return out[cols]


def _lookup(stats: pd.DataFrame, setting: str, method: str, reg: str, metric: str,
            col: str = "mean") -> float:
    r = stats[(stats["setting"] == setting) & (stats["method"] == method)
              & (stats["reg"] == reg) & (stats["metric"] == metric)]
    return float(r[col].iloc[0]) if len(r) else math.nan


def _rows(metric: str) -> list[tuple[str, str]]:
    """(row label, stats column) of a metric: the mean, then its interval's ends if it has one."""
    label = ROW_LABELS[metric]
    if metric not in CI_METRICS:
        return [(label, "mean")]
    return [(label, "mean"), (label + CI + " low", "ci_low"), (label + CI + " high", "ci_high")]


def table_6_8(stats: pd.DataFrame, setting: str) -> pd.DataFrame:
    """Rows val loss/gap, test loss/gap, each followed by its 95 % interval's low and high rows;
    columns DDPG-None … DS-Base (spec §9.1), then every other regularization with results, in
    the registry's order."""
    rows = [r for k in CI_METRICS for r in _rows(k)]
    data = {
        cell_label(m, r): [_lookup(stats, setting, m, r, k, col) for k in CI_METRICS
                           for _, col in _rows(k)]
        for m, r in columns_of(stats, setting)
    }
    df = pd.DataFrame(data, index=[label for label, _ in rows])
    df.index.name = "row"
    return df


def table_9(stats: pd.DataFrame, benchmarks: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows per N (benchmark, val loss/gap, test loss/gap, each loss and gap with its interval's
    low and high rows); columns T (spec §9.2).

    The benchmark row uses the summary's L* and, for (N, T) without a tuned cell, the reference
    row of ``benchmarks.csv`` when given.
    """
    rows = []
    for n in TABLE9_N:
        for metric in ("benchmark", "val_loss", "val_gap", "test_loss", "test_gap"):
            for label, col in _rows(metric):
                values = []
                for t in TABLE9_T:
                    setting = f"s4_n{n}_t{t}"
                    v = _lookup(stats, setting, *registry.TABLE9_CELL, metric, col)
                    if metric == "benchmark" and not math.isfinite(v) and benchmarks is not None:
                        b = benchmarks[(benchmarks["setting"] == setting)
                                       & benchmarks["reference"]]
                        if len(b):
                            v = float(b["test_loss"].iloc[0])
                    values.append(v)
                rows.append({"N": n, "row": label,
                             **{f"T={t}": v for t, v in zip(TABLE9_T, values, strict=True)}})
    return pd.DataFrame(rows)


def _fmt(v, metric_label: str) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return DASH
    return f"{v:.2f}" if "Gap" in metric_label else f"{v:.4f}"


def _formatted(df: pd.DataFrame) -> pd.DataFrame:
    """Format every value column (all but ``N``/``row``) by its row label: gaps 2 dp, losses 4;
    a "… 95% CI low" row and the "… 95% CI high" row after it become one "… 95% CI" row
    reading "[low, high]" ("—" when either end is missing)."""
    value_cols = [c for c in df.columns if c not in ("N", "row")]
    labels = [str(v) for v in df["row"]]
    rows, i = [], 0
    while i < len(df):
        label = labels[i]
        row = {c: df[c].iloc[i] for c in df.columns if c in ("N", "row")}
        pair = (label.endswith(CI + " low") and i + 1 < len(df)
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
        lines[1] = r"\begin{tabular}{rl" + "r" * len(TABLE9_T) + "}"
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
    ``ci_low``/``ci_high`` = the 95 % stratified-bootstrap interval of the reproduced mean."""
    paper = paper_cells(reported)
    keyed = stats.set_index(["setting", "method", "reg", "metric"])
    rep, std, lo, hi, n = [], [], [], [], []
    for row in paper.itertuples(index=False):
        key = (row.setting, row.method, row.reg, row.metric)
        if key in keyed.index:
            s = keyed.loc[key]
            rep.append(float(s["mean"]))
            std.append(float(s["std"]))
            lo.append(float(s["min"]))
            hi.append(float(s["max"]))
            n.append(int(s["n_reps"]))
        else:
            rep.append(math.nan)
            std.append(math.nan)
            lo.append(math.nan)
            hi.append(math.nan)
            n.append(0)
    ci = stats.set_index(["setting", "method", "reg", "metric"])[["ci_low", "ci_high"]]
    keys = list(zip(paper["setting"], paper["method"], paper["reg"], paper["metric"],
                    strict=True))
    out = paper.copy()
    out["reproduced"] = rep
    out["diff"] = out["reproduced"] - out["paper"]
    out["rep_std"], out["rep_min"], out["rep_max"], out["n_reps"] = std, lo, hi, n
    for col in ("ci_low", "ci_high"):  # 95 % stratified-bootstrap interval of ``reproduced``
        out[col] = [float(ci.loc[k, col]) if k in ci.index else math.nan for k in keys]
    for col in ("N", "T", "H"):
        out[col] = out[col].astype("Int64")
    return out


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
        written.append(write_text(out / f"{name}.md", to_markdown(df, title)))
        written.append(write_text(out / f"{name}.tex", to_latex(df, title, "6-8")))
    t9 = table_9(stats, benchmarks)
    title = reported["table9"].get("title", "Table 9") + TITLE_SUFFIX
    written.append(write_csv(out / "table9.csv", t9))
    written.append(write_text(out / "table9.md", to_markdown(t9, title)))
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
