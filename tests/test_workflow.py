"""The Snakemake DAG: lint, config validation, profiles, and the tiny DAG end to end."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
COPY = ("Snakefile", "workflow", "config", "paper", "profiles")


def _workdir(tmp: Path) -> Path:
    for name in COPY:
        src = ROOT / name
        if src.is_symlink():
            os.symlink(os.readlink(src), tmp / name)
        elif src.is_dir():
            shutil.copytree(src, tmp / name)
        else:
            shutil.copy(src, tmp / name)
    return tmp


def _smk(cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    return subprocess.run(
        ["snakemake", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """Run the whole tiny DAG once; several tests read its outputs."""
    wd = _workdir(tmp_path_factory.mktemp("dag"))
    res = _smk(wd, "--configfile", "config/tiny.yaml")  # cores from the default profile
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-5000:]
    return wd


def test_lint_is_clean(tmp_path):
    wd = _workdir(tmp_path)
    res = _smk(wd, "--lint")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Lints for" not in res.stdout + res.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--config", "scael=tiny"), "scael"),
        (("--config", "settings=[s9]"), "s9"),
        (("--config", "scale=huge"), "huge"),
        (("--config", "backends={ds: jax}"), "jax"),  # a backend DS does not have
    ],
)
def test_bad_config_fails_before_any_job(tmp_path, args, needle):
    wd = _workdir(tmp_path)
    res = _smk(wd, "-n", *args)
    assert res.returncode != 0
    assert needle in res.stdout + res.stderr
    assert not (wd / "results").exists()


def test_subset_and_path_targets_dry_run(tmp_path):
    wd = _workdir(tmp_path)
    res = _smk(wd, "-n", "--config", "settings=[s2]", "methods=[ds]", "regs=[base]")
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    assert "results/s2/ds/base/rep0/winner.json" in out and "results/s1/" not in out
    res = _smk(wd, "-n", "--config", "settings=[s1]", "repetitions=[1]")
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    assert "results/s1/ds/base/rep1/winner.json" in out and "rep0" not in out
    res = _smk(wd, "-n", "results/s1/ppo/base/rep0/winner.json")
    assert res.returncode == 0, res.stderr
    assert "rule tune" in res.stdout + res.stderr


def _tune_commands(output: str) -> dict[str, set[str]]:
    """method -> the `--backend B --device D` pairs of the dry run's `deepstock tune` commands."""
    out: dict[str, set[str]] = {}
    for line in output.splitlines():
        words = line.split()
        if "tune" in words and "--method" in words and "--backend" in words:
            b, d = words.index("--backend"), words.index("--device")
            out.setdefault(words[words.index("--method") + 1], set()).add(
                f"{words[b + 1]} {words[d + 1]}")
    return out


def test_profiles_dry_run(tmp_path):
    wd = _workdir(tmp_path)
    for profile in ("paper", "gpu", "slurm"):
        res = _smk(wd, "-n", "--workflow-profile", f"workflow/profiles/{profile}")
        assert res.returncode == 0, (profile, res.stdout[-2000:], res.stderr[-2000:])
    res = _smk(wd, "-n", "-p", "--workflow-profile", "workflow/profiles/paper")
    # paper scale: 3 repetitions of every cell
    assert "results/s1/ds/base/rep2/winner.json" in res.stdout + res.stderr
    assert _tune_commands(res.stdout + res.stderr) == {
        "ddpg": {"jax auto"}, "ppo": {"jax auto"}, "ds": {"torch auto"}}


def test_the_default_run_trains_ddpg_and_ppo_on_jax_at_the_quick_scale(tmp_path):
    wd = _workdir(tmp_path)
    res = _smk(wd, "-n", "-p", "--config", "settings=[s1]")
    assert res.returncode == 0, res.stderr[-2000:]
    text = res.stdout + res.stderr
    assert _tune_commands(text) == {"ddpg": {"jax auto"}, "ppo": {"jax auto"},
                                    "ds": {"torch auto"}}
    assert "--scale quick" in text


