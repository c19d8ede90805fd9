"""The CPU numerics that decide a result's bits, pinned by default (docs/reproducibility.md).

The same program and seed can round differently on two CPUs because the libraries pick their
kernels by the instruction set they find (AVX-512 against AVX2, FMA or not) and by their thread
count. :func:`configure` fixes, before torch, MKL, oneDNN or XLA load:

- **threads**: one BLAS/OpenMP thread per process (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``,
  ``OPENBLAS_NUM_THREADS`` = 1) and single-threaded XLA CPU programs
  (``--xla_cpu_multi_thread_eigen=false``; the JAX trainers also
  pin their process to one core, :mod:`deepstock.training.jaxrt`). Parallelism comes from Snakemake jobs
  and Ray trials; several threads are slower for these small networks and have deadlocked
  vmapped PPO.
- **instruction set** (``pinned`` mode, the default): torch's vectorized kernels
  (``ATEN_CPU_CAPABILITY=avx2``), MKL's conditional numerical reproducibility
  (``MKL_CBWR=AVX2``), oneDNN (``ONEDNN_MAX_CPU_ISA=AVX2``) and XLA's code generation
  (``--xla_cpu_max_isa=AVX2``, ``--xla_cpu_enable_fast_math=false``) all use AVX2 code paths, so
  every x86-64 CPU with AVX2 and FMA (Intel since 2013, AMD since 2015) runs the same kernels.
  XLA also hands dot fusions to YNNPACK, whose kernels are chosen at run time by the CPU's
  features and are not capped by ``--xla_cpu_max_isa``: the same JAX training gave other bits
  on an AVX-512 (Zen 4) and an AVX2 (Zen 3) machine (docs/reproducibility.md). Pinned mode
  turns that fusion off (``--xla_cpu_experimental_ynn_fusion_type=``, ~5 % slower), on the
  jaxlib versions that know the flag (:data:`YNN_FROM`; XLA aborts on an unknown flag).
  ``DEEPSTOCK_NUMERICS=native`` keeps the threads but lets each library pick its fastest kernels
  (on this project's AVX-512 machine the bits happened to be the same; ``speed/bench_numerics.py``
  measures the cost of the pin).

Values the user has set already are kept (an explicit ``ATEN_CPU_CAPABILITY`` wins) and show up
in the provenance of every result (:func:`in_effect`). The settings take effect only for
libraries loaded after :func:`configure`: the CLI calls it first thing, the test suite in its
``conftest.py``, Ray workers receive the variables through the runtime environment, and
:func:`in_effect` records what torch actually uses.
"""

from __future__ import annotations

import os
import sys

MODE_ENV = "DEEPSTOCK_NUMERICS"
MODES = ("pinned", "native")
THREAD_VARS = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
#: XLA's parser stops at the first token of ``XLA_FLAGS`` that is not a ``--flag``: every flag
#: after it is silently ignored (a bare ``intra_op_parallelism_threads=1`` here once disabled the
#: ISA pin below; :func:`configure` refuses such a token).
XLA_THREADS = ("--xla_cpu_multi_thread_eigen=false",)
ISA_VARS = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}
XLA_ISA = ("--xla_cpu_max_isa=AVX2", "--xla_cpu_enable_fast_math=false")
#: XLA's dot fusions into YNNPACK (kernels picked at run time by CPU features): off when pinned.
XLA_NO_YNN = "--xla_cpu_experimental_ynn_fusion_type="
#: The first jaxlib (major, minor) known to take :data:`XLA_NO_YNN` (the locked one; older
#: versions are not tried: XLA aborts the process on a flag it does not know).
YNN_FROM = (0, 10)
#: Every environment variable that decides bits (recorded in each result's provenance).
RECORDED = ("XLA_FLAGS", *ISA_VARS, *THREAD_VARS, "DEEPSTOCK_JAX_CORE", MODE_ENV)


def mode(environ: dict | None = None) -> str:
    """``pinned`` (default) or ``native`` from ``$DEEPSTOCK_NUMERICS``; a one-line ConfigError
    on any other value."""
    from deepstock.errors import ConfigError

    value = (environ if environ is not None else os.environ).get(MODE_ENV, "pinned")
    value = value.strip().lower() or "pinned"
    if value not in MODES:
        raise ConfigError(f"{MODE_ENV}={value!r}: expected one of {list(MODES)}")
    return value


def settings(numerics: str = "pinned") -> dict[str, str]:
    """The environment variables of a mode (XLA_FLAGS as the flags to add)."""
    pinned = numerics == "pinned"
    flags = XLA_THREADS + (XLA_ISA if pinned else ()) + (
        (XLA_NO_YNN,) if pinned and _jaxlib_has_ynn() else ())
    return {**THREAD_VARS, **(ISA_VARS if pinned else {}), "XLA_FLAGS": " ".join(flags)}


def check_xla_flags(value: str) -> None:
    """A one-line ConfigError on an ``XLA_FLAGS`` token that is not a ``--flag``: XLA would
    ignore every flag after it without a word."""
    from deepstock.errors import ConfigError

    bare = [t for t in value.split() if not t.startswith("--")]
    if bare:
        raise ConfigError(f"XLA_FLAGS: {bare[0]!r} is not a --flag; XLA ignores every flag "
                          "after it (write it as --name=value or remove it)")


def _jaxlib_has_ynn() -> bool:
    """Whether the installed jaxlib takes :data:`XLA_NO_YNN` (read from its metadata, not
    imported); False without jaxlib."""
    from importlib import metadata

    try:
        version = metadata.version("jaxlib")
    except metadata.PackageNotFoundError:
        return False
    parts = [int(p) for p in version.split(".")[:2] if p.isdigit()]
    return len(parts) == 2 and tuple(parts) >= YNN_FROM


def configure(environ: dict | None = None) -> dict[str, str]:
    """Set the mode's variables in ``environ`` (``os.environ``) where the user has not, add the
    mode's XLA flags that ``XLA_FLAGS`` lacks; returns what was set. Idempotent."""
    env = os.environ if environ is None else environ
    check_xla_flags(env.get("XLA_FLAGS", ""))
    wanted = settings(mode(env))
    done: dict[str, str] = {}
    for key, value in wanted.items():
        if key == "XLA_FLAGS":
            have = env.get(key, "")
            extra = [f for f in value.split() if f.split("=")[0] not in have]
            if extra:
                env[key] = done[key] = " ".join([have, *extra]).strip()
        elif key not in env:
            env[key] = done[key] = value
    return done


def in_effect() -> dict:
    """What decides bits in this process now: the mode, the recorded variables, and torch's
    kernel capability and thread count where torch is loaded (never imported for this)."""
    out: dict = {"mode": os.environ.get(MODE_ENV, "pinned") or "pinned",
                 "env": {k: os.environ[k] for k in RECORDED if k in os.environ}}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch_cpu_capability"] = str(torch.backends.cpu.get_cpu_capability())
        out["torch_threads"] = int(torch.get_num_threads())
    return out
