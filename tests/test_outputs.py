"""Outputs are never destroyed or half-written, and bad inputs end in one line, not a traceback.

What these tests hold deepstock to (issue "Trustworthy resume and inputs"):

- every command refuses an ``--out`` that is a symbolic link, a FIFO, a device or a folder it
  may not write to, with exit code 2 and one line on stderr, before writing anything, and leaves
  the thing at ``--out`` exactly as it was;
- a run folder (``save_run``) changes in one step: a crash while it is written leaves the
  previous run byte for byte, and leftovers of a killed process are cleaned up by the next save;
- malformed ``--from-winner`` files, impossible AR(1) DP grids and bad numeric options are
  one-line errors; the DP refuses a grid that would not fit in memory before allocating it;
- ~200 seeded random mutations of a hyper-parameter YAML file either train (finite losses) or
  end in one line with exit code 2.
"""

from __future__ import annotations

import errno
import json
import math
import os
import random
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from deepstock.cli import main
from deepstock.errors import DataError
from deepstock.problem.generators import generate_dataset
from deepstock.registry import METHODS as REGISTERED
from deepstock.training import TrainResult, read_run, save_run
from deepstock.training.backends import TrainJob

IS_ROOT = os.geteuid() == 0
REAL_TRAIN = TrainJob.train


# ----------------------------------------------------------------------------- helpers
@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("data")
    out = {}
    for sid in ("s1", "s2"):
        out[sid] = root / f"{sid}.npz"
        generate_dataset(sid).save(out[sid])
    return out


def run_cli(capsys, *args) -> tuple[int, list[str]]:
    """(exit code, stderr lines) of ``deepstock ARGS`` run in this process."""
    capsys.readouterr()
    rc = main([str(a) for a in args])
    return rc, capsys.readouterr().err.strip().splitlines()


def assert_one_line_error(rc: int, err: list[str], *words: str) -> None:
    assert rc == 2, err
    assert len(err) == 1, err
    for word in words:
        assert word in err[0], err


