"""A tuning cell is resumed only from its own inputs: fingerprints, journals, lock, retries.

One test per fault seen by a hostile user (issue "Trustworthy resume and inputs", items 1-5, 9
and 10 for the tuner): stale journals, stage-2 rows credited to another configuration, a torn
journal line, two runs on one folder, failed trials never retried, and tracebacks on a malformed
journal, a deleted run folder, bad ``--num-samples`` or an unwritable ``--out``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from deepstock.cli import main
from deepstock.hparams import decode_config
from deepstock.journal import CellLock, file_sha256
from deepstock.problem.generators import generate_dataset
from deepstock.problem.settings import DataOptions

TINY = ["--method", "ds", "--reg", "base", "--scale", "tiny", "--executor", "local", "--quiet"]


# `data` and `finished` (a finished tiny Setting 1 DS-Base cell: 2 configurations, top 1 x 2
# seeds) are fixtures of tests/conftest.py


def _copy(cell: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "rep0"
    shutil.copytree(cell, dst)
    return dst


def _tune(data: Path, out: Path, *extra: str) -> int:
    return main(["tune", "s1", *TINY, "--data", str(data), "--out", str(out), *extra])


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def _rows(journal: Path) -> list[dict]:
    return [json.loads(line) for line in journal.read_text().splitlines()[1:]]


# ----------------------------------------------------------------------------- 1. stale journals
def test_every_journal_run_folder_and_winner_carries_the_cell_fingerprint(finished, data):
    winner = json.loads((finished / "winner.json").read_text())
    fp = winner["fingerprint"]
    assert fp["dataset_sha256"] == file_sha256(data)
    assert (fp["setting"], fp["method"], fp["reg"], fp["repetition"]) == ("s1", "ds", "base", 0)
    assert fp["scale"]["name"] == "tiny" and fp["scale"]["num_samples"] == 2
    assert fp["hparams"]["epochs"] == 4 and "learning_rate" in fp["search_space"]
    for name in ("stage1.jsonl", "stage2.jsonl"):
        header = json.loads((finished / name).read_text().splitlines()[0])
        assert header == {"fingerprint": fp}
    runs = list((finished / "stage2").glob("*/metrics.json")) + [finished / "final/metrics.json"]
    assert len(runs) == 3
    for path in runs:
        cell = json.loads(path.read_text())["extras"]["cell"]
        assert cell["fingerprint"] == winner["fingerprint_digest"]


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ("data", "dataset_sha256"),
        ("hparams", "hparams.grad_clip 5.0 -> 4.0"),
        ("space", "search_space"),
        ("scale", "scale.name"),
        ("num_samples", "scale.num_samples 2 -> 3"),
        ("repetition", "repetition 0 -> 1"),
    ],
)
def test_a_rerun_with_changed_inputs_is_refused_naming_what_changed(
    finished, data, tmp_path, capsys, change, needle
):
    out = _copy(finished, tmp_path)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    extra: list[str] = []
    if change == "data":
        new = tmp_path / "s1.npz"
        generate_dataset("s1", DataOptions(rng_mode="fresh", data_seed=7)).save(new)
        data = new
    elif change == "hparams":
        (tmp_path / "h.yaml").write_text("grad_clip: 4.0\n")
        extra = ["--hparams", str(tmp_path / "h.yaml")]
    elif change == "space":
        (tmp_path / "s.yaml").write_text(
            "ds:\n  '*':\n    learning_rate: {loguniform: [0.001, 0.01]}\n")
        extra = ["--space", str(tmp_path / "s.yaml")]
    elif change == "scale":
        extra = ["--scale", "quick"]  # last --scale wins
    elif change == "num_samples":
        extra = ["--num-samples", "3"]
    else:
        extra = ["--repetition", "1"]
    assert _tune(data, out, *extra) == 2
    err = _one_line(capsys)
    assert needle in err and "--restart" in err
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == before  # nothing touched


def test_restart_on_new_data_gives_the_clean_run_on_that_data(finished, tmp_path):
    new = tmp_path / "s1.npz"
    generate_dataset("s1", DataOptions(rng_mode="fresh", data_seed=7)).save(new)
    out = _copy(finished, tmp_path)
    assert _tune(new, out, "--restart-if-changed") == 0
    assert _tune(new, tmp_path / "clean") == 0
    got = json.loads((out / "winner.json").read_text())
    clean = json.loads((tmp_path / "clean" / "winner.json").read_text())
    assert got["val_loss"] == clean["val_loss"] and got["test_loss"] == clean["test_loss"]
    assert got["fingerprint"] == clean["fingerprint"]
    assert len(_rows(out / "stage1.jsonl")) == 2 and len(_rows(out / "stage2.jsonl")) == 2
    old = json.loads((finished / "winner.json").read_text())
    assert got["val_loss"] != old["val_loss"]


def test_restart_if_changed_resumes_a_cell_whose_inputs_did_not_change(finished, data, tmp_path):
    out = _copy(finished, tmp_path)
    journals = {n: (out / n).read_text() for n in ("stage1.jsonl", "stage2.jsonl")}
    assert _tune(data, out, "--restart-if-changed") == 0
    assert {n: (out / n).read_text() for n in journals} == journals  # nothing re-trained


def test_a_journal_without_fingerprint_header_is_refused(finished, data, tmp_path, capsys):
    out = _copy(finished, tmp_path)
    journal = out / "stage1.jsonl"
    journal.write_text("\n".join(journal.read_text().splitlines()[1:]) + "\n")
    assert _tune(data, out) == 2
    assert "no fingerprint header" in _one_line(capsys)


# ----------------------------------------------------------------------------- 2. stage-2 keys
def test_stage2_runs_are_credited_only_to_the_configuration_that_produced_them(
    data, tmp_path, failing_trials, monkeypatch
):
    """Trial 1 fails, so stage 2 trains trial 2's configuration. A retry makes trial 1 the
    best: stage 2 must train trial 1's configuration, not relabel trial 2's runs."""
    out = tmp_path / "rep0"
    failing_trials("first")
    assert _tune(data, out) == 0
    first = json.loads((out / "winner.json").read_text())
    assert first["stage1_trial"] == 2
    monkeypatch.undo()
    trial1 = decode_config(_rows(out / "stage1.jsonl")[0]["config"])
    from deepstock.training.backends import TrainJob

    real = TrainJob.train

    def train(job, dataset, seed, **kw):  # trial 1's configuration is made the best
        result = real(job, dataset, seed, **kw)
        if job.hparams["learning_rate"] == trial1["learning_rate"]:
            result = dataclasses.replace(result, best_val=result.best_val / 100,
                                         val_loss=result.val_loss / 100)
        return result

    monkeypatch.setattr(TrainJob, "train", train)
    assert _tune(data, out, "--retry-failed") == 0
    winner = json.loads((out / "winner.json").read_text())
    assert winner["stage1_trial"] == 1 and winner["searched"] == trial1
    final = json.loads((out / "final" / "metrics.json").read_text())
    assert final["extras"]["cell"]["config"] == trial1
    assert final["val_loss"] == winner["val_loss"] and final["seed"] == winner["reported_seed"]
    table = pd.read_csv(out / "stage2.csv")
    assert {json.dumps(json.loads(c), sort_keys=True) for c in table["config"]} == {
        json.dumps(trial1, sort_keys=True)}
    for row in table.itertuples():
        run = json.loads((out / "stage2" / f"{row.config_key}_s{row.seed}" / "metrics.json")
                         .read_text())
        assert run["extras"]["cell"]["config"] == trial1 and run["best_val"] == row.val_loss
    assert len(_rows(out / "stage2.jsonl")) == 4  # 2 runs of each configuration, none relabelled


# ----------------------------------------------------------------------------- 3. torn line
def test_a_torn_last_journal_line_is_cut_and_never_swallows_the_next_row(data, tmp_path):
    out = tmp_path / "rep0"
    assert _tune(data, out, "--num-samples", "3") == 0
    lines = (out / "stage1.jsonl").read_text().splitlines(keepends=True)
    torn = lines[2][: len(lines[2]) // 2]  # trial 2 cut mid-write by a crash
    (out / "stage1.jsonl").write_text("".join(lines[:2]) + torn)
    (out / "winner.json").unlink()
    assert _tune(data, out, "--num-samples", "3") == 0
    rows = _rows(out / "stage1.jsonl")
    assert [r["trial"] for r in rows] == [1, 2, 3]
    assert pd.read_csv(out / "stage1.csv")["status"].tolist() == ["ok", "ok", "ok"]
    assert rows[0] == json.loads(lines[1])  # the finished trial is kept, not re-run


# ----------------------------------------------------------------------------- 4. lock
def test_a_second_run_on_a_locked_cell_exits_with_a_clear_message(data, tmp_path, capsys):
    out = tmp_path / "rep0"
    out.mkdir()
    with CellLock(out):
        assert _tune(data, out) == 2
        err = _one_line(capsys)
    assert "being tuned by another process" in err
    assert not (out / "stage1.jsonl").exists()
    assert _tune(data, out) == 0  # the lock is gone with its holder


# ----------------------------------------------------------------------------- 5. retries
def test_failed_trials_are_kept_by_default_and_retried_with_retry_failed(
    data, tmp_path, capsys, failing_trials, monkeypatch
):
    out = tmp_path / "rep0"
    failing_trials("all")  # e.g. out of memory
    assert _tune(data, out) == 2
    monkeypatch.undo()  # the cause is fixed
    capsys.readouterr()
    assert _tune(data, out) == 2  # the default keeps a failure as the trial's result
    assert "--retry-failed" in _one_line(capsys)
    assert _tune(data, out, "--retry-failed") == 0
    table = pd.read_csv(out / "stage1.csv")
    assert table["status"].tolist() == ["ok", "ok"] and table["trial"].tolist() == [1, 2]
    assert json.loads((out / "winner.json").read_text())["stage1_failed"] == 0


# ----------------------------------------------------------------------------- 9. one-line errors
def test_a_malformed_journal_line_is_a_one_line_error_naming_the_line(
    finished, data, tmp_path, capsys
):
    for bad in ("[1, 2]\n", "{}\n", "not json\n"):
        out = _copy(finished, tmp_path / str(len(bad)))
        lines = (out / "stage1.jsonl").read_text().splitlines(keepends=True)
        (out / "stage1.jsonl").write_text(lines[0] + bad + "".join(lines[1:]))
        assert _tune(data, out) == 2
        assert "stage1.jsonl line 2" in _one_line(capsys)


def test_a_deleted_stage2_folder_is_retrained_not_a_traceback(finished, data, tmp_path):
    out = _copy(finished, tmp_path)
    shutil.rmtree(out / "stage2")
    shutil.rmtree(out / "final")
    assert _tune(data, out) == 0
    before = json.loads((finished / "winner.json").read_text())
    after = json.loads((out / "winner.json").read_text())
    assert after["val_loss"] == before["val_loss"] and after["test_loss"] == before["test_loss"]
    assert (out / "final" / "metrics.json").is_file()
    assert len(_rows(out / "stage2.jsonl")) == 4  # the two lost runs trained again


@pytest.mark.parametrize("value", ["0", "-3"])
def test_num_samples_below_one_is_refused_not_replaced_by_the_default(
    data, tmp_path, capsys, value
):
    assert _tune(data, tmp_path / "o", "--num-samples", value) == 2
    assert "num-samples must be >= 1" in _one_line(capsys)
    assert not (tmp_path / "o").exists()


def test_an_out_folder_that_cannot_be_created_is_a_one_line_error(data, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert _tune(data, blocker / "rep0") == 2
    assert "cannot create the cell folder" in _one_line(capsys)


# ----------------------------------------------------------------------------- 10. final/
def test_final_is_replaced_only_by_a_complete_run(finished, data, tmp_path):
    out = _copy(finished, tmp_path)
    for metrics in (out / "stage2").glob("*/metrics.json"):
        metrics.unlink()  # runs cut before their metrics.json: incomplete
    (out / "winner.json").unlink()
    assert _tune(data, out) == 0
    final = json.loads((out / "final" / "metrics.json").read_text())
    assert final == json.loads((finished / "final" / "metrics.json").read_text()) | {
        "wall_s": final["wall_s"]}


def test_a_training_run_and_a_benchmark_record_the_dataset_that_produced_them(data, tmp_path):
    sha = file_sha256(data)
    assert main(["train", "s1", "--method", "ds", "--reg", "base", "--set", "epochs=1",
                 "--data", str(data), "--out", str(tmp_path / "run")]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["extras"]["provenance"]["dataset_sha256"] == sha
    assert main(["benchmark", "s1", "--data", str(data), "--out", str(tmp_path / "b.json"),
                 "--quiet"]) == 0
    bench = json.loads((tmp_path / "b.json").read_text())
    assert bench["options"]["provenance"]["dataset_sha256"] == sha
    assert bench["options"]["provenance"]["version"] == metrics["version"]
