"""Figures 1–4 of the paper from a results tree (spec §9.3), as PNG (150 dpi) and PDF.

Every figure draws what exists and writes "not run" where an input is missing, so a subset run
still renders. Paper values are drawn as black markers (Figure 1) or dashed lines (Figure 4).

Figure 2 needs a stage-1 search: where a run's stage-1 curves have fewer than
``takeaways.MIN_SEARCH_TRIALS`` trials (the ``quick`` scale's one default configuration, counted
from the curves, not read from the scale's name) a best-so-far curve is a single point and the
configurations-to-surpass count is degenerate. Then ``figure2.png``/``.pdf`` draw no curves: they
say "not testable at this scale" and why, and the replication report shows the committed
reference run's Figure 2 instead (:func:`figure2_not_testable`).
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from deepstock import registry
from deepstock.errors import DeepstockError
from deepstock.io import write_bytes, write_csv
from deepstock.reports.reported import paper_surpass
from deepstock.reports.tables import METHOD_LABELS, reg_label
from deepstock.reports.takeaways import NOT_TESTABLE, surpass_untestable
from deepstock.training.common import read_run

DPI = 150
METHODS = tuple(registry.METHODS)
METHOD_COLORS = {name: m.color for name, m in registry.METHODS.items()}
#: Figure 3 compares DDPG's critic under the paper's two regularizations.
FIG3_REGS = registry.PAPER_REGS
N_COLORS = dict(zip(registry.IID_N, ("#4C72B0", "#DD8452", "#55A868"), strict=True))
SETTING_TITLES = {"s1": "Setting 1 (INDEP)", "s2": "Setting 2 (AR(1), 10 SKUs)",
                  "s3": "Setting 3 (AR(1), 5 SKUs)"}
FIG3_STEPS = 10_000
FIG3_EVERY = 500
SYMLOG_ABOVE = 150.0  # Figure 1 switches to a symlog gap axis beyond this many %


def _style() -> None:
    sns.set_theme(style="whitegrid", context="paper", font_scale=1.15)


def _regs(summary: pd.DataFrame) -> list[str]:
    """The paper's regularizations, then every other one with results, in registry order."""
    return registry.regs_present(set(summary["reg"]) if len(summary) else set())


def _color(reg: str) -> str:
    r = registry.REGULARIZATIONS.get(reg)
    return r.color if r is not None else "#777777"


def _not_run(ax, text: str = "not run") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize=13,
            color="0.45", bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"})


def _gap_axis(ax, label: str) -> None:
    """Label a gap axis; beyond ±150 % (reduced-scale runs) switch to a symlog scale."""
    ax.set_ylabel(label)
    lo, hi = ax.get_ylim()
    if max(abs(lo), abs(hi)) > SYMLOG_ABOVE:
        ax.set_yscale("symlog", linthresh=10)
        ax.set_ylim(min(lo, 0.0) * 2, max(hi, 0.0) * 2)
        ax.set_ylabel(label.replace("(%)", "(%, symlog axis)"))


def save_figure(fig, out: Path, name: str) -> list[Path]:
    """Write ``fig`` (a ``matplotlib.figure.Figure``: no pyplot, so no global backend or figure
    registry is touched) as ``out/name.png`` and ``.pdf``, each atomically."""
    import io

    paths = []
    for ext in ("png", "pdf"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=DPI, bbox_inches="tight")
        path = out / f"{name}.{ext}"
        write_bytes(path, buf.getvalue())
        paths.append(path)
    return paths