def test_the_gpu_profile_trains_ddpg_and_ppo_on_jax_and_every_tuning_job_asks_for_the_gpu(
        tmp_path):
    wd = _workdir(tmp_path)
    res = _smk(wd, "-n", "-p", "--workflow-profile", "workflow/profiles/gpu",
               "--config", "settings=[s1]")
    assert res.returncode == 0, res.stderr[-2000:]
    text = res.stdout + res.stderr
    assert _tune_commands(text) == {
        "ddpg": {"jax cuda"}, "ppo": {"jax cuda"}, "ds": {"torch cuda"}}
    jobs = text.split("rule tune:")[1:]
    assert len(jobs) == 6 and all("gpu=1" in job.split("Shell command")[0] for job in jobs)


def test_tiny_dag_outputs(tiny_run):
    wd = tiny_run
    for t in ("table6", "table7", "table8", "table9"):
        for ext in ("csv", "md", "tex"):
            assert (wd / "results" / "tables" / f"{t}.{ext}").stat().st_size > 0
    for f in ("figure1", "figure2", "figure3", "figure4"):
        for ext in ("png", "pdf"):
            assert (wd / "figures" / f"{f}.{ext}").stat().st_size > 1000
    for ext in ("html", "md"):
        assert (wd / "results" / "report" / f"replication.{ext}").stat().st_size > 1000
    summary = pd.read_csv(wd / "results" / "summary.csv")
    assert len(summary) == 18 + 2  # s1-s3: 3 methods x 2 regs; s4: DS-Base, 2 corner cells
    assert set(zip(summary["method"], summary["backend"], strict=True)) == {
        ("ddpg", "sb3"), ("ppo", "sb3"), ("ds", "torch")}  # tiny.yaml's `backends`
    report = (wd / "results" / "report" / "replication.md").read_text()
    assert "Training backends: DDPG sb3; PPO sb3; DS torch." in report
    for log in (wd / "logs" / "timing" / "tune").glob("*.tsv"):
        assert log.stat().st_size > 0


def test_tables_equal_summary(tiny_run):
    """Every number of Tables 6-8 is the repetition mean of the summary's rows."""
    wd = tiny_run
    summary = pd.read_csv(wd / "results" / "summary.csv")
    labels = {"ddpg": "DDPG", "ppo": "PPO", "ds": "DS"}
    rows = {"val_loss": "Validation Loss", "test_loss": "Testing Loss",
            "val_gap": "Validation Loss Gap (%)", "test_gap": "Testing Loss Gap (%)"}
    checked = 0
    for table, setting in (("table6", "s1"), ("table7", "s2"), ("table8", "s3")):
        tab = pd.read_csv(wd / "results" / "tables" / f"{table}.csv").set_index("row")
        means = summary[summary["setting"] == setting].groupby(["method", "reg"]).mean(
            numeric_only=True)
        for (method, reg), row in means.iterrows():
            col = f"{labels[method]}-{reg.capitalize()}"
            for key, label in rows.items():
                assert tab.loc[label, col] == pytest.approx(row[key], rel=1e-9), (table, col, key)
                checked += 1
    assert checked == 3 * 6 * 4


def test_snakemake_report_is_self_contained_html(tiny_run):
    res = _smk(tiny_run, "--configfile", "config/tiny.yaml", "--report", "report.html")
    assert res.returncode == 0, res.stderr[-3000:]
    html = (tiny_run / "report.html").read_text(errors="replace")
    assert len(html) > 100_000 and "figure1" in html and "table6" in html


def test_rerun_with_nothing_changed_does_nothing(tiny_run):
    res = _smk(tiny_run, "--configfile", "config/tiny.yaml", "-n")
    assert res.returncode == 0
    assert "Nothing to be done" in res.stdout + res.stderr


