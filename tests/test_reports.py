"""Reports: summary gaps, Tables 6–9, Figures 1–4, surpass counts, paper values, notebook.

Expected numbers are hand-computed from the fake tree below (gap = 100 (L − L*)/L*, spec §3) or
transcribed from the paper (spec §9); none is read back from the code's own output.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from deepstock.cli import main
from deepstock.registry import IID_T
from deepstock.reports.collect import collect_compute, loss_gap
from deepstock.reports.figures import (
    best_so_far,
    configs_to_surpass,
    critic_checkpoints,
    mean_curve,
    surpass_label,
)
from deepstock.reports.notebook import backend_statement, scale_banner
from deepstock.reports.reported import load_reported, paper_cells
from deepstock.reports.takeaways import (
    CONVERGED_GAP,
    LARGE_GAP,
    base_improves_test,
    figure3_claims,
    figure4_trends,
    setting3_ds,
    surpass_counts,
)

REPO = Path(__file__).resolve().parents[1]
REPORTED = REPO / "paper" / "reported.yaml"
VALIDATION = REPO / "docs" / "validation.md"
INF = math.inf


def _json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _cell(root: Path, setting, method, reg, rep, val, test, stage1_vals=None, scale="tiny",
          backend=None):
    d = root / setting / method / reg / f"rep{rep}"
    _json(d / "winner.json", {
        "setting": setting, "method": method, "reg": reg, "repetition": rep, "scale": scale,
        "train_loss": val - 0.01, "val_loss": val, "test_loss": test, "reported_seed": 43,
        "wall_s": 10.0 + rep, "trial_wall_s": 8.0, "num_samples": len(stage1_vals or [1]),
        "stage1_failed": 0, "hparams": {}, "configs": [],
        **({"backend": backend} if backend else {}),
    })
    if stage1_vals is not None:
        pd.DataFrame({
            "trial": np.arange(1, len(stage1_vals) + 1), "config": "{}", "seed": 1,
            "val_loss": stage1_vals, "train_loss": 0.0, "test_loss": 0.0,
            "status": ["ok" if math.isfinite(v) else "failed" for v in stage1_vals],
            "error": "", "wall_s": 1.0, "iterations": 3,
        }).to_csv(d / "stage1.csv", index=False)


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """A small results tree: 2 repetitions of a few cells, benchmarks, stage-1 logs, figure 3."""
    r = tmp_path / "results"
    b = r / "benchmarks"
    _json(b / "s1.json", {"setting": "s1", "method": "dp_empirical", "train_loss": 0.7,
                          "val_loss": 0.9, "test_loss": 0.8, "expected_value": 0.75})
    _json(b / "s2.json", {"setting": "s2", "method": "ar1_dp", "train_loss": 2.1,
                          "val_loss": 1.9, "test_loss": 2.0, "expected_value": 2.1})
    _json(b / "s3.json", {"setting": "s3", "method": "ar1_dp", "train_loss": 2.1,
                          "val_loss": 1.9, "test_loss": 2.0})
    _json(b / "ds_on_test" / "s2" / "winner.json", {"setting": "s2", "method": "ds",
                                                    "reg": "base", "train_loss": 2.5,
                                                    "val_loss": 2.5, "test_loss": 2.5})
    _json(b / "s4_n5_t7.json", {"setting": "s4_n5_t7", "method": "critical_fractile",
                                "train_loss": 1.0, "val_loss": 1.0, "test_loss": 2.0})
    # Setting 1: DS (the reference of Figure 2) and DDPG with hand-made stage-1 logs
    _cell(r, "s1", "ds", "base", 0, 1.0, 1.2, [1.4, 1.0])
    _cell(r, "s1", "ds", "base", 1, 1.1, 1.0, [1.3, 1.1])
    _cell(r, "s1", "ds", "none", 0, 1.0, 1.3, [1.5, 1.0])
    _cell(r, "s1", "ds", "none", 1, 1.2, 1.5, [1.6, 1.2])
    _cell(r, "s1", "ddpg", "none", 0, 0.9, 1.0, [3.0, 1.5, INF, 1.05, 0.9])
    _cell(r, "s1", "ddpg", "none", 1, 1.1, 1.2, [2.0, 1.3, 1.25, 1.16, 1.1])
    _cell(r, "s1", "ddpg", "base", 0, 1.5, 1.6, [2.0, 1.8, 1.5])  # never below DS-Base
    _cell(r, "s2", "ds", "base", 0, 2.0, 3.0)
    _cell(r, "s3", "ppo", "none", 0, 2.2, 2.5)
    _cell(r, "s4_n5_t7", "ds", "base", 0, 1.8, 2.2)
    # Figure 3 critic and replay logs
    for reg, scale in (("none", 4.0), ("base", 1.0)):
        d = r / "figure3" / reg
        d.mkdir(parents=True)
        steps = np.arange(300, 10_001, 7)
        pd.DataFrame({"update": np.arange(len(steps)), "step": steps,
                      "critic_loss": scale * 100.0 / np.sqrt(steps)}).to_csv(
            d / "critic_log.csv", index=False)
        s = np.arange(1, 10_001)
        pd.DataFrame({"step": s, "x": s % 15, "onhand": scale * 10 * np.sin(s / 50.0),
                      "order": 0.0, "reward": -1.0, "done": False}).to_csv(
            d / "replay_log.csv", index=False)
    logs = tmp_path / "logs" / "timing"
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    for rule, rows in (("tune", [(10.0, 9.0, 100), (20.0, 18.5, 300)]), ("data", [(1.5, 1.0, 50)])):
        (logs / rule).mkdir(parents=True)
        for i, (s, cpu, rss) in enumerate(rows):
            (logs / rule / f"job{i}.tsv").write_text(
                header + f"{s}\t0:00:{int(s):02d}\t{rss}\t1\t1\t1\t0\t0\t90\t{cpu}\n")
    return r


def _summary(tree: Path, *extra: str) -> pd.DataFrame:
    out = tree / "summary.csv"
    assert main(["report", "summary", "--results", str(tree), "--out", str(out),
                 "--reported", str(REPORTED), *extra]) == 0
    return pd.read_csv(out)


def _row(df, setting, method, reg, rep):
    r = df[(df["setting"] == setting) & (df["method"] == method) & (df["reg"] == reg)
           & (df["repetition"] == rep)]
    assert len(r) == 1
    return r.iloc[0]


# ----------------------------------------------------------------------------- summary
def test_summary_gaps_from_hand_numbers(tree):
    s = _summary(tree)
    assert len(s) == 10
    r = _row(s, "s1", "ds", "base", 0)  # L* = 0.8: val 1.0 -> 25 %, test 1.2 -> 50 %
    assert r["benchmark"] == pytest.approx(0.8)
    assert r["benchmark_method"] == "dp_empirical"
    assert r["val_gap"] == pytest.approx(25.0)
    assert r["test_gap"] == pytest.approx(50.0)
    r = _row(s, "s1", "ds", "base", 1)  # val 1.1 -> 37.5 %, test 1.0 -> 25 %
    assert (r["val_gap"], r["test_gap"]) == (pytest.approx(37.5), pytest.approx(25.0))
    r = _row(s, "s2", "ds", "base", 0)  # AR(1) default: ds_on_test L* = 2.5; test 3.0 -> 20 %
    assert r["benchmark_method"] == "ds_on_test"
    assert r["test_gap"] == pytest.approx(20.0)
    assert r["val_gap"] == pytest.approx(-20.0)  # val 2.0 against the same (test) L*
    r = _row(s, "s3", "ppo", "none", 0)  # no ds_on_test for s3: DP 2.0, with a note
    assert r["benchmark_method"] == "ar1_dp"
    assert r["test_gap"] == pytest.approx(25.0)
    assert "fell back" in r["note"]
    r = _row(s, "s4_n5_t7", "ds", "base", 0)
    assert (r["N"], r["T"], r["H"], r["family"]) == (5, 7, 2, "iid")
    assert r["test_gap"] == pytest.approx(10.0)
    assert r["scale"] == "tiny" and r["reported_seed"] == 43 and r["num_samples"] == 1


def test_summary_names_the_backend_of_winner_json_and_guesses_none_for_older_files(tree):
    _cell(tree, "s2", "ppo", "base", 0, 2.3, 2.6, backend="jax")
    s = _summary(tree)
    assert _row(s, "s2", "ppo", "base", 0)["backend"] == "jax"
    assert pd.isna(_row(s, "s1", "ds", "base", 0)["backend"])  # no "backend" in its winner.json


def test_the_report_states_each_methods_backend_and_flags_a_mix():
    s = pd.DataFrame({"method": ["ds", "ppo", "ddpg", "ppo", "ppo"],
                      "backend": ["torch", "jax", "sb3", "sb3", "jax"]})
    assert backend_statement(s) == (
        "Training backends: DDPG sb3; PPO **mixed: jax (2 tuned cells), sb3 (1 tuned cell)**, "
        "averaged together in the tables; DS torch.")
    old = pd.DataFrame({"method": ["ds"], "backend": [math.nan]})  # summary.csv read back
    assert backend_statement(old) == "Training backends: DS not recorded."
    assert backend_statement(pd.DataFrame({"method": ["ds"]})) == (
        "Training backends: DS not recorded.")  # a summary.csv older than the column


def test_summary_benchmarks_csv(tree):
    _summary(tree)
    b = pd.read_csv(tree / "benchmarks.csv")
    s2 = b[b["setting"] == "s2"].set_index("kind")
    assert set(s2.index) == {"ar1_dp", "ds_on_test", "paper"}
    assert s2.loc["paper", "test_loss"] == pytest.approx(2.2838)
    assert s2.loc["ds_on_test", "test_loss"] == pytest.approx(2.5)
    assert bool(s2.loc["ds_on_test", "reference"]) and not bool(s2.loc["ar1_dp", "reference"])
    s3 = b[b["setting"] == "s3"].set_index("kind")
    assert bool(s3.loc["ar1_dp", "reference"])
    assert b[(b["setting"] == "s1") & (b["kind"] == "paper")]["test_loss"].iloc[0] == 0.867


@pytest.mark.parametrize("ref, lstar", [("paper", 2.2838), ("dp", 2.0)])
def test_summary_ar1_reference_option(tree, ref, lstar):
    s = _summary(tree, "--ar1-gap-reference", ref)
    r = _row(s, "s2", "ds", "base", 0)
    assert r["benchmark"] == pytest.approx(lstar)
    assert r["test_gap"] == pytest.approx(100 * (3.0 - lstar) / lstar)
    assert r["val_gap"] == pytest.approx(100 * (2.0 - lstar) / lstar)


def test_loss_gap_formula():
    assert loss_gap(0.9443, 0.8670) == pytest.approx(8.9158, abs=1e-4)
    assert math.isnan(loss_gap(1.0, float("nan")))
    assert np.allclose(loss_gap([1.0, 3.0], [2.0, 2.0]), [-50.0, 50.0])


# ----------------------------------------------------------------------------- tables
def test_tables_are_repetition_means(tree):
    _summary(tree)
    out = tree / "tables"
    assert main(["report", "tables", "--summary", str(tree / "summary.csv"),
                 "--reported", str(REPORTED), "--out", str(out)]) == 0
    for name in ("table6", "table7", "table8", "table9"):
        for ext in ("csv", "md", "tex"):
            assert (out / f"{name}.{ext}").stat().st_size > 0
    t6 = pd.read_csv(out / "table6.csv").set_index("row")
    # DS-Base: val (1.0 + 1.1)/2, val gap (25 + 37.5)/2, test (1.2 + 1.0)/2, test gap (50 + 25)/2
    means = ["Validation Loss", "Validation Loss Gap (%)", "Testing Loss", "Testing Loss Gap (%)"]
    assert t6.loc[means, "DS-Base"].tolist() == pytest.approx([1.05, 31.25, 1.1, 37.5])
    assert t6.loc[means, "DDPG-None"].tolist() == pytest.approx([1.0, 25.0, 1.1, 37.5])
    assert t6["PPO-Base"].isna().all()
    # the fake tree has no stage2.csv: both kinds of interval rows are there, empty
    assert t6.loc["Testing Loss 95% CI seeds low"].isna().all()
    assert t6.loc["Testing Loss 95% CI tuning+seeds high"].isna().all()
    assert list(t6.columns) == ["DDPG-None", "DDPG-Base", "PPO-None", "PPO-Base", "DS-None",
                                "DS-Base"]
    md = (out / "table6.md").read_text()
    assert "mean over repetitions; 95% bootstrap intervals: seeds only, and tuning+seeds" in md
    assert "| Validation Loss Gap (%) " in md and "31.25" in md and "1.0500" in md and "—" in md
    tex = (out / "table6.tex").read_text()
    assert r"\multicolumn{2}{c}{DDPG}" in tex and r"Gap (\%)" in tex
    t9 = pd.read_csv(out / "table9.csv")
    n5 = t9[t9["N"] == 5].set_index("row")
    assert n5.loc["Benchmark Loss", "T=7"] == pytest.approx(2.0)
    assert n5.loc["Testing Loss", "T=7"] == pytest.approx(2.2)
    assert n5.loc["Testing Loss Gap (%)", "T=7"] == pytest.approx(10.0)
    assert math.isnan(n5.loc["Testing Loss", "T=19"])
    comp = pd.read_csv(out / "comparison.csv")
    r = comp[(comp["setting"] == "s1") & (comp["method"] == "ds") & (comp["reg"] == "base")
             & (comp["metric"] == "test_loss")].iloc[0]
    assert (r["reproduced"], r["paper"], r["n_reps"]) == (pytest.approx(1.1), 1.0959, 2)
    assert r["diff"] == pytest.approx(1.1 - 1.0959)
    assert {"ci_seed_low", "ci_seed_high", "ci_tuning_low", "ci_tuning_high"} <= set(comp)
    assert "ci_low" not in comp  # the seed-only interval is named as such
    assert len(comp) == 3 * 6 * 4 + 15 * 5  # every paper number has a row
    missing = comp[(comp["setting"] == "s2") & (comp["method"] == "ppo")]
    assert missing["reproduced"].isna().all() and (missing["n_reps"] == 0).all()


# ----------------------------------------------------------------------------- figures
def test_figure2_primitives_on_hand_curves():
    s1 = pd.DataFrame({"trial": [2, 1, 3, 4], "val_loss": [1.5, 3.0, 0.5, 0.9],
                       "status": ["ok", "ok", "failed", "ok"]})
    assert best_so_far(s1).tolist() == [3.0, 1.5, 1.5, 0.9]  # failed trial ignored
    mc = mean_curve([np.array([3.0, 1.5, 1.5]), np.array([INF, 2.5, 1.0, 0.5])])
    assert mc.tolist() == [3.0, 2.0, 1.25, 0.5]  # inf ignored, longer curve continues alone
    assert configs_to_surpass(np.array([3.0, 2.0, 1.25, 0.5]), 1.25) == 4  # strictly below
    assert configs_to_surpass(np.array([3.0, 2.0]), 1.0) is None
    assert surpass_label(None, 50) == "> 50" and surpass_label(17, 50) == "17"


def test_critic_checkpoints_latest_value():
    c = pd.DataFrame({"update": [0, 1, 2], "step": [600, 700, 1200], "critic_loss": [5, 4, 3]})
    cp = critic_checkpoints(c, every=500, last=2000, end_step=2000)
    assert cp["step"].tolist() == [500, 1000, 1500, 2000]
    assert math.isnan(cp["critic_loss"].iloc[0])  # before the first update
    assert cp["critic_loss"].iloc[1:].tolist() == [4, 3, 3]
    short = critic_checkpoints(c, every=500, last=2000)  # run ends at the last logged step
    assert short["critic_loss"].iloc[1] == 4 and short["critic_loss"].iloc[2:].isna().all()


def test_figures_and_surpass(tree):
    _summary(tree)
    figs = tree.parent / "figures"
    assert main(["report", "figures", "--results", str(tree), "--summary",
                 str(tree / "summary.csv"), "--reported", str(REPORTED), "--out", str(figs)]) == 0
    for i in range(1, 5):
        png = figs / f"figure{i}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (figs / f"figure{i}.pdf").read_bytes()[:4] == b"%PDF"
    sp = pd.read_csv(tree / "tables" / "surpass.csv")
    m = sp[(sp["method"] == "ddpg") & (sp["reg"] == "none")].set_index("kind")
    # mean best-so-far [2.5, 1.4, 1.375, 1.105, 1.0] vs mean DS-None val (1.0 + 1.2)/2 = 1.1
    mean = m.loc["mean"]
    assert mean["configs_to_surpass"] == 5 and mean["paper"] == 17
    assert mean["ds_val_loss"] == pytest.approx(1.1)
    reps = sp[(sp["method"] == "ddpg") & (sp["reg"] == "none") & (sp["kind"] == "repetition")]
    # rep 0 vs DS rep 0 (1.0): 0.9 at trial 5; rep 1 vs DS rep 1 (1.2): 1.16 at trial 4
    assert reps.set_index("repetition")["configs_to_surpass"].to_dict() == {0: 5, 1: 4}
    base = sp[(sp["method"] == "ddpg") & (sp["reg"] == "base") & (sp["kind"] == "mean")].iloc[0]
    assert base["label"] == "> 3" and pd.isna(base["configs_to_surpass"])
    ppo = sp[sp["method"] == "ppo"]
    assert set(ppo["label"]) == {"not run"}


def test_missing_inputs_do_not_crash(tmp_path):
    empty = tmp_path / "results"
    empty.mkdir()
    assert main(["report", "summary", "--results", str(empty), "--reported", str(REPORTED)]) == 0
    assert pd.read_csv(empty / "summary.csv").empty
    assert main(["report", "tables", "--summary", str(empty / "summary.csv"),
                 "--reported", str(REPORTED), "--out", str(empty / "tables")]) == 0
    t7 = pd.read_csv(empty / "tables" / "table7.csv").set_index("row")
    assert t7.isna().all().all()
    assert main(["report", "figures", "--results", str(empty), "--reported", str(REPORTED),
                 "--out", str(tmp_path / "figures")]) == 0
    assert all((tmp_path / "figures" / f"figure{i}.png").is_file() for i in range(1, 5))
    assert main(["report", "tables", "--summary", str(tmp_path / "nope.csv")]) == 2


def test_compute_per_rule(tree):
    c = collect_compute(tree.parent / "logs").set_index("rule")
    assert c.loc["tune", "jobs"] == 2
    assert c.loc["tune", "wall_s"] == pytest.approx(30.0)
    assert c.loc["tune", "cpu_s"] == pytest.approx(27.5)
    assert c.loc["tune", "max_rss_mb"] == pytest.approx(300)
    assert c.loc["data", "wall_s"] == pytest.approx(1.5)
    assert collect_compute(tree / "no_logs").empty


# ----------------------------------------------------------------------------- paper values
def test_reported_gaps_recompute_from_losses():
    """Transcription guard: every gap equals 100 (L − L*)/L* within the paper's rounding."""
    rep = load_reported(REPORTED)
    raw = yaml.safe_load(REPORTED.read_text())
    n = 0
    for table in raw["tables_6_8"].values():
        lstar = table["L_star"]
        for regs in table["cells"].values():
            for v in regs.values():
                for split in ("val", "test"):
                    gap = 100 * (v[f"{split}_loss"] - lstar) / lstar
                    assert abs(gap - v[f"{split}_gap"]) < 0.012, (table["setting"], v)
                    n += 1
    for rows in raw["table9"]["N"].values():
        for j, lstar in enumerate(rows["benchmark"]):
            for split in ("val", "test"):
                gap = 100 * (rows[f"{split}_loss"][j] - lstar) / lstar
                assert abs(gap - rows[f"{split}_gap"][j]) < 0.012
                n += 1
    assert n == 3 * 6 * 2 + 15 * 2
    assert rep["figure2"]["configs_to_surpass_ds"] == {"ddpg": {"none": 17, "base": 11},
                                                       "ppo": {"none": 32, "base": 7}}
    # the spec's IID critical-fractile fixtures round to Table 9's benchmark row
    fx = raw["benchmark_fixtures"]["iid_critical_fractile"]["z_1.282"]
    for n_sku, rows in raw["table9"]["N"].items():
        assert np.allclose(np.round(fx[n_sku], 4), rows["benchmark"], atol=1.1e-4)
    assert raw["benchmark_fixtures"]["indep_dp"]["empirical"]["test_loss"] == \
        raw["tables_6_8"]["table6"]["L_star"]