# ----------------------------------------------------------------------------- Figure 1
def figure1(summary: pd.DataFrame, reported: dict | None, out: Path) -> list[Path]:
    """Grouped bars of val and test gap per setting for {DDPG, PPO, DS} × {None, Base} (§9.3).

    Bars: repetition means (Tables 6–8); dots: single repetitions; black diamonds: the paper.
    """
    _style()
    fig = Figure(figsize=(15, 4.8))
    axes = fig.subplots(1, 3, sharey=False)
    paper = {}
    if reported is not None:
        for table in reported["tables_6_8"].values():
            for m, regs in table["cells"].items():
                for r, v in regs.items():
                    paper[(table["setting"], m, r)] = v
    regs = _regs(summary)
    slots = [(r, k) for r in regs for k in ("val_gap", "test_gap")]
    width = 0.8 / len(slots)
    for ax, setting in zip(axes, ("s1", "s2", "s3"), strict=True):
        sub = summary[summary["setting"] == setting] if len(summary) else summary
        for j, (reg, key) in enumerate(slots):
            xs = np.arange(len(METHODS)) + (j - (len(slots) - 1) / 2) * width
            for i, m in enumerate(METHODS):
                cell = sub[(sub["method"] == m) & (sub["reg"] == reg)] if len(sub) else sub
                vals = pd.to_numeric(cell[key], errors="coerce").dropna() if len(cell) else []
                if len(vals):
                    ax.bar(xs[i], float(np.mean(vals)), width * 0.92, color=_color(reg),
                           alpha=0.45 if key == "val_gap" else 0.95,
                           hatch="//" if key == "val_gap" else None, edgecolor="0.25", lw=0.6)
                    jitter = np.linspace(-0.05, 0.05, len(vals)) if len(vals) > 1 else [0.0]
                    ax.scatter(xs[i] + np.asarray(jitter), vals, s=10, color="0.15", zorder=3)
                p = paper.get((setting, m, reg))
                if p is not None:
                    ax.scatter(xs[i], p[key], marker="D", s=28, facecolor="black",
                               edgecolor="white", lw=0.6, zorder=4)
        ax.axhline(0, color="0.3", lw=0.8)
        ax.set_xticks(np.arange(len(METHODS)), [METHOD_LABELS[m] for m in METHODS])
        ax.set_xlabel("DRL method")
        _gap_axis(ax, "loss gap to L* (%)")
        title = SETTING_TITLES[setting]
        if len(sub):
            lstar = pd.to_numeric(sub["benchmark"], errors="coerce").dropna()
            kind = sub["benchmark_method"].dropna()
            if len(lstar):
                title += f"\nL* = {lstar.iloc[0]:.4f} ({kind.iloc[0] if len(kind) else '?'})"
        ax.set_title(title)
        if not len(sub):
            _not_run(ax, "not run (black: paper)")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles = [Patch(facecolor=_color(r), edgecolor="0.25", label=reg_label(r)) for r in regs]
    handles += [
        Patch(facecolor="white", edgecolor="0.25", hatch="//", label="validation gap"),
        Patch(facecolor="0.5", edgecolor="0.25", label="test gap"),
        Line2D([], [], marker="o", ls="", color="0.15", ms=4, label="single repetition"),
        Line2D([], [], marker="D", ls="", color="black", ms=5, label="paper (Tables 6–8)"),
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), frameon=False,
               bbox_to_anchor=(0.5, -0.06))
    fig.suptitle("Figure 1: validation and test loss gaps (mean over repetitions)", y=1.02)
    fig.tight_layout()
    return save_figure(fig, out, "figure1")


# ----------------------------------------------------------------------------- Figure 2
def best_so_far(stage1: pd.DataFrame) -> np.ndarray:
    """Best-so-far val loss in suggestion order; failed trials count as +inf (spec §8, §9.3)."""
    s = stage1.sort_values("trial")
    vals = pd.to_numeric(s["val_loss"], errors="coerce").to_numpy(float)
    if "status" in s:
        vals = np.where(s["status"].astype(str).to_numpy() == "ok", vals, np.inf)
    vals = np.where(np.isfinite(vals), vals, np.inf)
    return np.minimum.accumulate(vals) if len(vals) else vals


def mean_curve(curves: list[np.ndarray]) -> np.ndarray:
    """Pointwise mean over repetitions, up to the longest curve; +inf entries are ignored."""
    if not curves:
        return np.array([])
    n = max(len(c) for c in curves)
    mat = np.full((len(curves), n), np.nan)
    for i, c in enumerate(curves):
        mat[i, : len(c)] = np.where(np.isfinite(c), c, np.nan)
    with np.errstate(all="ignore"):
        out = np.nanmean(mat, axis=0) if len(curves) > 1 else mat[0]
    return np.where(np.isnan(out), np.inf, out)


