"""Memory bounds, checked before anything is allocated: datasets, trainings, the AR(1) DP.

Each bound is a number of GiB (2**30 bytes) from an environment variable, 8 by default:

- ``DEEPSTOCK_MAX_DATASET_GB``: a dataset's stored arrays (generation, loading);
- ``DEEPSTOCK_MAX_TRAIN_GB``: one training's networks, optimizer state and buffers;
- ``DEEPSTOCK_MAX_DP_GB``: the AR(1) DP's grids.

A request over its bound is a one-line :class:`~deepstock.errors.ConfigError` that says how much
memory it would need, the limit, and which variable raises it.
"""

from __future__ import annotations

import math
import os

from deepstock.errors import ConfigError

DEFAULT_GIB = 8.0
DATASET_ENV = "DEEPSTOCK_MAX_DATASET_GB"
TRAIN_ENV = "DEEPSTOCK_MAX_TRAIN_GB"
DP_ENV = "DEEPSTOCK_MAX_DP_GB"


def limit_bytes(env: str, default_gib: float = DEFAULT_GIB) -> int:
    """The bound in bytes: ``$env`` GiB if set, else ``default_gib``."""
    raw = os.environ.get(env, "").strip()
    try:
        gib = float(raw) if raw else default_gib
    except ValueError:
        gib = math.nan
    if not (math.isfinite(gib) and gib > 0):
        raise ConfigError(f"{env}={raw!r} must be a positive number of GiB")
    return int(gib * 2**30)


def format_bytes(nbytes: float) -> str:
    """``7.5 TiB``-style size with binary units (any number, however large)."""
    nbytes = int(nbytes)
    units = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    if nbytes >= 2**80:
        return f"more than 2^{nbytes.bit_length() - 1} B"
    k = 0
    while k + 1 < len(units) and nbytes >= 1024 ** (k + 1):
        k += 1
    return f"{nbytes} B" if k == 0 else f"{nbytes / 1024**k:.1f} {units[k]}"


def check_bytes(need: float, what: str, env: str, hint: str = "", content: str = "") -> None:
    """ConfigError if ``need`` bytes (of ``content``) exceed the bound of ``env``.

    ``what`` names the request, ``hint`` the option that shrinks it.
    """
    limit = limit_bytes(env)
    if need > limit:
        of = f" for {content}" if content else ""
        advice = f"{hint}, or set {env}" if hint else f"set {env} to raise it"
        raise ConfigError(f"{what} would need {format_bytes(need)}{of}; the limit is "
                          f"{format_bytes(limit)} ({advice})")