def _paper_summary() -> pd.DataFrame:
    """The paper's own numbers as a one-repetition summary (the takeaways must hold on them)."""
    wide = paper_cells(load_reported(REPORTED)).pivot_table(
        index=["setting", "method", "reg"], columns="metric", values="paper").reset_index()
    wide["repetition"] = 0
    return wide


def test_takeaways_hold_on_paper_values():
    s = _paper_summary()
    c = base_improves_test(s)
    assert c.reproduced is True and c.ours == "8 of 9 (not improved: DS S3)"
    assert [x.reproduced for x in setting3_ds(s)] == [True, True]
    trends = figure4_trends(s)
    assert [x.reproduced for x in trends] == [True, True, True, True]
    assert trends[3].ours == "N=5: 24.5, N=10: 12.7, N=20: 13.6"  # its paper string, recomputed
    assert trends[3].paper.endswith(trends[3].ours)
    sp = pd.DataFrame({"method": ["ddpg", "ddpg", "ppo", "ppo"],
                       "reg": ["none", "base", "none", "base"], "kind": "mean",
                       "configs_to_surpass": [17, 11, 32, 7], "n_trials": 50,
                       "label": ["17", "11", "32", "7"]})
    assert surpass_counts(sp).reproduced is True
    sp.loc[3, ["configs_to_surpass", "label"]] = [None, "> 50"]  # PPO-Base never surpasses
    assert surpass_counts(sp).reproduced is False