def configs_to_surpass(curve: np.ndarray, threshold: float) -> int | None:
    """First 1-based trial index with best-so-far val loss strictly below ``threshold``, or None.

    PROJECT definition of "configurations to surpass DS" (spec §9.3).
    """
    if not math.isfinite(threshold):
        return None
    hits = np.flatnonzero(np.asarray(curve, float) < threshold)
    return int(hits[0]) + 1 if hits.size else None


def surpass_label(k: int | None, n_trials: int) -> str:
    return str(k) if k is not None else f"> {n_trials}"


def stage1_curves(results: Path, setting: str, method: str, reg: str) -> dict[int, np.ndarray]:
    """{repetition: best-so-far curve} from ``{results}/{setting}/{method}/{reg}/rep*/stage1.csv``."""
    out = {}
    for path in sorted((results / setting / method / reg).glob("rep*/stage1.csv")):
        try:
            rep = int(path.parent.name.removeprefix("rep"))
            df = pd.read_csv(path)
        except (ValueError, OSError, pd.errors.EmptyDataError):
            continue
        if {"trial", "val_loss"} <= set(df.columns) and len(df):
            out[rep] = best_so_far(df)
    return out


def surpass_table(results: Path, summary: pd.DataFrame, reported: dict | None,
                  setting: str = "s1") -> pd.DataFrame:
    """Configs-to-surpass-DS per (DRL, reg): the mean curve vs the mean DS value, and per repetition.

    Per repetition, rep r's curve is compared with rep r's DS value (the DS mean when absent).
    """
    paper = paper_surpass(reported) if reported is not None else {}
    rows = []
    ds = summary[(summary["setting"] == setting) & (summary["method"] == "ds")] if len(summary) \
        else summary
    for reg in _regs(summary):
        ds_reg = ds[ds["reg"] == reg] if len(ds) else ds
        ds_mean = float(pd.to_numeric(ds_reg["val_loss"], errors="coerce").mean()) \
            if len(ds_reg) else math.nan
        ds_by_rep = {int(r): float(v) for r, v in zip(ds_reg.get("repetition", []),
                                                       ds_reg.get("val_loss", []), strict=True)}
        for method in registry.PAPER_RL:
            curves = stage1_curves(results, setting, method, reg)
            base = dict(setting=setting, method=method, reg=reg, paper=paper.get((method, reg)))
            if curves:
                mc = mean_curve(list(curves.values()))
                k = configs_to_surpass(mc, ds_mean)
                rows.append({**base, "kind": "mean", "repetition": None, "n_trials": len(mc),
                             "ds_val_loss": ds_mean, "configs_to_surpass": k,
                             "label": surpass_label(k, len(mc)) if math.isfinite(ds_mean)
                             else "no DS"})
            for rep, c in sorted(curves.items()):
                ref = ds_by_rep.get(rep, ds_mean)
                k = configs_to_surpass(c, ref)
                rows.append({**base, "kind": "repetition", "repetition": rep, "n_trials": len(c),
                             "ds_val_loss": ref, "configs_to_surpass": k,
                             "label": surpass_label(k, len(c)) if math.isfinite(ref) else "no DS"})
            if not curves:
                rows.append({**base, "kind": "mean", "repetition": None, "n_trials": 0,
                             "ds_val_loss": ds_mean, "configs_to_surpass": None,
                             "label": "not run"})
    df = pd.DataFrame(rows, columns=["setting", "method", "reg", "kind", "repetition", "n_trials",
                                     "ds_val_loss", "configs_to_surpass", "label", "paper"])
    for col in ("repetition", "configs_to_surpass", "paper", "n_trials"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("Int64")
    return df


def _steps(ax, curve: np.ndarray, **kw) -> None:
    """Best-so-far curve as a step line over trials 1..n (the last step drawn to n + 0.5)."""
    y = np.where(np.isfinite(curve), curve, np.nan)
    x = np.arange(1, len(y) + 2) - 0.5
    ax.step(x, np.append(y, y[-1:]), where="post", **kw)


def _plain_log(ax) -> None:
    """Log y-axis with plain tick labels at 1, 2, 5 × 10^k."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: ""))


def _loss_axis(ax, lo: float, hi: float) -> None:
    """Log axis (plain tick labels) when the losses span more than a factor 3, else linear."""
    if hi / max(lo, 1e-9) > 3:
        _plain_log(ax)
        ax.set_ylim(lo * 0.93, hi * 1.07)
    else:
        pad = 0.06 * (hi - lo) if hi > lo else 0.05 * abs(hi) + 1e-3
        ax.set_ylim(lo - pad, hi + pad)


def figure2(results: Path, summary: pd.DataFrame, reported: dict | None, out: Path,
            surpass: pd.DataFrame | None = None) -> list[Path]:
    """Best-so-far stage-1 val loss vs trial index in Setting 1, one panel per regularization.

    Thick lines: pointwise means over repetitions; thin: single repetitions; dashed: DS's final
    tuned val loss (the "surpass" threshold, spec §9.3). The y-range follows the mean curves.
    """
    _style()
    surpass = surpass if surpass is not None else surpass_table(results, summary, reported)
    regs = _regs(summary)
    fig = Figure(figsize=(6.5 * len(regs), 4.8))
    axes = fig.subplots(1, len(regs), squeeze=False)
    for ax, reg in zip(axes[0], regs, strict=True):
        _figure2_panel(ax, results, summary, surpass, reg)
    fig.suptitle("Figure 2: best-so-far validation loss during stage-1 tuning (Setting 1)", y=1.02)
    fig.tight_layout()
    return save_figure(fig, out, "figure2")


def figure2_not_testable(reason: str, out: Path) -> list[Path]:
    """Figure 2's files when the run cannot test it: no curves, the reason, and where the
    reference run's Figure 2 is."""
    _style()
    fig = Figure(figsize=(9, 3.2))
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.5, 0.5, f"Figure 2: {NOT_TESTABLE}\n{reason}.\nNo stage-1 search to draw: the "
            "replication report shows the committed reference run's Figure 2\n"
            "(paper/reference-runs/<run>/figures/figure2.png) and its verdict instead.",
            transform=ax.transAxes, ha="center", va="center", fontsize=12, color="0.25",
            bbox={"boxstyle": "round", "fc": "white", "ec": "0.7"})
    return save_figure(fig, out, "figure2")


