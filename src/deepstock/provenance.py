"""What produced a result: code, library stack, CPU and numerics (docs/reproducibility.md).

Every ``metrics.json``, journal row and ``winner.json`` carries :func:`record`:

- ``commit``: the git commit of the deepstock source tree and whether it had uncommitted changes
  (``dirty``); ``"unknown"`` outside a git checkout (an installed wheel: then ``version``);
- ``stack``: the versions of python and of the libraries whose arithmetic reaches a result
  (:data:`PACKAGES`, read from the installed distributions, nothing imported), and ``stack_hash``,
  the first 12 hex digits of the SHA-256 of that mapping — one value to compare two results by;
- ``cpu``: the CPU model and the instruction-set extensions that decide kernels (AVX2, FMA,
  AVX-512 ...), from ``/proc/cpuinfo``;
- ``numerics``: :func:`deepstock.numerics.in_effect` — the pinned or native mode and every
  setting that changes bits;
- ``lock``: whether the installed stack is the one ``requirements/lock-cpu-py311.txt`` pins
  (:func:`lock_mismatch` names the packages that differ; the CLI warns once).

The run-specific fields (backend, executor, batch k) are added by the caller.
"""

from __future__ import annotations

import functools
import hashlib
import json
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

from deepstock import numerics

#: Distributions whose versions are recorded (their arithmetic or sampling reaches results).
PACKAGES = ("numpy", "scipy", "torch", "jax", "jaxlib", "optuna", "stable-baselines3",
            "gymnasium", "pandas", "ray", "optax", "ml-dtypes")
#: CPU flags that decide which kernels the libraries pick.
ISA_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
             "avx512_bf16", "amx_tile")
SOURCE = Path(__file__).resolve().parent
LOCK = SOURCE.parents[1] / "requirements" / "lock-cpu-py311.txt"


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@functools.cache
def stack() -> dict[str, str | None]:
    """python and :data:`PACKAGES` -> installed version (None where absent)."""
    return {"python": platform.python_version(), **{p: _version(p) for p in PACKAGES}}


def stack_hash(versions: dict | None = None) -> str:
    """12 hex digits naming a stack: equal stacks, equal hash."""
    text = json.dumps(versions if versions is not None else stack(), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


#: What counts for ``dirty``: the paths whose changes can change a result.
CODE_PATHS = ("src", "pyproject.toml", "requirements", "config", "workflow", "Snakefile")


@functools.cache
def commit() -> dict:
    """``{"commit": sha, "dirty": bool}`` of the source tree (dirty: uncommitted changes under
    :data:`CODE_PATHS`), or ``"unknown"`` outside a git checkout. Read once per process: the CLI
    reads it first thing, so a long run records the commit it started from, not a later one."""
    def git(*args: str, cwd: Path = SOURCE) -> str:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                              timeout=10, check=True).stdout.strip()

    try:
        top = Path(git("rev-parse", "--show-toplevel"))
        sha = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHS, cwd=top)
    except (OSError, subprocess.SubprocessError):
        return {"commit": "unknown", "dirty": None}
    return {"commit": sha, "dirty": bool(dirty)}


@functools.cache
def cpu() -> dict:
    """CPU model, logical cores and the kernel-deciding flags present (Linux /proc/cpuinfo)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    if m := re.search(r"^model name\s*:\s*(.+)$", text, re.M):
        model = m.group(1).strip()
    if m := re.search(r"^flags\s*:\s*(.+)$", text, re.M):
        flags = set(m.group(1).split())
    return {"model": model, "machine": platform.machine(),
            "isa": [f for f in ISA_FLAGS if f in flags]}


def locked_versions(path: Path = LOCK) -> dict[str, str]:
    """Distribution name (normalized) -> version pinned by the lock file (empty without one)."""
    try:
        text = path.read_text()
    except OSError:
        return {}
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+) \\$", text, re.M)
    return {_normal(n): v for n, v in pins}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_mismatch(path: Path = LOCK) -> list[str]:
    """``"name installed X, lock Y"`` for each recorded package that differs from the lock."""
    pins = locked_versions(path)
    out = []
    for name, have in stack().items():
        want = pins.get(_normal(name))
        if want is not None and have != want:
            out.append(f"{name} {have or 'absent'} (lock {want})")
    return out


def record(**run: object) -> dict:
    """The provenance of a result produced now in this process; ``run`` adds run-specific fields
    (backend, executor, batch)."""
    from deepstock import __version__

    versions = stack()
    return {**commit(), "version": __version__, "stack": versions,
            "stack_hash": stack_hash(versions), "cpu": cpu(),
            "numerics": numerics.in_effect(),
            "lock": "matches" if not lock_mismatch() else "differs" if LOCK.exists() else "none",
            **run}