def test_takeaways_detect_failures_and_missing():
    s = _paper_summary()
    flip = (s["setting"] == "s1") & (s["method"] == "ddpg")
    s.loc[flip & (s["reg"] == "base"), "test_loss"] = 2.0  # DDPG-Base now worse in S1
    c = base_improves_test(s)
    assert c.reproduced is False and c.ours.startswith("7 of 9")
    partial = s[s["setting"] != "s3"]
    assert base_improves_test(partial).reproduced is None
    assert all(x.reproduced is None for x in figure4_trends(s[s["setting"] == "s1"]))
    assert [x.reproduced for x in figure3_claims({})] == [None, None]
    got = figure3_claims({"checkpoints": 10, "base_lower": 9, "onhand_range_none": 80.0,
                          "onhand_range_base": 20.0})
    assert [x.reproduced for x in got] == [True, True]


# ----------------------------------------------------------------------------- notebook
@pytest.mark.slow
def test_notebook_runs_on_partial_tree(tree):
    _summary(tree)
    assert main(["report", "tables", "--summary", str(tree / "summary.csv"),
                 "--reported", str(REPORTED), "--out", str(tree / "tables")]) == 0
    figs = tree.parent / "figures"
    assert main(["report", "figures", "--results", str(tree), "--reported", str(REPORTED),
                 "--out", str(figs)]) == 0
    out = tree / "report"
    assert main(["report", "notebook", "--source", str(REPO / "paper" / "replication.py"),
                 "--out", str(out), "--results", str(tree), "--figures", str(figs),
                 "--logs", str(tree.parent / "logs"), "--reported", str(REPORTED)]) == 0
    md = (out / "replication.md").read_text()
    assert "NOT the paper's protocol" in md  # tiny scale is flagged
    assert "1–2 repetitions per cell" in md  # counted from summary.csv
    assert "Training backends: DDPG not recorded" in md  # the tree's winners predate backends
    assert "the paper's method" not in md and "OUR construction" in md  # AR(1) stand-in
    assert "| tune " in md  # compute per rule
    assert "## Uncertainty" in md and "| beyond noise" in md  # intervals explained and shown
    assert "| beyond seed noise" in md
    assert "| 95% CI seeds " in md and "| 95% CI tuning+seeds " in md  # blank: no stage2.csv
    assert "With 3 repetitions the hierarchical intervals are wide and coarse" in md
    # the measured rerun spread of the committed reference run (paper/reference-runs)
    assert "re-tuning moves a cell's reported test loss by up to **29.9 %**" in md
    assert "in Settings 1–3 by up to **14.7 %** (s1 DS-Base, 0.9748 – 1.1319)" in md
    assert "Figure 2 is not testable" not in md  # this tree's curves hold a search
    html = (out / "replication.html").read_text()
    assert "data:image/png;base64" in html  # figures embedded: self-contained
    assert (out / "replication.ipynb").is_file()
    assert list((out / "replication_files").glob("*.png"))