def _figure2_panel(ax, results: Path, summary: pd.DataFrame, surpass: pd.DataFrame,
                   reg: str) -> None:
    """One regularization: the RL curves, DS's threshold, the surpass counts, the axes."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    drawn, vals, n_max = False, [], 0
    for method in METHODS:
        curves = stage1_curves(results, "s1", method, reg)
        if not curves:
            continue
        drawn = True
        color = METHOD_COLORS[method]
        for c in curves.values():
            _steps(ax, c, color=color, alpha=0.25, lw=0.8)
            vals.append(float(np.nanmin(np.where(np.isfinite(c), c, np.nan))))
        mc = mean_curve(list(curves.values()))
        n_max = max(n_max, len(mc))
        vals.extend(mc[np.isfinite(mc)].tolist())
        _steps(ax, mc, color=color, lw=2,
               label=f"{METHOD_LABELS[method]}-{reg_label(reg)} (mean of {len(curves)})")
    vals.extend(_ds_threshold(ax, summary, reg))
    _surpass_box(ax, surpass, reg)
    ax.set_title(f"Setting 1, regularization {reg_label(reg)}")
    ax.set_xlabel("stage-1 trial (suggestion order)")
    ax.set_ylabel("best-so-far validation loss")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if n_max:
        ax.set_xlim(0.5, n_max + 0.5)
    vals = [v for v in vals if math.isfinite(v)]
    if vals:
        _loss_axis(ax, min(vals), max(vals))
    if drawn:
        handles, _ = ax.get_legend_handles_labels()
        handles.append(Line2D([], [], color="0.5", lw=0.8, alpha=0.6,
                              label="single repetitions (thin)"))
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2,
                  fontsize=9, frameon=False)
    else:
        _not_run(ax)


def _ds_threshold(ax, summary: pd.DataFrame, reg: str) -> list[float]:
    """DS's final tuned val loss in Setting 1 as a dashed line; its value, or nothing."""
    ds = summary[(summary["setting"] == "s1") & (summary["method"] == "ds")
                 & (summary["reg"] == reg)] if len(summary) else summary
    if not len(ds):
        return []
    v = float(pd.to_numeric(ds["val_loss"], errors="coerce").mean())
    if not math.isfinite(v):
        return []
    ax.axhline(v, color=METHOD_COLORS["ds"], ls="--", lw=1.4,
               label=f"DS-{reg_label(reg)} final tuned val loss ({v:.4f})")
    return [v]


