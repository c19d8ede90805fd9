"""Every result names what produced it; the numerics that decide bits are pinned by default."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deepstock import numerics, provenance
from deepstock.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
FIELDS = {"commit", "dirty", "version", "stack", "stack_hash", "cpu", "numerics", "lock"}


def test_a_record_names_commit_stack_cpu_numerics_and_the_run():
    rec = provenance.record(backend="jax", executor="local", batch=5)
    assert FIELDS | {"backend", "executor", "batch"} <= set(rec)
    assert len(rec["commit"]) == 40 and isinstance(rec["dirty"], bool)  # a git checkout
    for pkg in ("python", "numpy", "scipy", "torch", "jax", "jaxlib", "optuna",
                "stable-baselines3", "gymnasium"):
        assert rec["stack"][pkg], pkg
    assert rec["stack_hash"] == provenance.stack_hash(rec["stack"]) and len(rec["stack_hash"]) == 12
    assert rec["cpu"]["model"] and "avx2" in rec["cpu"]["isa"]
    assert rec["numerics"]["mode"] == "pinned"
    assert rec["numerics"]["env"]["ATEN_CPU_CAPABILITY"] == "avx2"
    assert rec["numerics"]["torch_cpu_capability"] == "AVX2"  # torch honoured the pin
    assert "--xla_cpu_max_isa=AVX2" in rec["numerics"]["env"]["XLA_FLAGS"]


def test_the_stack_hash_changes_with_any_version():
    base = dict(provenance.stack())
    assert provenance.stack_hash({**base, "numpy": "0.0.1"}) != provenance.stack_hash(base)


def test_a_stack_that_differs_from_the_lock_is_named_package_by_package(tmp_path):
    lock = tmp_path / "lock.txt"
    have = provenance.stack()
    lock.write_text(f"numpy=={have['numpy']} \\\n    --hash=sha256:00\n"
                    "scipy==0.1.0 \\\n    --hash=sha256:00\n")
    assert provenance.lock_mismatch(lock) == [f"scipy {have['scipy']} (lock 0.1.0)"]
    assert provenance.lock_mismatch(provenance.LOCK) == []  # the tests run on the lock


def test_the_cli_warns_once_naming_the_packages_when_the_stack_is_not_the_lock(monkeypatch,
                                                                               capsys):
    from deepstock import cli

    monkeypatch.setattr(provenance, "lock_mismatch", lambda *a: ["scipy 1.0 (lock 2.0)"])
    cli._warn_if_unlocked("train")
    cli._warn_if_unlocked("report")  # producing commands only
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "scipy 1.0 (lock 2.0)" in err[0] and "warning" in err[0]


def test_configure_sets_the_pinned_numerics_and_keeps_what_the_user_set():
    env = {"ATEN_CPU_CAPABILITY": "default", "XLA_FLAGS": "--xla_dump_to=/tmp/x"}
    done = numerics.configure(env)
    assert env["ATEN_CPU_CAPABILITY"] == "default" and "ATEN_CPU_CAPABILITY" not in done
    assert env["MKL_CBWR"] == "AVX2" and env["OMP_NUM_THREADS"] == "1"
    assert env["XLA_FLAGS"].startswith("--xla_dump_to=/tmp/x ")
    assert "--xla_cpu_max_isa=AVX2" in env["XLA_FLAGS"]
    assert numerics.configure(env) == {}  # idempotent


def test_native_numerics_keep_one_thread_but_no_instruction_set_pin():
    env = {numerics.MODE_ENV: "native"}
    numerics.configure(env)
    assert env["OMP_NUM_THREADS"] == "1" and "ATEN_CPU_CAPABILITY" not in env
    assert "max_isa" not in env["XLA_FLAGS"] and "multi_thread_eigen=false" in env["XLA_FLAGS"]


def test_xla_parses_every_pinned_flag_to_the_end_of_the_string():
    """XLA stops at a token that is not a --flag and ignores the rest without a word (a bare
    ``intra_op_parallelism_threads=1`` once hid the ISA pin): an unknown flag placed after the
    pinned ones must still be seen, and refused."""
    flags = numerics.settings("pinned")["XLA_FLAGS"] + " --xla_cpu_no_such_flag_deepstock=1"
    env = {**os.environ, "XLA_FLAGS": flags, "JAX_PLATFORMS": "cpu"}
    code = "import jax, jax.numpy as jnp; print(float(jnp.ones(3).sum()))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "xla_cpu_no_such_flag_deepstock" in out.stderr
    ok = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        env={**env, "XLA_FLAGS": numerics.settings("pinned")["XLA_FLAGS"]})
    assert ok.returncode == 0 and ok.stdout.strip() == "3.0"


def test_an_xla_flags_token_that_is_not_a_flag_is_a_one_line_error():
    with pytest.raises(ConfigError, match=r"^XLA_FLAGS: 'intra_op_parallelism_threads=1' is not"):
        numerics.configure({"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false "
                                         "intra_op_parallelism_threads=1"})


def test_pinned_numerics_turn_off_xlas_ynnpack_dot_fusion():
    assert numerics.XLA_NO_YNN in numerics.settings("pinned")["XLA_FLAGS"]
    assert "ynn" not in numerics.settings("native")["XLA_FLAGS"]


def test_a_bad_numerics_mode_is_a_one_line_error_naming_the_variable():
    with pytest.raises(ConfigError, match=r"^DEEPSTOCK_NUMERICS='fast': expected one of"):
        numerics.configure({numerics.MODE_ENV: "fast"})
    env = {**os.environ, numerics.MODE_ENV: "fast"}
    out = subprocess.run([sys.executable, "-m", "deepstock.cli", "data", "--list"], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "DEEPSTOCK_NUMERICS" in out.stderr


def test_a_training_run_records_its_provenance_in_metrics_json(tmp_path):
    from deepstock.problem.generators import generate_dataset

    data = tmp_path / "s1.npz"
    generate_dataset("s1").save(data)
    rc = subprocess.run([sys.executable, "-m", "deepstock.cli", "train", "s1", "--method", "ds",
                         "--reg", "base", "--set", "epochs=2", "--data", str(data), "--out",
                         str(tmp_path / "run")], capture_output=True, text=True)
    assert rc.returncode == 0, rc.stderr
    rec = json.loads((tmp_path / "run" / "metrics.json").read_text())["provenance"]
    assert set(rec) >= FIELDS and rec["backend"] == "torch" and rec["executor"] == "train"
    assert rec["numerics"]["torch_cpu_capability"] == "AVX2"  # the CLI pinned before torch


def test_the_cli_reads_the_commit_when_it_starts_not_when_a_result_is_written(monkeypatch):
    """A cell that runs for an hour records the commit it started from: ``main`` reads it
    before any command runs (and ``commit`` is read once per process)."""
    from deepstock import cli

    calls = []
    monkeypatch.setattr(provenance, "commit", lambda: calls.append("read") or {})
    assert cli.main(["data", "--list"]) == 0
    assert calls == ["read"]
