"""Nothing lost, nothing silently wrong: a tuning cell under faults (issue "Nothing lost, nothing
silently wrong", items 1, 2, 7, 9, 14, 16, 17, 19a).

Each case is a one-line error before any training (``deepstock tune: error: ...``, exit 2, no
traceback) or the right behaviour. ``T`` is the tiny Setting 1 DS-Base cell of the issue:
``deepstock tune s1 --method ds --reg base --scale tiny --device cpu --quiet --data s1.npz``.
The last test drives seeded random sequences of kills, full disks, hand edits and reruns and
checks that the cell ends with the uninterrupted run's winner or stops with one clear line.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from deepstock.cli import main

T = ["tune", "s1", "--method", "ds", "--reg", "base", "--scale", "tiny", "--device", "cpu",
     "--quiet"]
ENOSPC = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


# `data` (the tiny Setting 1 dataset) and `finished` (the uninterrupted tiny DS-Base cell) are
# fixtures of tests/conftest.py


def _tune(data: Path, out: Path, *extra: str) -> int:
    return main([*T, "--data", str(data), "--out", str(out), *extra])


def _copy(cell: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "rep0"
    shutil.copytree(cell, dst)
    return dst


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("deepstock tune: error: "), err
    return err


def _rows(journal: Path) -> list[dict]:
    return [json.loads(line) for line in journal.read_text().splitlines()[1:]]


def _winner(out: Path) -> tuple:
    w = json.loads((out / "winner.json").read_text())
    return w["test_loss"], w["reported_seed"], w["searched"]


def _files(out: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}


def _fsync_failing(predicate):
    """An ``os.fsync`` that raises ENOSPC for the regular files whose path matches."""
    real = os.fsync

    def fsync(fd):
        if predicate(os.readlink(f"/proc/self/fd/{fd}")):
            raise ENOSPC
        return real(fd)

    return fsync


# ----------------------------------------------------------------------------- 1. foreign files
@pytest.mark.parametrize("where", ["final", "stage2 run"])
def test_tune_refuses_a_run_folder_holding_a_file_it_did_not_write_and_keeps_the_file(
    finished, data, tmp_path, capsys, where
):
    if where == "final":  # a fresh cell: refused before any training
        out = tmp_path / "rep0"
        (out / "final").mkdir(parents=True)
        user = out / "final" / "notes.txt"
    else:
        out = _copy(finished, tmp_path)
        user = next((out / "stage2").iterdir()) / "notes.txt"
    user.write_text("mine")
    assert _tune(data, out) == 2
    err = _one_line(capsys)
    assert "'notes.txt'" in err and "did not write" in err
    assert user.read_text() == "mine"
    if where == "final":
        assert not (out / "stage1.jsonl").exists()  # nothing trained, nothing journaled


# ----------------------------------------------------------------------------- 2. restart
def test_restart_removes_only_what_the_cell_wrote_and_keeps_user_files(finished, data, tmp_path):
    out = _copy(finished, tmp_path)
    (out / ".winner.json.k9x2ab.tmp").write_text("a killed write")
    user = [out / "notes.txt", out / "stage2" / "notes.txt", out / "stage2" / "mine" / "x.csv"]
    for path in user:
        path.parent.mkdir(exist_ok=True)
        path.write_text("mine")
    runs = sorted(p.name for p in (out / "stage2").glob("*_s*"))
    (out / "stage1.jsonl").write_text("garbage\n")  # restart must not need to read it
    assert _tune(data, out, "--restart") == 0
    assert all(path.read_text() == "mine" for path in user)
    assert _winner(out) == _winner(finished)
    assert len(_rows(out / "stage1.jsonl")) == 2 and len(_rows(out / "stage2.jsonl")) == 2
    assert sorted(p.name for p in (out / "stage2").glob("*_s*")) == runs
    assert not list(out.glob(".*.tmp"))


def test_restart_refuses_and_removes_nothing_when_final_holds_a_user_file(
    finished, data, tmp_path, capsys
):
    out = _copy(finished, tmp_path)
    (out / "final" / "notes.txt").write_text("mine")
    before = _files(out)
    assert _tune(data, out, "--restart") == 2
    err = _one_line(capsys)
    assert "final/notes.txt" in err and "--restart removes only the cell's own files" in err
    assert _files(out) == before


# ----------------------------------------------------------------------------- 7. faults
def test_a_full_disk_while_saving_a_stage2_run_stops_the_cell_and_a_rerun_trains_it_again(
    finished, data, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "rep0"
    monkeypatch.setattr(os, "fsync", _fsync_failing(
        lambda p: "_s43.tmp-" in p and "/.metrics.json." in p))
    assert _tune(data, out) == 2
    err = _one_line(capsys)
    assert "seed 43" in err and "No space left on device" in err and "rerun" in err
    rows = _rows(out / "stage2.jsonl")
    assert [(r["seed"], r["status"]) for r in rows] == [(42, "ok")]  # no failed row
    assert not (out / "winner.json").exists()
    monkeypatch.undo()  # space freed
    assert _tune(data, out) == 0
    assert _winner(out) == _winner(finished)
    assert json.loads((out / "winner.json").read_text())["configs"][0]["seeds"] == [42, 43]


def test_out_of_memory_in_a_training_stops_the_cell_without_journaling_a_failure(
    data, tmp_path, capsys, monkeypatch
):
    from deepstock.training.backends import TrainJob

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(TrainJob, "train_population", no_memory)
    out = tmp_path / "rep0"
    assert _tune(data, out) == 2
    err = _one_line(capsys)
    assert "stage1 trial 1: MemoryError" in err and "not journaled" in err
    assert _rows(out / "stage1.jsonl") == []


def test_a_unit_that_reports_nothing_is_a_fault_not_a_failed_trial(tmp_path):
    from deepstock.journal import Journal
    from deepstock.tuning import InfrastructureFault, Job, Progress

    progress = Progress(Journal(tmp_path / "j.jsonl", {}), 2, "stage2", quiet=True)
    with pytest.raises(InfrastructureFault, match="seed 42 reported nothing .* worker died"):
        progress.check([Job(1, {"learning_rate": 0.1}, 42)])
    assert not (tmp_path / "j.jsonl").exists()


def test_some_failed_trials_print_one_warning_line_even_when_quiet(
    data, tmp_path, capsys, failing_trials
):
    failing_trials("first")
    assert _tune(data, tmp_path / "rep0") == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "1 of 2 stage-1 trials failed" in err[0] and "--retry-failed" in err[0]


# ----------------------------------------------------------------------------- 9. checksums
@pytest.mark.parametrize("journal", ["stage1.jsonl", "stage2.jsonl"])
def test_a_journal_row_edited_by_hand_is_refused_naming_file_and_line(
    finished, data, tmp_path, capsys, journal
):
    out = _copy(finished, tmp_path)
    lines = (out / journal).read_text().splitlines()
    row = json.loads(lines[2])
    row["val_loss"] = 0.01  # the checksum is left as it was
    lines[2] = json.dumps(row, sort_keys=True)
    (out / journal).write_text("\n".join(lines) + "\n")
    before = _files(out)
    assert _tune(data, out) == 2
    err = _one_line(capsys)
    assert f"{journal} line 3 fails its checksum" in err
    assert _files(out) == before


def test_a_journal_without_checksums_is_refused_with_the_advice_to_restart(
    finished, data, tmp_path, capsys
):
    out = _copy(finished, tmp_path)
    lines = (out / "stage1.jsonl").read_text().splitlines()
    old = [json.dumps({k: v for k, v in json.loads(x).items() if k != "checksum"})
           for x in lines[1:]]
    (out / "stage1.jsonl").write_text("\n".join([lines[0], *old]) + "\n")
    assert _tune(data, out) == 2
    err = _one_line(capsys)
    assert "stage1.jsonl line 2 has no checksum" in err and "rerun with --restart" in err


# ----------------------------------------------------------------------------- 14. disk full
def test_a_full_disk_when_taking_the_lock_is_one_line_naming_the_path(
    data, tmp_path, capsys, monkeypatch
):
    def pwrite(*args):
        raise ENOSPC

    monkeypatch.setattr(os, "pwrite", pwrite)
    out = tmp_path / "rep0"
    assert _tune(data, out) == 2
    err = _one_line(capsys)
    assert str(out / ".lock") in err and "no space left on device" in err.lower()


def test_a_full_disk_when_appending_a_journal_row_is_one_line_naming_the_journal(
    data, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "rep0"
    monkeypatch.setattr(os, "fsync", _fsync_failing(lambda p: p.endswith("/stage1.jsonl")))
    assert _tune(data, out) == 2
    err = _one_line(capsys)
    assert str(out / "stage1.jsonl") in err and "no space left on device" in err.lower()


# ----------------------------------------------------------------------------- 16, 17, 19a
def test_restart_works_on_a_cell_whose_journal_starts_with_garbage(
    finished, data, tmp_path, capsys
):
    out = _copy(finished, tmp_path)
    lines = (out / "stage1.jsonl").read_text().splitlines(keepends=True)
    (out / "stage1.jsonl").write_text("garbage\n" + "".join(lines[1:]))
    assert _tune(data, out) == 2
    assert "--restart" in _one_line(capsys)
    assert _tune(data, out, "--restart") == 0
    assert _winner(out) == _winner(finished)


def test_all_failed_stage2_runs_say_how_to_retry_them(data, tmp_path, capsys, monkeypatch):
    from deepstock.training.backends import TrainJob

    real = TrainJob.train_population

    def stage2_fails(job, dataset, configs, seeds, **kwargs):
        if set(seeds) <= {42, 43}:  # the tiny scale's stage-2 seeds (stage 1: 3512, 444)
            raise RuntimeError("injected stage-2 failure")
        return real(job, dataset, configs, seeds, **kwargs)

    monkeypatch.setattr(TrainJob, "train_population", stage2_fails)
    assert _tune(data, tmp_path / "rep0") == 2
    err = _one_line(capsys)
    assert "all 2 stage-2 runs failed" in err and "injected stage-2 failure" in err
    assert "rerun with --retry-failed" in err


def test_the_next_run_removes_the_temporary_files_a_killed_write_left(finished, data, tmp_path):
    out = _copy(finished, tmp_path)
    stale = [out / ".winner.json.k9x2ab.tmp", out / ".stage1.jsonl.q1w2e3.tmp"]
    for path in stale:
        path.write_text("{")
    (out / ".notes.txt.tmp").write_text("not one of the cell's")
    assert _tune(data, out) == 0
    assert not any(path.exists() for path in stale)
    assert (out / ".notes.txt.tmp").exists()


# ----------------------------------------------------------------------------- property test
_KILL = """
import os, signal, sys
from deepstock import io, journal
from deepstock.cli import main
what, k, n = sys.argv[1], int(sys.argv[2]), [0]
def die_at_k():
    n[0] += 1
    if n[0] == k:
        os.kill(os.getpid(), signal.SIGKILL)