def _surpass_box(ax, surpass: pd.DataFrame, reg: str) -> None:
    """The configurations each RL method needed to surpass DS, ours and the paper's."""
    lines = []
    for method in registry.PAPER_RL:
        r = surpass[(surpass["method"] == method) & (surpass["reg"] == reg)
                    & (surpass["kind"] == "mean")]
        ours = r["label"].iloc[0] if len(r) else "not run"
        p = r["paper"].iloc[0] if len(r) else None
        p = "?" if p is None or pd.isna(p) else int(p)
        lines.append(f"{METHOD_LABELS[method]}: {ours} (paper {p})")
    ax.text(0.98, 0.97, "configs to surpass DS\n" + "\n".join(lines), transform=ax.transAxes,
            ha="right", va="top", fontsize=10,
            bbox={"boxstyle": "round", "fc": "white", "ec": "0.7", "alpha": 0.9})


# ----------------------------------------------------------------------------- Figure 3
def _read_csv(path: Path) -> pd.DataFrame | None:
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.EmptyDataError, ValueError):
        return None
    return df if len(df) else None


def critic_checkpoints(critic: pd.DataFrame, every: int = FIG3_EVERY, last: int = FIG3_STEPS,
                       end_step: int | None = None) -> pd.DataFrame:
    """Latest critic loss at each multiple of ``every`` env steps up to ``last`` (spec §9.3).

    NaN where no gradient update happened yet (before ``learning_starts``) and after the run's
    last step ``end_step`` (default: the last logged step), so a short run is not extrapolated.
    """
    c = critic.sort_values(["step", "update"] if "update" in critic else ["step"])
    steps = c["step"].to_numpy(float)
    losses = pd.to_numeric(c["critic_loss"], errors="coerce").to_numpy(float)
    grid = np.arange(every, last + 1, every)
    idx = np.searchsorted(steps, grid, side="right") - 1
    vals = np.where(idx >= 0, losses[np.clip(idx, 0, None)] if len(losses) else np.nan, np.nan)
    end = end_step if end_step is not None else (steps.max() if len(steps) else 0)
    vals = np.where(grid <= end, vals, np.nan)
    return pd.DataFrame({"step": grid, "critic_loss": vals})


def figure3_data(results: Path) -> dict[str, dict]:
    """{reg: {"critic": checkpoints, "replay": first 10 000 transitions, "steps": run length}}.

    Missing inputs are None; a folder without ``metrics.json`` (an incomplete run) counts as
    missing. The run length is ``iterations`` (env steps) of ``metrics.json``.
    """
    out = {}
    for reg in FIG3_REGS:
        d = results / "figure3" / reg
        try:
            metrics = read_run(d)  # only a complete run folder counts
        except DeepstockError:
            out[reg] = {"critic": None, "replay": None, "steps": None}
            continue
        critic = _read_csv(d / "critic_log.csv")
        replay = _read_csv(d / "replay_log.csv")
        if replay is not None:
            replay = replay.sort_values("step").head(FIG3_STEPS)
        steps = None
        with contextlib.suppress(ValueError, KeyError, TypeError):
            steps = int(metrics["iterations"])
        out[reg] = {"critic": None if critic is None else critic_checkpoints(critic,
                                                                             end_step=steps),
                    "replay": replay, "steps": steps}
    return out