def test_surpass_claim_needs_a_signal():
    """Neither regularization surpassing DS is 'not decidable', not 'reproduced'."""
    import pandas as pd

    from deepstock.reports.takeaways import surpass_counts

    def frame(k_none, k_base):
        rows = []
        for m in ("ddpg", "ppo"):
            for reg, k in (("none", k_none), ("base", k_base)):
                rows.append({"kind": "mean", "method": m, "reg": reg, "configs_to_surpass": k,
                             "n_trials": 4, "label": "> 4" if pd.isna(k) else str(int(k))})
        return pd.DataFrame(rows)

    assert surpass_counts(frame(float("nan"), float("nan"))).reproduced is None
    assert surpass_counts(frame(3, 1)).reproduced is True
    assert surpass_counts(frame(1, 3)).reproduced is False
    assert surpass_counts(frame(float("nan"), 2)).reproduced is True


# ----------------------------------------------------------------------------- strict takeaways
def _surpass_frame(ddpg: tuple[int, int], ppo: tuple[int, int], n_trials: int = 50):
    rows = []
    for m, counts in (("ddpg", ddpg), ("ppo", ppo)):
        for reg, k in zip(("none", "base"), counts, strict=True):
            rows.append({"kind": "mean", "method": m, "reg": reg, "configs_to_surpass": k,
                         "n_trials": n_trials, "label": str(k)})
    return pd.DataFrame(rows)


