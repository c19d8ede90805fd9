"""The numbers the docs quote from the committed paper-protocol reference run are that run's own.

Every expected string below is computed from the committed files under
``paper/reference-runs/paper-protocol/`` (``summary.csv``: one row per cell and repetition;
``tables/comparison.csv``; ``progress.log`` and ``pauses.log``), rounded as the docs round it,
and must appear in ``docs/validation.md``, ``docs/tuning.md`` or the reference run's README. A
changed CSV or a changed sentence fails here.

A cell's time is its ``wall_s`` (the wall time of ``deepstock tune``). A resumed cell's
``wall_s`` covers only its last invocation; for those (``trial_wall_s`` > ``wall_s``) the time is
the journal's training time ``trial_wall_s``, less the pauses of ``pauses.log`` that fall inside
the cell's run in ``progress.log`` (the Setting 1 DDPG-Base cell of repetition 0).
"""
from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
REF = REPO / "paper" / "reference-runs" / "paper-protocol"
VALIDATION = REPO / "docs" / "validation.md"
TUNING = REPO / "docs" / "tuning.md"
README = REF / "README.md"

LABEL = {"ddpg": "DDPG", "ppo": "PPO", "ds": "DS", "base": "Base", "none": "None"}
RAY_FIXED_S = 10.0          # "Ray's ≈ 10 s" of docs/tuning.md


def _flat(path: Path) -> str:
    """The file's text with every run of whitespace made one space (line breaks move freely)."""
    return " ".join(path.read_text().split())


def _section(text: str, start: str, end: str) -> str:
    i = text.index(start)
    return text[i:text.index(end, i + len(start))]


def spaced(x: float) -> str:
    """A whole number with a space between thousands, as the docs write it: 7 925."""
    return f"{x:,.0f}".replace(",", " ")


def _label(method: str, reg: str) -> str:
    return f"{LABEL[method]}-{LABEL[reg]}"


def _range(values, fmt: str = ".1f", sep: str = "–") -> str:
    return f"{min(values):{fmt}}{sep}{max(values):{fmt}}"


@pytest.fixture(scope="module")
def summary() -> pd.DataFrame:
    s = pd.read_csv(REF / "summary.csv")
    s["cell_s"] = [_cell_seconds(r) for r in s.itertuples()]
    s["cell_min"] = s["cell_s"] / 60
    return s