def figure3_stats(results: Path) -> dict:
    """Numbers behind the Figure 3 claims: checkpoints with Base < None; on-hand 5–95% ranges."""
    data = figure3_data(results)
    out: dict = {}
    cn, cb = data["none"]["critic"], data["base"]["critic"]
    if cn is not None and cb is not None:
        both = np.isfinite(cn["critic_loss"]) & np.isfinite(cb["critic_loss"])
        out["checkpoints"] = int(both.sum())
        out["base_lower"] = int((cb["critic_loss"][both] < cn["critic_loss"][both]).sum())
    for reg in FIG3_REGS:
        r = data[reg]["replay"]
        if r is not None:
            q = np.nanquantile(r["onhand"].to_numpy(float), [0.05, 0.95])
            out[f"onhand_p05_{reg}"], out[f"onhand_p95_{reg}"] = float(q[0]), float(q[1])
            out[f"onhand_range_{reg}"] = float(q[1] - q[0])
    return out


def figure3(results: Path, out: Path) -> list[Path]:
    """Top: critic loss every 500 steps, None vs Base; bottom: replay-buffer on-hand vs step."""
    _style()
    data = figure3_data(results)
    fig = Figure(figsize=(13, 8.5))
    gs = fig.add_gridspec(2, 2, height_ratios=[1, 1.1], hspace=0.38, wspace=0.12)
    top = fig.add_subplot(gs[0, :])
    drawn = False
    for reg in FIG3_REGS:
        c = data[reg]["critic"]
        if c is None:
            continue
        drawn = True
        steps = data[reg]["steps"]
        top.plot(c["step"], c["critic_loss"], marker="o", ms=4, color=_color(reg),
                 label=f"DDPG-{reg_label(reg)}"
                 + (f" (run of {steps:,} steps)" if steps is not None else ""))
    if drawn:
        _plain_log(top)
        top.legend()
    missing = [reg_label(r) for r in FIG3_REGS if data[r]["critic"] is None]
    if missing:
        _not_run(top, f"not run: {', '.join(missing)}" if drawn else "not run")
    top.set_xlabel("environment step")
    top.set_ylabel("critic loss (MSE Bellman error)")
    top.set_title("Critic loss, latest value at every 500 steps (first 10,000 steps)")
    top.set_xlim(0, FIG3_STEPS + 250)
    replays = [data[r]["replay"] for r in FIG3_REGS if data[r]["replay"] is not None]
    ylim = None
    vmin = vmax = None
    if replays:
        allv = np.concatenate([r["onhand"].to_numpy(float) for r in replays])
        allx = np.concatenate([r["x"].to_numpy(float) for r in replays])
        ylim = (np.nanmin(allv) - 5, np.nanmax(allv) + 5)
        vmin, vmax = float(np.nanmin(allx)), float(np.nanmax(allx))
    sc = None
    for j, reg in enumerate(FIG3_REGS):
        ax = fig.add_subplot(gs[1, j])
        r = data[reg]["replay"]
        if r is None:
            _not_run(ax)
        else:
            sc = ax.scatter(r["step"], r["onhand"], c=r["x"], s=3, cmap="viridis", vmin=vmin,
                            vmax=vmax, rasterized=True)
            q = np.nanquantile(r["onhand"].to_numpy(float), [0.05, 0.95])
            ax.text(0.02, 0.97, f"5–95% range: [{q[0]:.0f}, {q[1]:.0f}]", transform=ax.transAxes,
                    va="top", fontsize=10,
                    bbox={"boxstyle": "round", "fc": "white", "ec": "0.7", "alpha": 0.9})
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.set_xlim(0, FIG3_STEPS + 250)
        ax.set_xlabel("environment step (transition)")
        ax.set_ylabel("next on-hand inventory $I_{t,0}$ (units)" if j == 0 else "")
        ax.set_title(f"Replay-buffer states, DDPG-{reg_label(reg)}")
    if sc is not None:
        cbar = fig.colorbar(sc, ax=fig.axes[1:], shrink=0.9, pad=0.01)
        cbar.set_label("feature $x_t = \\lfloor t/2 \\rfloor$")
    fig.suptitle("Figure 3: DDPG in Setting 1, None vs Base", y=0.97)
    return save_figure(fig, out, "figure3")