def test_a_tie_in_configurations_to_surpass_ds_is_not_reproduced():
    """The paper: 17 -> 11 (DDPG) and 32 -> 7 (PPO), so Base must need strictly fewer."""
    assert surpass_counts(_surpass_frame((17, 11), (32, 7))).reproduced is True
    assert surpass_counts(_surpass_frame((11, 11), (32, 7))).reproduced is False
    assert surpass_counts(_surpass_frame((17, 11), (7, 7))).reproduced is False
    assert "strictly fewer" in surpass_counts(_surpass_frame((1, 1), (1, 1))).evidence


def _with_repetitions(frame: pd.DataFrame, per_rep: dict) -> pd.DataFrame:
    """Add per-repetition rows: per_rep[(method, reg)] = counts (None = never surpasses)."""
    rows = [{"kind": "repetition", "method": m, "reg": r, "repetition": i, "n_trials": 50,
             "configs_to_surpass": float("nan") if k is None else k,
             "label": "> 50" if k is None else str(k)}
            for (m, r), counts in per_rep.items() for i, k in enumerate(counts)]
    return pd.concat([frame, pd.DataFrame(rows)], ignore_index=True)


def test_figure2_is_beyond_the_noise_only_when_every_base_repetition_needs_fewer_than_every_none():
    """Repetitions are the unit: 3 against 3, all of Base below all of None, is p = 1/20."""
    mean = _surpass_frame((17, 11), (32, 7))
    separated = {("ddpg", "none"): [15, 17, None], ("ddpg", "base"): [9, 11, 12],
                 ("ppo", "none"): [30, 32, 35], ("ppo", "base"): [5, 7, 9]}
    claim = surpass_counts(_with_repetitions(mean, separated))
    assert claim.reproduced is True and claim.beyond_noise is True
    assert "DDPG None [15, 17, 51], Base [9, 11, 12] (p = 0.050)" in claim.evidence
    overlap = {**separated, ("ddpg", "base"): [9, 11, 16]}  # one Base repetition above one None
    claim = surpass_counts(_with_repetitions(mean, overlap))
    assert claim.reproduced is True and claim.beyond_noise is False and "p = 0.100" in claim.evidence
    two_each = {k: v[:2] for k, v in separated.items()}  # the smallest p of 2 against 2 is 1/6
    claim = surpass_counts(_with_repetitions(mean, two_each))
    assert claim.reproduced is True and claim.beyond_noise is None
    assert "DDPG None [15, 17], Base [9, 11]" in claim.evidence
    tie = _surpass_frame((11, 11), (32, 7))  # not reproduced: never beyond the noise
    assert surpass_counts(_with_repetitions(tie, separated)).beyond_noise is False
    assert surpass_counts(mean).beyond_noise is None  # no per-repetition rows


def _s3(s: pd.DataFrame, method: str, reg: str, **values) -> None:
    at = (s["setting"] == "s3") & (s["method"] == method) & (s["reg"] == reg)
    for metric, v in values.items():
        s.loc[at, metric] = v


def test_setting3_checks_that_ds_base_beats_ddpg_base_on_val_and_loses_on_test():
    """The paper: in Setting 3 (Base) DS has better Validation Loss than DDPG but worse Testing."""
    s = _paper_summary()
    claim = setting3_ds(s)[0]
    assert claim.key == "s3_ds_overfits" and claim.reproduced is True
    assert claim.ours == "val DS-Base 2.2141 vs DDPG-Base 2.3236; test 2.5060 vs 2.4727"
    # DS-Base's val gap (5.1%) is still below its test gap (9.7%), but DDPG-Base validates better
    _s3(s, "ds", "base", val_loss=2.40, val_gap=100 * (2.40 - 2.2838) / 2.2838)
    assert setting3_ds(s)[0].reproduced is False
    _s3(s, "ds", "base", val_loss=2.3236)  # a tie on validation loss
    assert setting3_ds(s)[0].reproduced is False
    s = _paper_summary()
    _s3(s, "ds", "base", test_loss=2.4727)  # a tie on test loss
    assert setting3_ds(s)[0].reproduced is False
    assert setting3_ds(s[s["setting"] != "s3"])[0].reproduced is None


def test_setting3_ranking_needs_strict_winners():
    s = _paper_summary()
    assert setting3_ds(s)[1].reproduced is True
    _s3(s, "ddpg", "base", test_gap=9.54)  # DDPG-Base ties DS-None
    assert setting3_ds(s)[1].reproduced is False
    s = _paper_summary()
    _s3(s, "ddpg", "none", test_gap=9.54)  # DDPG-None ties DS-None without regularization
    assert setting3_ds(s)[1].reproduced is False