def _interrupt_after_two_cells(wd: Path, args: list[str], env: dict) -> dict[Path, int] | None:
    """Start the DAG, press Ctrl-C once Snakemake reports two tuning cells finished; the finished
    cells' winner.json and their mtimes, or None when every cell finished before the signal.

    Snakemake logs "Finished jobid: N (Rule: tune)" after it has recorded the job (its outputs
    and metadata), so the winners present at that line belong to finished jobs — the next cell
    (one core) has only just started — whatever the speed of the machine."""
    # SIGINT's default action in Snakemake, whatever the test runner's worker ignores (an
    # ignored signal stays ignored across exec, and Python then never raises KeyboardInterrupt)
    proc = subprocess.Popen(args, cwd=wd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.default_int_handler))
    winners = lambda: sorted(wd.glob("results/s1/*/*/rep0/winner.json"))  # noqa: E731
    finished, done = 0, {}
    for line in proc.stderr:  # ends when Snakemake exits
        finished += "(Rule: tune)" in line and line.startswith("Finished jobid")
        if finished == 2 and not done:
            done = {p: p.stat().st_mtime_ns for p in winners()}
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        elif done and line.startswith(("localrule", "rule ")):
            # a busy Snakemake can miss the signal and start the next job: Ctrl-C again
            os.killpg(proc.pid, signal.SIGINT)
    proc.wait(timeout=120)
    assert len(done) == 2, "two cells must finish before the interrupt"
    return done if len(winners()) < 6 else None


@pytest.mark.slow
def test_interrupted_dag_resumes_without_redoing_finished_work(tmp_path):
    """Ctrl-C mid-DAG, then `snakemake` again: finished cells are kept as they are, the cell that
    was cut keeps its journal (Snakemake removes declared outputs only) and resumes from it.

    Should the signal land after the last cell (it lands the moment Snakemake reports the second
    cell finished), the scenario runs once more in a fresh directory and must land mid-DAG there."""
    args = ["snakemake", "--configfile", "config/tiny.yaml", "--config", "settings=[s1]",
            "--until", "tune", "--cores", "1"]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    for attempt in ("first", "second"):
        (tmp_path / attempt).mkdir()
        wd = _workdir(tmp_path / attempt)
        done = _interrupt_after_two_cells(wd, args, env)
        if done is not None:
            break
    assert done is not None, "the interrupt landed after the last cell twice"
    winners = lambda: sorted(wd.glob("results/s1/*/*/rep0/winner.json"))  # noqa: E731
    journals = {j: j.read_text() for j in wd.glob("results/s1/*/*/rep0/stage*.jsonl")}
    res = subprocess.run(args, cwd=wd, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(winners()) == 6
    assert {p: p.stat().st_mtime_ns for p in done} == done  # finished cells not redone
    for journal, before in journals.items():  # no finished trial is trained again
        after = journal.read_text()
        assert after.startswith(before)
        if (journal.parent / "winner.json") in done:
            assert after == before


def test_a_cell_rerun_by_snakemake_after_its_dataset_changed_starts_afresh(tiny_run):
    """The rule passes --restart-if-changed: new data means new journals, not the old trials.

    Runs last in this file: it changes the tiny run's Setting 1 data and one of its cells."""
    import json

    from deepstock.journal import file_sha256

    wd, target = tiny_run, "results/s1/ds/base/rep0/winner.json"
    old = json.loads((wd / target).read_text())
    (wd / "config" / "seed7.yaml").write_text("data:\n  rng_mode: fresh\n  data_seed: 7\n")
    res = _smk(wd, "--configfile", "config/tiny.yaml", "config/seed7.yaml", "--cores", "1", target)
    assert res.returncode == 0, res.stderr[-3000:]
    new = json.loads((wd / target).read_text())
    sha = file_sha256(wd / "results" / "data" / "s1.npz")
    assert old["fingerprint"]["dataset_sha256"] != sha == new["fingerprint"]["dataset_sha256"]
    assert new["val_loss"] != old["val_loss"]
    header = json.loads((wd / target).with_name("stage1.jsonl").read_text().splitlines()[0])
    assert header["fingerprint"]["dataset_sha256"] == sha


# ----------------------------------------------------------------------------- packaged YAML
CONF_EDITS = {  # file -> (a value change that concerns a DS cell of Setting 4, a comment edit)
    "scales.yaml": ("ds: {epochs: 4, patience_epochs: 2}", "ds: {epochs: 3, patience_epochs: 2}"),
    "hparams.yaml": ("    scheduler_factor: 0.5\n", "    scheduler_factor: 0.6\n"),
    "search_spaces.yaml": ("learning_rate: {loguniform: [4.0e-4, 1.0e-1]}",
                           "learning_rate: {loguniform: [5.0e-4, 1.0e-1]}"),
}


def test_editing_the_packaged_yaml_reruns_the_tuning_cells_and_a_comment_does_not(
        tmp_path, monkeypatch):
    """The workflow runs the installed package (here a copy of it, first on PYTHONPATH, so that
    the test edits no file of the checkout): a changed default, search space or budget in its
    conf/*.yaml reruns the cells (params: deepstock.hparams.conf_digest) instead of leaving a
    stale cell that `deepstock tune` by hand would refuse."""
    pkg = tmp_path / "pkg"
    shutil.copytree(ROOT / "src" / "deepstock", pkg / "deepstock",
                    ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(pkg), *filter(None, [os.environ.get("PYTHONPATH")])]))
    (tmp_path / "wd").mkdir()
    wd = _workdir(tmp_path / "wd")
    target = "results/s4_n5_t7/ds/base/rep0/winner.json"
    args = ("--configfile", "config/tiny.yaml", "--cores", "1", target)
    res = _smk(wd, *args)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    dry = lambda: _smk(wd, "-n", *args)  # noqa: E731
    assert "Nothing to be done" in dry().stdout + dry().stderr
    conf = pkg / "deepstock" / "conf"
    for name, (old, new) in CONF_EDITS.items():
        original = (conf / name).read_text()
        assert original.count(old) == 1, name
        (conf / name).write_text(original + "# a comment changes no value\n")
        res = dry()
        assert res.returncode == 0 and "Nothing to be done" in res.stdout + res.stderr, name
        (conf / name).write_text(original.replace(old, new))
        res = dry()
        text = res.stdout + res.stderr
        assert res.returncode == 0 and "rule tune:" in text and target in text, (name, text)
        assert "Nothing to be done" not in text, name
        (conf / name).write_text(original)
    assert "Nothing to be done" in dry().stdout + dry().stderr