@pytest.fixture
def no_writes(monkeypatch):
    """Any attempt to create a file or folder through deepstock.io fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("deepstock started writing instead of refusing")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    monkeypatch.setattr(tempfile, "mkdtemp", refuse)


def command(kind: str, out: Path, data: dict[str, Path]) -> list:
    """The CLI arguments of a command that writes ``out``."""
    return {
        "data": ["data", "s1", "--out", out],
        "benchmark": ["benchmark", "s1", "--data", data["s1"], "--out", out],
        "train": ["train", "s1", "--method", "ds", "--reg", "base", "--data", data["s1"],
                  "--out", out, "--set", "epochs=1"],
        "report": ["report", "summary", "--results", out.parent / "no_results", "--out", out,
                   "--reported", out.parent / "no_reported.yaml"],
    }[kind]


def out_name(kind: str) -> str:
    return {"data": "out.npz", "benchmark": "out.json", "train": "run",
            "report": "summary.csv"}[kind]


def snapshot(path: Path) -> tuple:
    st = os.lstat(path)
    link = os.readlink(path) if stat.S_ISLNK(st.st_mode) else None
    return st.st_mode, st.st_ino, st.st_rdev, link


COMMANDS = ("data", "benchmark", "train", "report")


# ----------------------------------------------------------------------------- output paths
@pytest.mark.parametrize("kind", COMMANDS)
def test_a_symlink_at_out_is_refused_and_left_untouched(kind, data, tmp_path, capsys, no_writes):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / out_name(kind)
    link.symlink_to(target)
    before = snapshot(link)
    rc, err = run_cli(capsys, *command(kind, link, data))
    assert_one_line_error(rc, err, "symbolic link")
    assert snapshot(link) == before
    assert target.read_text() == "keep me"


@pytest.mark.parametrize("kind", COMMANDS)
def test_a_symlink_to_a_device_at_out_is_refused_without_following_it(
        kind, data, tmp_path, capsys, no_writes):
    link = tmp_path / out_name(kind)
    link.symlink_to("/dev/null")
    rc, err = run_cli(capsys, *command(kind, link, data))
    assert_one_line_error(rc, err, "symbolic link")
    assert os.readlink(link) == "/dev/null"
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.parametrize("kind", COMMANDS)
def test_a_fifo_at_out_is_refused_and_left_a_fifo(kind, data, tmp_path, capsys, no_writes):
    fifo = tmp_path / out_name(kind)
    os.mkfifo(fifo)
    before = snapshot(fifo)
    rc, err = run_cli(capsys, *command(kind, fifo, data))
    assert_one_line_error(rc, err, "FIFO")
    assert snapshot(fifo) == before


@pytest.mark.parametrize("kind", COMMANDS)
def test_a_device_at_out_is_refused_before_anything_is_written(
        kind, data, tmp_path, capsys, no_writes):
    """As root, a private null device (``mknod``) stands in for /dev/null, so that even a broken
    refusal could not replace the real one; otherwise /dev/null itself is used (a non-root
    process could not replace it anyway). ``no_writes`` fails the test at the first attempt to
    create a file, so the refusal must come before any write. ``benchmark`` needs a ``.json``
    name, which only the private device can have."""
    if IS_ROOT:
        device = tmp_path / out_name(kind)
        os.mknod(device, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    elif kind == "benchmark":
        pytest.skip("a device named *.json needs mknod, i.e. root")
    else:
        device = Path("/dev/null")
    before = snapshot(device)
    rc, err = run_cli(capsys, *command(kind, device, data))
    assert_one_line_error(rc, err, "character device")
    assert snapshot(device) == before


@pytest.mark.parametrize("kind", COMMANDS)
def test_a_read_only_folder_at_out_is_a_one_line_error(
        kind, data, tmp_path, capsys, monkeypatch):
    """A folder with mode 0555 must give one line, and stay empty.

    root bypasses permission bits, so as root the folder is writable for real and the OS would
    let deepstock write; what root is refused is a read-only mount, which ``os.access`` reports.
    Under root the test therefore makes ``os.access`` answer as for a read-only mount of that
    folder; as any other user the permission bits act for real."""
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    if IS_ROOT:
        real_access = os.access

        def access(path, mode, **kw):
            if Path(path) == folder and mode & os.W_OK:
                return False
            return real_access(path, mode, **kw)

        monkeypatch.setattr(os, "access", access)
    try:
        rc, err = run_cli(capsys, *command(kind, folder / out_name(kind), data))
        assert_one_line_error(rc, err, "not writable")
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("kind", COMMANDS)
def test_a_parent_folder_that_is_a_file_is_a_one_line_error(kind, data, tmp_path, capsys):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file, not a folder")
    rc, err = run_cli(capsys, *command(kind, blocker / "sub" / out_name(kind), data))
    assert_one_line_error(rc, err, "not a folder")
    assert blocker.read_text() == "a file, not a folder"


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch):
    from deepstock.io import write_text

    path = tmp_path / "x.json"
    path.write_text("old")

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(DataError, match="No space left"):
        write_text(path, "new")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_a_refused_temporary_file_is_a_one_line_error(tmp_path, monkeypatch):
    from deepstock.io import write_text

    def denied(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(DataError, match="Permission denied"):
        write_text(tmp_path / "x.json", "new")
    assert list(tmp_path.iterdir()) == []


def test_train_refuses_a_folder_of_other_files_and_keeps_them(data, tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    rc, err = run_cli(capsys, *command("train", out, data))
    assert_one_line_error(rc, err, "notes.txt")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


# ----------------------------------------------------------------------------- run folders
def fake_result(loss: float, extras: dict | None = None) -> TrainResult:
    return TrainResult(
        setting="s1", method="ds", reg="base", seed=45, train_loss=loss, val_loss=loss,
        test_loss=loss, best_val=loss, iterations=1, wall_s=0.0, device="cpu",
        curve=pd.DataFrame({"epoch": [0], "val_loss": [loss]}), config={"epochs": 1},
        policy=lambda obs: None, extras=extras or {},
        model_state={"w": torch.full((3,), loss)},
    )


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def hidden_siblings(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith("."))


def dead_pid() -> int:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(proc.stdout)


def crash_before_metrics(monkeypatch) -> None:
    """Make save_run crash right after the weights are written, before metrics.json."""
    import deepstock.training.common as common

    def crash(path, obj):
        assert (Path(path).parent / "model.pt").is_file()
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(common, "write_json", crash)


def test_a_crash_after_the_weights_leaves_the_old_run_folder_byte_identical(
        tmp_path, monkeypatch):
    run = tmp_path / "run"
    save_run(fake_result(1.0), run)
    before = folder_bytes(run)
    crash_before_metrics(monkeypatch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        save_run(fake_result(2.0), run)
    assert folder_bytes(run) == before
    assert hidden_siblings(run) == []


def test_a_crash_while_writing_a_new_run_folder_leaves_nothing(tmp_path, monkeypatch):
    crash_before_metrics(monkeypatch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        save_run(fake_result(2.0), tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


def test_replacing_a_run_folder_drops_the_files_of_the_old_run(tmp_path):
    run = tmp_path / "run"
    save_run(fake_result(1.0, {"critic_log": pd.DataFrame({"step": [1]})}), run)
    save_run(fake_result(2.0), run)
    assert sorted(p.name for p in run.iterdir()) == ["curve.csv", "metrics.json", "model.pt"]
    assert read_run(run)["test_loss"] == 2.0
    assert hidden_siblings(run) == []


def test_a_leftover_temporary_folder_of_a_killed_save_is_ignored_and_cleaned(tmp_path):
    run = tmp_path / "run"
    save_run(fake_result(1.0), run)
    leftover = tmp_path / f".run.tmp-{dead_pid()}-abc"
    leftover.mkdir()
    (leftover / "model.pt").write_bytes(b"half")
    assert read_run(run)["test_loss"] == 1.0
    save_run(fake_result(2.0), run)
    assert not leftover.exists()
    assert read_run(run)["test_loss"] == 2.0


def test_a_run_folder_lost_mid_swap_comes_back_when_the_next_save_fails(
        tmp_path, monkeypatch):
    run = tmp_path / "run"
    save_run(fake_result(1.0), run)
    before = folder_bytes(run)
    run.rename(tmp_path / f".run.old-{dead_pid()}-abc")  # killed between the two renames
    crash_before_metrics(monkeypatch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        save_run(fake_result(2.0), run)
    assert folder_bytes(run) == before
    assert hidden_siblings(run) == []


def test_reading_a_run_folder_requires_metrics_json(tmp_path):
    run = tmp_path / "run"
    save_run(fake_result(1.0), run)
    (run / "metrics.json").unlink()
    with pytest.raises(DataError, match="metrics.json"):
        read_run(run)


# ----------------------------------------------------------------------------- bad inputs
@pytest.mark.parametrize("text", [
    "not json at all",
    "[1, 2]",
    '{"method": "ds", "hparams": {}}',
    '{"method": "ds", "hparams": [1], "reported_seed": 1}',
    '{"method": "ds", "hparams": "epochs=1", "reported_seed": 1}',
    '{"method": "ds", "hparams": {"epochs": "many"}, "reported_seed": 1}',
    '{"method": "ds", "hparams": {}, "reported_seed": "x"}',
    '{"method": "ds", "hparams": {}, "reported_seed": true}',
    '{"method": "ds", "hparams": {}, "reported_seed": -1}',
    '{"method": "ds", "hparams": {}, "reported_seed": 1.5}',
], ids=["not-json", "list", "no-seed", "hparams-list", "hparams-str", "hparam-type",
        "seed-str", "seed-bool", "seed-negative", "seed-float"])
def test_a_broken_winner_json_is_a_one_line_error(text, data, tmp_path, capsys):
    winner = tmp_path / "winner.json"
    winner.write_text(text)
    out = tmp_path / "run"
    rc, err = run_cli(capsys, *command("train", out, data), "--from-winner", winner)
    assert_one_line_error(rc, err, "winner.json")
    assert not out.exists()


@pytest.mark.parametrize("option, value", [
    ("--delta", "1e-6"), ("--delta", "0"), ("--delta", "-1"), ("--delta", "nan"),
    ("--delta", "inf"), ("--delta", "1e6"), ("--nsd", "0"), ("--nsd", "-2"), ("--nsd", "nan"),
    ("--nsd", "inf"), ("--loss-h", "nan"), ("--loss-h", "inf"),
])
def test_an_impossible_ar1_dp_option_is_a_one_line_error_naming_it(
        option, value, data, tmp_path, capsys):
    out = tmp_path / "b.json"
    rc, err = run_cli(capsys, "benchmark", "s2", "--data", data["s2"], "--out", out,
                      option, value)
    assert_one_line_error(rc, err, option)
    assert not out.exists()


def test_an_ar1_dp_grid_too_large_for_memory_is_refused_before_allocation(
        data, tmp_path, capsys):
    rc, err = run_cli(capsys, "benchmark", "s2", "--data", data["s2"],
                      "--out", tmp_path / "b.json", "--delta", "1e-6")
    assert_one_line_error(rc, err, "GB", "--delta", "--nsd")


def test_the_convergence_check_grid_is_refused_before_the_first_solve(
        data, tmp_path, capsys, monkeypatch):
    """δ = 0.025 fits (about 34 GB at δ/2 does not): the refusal must come before the δ run."""
    import deepstock.benchmarks.run as bench_run

    def solve(*args, **kwargs):
        raise AssertionError("the δ run started although δ/2 cannot be solved")

    monkeypatch.setattr(bench_run, "_ar1", solve)
    rc, err = run_cli(capsys, "benchmark", "s2", "--data", data["s2"],
                      "--out", tmp_path / "b.json", "--delta", "0.025", "--check-convergence")
    assert_one_line_error(rc, err, "delta=0.0125", "GB")


@pytest.mark.parametrize("value", ['{"nope": 1}', '{"epochs": "x"}', "[1]", "{bad json"])
def test_bad_ds_hparams_of_the_ds_on_test_benchmark_are_one_line(value, data, tmp_path, capsys):
    rc, err = run_cli(capsys, "benchmark", "s2", "--data", data["s2"], "--out",
                      tmp_path / "b.json", "--method", "ds_on_test", "--ds-hparams", value)
    assert_one_line_error(rc, err, "")


# ----------------------------------------------------------------------------- hparams fuzz
SEED = 20261201
N_CASES = 200
MAX_TRAININGS = 3  # per method: most cases must fail validation; training costs ~0.3 s each
CAPS = {
    "ds": ["epochs=2"],
    "ddpg": ["total_steps=64", "eval_freq=32", "learning_starts=16"],
    "ppo": ["total_steps=64", "eval_freq=32"],
}
# Values that pass validation but make even a capped run allocate gigabytes or run for minutes
# or hours: these keys have no upper bound in the registry's schemas, or one far above what trains in
# seconds. Per method: key -> the largest value the fuzz test trains ("width": any layer).
KNOWN_UNBOUNDED = {
    "ds": {"width": 1024},
    "ddpg": {"batch_size": 4096, "buffer_size": 10**6, "gradient_steps": 64, "width": 1024},
    "ppo": {"batch_size": 4096, "n_epochs": 64, "n_steps": 4096, "width": 1024},
}
EXTREME = {  # a value beyond each limit above that passes validation (or the memory bound)
    "batch_size": 10**5, "buffer_size": 10**7, "gradient_steps": 10**12, "n_epochs": 10**12,
    "n_steps": 10**7, "width": [4096, 4096],
}
UNKNOWN_KEYS = ("lr", "epoch", "neurons", "net", "", "M ", "__class__")
BAD_YAML = ("a: [1, 2", "{a: 1", "a: b: c", "\t- x", "a:\n  - b\n c: d", "%YAML 9.9\n---\na: 1",
            "[" * 5000, "a: &x [*x]", "!!python/object:os.system {}", "- a\nb: c")


def valid_value(rng: random.Random, param):
    """A random value that passes ``param.check``."""
    kind = param.kind
    if kind == "float":
        lo = param.low if param.low is not None else 0.0
        hi = param.high if param.high is not None else lo + 10.0
        return rng.uniform(lo, hi)
    if kind == "int":
        lo = int(param.low) if param.low is not None else 0
        return rng.randint(lo, lo + 40)
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "str":
        return rng.choice(param.choices)
    if kind == "int_list":
        return [rng.choice([4, 16, 32])] * rng.randint(1, 3)
    if kind == "float_pair":
        return sorted([rng.uniform(0, 1), rng.uniform(0, 1)])
    return {a: [rng.choice([4, 16, 32])] * rng.randint(1, 2) for a in param.arch_keys}


def mutated_value(rng: random.Random, param, mode: str):
    if mode == "valid":
        return valid_value(rng, param)
    if mode == "huge":
        if param.kind == "int_list":
            return [10**5] * 2
        if param.kind == "net_arch":
            return {a: [10**5] * 2 for a in param.arch_keys}
        return rng.choice([1e12, 10**12, 10**30])
    return rng.choice({
        "wrong_type": [True, [1, 2], {"x": 1}, None, "abc"],
        "string": ["1e-3", "100", "nan", "", "[64, 64]", "true"],
        "nonfinite": [math.nan, math.inf, -math.inf, [math.nan, 1.0], [0.0, math.inf]],
        "negative": [-1, -1e-3, -(10**6), [-1, 4], [0, 0]],
        "empty_list": [[], {}, [[]]],
        "nested": [{"a": {"b": [1, {"c": None}]}}, [[1, [2, [3]]]], {"pi": [1], "qf": "x"}],
    }[mode])


MODES = ("valid", "valid", "huge", "wrong_type", "string", "nonfinite", "negative",
         "empty_list", "nested")


def mutated_file(rng: random.Random, method: str, path: Path) -> None:
    """Write one randomly mutated hyper-parameter file for ``method``."""
    roll = rng.random()
    if roll < 0.06:
        path.write_text(rng.choice(BAD_YAML))
        return
    if roll < 0.10:
        path.write_bytes(rng.choice([b"\xff\xfe\x00a: 1", b"a: \x80"]))
        return
    if roll < 0.16:
        path.write_text(yaml.safe_dump(rng.choice([[1, 2], "text", 42, 3.5, True, [{"a": 1}]])))
        return
    schema = REGISTERED[method].schema
    doc: dict = {}
    for _ in range(rng.randint(1, 3)):
        if rng.random() < 0.12:
            doc[rng.choice(UNKNOWN_KEYS)] = rng.randint(0, 9)
            continue
        key = rng.choice(sorted(schema))
        doc[key] = mutated_value(rng, schema[key], rng.choice(MODES))
    path.write_text(yaml.safe_dump(doc) if rng.random() < 0.97 else "")


def network_key(method: str) -> str:
    return "neurons_per_hidden_layer" if method == "ds" else "net_arch"


def known_unbounded(method: str, hp: dict) -> list[str]:
    """The keys of ``hp`` whose values are beyond what a capped training runs in seconds."""
    limits = KNOWN_UNBOUNDED[method]
    keys = [k for k, limit in limits.items() if k in hp and hp[k] > limit]
    nets = hp.get("net_arch", {}).values() if method != "ds" else [hp.get(network_key(method))]
    if max((w for layers in nets for w in layers or ()), default=0) > limits["width"]:
        keys.append(network_key(method))
    return keys


class NotTrained(Exception):
    """Raised in place of a training the fuzz test does not run (the reason is the message)."""


def gated_train(trained: list):
    """A stand-in for :meth:`TrainJob.train` that runs only bounded, new configurations."""
    def gate(job, dataset, seed, **kwargs):
        method, hparams = job.method.name, dict(job.hparams)
        unbounded = known_unbounded(method, hparams)
        if unbounded:
            raise NotTrained(f"known unbounded: {', '.join(unbounded)}")
        if len(trained) >= MAX_TRAININGS or hparams in trained:
            raise NotTrained("training budget")
        trained.append(hparams)
        return REAL_TRAIN(job, dataset, seed, **kwargs)

    return gate


def check_case(method: str, path: Path, data, capsys) -> str:
    """Run one case (run folder: ``path`` without suffix); return 'refused', 'trained', ..."""
    out = path.with_suffix("")
    args = ["train", "s1", "--method", method, "--reg", "base", "--data", data["s1"],
            "--out", out, "--hparams", path, "--device", "cpu"]
    for item in CAPS[method]:
        args += ["--set", item]
    try:
        rc, err = run_cli(capsys, *args)
    except NotTrained as skipped:
        return f"skipped ({skipped})"
    if rc == 0:
        metrics = read_run(out)
        losses = [metrics[k] for k in ("train_loss", "val_loss", "test_loss", "best_val")]
        assert all(math.isfinite(v) for v in losses), (path.read_text(), losses)
        return "trained"
    assert_one_line_error(rc, err)
    assert not out.exists()
    return "refused"


@pytest.mark.parametrize("method", ["ds", "ddpg", "ppo"])
def test_random_hyper_parameter_files_train_or_fail_in_one_line(
        method, data, tmp_path, capsys, monkeypatch):
    """A third of ~200 seeded mutations per method: rc 0 with finite losses, or rc 2 and one line.

    Configurations that pass validation are trained with a capped budget (CAPS), at most
    MAX_TRAININGS distinct ones; those with values of KNOWN_UNBOUNDED keys beyond their limits
    are validated only (the training call is replaced by :func:`gated_train`)."""
    rng = random.Random(f"{SEED}-{method}")
    trained: list = []
    monkeypatch.setattr(TrainJob, "train", gated_train(trained))
    outcomes = []
    for i in range(N_CASES // 3 + (method == "ds")):
        path = tmp_path / f"case{i}.yaml"
        mutated_file(rng, method, path)
        try:
            outcomes.append(check_case(method, path, data, capsys))
        except Exception as exc:
            raise AssertionError(f"case {i}: {path.read_bytes()!r}") from exc
        path.unlink()
    assert outcomes.count("refused") > len(outcomes) // 2
    assert 0 < len(trained) <= MAX_TRAININGS
    for name in KNOWN_UNBOUNDED[method]:
        key, value = (network_key(method), EXTREME[name]) if name == "width" else (name, EXTREME[name])
        if key == "net_arch":
            value = {a: value for a in REGISTERED[method].schema[key].arch_keys}
        path = tmp_path / f"extreme_{key}.yaml"
        path.write_text(yaml.safe_dump({key: value}))
        outcome = check_case(method, path, data, capsys)
        assert outcome == "refused" or outcome.startswith("skipped (known unbounded"), outcome


def test_a_training_run_writes_a_complete_run_folder_and_nothing_beside_it(
        data, tmp_path, capsys):
    out = tmp_path / "run"
    for _ in range(2):  # the second run replaces the first
        rc, _ = run_cli(capsys, *command("train", out, data), "--device", "cpu")
        assert rc == 0
    assert json.loads((out / "metrics.json").read_text())["iterations"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["curve.csv", "metrics.json", "model.pt"]
    assert [p.name for p in tmp_path.iterdir()] == ["run"]