def test_few_samples_overfit_needs_n5_strictly_largest():
    s = _paper_summary()
    for t in IID_T:  # N = 10 copies N = 5: both have the largest (test gap - val gap), a tie
        src = s["setting"] == f"s4_n5_t{t}"
        dst = s.index[s["setting"] == f"s4_n10_t{t}"]
        s.loc[dst, ["val_gap", "test_gap"]] = s.loc[src, ["val_gap", "test_gap"]].to_numpy()
    claim = figure4_trends(s)[3]
    assert claim.key == "few_samples_overfit" and claim.reproduced is False


# ----------------------------------------------------------------------------- banner
def _banner_summary(reps_per_cell: dict[str, int], scale: str = "paper") -> pd.DataFrame:
    rows = [{"setting": setting, "method": "ds", "reg": "base", "repetition": r, "scale": scale,
             "num_samples": 50} for setting, n in reps_per_cell.items() for r in range(n)]
    return pd.DataFrame(rows)


def test_banner_counts_repetitions_per_cell_instead_of_assuming_three():
    full = scale_banner(_banner_summary({"s1": 3, "s4_n5_t7": 3}))
    assert "All 2 cells ran at the **paper** scale" in full
    assert "50 configurations per cell" in full and ", 3 repetitions per cell." in full
    assert "fewer than the paper's" not in full
    mixed = scale_banner(_banner_summary({"s1": 3, "s4_n5_t7": 1, "s4_n5_t19": 2}))
    assert "1–3 repetitions per cell" in mixed
    assert "2 of 3 cells have fewer than the paper's 3 repetitions" in mixed
    one = scale_banner(_banner_summary({"s4_n5_t7": 1}))
    assert "1 repetition per cell" in one and "1 of 1 cells have fewer" in one
    quick = scale_banner(_banner_summary({"s1": 1}, scale="quick"))
    assert "NOT its search" in quick and "1 repetition per cell" in quick
    tiny = scale_banner(_banner_summary({"s1": 2}, scale="tiny"))
    assert "NOT the paper's protocol" in tiny and "2 repetitions per cell" in tiny
    assert scale_banner(pd.DataFrame()).startswith("**No tuned cells found**")


def test_banner_of_a_collected_summary_counts_its_repetitions(tree):
    s = _summary(tree)  # s1 DS and DDPG-None have 2 repetitions, the other cells 1
    assert "1–2 repetitions per cell" in scale_banner(s)
    s["scale"] = "paper"
    banner = scale_banner(s)
    assert "All 7 cells ran at the **paper** scale" in banner and "3 repetitions)" not in banner
    assert "7 of 7 cells have fewer than the paper's 3 repetitions" in banner


# ----------------------------------------------------------------------------- docs/validation.md
def _md_rows(text: str, start: str, end: str) -> list[list[str]]:
    """Cells of the Markdown table rows between the first ``start`` and the next ``end``."""
    i = text.index(start)
    block = text[i:text.index(end, i)]
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in block.splitlines() if line.startswith("| ") and "---" not in line]


def _ours(text: str, start: str, end: str) -> dict[int, list[float]]:
    """{N: our values} of a validation.md table whose cells read 'ours / paper'."""
    return {int(r[0]): [float(c.split("/")[0]) for c in r[1:]]
            for r in _md_rows(text, start, end) if r[0].isdigit()}


def _validation_table9(text: str) -> pd.DataFrame:
    """validation.md's Setting 4 test and validation losses as summary rows, gaps against the
    spec's L*."""
    lstar = yaml.safe_load(REPORTED.read_text())["benchmark_fixtures"]["iid_critical_fractile"]
    test = _ours(text, "Test loss, ours", "Validation loss, ours")
    val = _ours(text, "Validation loss, ours", "Test gap %")
    rows = []
    for n, losses in test.items():
        for j, (t, ls) in enumerate(zip(IID_T, lstar["z_1.282"][n], strict=True)):
            rows.append({"setting": f"s4_n{n}_t{t}", "method": "ds", "reg": "base",
                         "repetition": 0, "test_loss": losses[j],
                         "test_gap": loss_gap(losses[j], ls), "val_gap": loss_gap(val[n][j], ls)})
    return pd.DataFrame(rows)


def _doc_verdict(cell: str) -> bool | None:
    if "NOT reproduced" in cell:
        return False
    if "not decidable" in cell:
        return None
    assert "reproduced" in cell, cell
    return True


def test_validation_md_states_the_reports_own_verdicts_on_its_setting4_run():
    """The Setting 4 verdicts in docs/validation.md are figure4_trends' on the numbers it lists."""
    text = VALIDATION.read_text()
    text = text[text.index("## Setting 4"):]
    summary = _validation_table9(text)
    assert len(summary) == 15
    gaps = {r[0]: [c.split("/")[0].strip() for c in r[1:]]
            for r in _md_rows(text, "Test gap %", "Takeaway (4)") if r[0].isdigit()}
    for n, written in gaps.items():
        got = summary[summary["setting"].str.startswith(f"s4_n{n}_")]["test_gap"]
        assert written == [f"{g:.2f}" for g in got], n
    doc = {r[0].strip("`"): r for r in _md_rows(text, "| key |", "\n\n") if r[0].startswith("`")}
    claims = {c.key: c for c in figure4_trends(summary)}
    assert set(doc) == set(claims)
    for key, c in claims.items():
        assert _doc_verdict(doc[key][5]) == c.reproduced, key
        if c.reproduced is not None:
            assert c.ours in doc[key][3], key
    assert f"> {LARGE_GAP:.0f}%" in doc["n5_gap_t131"][4]
    assert f"> {CONVERGED_GAP:.0f}%" in doc["no_convergence"][4]