# ----------------------------------------------------------------------------- Figure 4
def figure4(summary: pd.DataFrame, reported: dict | None, out: Path) -> list[Path]:
    """DS-Base test gap and val gap vs T (H on the top axis), one line per N; paper dashed."""
    _style()
    fig = Figure(figsize=(13, 4.8))
    axes = fig.subplots(1, 2)
    xs = np.arange(len(registry.IID_T))
    method, reg = registry.TABLE9_CELL
    paper = reported["table9"]["N"] if reported is not None else {}
    any_ours = False
    for ax, key, name in ((axes[0], "test_gap", "Test"), (axes[1], "val_gap", "Validation")):
        for n in registry.IID_N:
            color = N_COLORS[n]
            mean, lo, hi = [], [], []
            for t in registry.IID_T:
                sub = summary[(summary["setting"] == registry.iid_setting_id(n, t))
                              & (summary["method"] == method) & (summary["reg"] == reg)
                              ] if len(summary) else summary
                v = pd.to_numeric(sub[key], errors="coerce").dropna() if len(sub) else pd.Series()
                mean.append(v.mean() if len(v) else np.nan)
                lo.append(v.min() if len(v) else np.nan)
                hi.append(v.max() if len(v) else np.nan)
            mean, lo, hi = (np.asarray(a, float) for a in (mean, lo, hi))
            if np.isfinite(mean).any():
                any_ours = True
                ax.errorbar(xs, mean, yerr=[mean - lo, hi - mean], color=color, marker="o",
                            lw=2, capsize=3, label=f"N = {n}, ours (mean, min–max bars)")
            p = paper.get(n) or paper.get(str(n))
            if p is not None:
                ax.plot(xs, p[key], color=color, ls="--", marker="x", lw=1.2, alpha=0.8,
                        label=f"N = {n} (paper)")
        ax.axhline(0, color="0.3", lw=0.8)
        ax.set_xticks(xs, [str(t) for t in registry.IID_T])
        ax.set_xlabel("horizon T (days)")
        _gap_axis(ax, f"{name.lower()} loss gap to L* (%)")
        sec = ax.secondary_xaxis("top")
        sec.set_xticks(xs, [f"H={h}" for h in reported["table9"]["H"]] if reported else
                       [str(h) for h in registry.IID_H])
        sec.set_xlabel("review cycles H")
        ax.set_title(f"{name} gap, DS-Base (Setting 4)")
        if not any_ours:
            _not_run(ax, "not run (dashed: paper)")
    handles, labels = axes[0].get_legend_handles_labels()
    order = sorted(range(len(labels)),
                   key=lambda i: ("paper" in labels[i], int(labels[i].split()[2].rstrip(","))))
    fig.legend([handles[i] for i in order], [labels[i] for i in order], loc="lower center",
               ncol=3, frameon=False, bbox_to_anchor=(0.5, -0.12))
    fig.suptitle("Figure 4: DS-Base loss gap vs horizon and number of SKUs N (Setting 4)", y=1.03)
    fig.tight_layout()
    return save_figure(fig, out, "figure4")


def write_figures(results: str | Path, summary: pd.DataFrame, reported: dict | None,
                  out: str | Path, tables_out: str | Path) -> list[Path]:
    """Figures 1–4 (PNG + PDF) into ``out`` and ``surpass.csv`` into ``tables_out``; Figure 2
    says "not testable at this scale" where the stage-1 curves hold no search."""
    results, out = Path(results), Path(out)
    surpass = surpass_table(results, summary, reported)
    paths = [write_csv(Path(tables_out) / "surpass.csv", surpass)]
    paths += figure1(summary, reported, out)
    reason = surpass_untestable(surpass)
    paths += (figure2_not_testable(reason, out) if reason
              else figure2(results, summary, reported, out, surpass))
    paths += figure3(results, out)
    paths += figure4(summary, reported, out)
    return paths