if what == "append":  # kill -9 right after the k-th journal row reached the file
    append = journal.Journal.append
    def append_then_die(self, row):
        append(self, row)
        die_at_k()
    journal.Journal.append = append_then_die
else:  # kill -9 inside the k-th atomic write, before its rename
    replace = os.replace
    def die_then_replace(src, dst):
        if str(src).endswith(".tmp"):
            die_at_k()
        replace(src, dst)
    os.replace = die_then_replace
sys.exit(main(sys.argv[3:]))
"""


class _Cell:
    """One cell driven through a sequence of steps; checks each outcome as it comes."""

    def __init__(self, data: Path, out: Path, clean: tuple, capsys, monkeypatch) -> None:
        self.data, self.out, self.clean = data, out, clean
        self.capsys, self.monkeypatch = capsys, monkeypatch
        self.edited = False  # a journal row was edited: every run must refuse it

    def args(self, *extra: str) -> list[str]:
        return [*T, "--data", str(self.data), "--out", str(self.out), *extra]

    def check(self, rc: int, err: str, fault: str) -> None:
        if rc == 0:
            assert not self.edited, "a run used a journal row edited by hand"
            assert _winner(self.out) == self.clean
            return
        if rc == -signal.SIGKILL:
            assert not self.edited
            return
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and "Traceback" not in err, (rc, err)
        assert lines[0].startswith("deepstock tune: error: ")
        assert ("fails its checksum" if self.edited else fault) in lines[0], lines[0]

    def todo(self) -> int:
        """Journal rows still to come (a whole tiny cell has 2 + 2): faults are drawn among the
        events left, so that most of them land."""
        done = [len(j.read_text().splitlines()) - 1 for j in
                (self.out / "stage1.jsonl", self.out / "stage2.jsonl") if j.exists()]
        return max(4 - sum(done), 0)

    def kill(self, rng: random.Random) -> None:
        left = self.todo()
        what = rng.choice(["append", "write"] if left else ["write"])
        k = rng.randint(1, left) if what == "append" else rng.randint(1, 3 + 2 * left)
        run = subprocess.run([sys.executable, "-c", _KILL, what, str(k), *self.args()],
                             capture_output=True, text=True)
        self.check(run.returncode, run.stderr, "<no fault expected>")

    def full_disk(self, rng: random.Random) -> None:
        k, count, real = rng.randint(1, 3 + 3 * self.todo()), [0], os.fsync

        def fsync(fd):  # the k-th file flushed and every later one: the disk is full
            if os.path.isfile(os.readlink(f"/proc/self/fd/{fd}")):
                count[0] += 1
                if count[0] >= k:
                    raise ENOSPC
            return real(fd)

        with self.monkeypatch.context() as m:
            m.setattr(os, "fsync", fsync)
            rc = main(self.args())
        self.check(rc, self.capsys.readouterr().err, "No space left on device")

    def edit(self, rng: random.Random) -> None:
        journals = [j for j in (self.out / "stage1.jsonl", self.out / "stage2.jsonl")
                    if j.exists() and len(j.read_text().splitlines()) > 1]
        if not journals:
            return
        journal = rng.choice(journals)
        lines = journal.read_text().splitlines()
        i = rng.randrange(1, len(lines))
        row = json.loads(lines[i])
        row["val_loss"] = 0.01 if row["val_loss"] != 0.01 else 0.02
        lines[i] = json.dumps(row, sort_keys=True)
        journal.write_text("\n".join(lines) + "\n")
        self.edited = True

    def rerun(self, rng: random.Random) -> None:
        rc = main(self.args())
        self.check(rc, self.capsys.readouterr().err, "<no fault expected>")

    def recover(self) -> None:
        """A plain rerun, or a restart where the cell says so: the uninterrupted winner."""
        rc = main(self.args())
        err = self.capsys.readouterr().err
        if rc == 2 and "--restart" in err:
            rc = main(self.args("--restart"))
        assert rc == 0, self.capsys.readouterr().err
        assert _winner(self.out) == self.clean
        leftovers = [p.name for d in (self.out, self.out / "stage2") for p in d.glob(".*")
                     if p.name != ".lock"]
        assert leftovers == [], leftovers


@pytest.mark.slow
@pytest.mark.parametrize("seed", [2, 4, 7, 8, 9])  # their sequences use every kind of step
def test_random_kills_full_disks_and_hand_edits_end_in_the_uninterrupted_winner_or_one_line(
    finished, data, tmp_path, capsys, monkeypatch, seed
):
    rng = random.Random(seed)
    cell = _Cell(data, tmp_path / "rep0", _winner(finished), capsys, monkeypatch)
    steps = [rng.choice(["kill", "kill", "full_disk", "edit", "rerun"])
             for _ in range(rng.randint(3, 4))]
    for step in steps:
        getattr(cell, step)(rng)
    cell.recover()