def _stamp(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _pauses() -> list[tuple[datetime, datetime]]:
    """(paused, resumed) pairs of pauses.log."""
    marks = [line.split()[:2] for line in (REF / "pauses.log").read_text().splitlines()
             if line.strip()]
    stops = [_stamp(t) for kind, t in marks if kind == "paused"]
    starts = [_stamp(t) for kind, t in marks if kind == "resumed"]
    assert len(stops) == len(starts)
    return list(zip(stops, starts, strict=True))


def _run_interval(method: str, reg: str) -> tuple[datetime, datetime] | None:
    """First start to last end of a Setting 1 repetition-0 cell in progress.log (its lines name
    no setting: 'start ddpg base'), or None."""
    pat = re.compile(rf"^(\S+) (start|end) {method} {reg}(?: |$)")
    hits = [(m.group(2), _stamp(m.group(1))) for line in
            (REF / "progress.log").read_text().splitlines() if (m := pat.match(line))]
    starts = [t for k, t in hits if k == "start"]
    ends = [t for k, t in hits if k == "end"]
    return (min(starts), max(ends)) if starts and ends else None


def _paused_seconds(row) -> float:
    if row.setting != "s1" or row.repetition != 0:
        return 0.0
    span = _run_interval(row.method, row.reg)
    if span is None:
        return 0.0
    return sum(max(0.0, (min(b, span[1]) - max(a, span[0])).total_seconds())
               for a, b in _pauses())


def _cell_seconds(row) -> float:
    if row.trial_wall_s > row.wall_s:          # resumed: wall_s is the last invocation's only
        return row.trial_wall_s - _paused_seconds(row)
    return row.wall_s


def _cells(s: pd.DataFrame, settings, methods=None, reg=None, reps=None) -> pd.DataFrame:
    keep = s["setting"].isin(settings)
    if methods is not None:
        keep &= s["method"].isin(methods)
    if reg is not None:
        keep &= s["reg"] == reg
    if reps is not None:
        keep &= s["repetition"].isin(reps)
    return s[keep]


def _s4(s: pd.DataFrame) -> list[str]:
    return sorted(x for x in s["setting"].unique() if x.startswith("s4_"))


# ----------------------------------------------------------------------- Setting 1, DS section
def test_the_setting_1_ds_section_quotes_the_reference_runs_repetition_means_from_summary_csv(
        summary):
    text = _section(_flat(VALIDATION), "## Setting 1, DS, full paper protocol", "## Authors'")
    paper = pd.read_csv(REF / "tables" / "comparison.csv")
    paper = paper[paper["table"] == "table6"].set_index(["method", "reg", "metric"])["paper"]
    for reg, bold in (("base", True), ("none", False)):
        cell = _cells(summary, ["s1"], ["ds"], reg).sort_values("repetition")
        assert list(cell["repetition"]) == [0, 1, 2]
        m = cell[["val_loss", "val_gap", "test_loss", "test_gap"]].mean()
        test = f"**{m.test_loss:.4f}**" if bold else f"{m.test_loss:.4f}"
        row = (f"| DS-{LABEL[reg]}, reference run | {m.val_loss:.4f} | {m.val_gap:.2f} | {test} "
               f"| {m.test_gap:.2f} |")
        assert row in text
    per_rep = "; ".join(
        f"DS-{LABEL[reg]} " + ", ".join(f"{x:.4f}" for x in
                                        _cells(summary, ["s1"], ["ds"], reg)
                                        .sort_values("repetition")["test_loss"])
        for reg in ("base", "none"))
    assert f"Per repetition (test loss, `summary.csv`): {per_rep}." in text
    base = _cells(summary, ["s1"], ["ds"], "base")["test_loss"]
    none = _cells(summary, ["s1"], ["ds"], "none")["test_loss"]
    p_base, p_none = paper[("ds", "base", "test_loss")], paper[("ds", "none", "test_loss")]
    assert base.mean() < p_base and none.mean() < p_none
    assert f"DS-Base is {100 * (1 - base.mean() / p_base):.1f} % below the paper's mean" in text
    assert (f"its repetitions spread from {100 * (1 - base.min() / p_base):.0f} % below to "
            f"{100 * (base.max() / p_base - 1):.1f} % above it") in text
    assert f"Our DS-None tunes {100 * (1 - none.mean() / p_none):.1f} % better" in text


def test_the_earlier_setting_1_ds_numbers_are_marked_superseded_and_are_not_the_reference_runs(
        summary):
    flat = _flat(VALIDATION)
    text = _section(flat, "## Setting 1, DS, full paper protocol", "## Authors'")
    marker = "**Superseded: an earlier run.**"
    assert marker in text and "commit ae6484a" in text
    old = text[text.index(marker):]
    means = {f"{_cells(summary, ['s1'], ['ds'], r)[c].mean():.4f}"
             for r in ("base", "none") for c in ("test_loss", "val_loss")}
    for number in ("1.0909", "1.1525", "1.0399", "1.1168"):
        assert number in old and number not in means
        assert flat.count(number) == old.count(number), f"{number} quoted outside the marker"


def test_validation_md_says_every_setting_1_to_3_cell_has_all_its_repetitions(summary):
    text = _flat(VALIDATION)
    reps = _cells(summary, ["s1", "s2", "s3"]).groupby(["setting", "method", "reg"])["repetition"]
    assert all(sorted(r) == [0, 1, 2] for _, r in reps)
    assert "repetitions 1–2 have not" not in text
    assert ("has been run for Settings 1–3 at all 3 repetitions (the reference run above; "
            "`summary.csv` holds repetitions 0, 1 and 2 of every cell)") in text


def test_the_setting_1_cell_that_varies_most_across_repetitions_is_named_with_its_range(summary):
    text = _flat(VALIDATION)
    spread = (_cells(summary, ["s1"]).groupby(["method", "reg"])["test_loss"]
              .agg(["min", "max"]).assign(spread=lambda d: d["max"] - d["min"])
              .sort_values("spread", ascending=False))
    rl = spread[spread.index.get_level_values("method") != "ds"]
    top, top_rl, next_rl = spread.iloc[0], rl.iloc[0], rl.iloc[1]
    assert (f"**{_label(*spread.index[0])} varies most across repetitions** ({top['min']:.4f} to "
            f"{top['max']:.4f}, a spread of {top['spread']:.4f};") in text
    assert (f"**Among the RL cells {_label(*rl.index[0])} varies most** ({top_rl['min']:.4f} to "
            f"{top_rl['max']:.4f}, a spread of {top_rl['spread']:.4f}; next "
            f"{_label(*rl.index[1])}, {next_rl['min']:.4f} to {next_rl['max']:.4f})") in text
    assert spread.index[0] != rl.index[0]     # the sentence this replaced named DDPG-Base alone


# ----------------------------------------------------------------------- Setting 1 tables
def _wall(row, method: str, reg: str) -> str:
    """The Setting 1 table's way of writing a cell time: DS to 0.1 min, RL to the minute, the
    sequential (k = 1) DDPG-Base cell of repetition 0 as '≈ 77 (k = 1)'."""
    if method == "ds":
        return f"{row.cell_min:.1f}"
    if (method, reg, row.repetition) == ("ddpg", "base", 0):
        return f"≈ {row.cell_min:.0f} (k = 1)"
    return f"{row.cell_min:.0f}"


def test_the_setting_1_tables_quote_each_cells_test_losses_and_wall_times(summary):
    text = _flat(VALIDATION)
    rep0 = []
    for method in ("ddpg", "ppo", "ds"):
        for reg in ("none", "base"):
            cell = _cells(summary, ["s1"], [method], reg).sort_values("repetition")
            losses = " | ".join(f"{x:.4f}" for x in cell["test_loss"])
            walls = ", ".join(_wall(r, method, reg) for r in cell.itertuples())
            assert f"| {_label(method, reg)} | {losses} | {cell['test_loss'].mean():.4f} [" in text
            assert f"| {walls} min |" in text
            rep0.append((method, reg, cell.iloc[0]))
    order = [("ddpg", "none"), ("ddpg", "base"), ("ppo", "none"), ("ppo", "base"),
             ("ds", "none"), ("ds", "base")]
    by = {(m, r): row for m, r, row in rep0}
    walls = " | ".join(
        ("≈ " + f"{by[k].cell_min:.0f} min (k = 1)") if k == ("ddpg", "base")
        else f"{by[k].cell_min:.1f} min" if k[0] == "ds" else f"{by[k].cell_min:.0f} min"
        for k in order)
    assert f"| cell wall, one core | {walls} |" in text
    rl = sum(by[k].cell_min for k in order if k[0] != "ds")
    ds = sum(by[k].cell_min for k in order if k[0] == "ds")
    assert (f"The repetition took ≈ {(rl + ds) / 60:.1f} core-hours on jax/torch: RL {rl:.0f} min, "
            f"DS {ds:.0f} min.") in text


# ----------------------------------------------------------------------- cell times
def test_tuning_md_quotes_the_committed_cell_times_per_setting_group(summary):
    text = _flat(TUNING)
    s1, s23, s4 = ["s1"], ["s2", "s3"], _s4(summary)
    rl = ["ddpg", "ppo"]

    def share(minutes, fmt):
        lo, hi = (100 * RAY_FIXED_S / (60 * m) for m in (max(minutes), min(minutes)))
        return f"{lo:{fmt}}–{hi:{fmt}} %"

    ds1 = _cells(summary, s1, ["ds"])["cell_min"]
    rl1 = _cells(summary, s1, rl)["cell_min"]
    ds23 = _cells(summary, s23, ["ds"])["cell_min"]
    rl23 = _cells(summary, s23, rl)["cell_min"]
    ds4 = _cells(summary, s4, ["ds"], "base")["cell_s"]
    assert len(ds4) == 45 and set(_cells(summary, s4)["method"]) == {"ds"}
    assert f"| Setting 1 DS (75 trainings) | {_range(ds1)} min | {share(ds1, '.1f')} |" in text
    assert max(100 * RAY_FIXED_S / (60 * m) for m in rl1) < 1
    assert (f"| Setting 1 DDPG/PPO (75 trainings of up to 200 000 steps) | {_range(rl1)} min "
            f"| under 1 % |") in text
    assert f"| Settings 2–3 DS | {_range(ds23)} min | {share(ds23, '.0f')} |" in text
    assert f"| Settings 2–3 DDPG/PPO | {_range(rl23)} min | {share(rl23, '.0f')} |" in text
    assert RAY_FIXED_S / ds4.min() > 0.5
    assert (f"| Setting 4 DS-Base | {ds4.min():.0f} s to {ds4.max() / 60:.1f} min "
            f"| {100 * RAY_FIXED_S / ds4.max():.1f} % to more than half |") in text
    rep0 = _cells(summary, s1, rl, reps=[0])["cell_min"]
    assert (f"Setting 1 jax cells took {_range(rl1)} min (`summary.csv`; repetition 0: "
            f"{_range(rep0)} min)") in text
    hours = {"s123": _cells(summary, ["s1", "s2", "s3"], ["ds"])["trial_wall_s"].sum() / 3600,
             "s4": _cells(summary, s4, ["ds"])["trial_wall_s"].sum() / 3600}
    assert (f"{hours['s123']:.1f} core-hours for Settings 1–3, {hours['s4']:.1f} for Setting 4: "
            f"the sums of `trial_wall_s` in `summary.csv`") in text
    pair = _cells(summary, ["s2"], ["ddpg"])
    assert len(pair) == 6
    assert (f"The six JAX cells of that pair (Base and None, repetitions 0–2) average "
            f"{pair['cell_min'].mean():.1f} min.") in text
    base = _cells(summary, ["s2"], ["ddpg"], "base")["test_loss"]
    assert f"JAX DDPG-Base repetitions' {_range(base, '.4f')}" in text


def test_the_reference_runs_readme_quotes_the_committed_cell_times(summary):
    text = _flat(README)
    s23 = ["s2", "s3"]
    per = {m: _range(_cells(summary, s23, [m])["cell_min"]) for m in ("ppo", "ddpg", "ds")}
    assert (f"PPO took {per['ppo']} min, DDPG {per['ddpg']} min and DS {per['ds']} min per cell "
            f"on one core ({len(_cells(summary, s23))} cells)") in text
    reps = {m: _range(_cells(summary, ["s1"], [m], reps=[1, 2])["cell_min"])
            for m in ("ds", "ppo", "ddpg")}
    assert (f"DS cells took {reps['ds']} min, PPO {reps['ppo']} min, DDPG {reps['ddpg']} min."
            ) in text
    s4 = _cells(summary, _s4(summary), reps=[0])
    assert len(s4) == 15
    longest = s4.loc[s4["cell_min"].idxmax(), "setting"]
    n, t = re.fullmatch(r"s4_n(\d+)_t(\d+)", longest).groups()
    assert (f"{s4['wall_s'].sum() / 60:.0f} core-minutes in all (the sum of `wall_s`); cells took "
            f"{_range(s4['cell_min'])} min (N = {n}, T = {t} the longest)") in text
    all4 = _cells(summary, _s4(summary))
    assert (f"the {len(all4)} Setting 4 cells took {all4['cell_s'].min():.0f} s to "
            f"{all4['cell_s'].max() / 60:.1f} min each") in text
    s1 = _cells(summary, ["s1"], reps=[0]).set_index(["method", "reg"])
    ds = ", ".join(f"{s1.loc[('ds', r), 'wall_s']:.0f} s" for r in ("base", "none"))
    assert f"| DS-Base, DS-None | b4244b6 | 1 (sequential TPE) | {ds} |" in text
    rows = {line.split("|")[1].strip(): line for line in README.read_text().splitlines()
            if line.startswith("| ")}
    for method, reg in (("ddpg", "none"), ("ppo", "base"), ("ppo", "none")):
        row = rows[_label(method, reg)]
        assert row.startswith(f"| {_label(method, reg)} | e7dab30 | 5")
        assert row.endswith(f"| {s1.loc[(method, reg), 'cell_min']:.0f} min |")
    ddpg = s1.loc[("ddpg", "base")]
    paused = _paused_seconds(next(_cells(summary, ["s1"], ["ddpg"], "base", [0]).itertuples()))
    assert (f"| DDPG-Base | b4244b6 | 1 | {ddpg['cell_min']:.1f} min of training (the journal's "
            f"{spaced(ddpg['trial_wall_s'])} s of trial time, `trial_wall_s`, includes the two "
            f"pauses of `pauses.log` during trial 45, {spaced(paused)} s)") in text
    assert f"resumed in a later session, whose {ddpg['wall_s']:.0f} s are `summary.csv`'s `wall_s`" \
        in text


def test_the_readme_names_every_resumed_cell_with_both_of_its_times(summary):
    text = _flat(README)
    resumed = summary[summary["trial_wall_s"] > summary["wall_s"]]
    assert len(resumed) == 4
    s3 = resumed[resumed["setting"] == "s3"].set_index("reg").loc[["base", "none"]]
    assert (f"Setting 3 DS-Base and DS-None repetition 0 (`wall_s` {s3['wall_s'].iloc[0]:.2f} s "
            f"and {s3['wall_s'].iloc[1]:.2f} s") in text
    assert (f"`trial_wall_s` {s3['trial_wall_s'].iloc[0]:.0f} s and "
            f"{s3['trial_wall_s'].iloc[1]:.0f} s)") in text
    s4 = resumed[resumed["setting"].str.startswith("s4_")]
    assert len(s4) == 1
    n, t = re.fullmatch(r"s4_n(\d+)_t(\d+)", s4["setting"].iloc[0]).groups()
    assert (f"Setting 4 N = {n}, T = {t} repetition {s4['repetition'].iloc[0]} (`wall_s` "
            f"{s4['wall_s'].iloc[0]:.0f} s, `trial_wall_s` {s4['trial_wall_s'].iloc[0]:.0f} s)"
            ) in text
    s1 = resumed[resumed["setting"] == "s1"]
    assert list(zip(s1["method"], s1["reg"], s1["repetition"], strict=True)) == [
        ("ddpg", "base", 0)]
    assert (f"Setting 1 DDPG-Base repetition 0 (`wall_s` {s1['wall_s'].iloc[0]:.0f} s, "
            f"`trial_wall_s` {spaced(s1['trial_wall_s'].iloc[0])} s") in text


def test_validation_md_quotes_the_committed_cell_times_of_settings_2_to_4(summary):
    text = _flat(VALIDATION)
    ddpg = _cells(summary, ["s2", "s3"], ["ddpg"])["cell_min"]
    assert f"`train_freq` 14 configurations, which make {_range(ddpg)} min cells" in text
    s4 = _cells(summary, _s4(summary), reps=[0])
    assert (f"The cells took {s4['wall_s'].sum() / 60:.0f} core-minutes together, "
            f"{_range(s4['cell_min'])} min each (`wall_s` in `summary.csv`)") in text


def test_validation_md_names_the_setting_4_gaps_where_summary_csv_rounds_otherwise(summary):
    """The Setting 4 gap table is computed from the printed losses (tests/test_reports.py); the
    note lists exactly the cells where summary.csv's own test_gap rounds to another value."""
    text = VALIDATION.read_text()
    text = text[text.index("## Setting 4"):]
    block = text[text.index("Test gap %"):text.index("Takeaway (4)")]
    rows = [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in block.splitlines() if line.startswith("| ") and "---" not in line]
    rep0 = _cells(summary, _s4(summary), reps=[0]).set_index("setting")["test_gap"]
    differ = []
    for r in rows:
        if not r[0].isdigit():
            continue
        for t, written in zip((7, 19, 35, 67, 131), r[1:], strict=True):
            ours = f"{rep0[f's4_n{r[0]}_t{t}']:.2f}"
            if written.split("/")[0].strip() != ours:
                differ.append(f"{ours} at N = {r[0]}, T = {t}")
    assert differ
    listed = ", ".join(differ[:-1]) + " and " + differ[-1] if len(differ) > 1 else differ[0]
    assert f"`summary.csv`'s `test_gap`, from the unrounded losses, reads {listed}:" in \
        " ".join(text.split())
