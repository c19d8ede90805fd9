"""JAX runtime settings of the compiled RL backend, applied once before JAX is first used.

- **One core per process** (``$DEEPSTOCK_JAX_CORE``): XLA's CPU runtime splits work over as many
  threads as the process may use cores, and the split changes float32 rounding, so the same
  seed trains a different agent on 1 and on 2 visible cores (PPO-Base, Setting 1, seed 42: test
  0.8926 vs 0.8942 at the full budget). ``--xla_cpu_multi_thread_eigen=false`` does not stop
  it, so before JAX starts this module pins the
  process to one core of those it may use: the first that no other deepstock JAX process holds
  (an ``flock`` on ``{tmp}/deepstock-cores-{uid}/core-N.lock``, released when the process
  ends), else one by process id. Every JAX process then computes as on one core — the same
  bits on a laptop, a 16-core node or under Ray, for one CPU type and one JAX version — and
  one thread is the fastest per core for these small networks (several threads have also
  deadlocked vmapped PPO). ``auto`` (default)
  does this, ``N`` pins to core N, ``off`` leaves the affinity alone. What counts is the
  affinity when XLA runs a program, so :func:`setup` pins (trainers call it before building
  programs), not the import: a process that only imports JAX — a Ray driver, say — keeps its
  cores, and so do the workers it starts.
- **Persistent compilation cache** in ``$DEEPSTOCK_JAX_CACHE`` (default
  ``~/.cache/deepstock/jax``; ``off`` disables it): a second process that builds the same
  program loads it instead of compiling (``jax_compilation_cache_dir``, every entry kept).
- **Threefry unrolled on the CPU**: JAX lowers its random-number hash (threefry-2x32, 20
  rounds) on CPUs as a rolled loop and on GPUs unrolled. The rolled loop costs ~0.4 s of XLA
  compilation per call site (a PPO program has ~20) and a loop per call at run time (one per
  environment step in a rollout); :func:`unroll_threefry` registers JAX's own unrolled lowering
  for the CPU too. It is the same integer arithmetic, so every random bit is unchanged (a
  known-answer test holds it); a cold PPO training compiles ~2–3 s less and runs ~15 % faster.
- **Devices**: :func:`device` maps deepstock's ``cpu`` / ``cuda`` to a JAX device; the CPU is
  always there, a GPU needs JAX's CUDA build (``pip install -e '.[gpu]'``, or an existing one).

Importing this module changes nothing. :func:`configure` (idempotent) applies the process-wide
settings before JAX's first computation: the XLA flags of :mod:`deepstock.numerics` where they
are not set yet (JAX reads them when its backend starts) and the unrolled threefry lowering (used
by every trace after it). :func:`setup` calls it, then pins the process and enables the cache:
the JAX trainers call :func:`setup` before they compute anything
(:func:`deepstock.training.jax_common.make_setup`, in the CLI's process, the local tuner's or a
Ray worker's), and :func:`gpu_available` and :func:`device`, which start JAX's backend, call
:func:`configure` first. The CLI also sets the flags first thing
(:func:`deepstock.numerics.configure`), Ray workers receive them through their runtime
environment, and the test suite's ``conftest.py`` calls :func:`configure`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import jax

from deepstock import numerics
from deepstock.errors import ConfigError

CACHE_ENV = "DEEPSTOCK_JAX_CACHE"
CORE_ENV = "DEEPSTOCK_JAX_CORE"
_HELD: list[int] = []  # the open lock file of the claimed core (kept for the process lifetime)
#: The cores this process could use when it imported this module (before any pin).
ALLOWED: frozenset[int] = frozenset(os.sched_getaffinity(0)) if hasattr(
    os, "sched_getaffinity") else frozenset()
_CORE: list[int] = []  # the core this process claimed (once)


def claim_core(allowed: set[int], lock_dir: Path) -> int:
    """The first core of ``allowed`` whose lock file this call can ``flock``, the lock kept
    held; when every core is held, one chosen by process id."""
    import fcntl  # POSIX only, like the affinity calls that use this

    cores = sorted(allowed)
    for core in cores:
        try:
            lock_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_dir / f"core-{core}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:  # no writable lock folder: nothing to coordinate with
            break
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        _HELD.append(fd)
        return core
    return cores[os.getpid() % len(cores)]


def pin() -> int | None:
    """Pin this process to its one core (module docstring), claiming it on the first call; the
    core, or None when ``off``. A one-line ConfigError on a bad ``$DEEPSTOCK_JAX_CORE``."""
    value = os.environ.get(CORE_ENV, "auto").strip().lower()
    if value == "off" or not ALLOWED:
        return None
    if value != "auto" and (not value.isdigit() or int(value) not in ALLOWED):
        raise ConfigError(f"{CORE_ENV}={value!r}: expected auto, off or one of the cores this "
                          f"process may use {sorted(ALLOWED)}")
    if not _CORE:
        lock_dir = Path(tempfile.gettempdir()) / f"deepstock-cores-{os.getuid()}"
        _CORE.append(int(value) if value != "auto" else claim_core(set(ALLOWED), lock_dir))
    os.sched_setaffinity(0, {_CORE[0]})
    return _CORE[0]


def unroll_threefry() -> bool:
    """Lower ``threefry2x32`` on the CPU with JAX's unrolled rule (the one it uses on GPUs);
    False, changing nothing, where this JAX version does not have that rule."""
    try:
        from jax._src.random import threefry2x32 as threefry
        from jax.interpreters import mlir
    except ImportError:
        return False
    rule = getattr(threefry, "_threefry2x32_lowering_rule", None)
    primitive = getattr(threefry, "threefry2x32_p", None)
    if rule is None or primitive is None:
        return False
    mlir.register_lowering(primitive, rule, platform="cpu")
    return True


#: Whether :func:`configure` lowered threefry unrolled on the CPU; None until it has run.
THREEFRY_UNROLLED: bool | None = None


def configure() -> bool:
    """Apply the process-wide JAX settings once (module docstring): the XLA flags of
    :mod:`deepstock.numerics` (one thread; AVX2 when pinned) where not set, and the unrolled
    threefry lowering. Call it before JAX's first computation; later calls change nothing.
    Returns :data:`THREEFRY_UNROLLED`."""
    global THREEFRY_UNROLLED
    if THREEFRY_UNROLLED is None:
        numerics.configure()
        THREEFRY_UNROLLED = unroll_threefry()
    return THREEFRY_UNROLLED


_DONE = False


def cache_dir() -> Path | None:
    """The persistent compilation cache folder, or None when ``$DEEPSTOCK_JAX_CACHE=off``."""
    value = os.environ.get(CACHE_ENV, "")
    if value.lower() == "off":
        return None
    return Path(value) if value else Path.home() / ".cache" / "deepstock" / "jax"


def setup() -> None:
    """:func:`configure`, pin the process to its core (every call) and enable the persistent
    compilation cache (once per process)."""
    global _DONE
    configure()
    pin()
    if _DONE:
        return
    path = cache_dir()
    if path is not None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{CACHE_ENV}={path}: cannot create the JAX cache folder "
                              f"({exc.strerror})") from None
        jax.config.update("jax_compilation_cache_dir", str(path))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    _DONE = True


def gpu_available() -> bool:
    """Whether JAX sees a CUDA GPU (its CUDA build installed and a device present)."""
    configure()  # asking for devices starts the backend: the flags first
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


def device(name: str):
    """The JAX device for deepstock's ``cpu`` or ``cuda``; a one-line ConfigError without one."""
    configure()
    if name == "cpu":
        return jax.devices("cpu")[0]
    if name == "cuda":
        if not gpu_available():
            raise ConfigError("device 'cuda' was asked for, but JAX finds no GPU "
                              "(install the 'gpu' extra: pip install -e '.[gpu]')")
        return jax.devices("gpu")[0]
    raise ConfigError(f"device {name!r} is not one of ['cpu', 'cuda']")