# ----------------------------------------------------------------------------- reference runs
def test_an_exported_reference_run_holds_the_small_files_and_the_summarys_means(tree, tmp_path):
    from deepstock.reports.reference import load_reference

    (tree / "s1" / "ds" / "base" / "rep0" / "final").mkdir(parents=True, exist_ok=True)
    (tree / "s1" / "ds" / "base" / "rep0" / "final" / "curve.csv").write_text("epoch\n1\n")
    (tree / "s1" / "ds" / "base" / "rep0" / "final" / "model.pt").write_bytes(b"weights")
    (tree / "s1" / "ds" / "base" / "rep0" / "stage1.jsonl").write_text('{"fingerprint": {}}\n')
    out = tmp_path / "reference-runs" / "r1"
    assert main(["report", "export", "--results", str(tree), "--out", str(out),
                 "--reported", str(REPORTED)]) == 0
    assert (out / "s1" / "ds" / "base" / "rep0" / "final" / "curve.csv").is_file()
    assert not (out / "s1" / "ds" / "base" / "rep0" / "final" / "model.pt").exists()
    # the journal travels with the cell, so that deepstock verify can re-execute it
    assert (out / "s1" / "ds" / "base" / "rep0" / "stage1.jsonl").read_text() == \
        '{"fingerprint": {}}\n'

    assert (out / "s1" / "ddpg" / "none" / "rep1" / "winner.json").is_file()
    summary = _summary(tree)
    ref = load_reference(out.parent)
    got = ref[(ref["setting"] == "s1") & (ref["method"] == "ds") & (ref["reg"] == "base")
              & (ref["metric"] == "test_loss")]
    want = summary[(summary["setting"] == "s1") & (summary["method"] == "ds")
                   & (summary["reg"] == "base")]["test_loss"].mean()
    assert list(got["run"]) == ["r1"] and got["mean"].iloc[0] == pytest.approx(want)
    assert got["n_reps"].iloc[0] == 2
    assert load_reference(tmp_path / "nowhere").empty


# ----------------------------------------------------------------------------- testability
def _search_tree(root: Path, trials: int) -> Path:
    """Settings 1-3 x {DDPG, PPO, DS} x {None, Base}, repetition 0, each cell with ``trials``
    stage-1 trials (num_samples): Base's test loss below None's everywhere; in Setting 1 the RL
    curves reach DS's val loss 1.0 at trial 2 with Base and at the last trial with None."""
    for setting in ("s1", "s2", "s3"):
        kind = "dp_empirical" if setting == "s1" else "ar1_dp"
        _json(root / "benchmarks" / f"{setting}.json",
              {"setting": setting, "method": kind, "test_loss": 0.8})
        for method in ("ddpg", "ppo", "ds"):
            for reg, test in (("none", 1.3), ("base", 1.2)):
                val = 1.0 if method == "ds" else 0.9
                curve = list(np.linspace(2.0, val, trials)) if reg == "none" else (
                    [2.0] + [val] * (trials - 1))
                _cell(root, setting, method, reg, 0, val, test, stage1_vals=curve[-trials:])
    return root


def _figure2_spies(monkeypatch) -> dict[str, list]:
    """Record the calls of figure2 and figure2_not_testable; skip Figures 1, 3, 4 (speed)."""
    from deepstock.reports import figures

    calls: dict[str, list] = {"figure2": [], "figure2_not_testable": []}
    for name in calls:
        real = getattr(figures, name)

        def spy(*args, _real=real, _name=name, **kw):
            calls[_name].append(args)
            return _real(*args, **kw)

        monkeypatch.setattr(figures, name, spy)
    for name in ("figure1", "figure3", "figure4"):
        monkeypatch.setattr(figures, name, lambda *a, **k: [])
    return calls


def test_a_quick_like_run_cannot_test_the_tuning_claims_and_draws_no_figure2(tmp_path,
                                                                            monkeypatch):
    """One stage-1 trial and one repetition per cell, as at the quick scale: the claims about
    tuned cells say 'not testable at this scale' (no verdict, whatever the numbers say), Figure 2
    draws no curves, and a reference run that can decide them lends its verdict."""
    from deepstock.reports.figures import surpass_table, write_figures
    from deepstock.reports.takeaways import NOT_TESTABLE, claims_frame, with_reference

    tree = _search_tree(tmp_path / "results", trials=1)
    s = _summary(tree)
    assert set(s["num_samples"]) == {1} and set(s["repetition"]) == {0}
    reported = load_reported(REPORTED)
    surpass = surpass_table(tree, s, reported)
    claims = [base_improves_test(s), surpass_counts(surpass), *setting3_ds(s)]
    for c in claims:
        assert c.reproduced is None and c.beyond_noise is None, c.key
        assert c.not_testable == "1 stage-1 configuration per cell: the claim needs a search of >= 2"
    frame = claims_frame(claims)
    assert frame["verdict"].str.startswith(f"{NOT_TESTABLE} (1 stage-1 configuration").all()
    assert not frame["verdict"].str.contains("NOT reproduced").any()
    assert (frame["beyond noise"] == NOT_TESTABLE).all()
    paper_like = _summary(_search_tree(tmp_path / "paper", trials=3))
    theirs = {"paper-like": [base_improves_test(paper_like), *setting3_ds(paper_like)]}
    lent = with_reference(claims, theirs)
    assert lent[0].reference.startswith("paper-like: reproduced (9 of 9")
    assert lent[1].reference == ""  # no reference claim for Figure 2 given here
    calls = _figure2_spies(monkeypatch)
    paths = write_figures(tree, s, reported, tmp_path / "figures", tmp_path / "tables")
    assert calls["figure2"] == [] and len(calls["figure2_not_testable"]) == 1
    assert tmp_path / "figures" / "figure2.png" in paths  # the workflow's output still exists


def test_a_paper_like_run_gets_real_verdicts_and_figure2(tmp_path, monkeypatch):
    from deepstock.reports.figures import surpass_table, write_figures
    from deepstock.reports.takeaways import claims_frame

    tree = _search_tree(tmp_path / "results", trials=3)
    s = _summary(tree)
    surpass = surpass_table(tree, s, load_reported(REPORTED))
    claims = [base_improves_test(s), surpass_counts(surpass), *setting3_ds(s)]
    assert [c.not_testable for c in claims] == ["", "", "", ""]
    assert [c.reproduced for c in claims] == [True, True, False, False]
    assert claims[1].ours == "DDPG: None 3, Base 2; PPO: None 3, Base 2"
    assert claims_frame(claims)["verdict"].tolist() == [
        "reproduced", "reproduced", "NOT reproduced", "NOT reproduced"]
    calls = _figure2_spies(monkeypatch)
    write_figures(tree, s, load_reported(REPORTED), tmp_path / "figures", tmp_path / "tables")
    assert len(calls["figure2"]) == 1 and calls["figure2_not_testable"] == []


