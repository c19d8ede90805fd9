"""JAX runtime settings of the compiled RL backend, applied once before JAX is first used.

- **One XLA CPU thread per process** (``--xla_cpu_multi_thread_eigen=false
  intra_op_parallelism_threads=1``, appended to the user's ``XLA_FLAGS``): the RL networks are
  small, one thread is fastest per core, and several threads have deadlocked vmapped PPO.
- **Persistent compilation cache** in ``$DEEPSTOCK_JAX_CACHE`` (default
  ``~/.cache/deepstock/jax``; ``off`` disables it): a second process that builds the same
  program loads it instead of compiling (``jax_compilation_cache_dir``, every entry kept).
- **Devices**: :func:`device` maps deepstock's ``cpu`` / ``cuda`` to a JAX device; the CPU is
  always there, a GPU needs JAX's CUDA build (``pip install -e '.[gpu]'``, or an existing one).

Importing this module sets the flags (JAX reads them when its backend starts, at the first
computation, so this module is imported by :mod:`deepstock.envs_jax` and the trainers); call
:func:`setup` (idempotent) before building programs.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

from deepstock.errors import ConfigError

_CPU_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
CACHE_ENV = "DEEPSTOCK_JAX_CACHE"


def _set_flags() -> None:
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {_CPU_FLAGS}".strip()


_set_flags()

_DONE = False


def cache_dir() -> Path | None:
    """The persistent compilation cache folder, or None when ``$DEEPSTOCK_JAX_CACHE=off``."""
    value = os.environ.get(CACHE_ENV, "")
    if value.lower() == "off":
        return None
    return Path(value) if value else Path.home() / ".cache" / "deepstock" / "jax"


def setup() -> None:
    """Enable the persistent compilation cache (once per process)."""
    global _DONE
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
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


def device(name: str):
    """The JAX device for deepstock's ``cpu`` or ``cuda``; a one-line ConfigError without one."""
    if name == "cpu":
        return jax.devices("cpu")[0]
    if name == "cuda":
        if not gpu_available():
            raise ConfigError("device 'cuda' was asked for, but JAX finds no GPU "
                              "(install the 'gpu' extra: pip install -e '.[gpu]')")
        return jax.devices("gpu")[0]
    raise ConfigError(f"device {name!r} is not one of ['cpu', 'cuda']")
