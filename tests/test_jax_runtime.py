"""The JAX runtime settings: one core per process, so results do not depend on the machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from deepstock.errors import ConfigError
from deepstock.training import jaxrt

ROOT = Path(__file__).resolve().parents[1]

_PROBE = """
import json, os
from tests.test_sb3 import hp, make_dataset
from deepstock.training import jax_ppo
over = {"total_steps": 4096, "n_steps": 1024, "batch_size": 64, "eval_freq": 1024}
r = jax_ppo.train_ppo(make_dataset(1), "base", hp("ppo", **over), 42)
print(json.dumps({"cores": len(os.sched_getaffinity(0)), "test": r.test_loss,
                  "curve": r.curve["mean_return"].tolist()}))
"""


def _probe(tmp_path: Path, *, core_env: str, one_core: bool) -> dict:
    env = {**os.environ, jaxrt.CORE_ENV: core_env, jaxrt.CACHE_ENV: str(tmp_path / "cache"),
           "PYTHONPATH": str(ROOT)}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.pop(var, None)  # they narrow some of the thread pools, not all of them: the pin alone
    cores = {min(jaxrt.ALLOWED)} if one_core else set(jaxrt.ALLOWED)
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, check=True, capture_output=True, text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, cores),
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.skipif(len(jaxrt.ALLOWED) < 2, reason="needs two cores")
def test_a_jax_training_gives_the_same_bits_on_one_and_on_two_visible_cores(tmp_path):
    alone = _probe(tmp_path, core_env="auto", one_core=True)
    pinned = _probe(tmp_path, core_env="auto", one_core=False)
    assert alone["cores"] == pinned["cores"] == 1
    assert pinned["test"] == alone["test"] and pinned["curve"] == alone["curve"]
    # Whether an unpinned run rounds differently is a property of the CPU, not of deepstock (on
    # some CPUs it does, on others not): speed/jax_core_pin.py reports it, no test asserts it.


def test_each_claim_takes_a_core_no_other_holder_has_then_cores_are_shared(tmp_path):
    held = len(jaxrt._HELD)
    try:
        first = jaxrt.claim_core({3, 5}, tmp_path)
        second = jaxrt.claim_core({3, 5}, tmp_path)
        assert {first, second} == {3, 5}
        assert jaxrt.claim_core({3, 5}, tmp_path) in {3, 5}  # all held: one by process id
        assert len(jaxrt._HELD) == held + 2
    finally:
        while len(jaxrt._HELD) > held:
            os.close(jaxrt._HELD.pop())
    assert jaxrt.claim_core({3, 5}, tmp_path) == 3  # released with the process's lock files
    os.close(jaxrt._HELD.pop())


def test_without_a_writable_lock_folder_a_core_is_chosen_by_process_id(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert jaxrt.claim_core({3, 5}, blocker / "locks") == [3, 5][os.getpid() % 2]


@pytest.mark.parametrize("value", ["two", "-1", "99999"])
def test_a_bad_core_setting_is_a_one_line_error_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv(jaxrt.CORE_ENV, value)
    with pytest.raises(ConfigError, match=rf"^{jaxrt.CORE_ENV}=.*expected auto, off or one of"):
        jaxrt.pin()


def test_a_training_pins_its_process_and_a_plain_import_does_not(tmp_path):
    code = ("import os; from deepstock.training import jaxrt; a = len(os.sched_getaffinity(0)); "
            "jaxrt.setup(); print(a, len(os.sched_getaffinity(0)))")
    env = {**os.environ, jaxrt.CACHE_ENV: "off", "PYTHONPATH": str(ROOT)}
    env.pop(jaxrt.CORE_ENV, None)
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                         text=True, preexec_fn=lambda: os.sched_setaffinity(0, jaxrt.ALLOWED))
    assert out.stdout.split() == [str(len(jaxrt.ALLOWED)), "1"]


def test_threefry_is_lowered_unrolled_on_the_cpu_and_every_random_bit_is_unchanged():
    import jax
    import jax.extend.random as jrandom
    import numpy as np

    assert jaxrt.THREEFRY_UNROLLED
    key = jax.random.PRNGKey(0)
    hlo = jax.jit(lambda k: jax.random.bits(k, (4,))).lower(key).compile().as_text()
    assert "while" not in hlo  # the stock CPU lowering is a rolled loop
    # Random123's known answer for threefry-2x32 (20 rounds)
    out = jrandom.threefry_2x32(np.uint32([0x13198A2E, 0x03707344]),
                                np.uint32([0x243F6A88, 0x85A308D3]))
    assert [int(x) for x in out] == [0xC4923A9C, 0x483DF7A0]
    # values of JAX's stock (rolled) lowering, recorded with it in this JAX version
    assert jax.random.bits(jax.random.PRNGKey(42), (3,)).tolist() == [2098992034, 2919706841,
                                                                       2646866425]
    assert jax.random.split(jax.random.PRNGKey(1), 2).tolist() == [[507451445, 1853169794],
                                                                   [1948878966, 4237131848]]
    assert jax.random.normal(key, (3,)).tolist() == [1.622642159461975, 2.0252647399902344,
                                                     -0.4335944354534149]