def test_the_table9_claims_stay_testable_without_a_search():
    """Table 9's trends compare one method over data sizes, not tuned methods: a single
    default configuration still tests them."""
    s = _paper_summary()
    s["num_samples"] = 1
    trends = figure4_trends(s)
    assert [c.reproduced for c in trends] == [True, True, True, True]
    assert all(c.not_testable == "" for c in trends)
    assert base_improves_test(s).not_testable != ""  # while the tuning claims are not


@pytest.mark.slow
def test_notebook_of_a_quick_like_run_shows_the_reference_verdicts_instead(tmp_path):
    tree = _search_tree(tmp_path / "results", trials=1)
    _summary(tree)
    assert main(["report", "tables", "--summary", str(tree / "summary.csv"),
                 "--reported", str(REPORTED), "--out", str(tree / "tables")]) == 0
    figs = tmp_path / "figures"
    assert main(["report", "figures", "--results", str(tree), "--reported", str(REPORTED),
                 "--out", str(figs)]) == 0
    out = tmp_path / "report"
    assert main(["report", "notebook", "--source", str(REPO / "paper" / "replication.py"),
                 "--out", str(out), "--results", str(tree), "--figures", str(figs),
                 "--logs", str(tmp_path / "logs"), "--reported", str(REPORTED)]) == 0
    md = (out / "replication.md").read_text()
    assert "**Figure 2 is not testable at this scale**: 1 stage-1 configuration per cell" in md
    assert "Instead, the committed reference run `paper-protocol`" in md
    rows = {r[0]: r for r in _md_rows(md, "| key ", "\n\n")}
    for key in ("base_improves_test", "surpass_ds", "s3_ds_overfits", "s3_ranking"):
        verdict, reference = rows[key][4], rows[key][7]
        assert verdict.startswith("not testable at this scale"), key
        assert reference.startswith("paper-protocol: NOT reproduced"), key
    assert "(4 not testable at this scale: their reference-run verdicts are shown above" in md


def _reference_summary(root: Path, rows: list[dict], name: str = "r1") -> Path:
    """A reference run's summary.csv with the columns load_reference reads."""
    base = {"setting": "s1", "method": "ds", "reg": "base", "scale": "paper",
            "backend": "torch", "benchmark": 0.8}
    path = root / name / "summary.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([{**base, **r} for r in rows]).to_csv(path, index=False)
    return path


def _reps(*tests: float) -> list[dict]:
    return [{"repetition": k, "val_loss": 1.0, "val_gap": 25.0, "test_loss": t,
             "test_gap": 100 * (t - 0.8) / 0.8} for k, t in enumerate(tests)]


@pytest.mark.parametrize("bad", [math.nan, math.inf, "n/a"])
def test_a_reference_summary_with_a_non_finite_loss_is_refused_with_the_file_and_line(
        tmp_path, bad):
    from deepstock.errors import DataError
    from deepstock.reports.reference import load_reference

    rows = _reps(1.0, 1.1, 1.2)
    rows[2]["test_loss"] = bad  # data row 3: line 4 of the file
    path = _reference_summary(tmp_path, rows)
    with pytest.raises(DataError) as err:
        load_reference(tmp_path)
    message = str(err.value)
    assert message.startswith(f"{path}:4: test_loss of s1/ds/base repetition 2 is ")
    assert "not a finite number" in message and "\n" not in message


def test_a_reference_summary_with_a_duplicated_row_is_refused_with_the_file_and_line(tmp_path):
    from deepstock.errors import DataError
    from deepstock.reports.reference import load_reference

    rows = _reps(1.0, 1.1)
    path = _reference_summary(tmp_path, [*rows, rows[0]])  # repetition 0 again, line 4
    with pytest.raises(DataError) as err:
        load_reference(tmp_path)
    assert str(err.value).startswith(
        f"{path}:4: duplicate row of s1/ds/base repetition 0 (first at line 2)")


def test_a_reference_runs_repetition_counts_are_those_of_the_rows_each_mean_is_over(tmp_path):
    """Three repetitions, the last without a benchmark (no L*, empty gaps): the losses are means
    over 3 rows, the gaps over the 2 that have one, and each says so."""
    from deepstock.reports.reference import load_reference

    rows = _reps(1.0, 1.1, 1.5)
    rows[2].update(benchmark=math.nan, val_gap=math.nan, test_gap=math.nan)
    _reference_summary(tmp_path, rows)
    ref = load_reference(tmp_path).set_index("metric")
    assert ref.loc["test_loss", "n_reps"] == 3
    assert ref.loc["test_loss", "mean"] == pytest.approx(1.2)
    assert ref.loc["test_gap", "n_reps"] == 2
    assert ref.loc["test_gap", "mean"] == pytest.approx(100 * (1.05 - 0.8) / 0.8)


def test_the_committed_reference_runs_pass_the_reference_checks():
    from deepstock.reports.reference import load_reference

    ref = load_reference(REPO / "paper" / "reference-runs")
    assert len(ref) and ref["n_reps"].min() >= 1


def test_a_failing_report_notebook_is_one_plain_line_without_terminal_colour_codes(
        tmp_path, capsys):
    source = tmp_path / "report.py"
    source.write_text('# %%\nx = 1\n\n# %%\nraise ValueError("boom in the report")\n')
    out = tmp_path / "out"
    assert main(["report", "notebook", "--source", str(source), "--out", str(out),
                 "--results", str(tmp_path), "--figures", str(tmp_path),
                 "--reported", str(REPORTED), "--timeout", "60"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("deepstock report: error: report notebook failed "
                          "(ValueError: boom in the report)")
    assert "\x1b" not in err and len(err.splitlines()) == 1
    assert (out / "replication.failed.ipynb").is_file()


def test_strip_ansi_removes_colour_cursor_and_title_sequences():
    from deepstock.reports.notebook import strip_ansi

    coloured = "\x1b[0;31mValueError\x1b[0m: \x1b[1mboom\x1b[22m\x1b]0;title\x07 \x1b[2K"
    assert strip_ansi(coloured) == "ValueError: boom "