# ----------------------------------------------------------------------------- README --config
def _readme_config_examples() -> list[list[str]]:
    """The `--config` entries of every `snakemake ... --config ...` command in the README."""
    import re
    import shlex

    examples = []
    readme = (ROOT / "README.md").read_text()
    for cmd in re.findall(r"snakemake[^`\n#]*?--config\s[^`\n#]*", readme):
        words = shlex.split(cmd)
        entries = []
        for word in words[words.index("--config") + 1:]:
            if word.startswith("-"):
                break
            entries.append(word)
        examples.append(entries)
    return examples


def test_every_config_example_of_the_readme_passes_the_workflow_checks_as_snakemake_parses_it():
    """Snakemake reads a `--config` value as YAML with every scalar as text (numbers inside a
    mapping arrive as strings) and merges it into config.yaml: each README example must pass the
    schema and the registry's check that way (the Ray-cluster `tuning` example included)."""
    import copy

    import yaml
    from snakemake.cli import parse_config
    from snakemake.utils import update_config, validate

    from deepstock import workflow_axes

    examples = _readme_config_examples()
    assert any(e and e[0].startswith("tuning=") for e in examples), examples
    base = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for entries in examples:
        config = copy.deepcopy(base)
        update_config(config, parse_config(entries))
        validate(config, str(ROOT / "workflow" / "schemas" / "config.schema.yaml"))
        workflow_axes.check_workflow_axes(config)
    tuning = next(e for e in examples if e and e[0].startswith("tuning="))
    config = copy.deepcopy(base)
    update_config(config, parse_config(tuning))
    assert config["tuning"]["address"] == "auto" and config["tuning"]["threads"] == 1
