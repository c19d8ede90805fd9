"""Provenance of a tuning cell: its fingerprint, its append-only journals and its lock.

A **fingerprint** is the canonical JSON of everything that determines a cell's trials: the
dataset's content hash (SHA-256 of the ``.npz`` bytes), setting, method, training backend,
regularization and repetition, the resolved fixed hyper-parameters, the search space, the scale's
budgets, the trial device and options, and the package version. Its ``digest`` is the first 16
hex digits of the SHA-256 of that JSON. :func:`describe_change` names the fields that differ
between two.

A **journal** (``stage1.jsonl``, ``stage2.jsonl``) is a file of JSON lines: the first is a header
``{"fingerprint": {...}}``, every other line one finished trial. Only newline-terminated lines
count: a crash mid-write leaves a torn last line, which :meth:`Journal.rows` cuts off before
anything is appended, so a torn line can never swallow the next row. A complete line that is not
a JSON object is a malformed journal: a one-line :class:`JournalError` that names file and line.

Every row is **sealed** (:func:`seal`): it carries a ``checksum``, the first 16 hex digits of the
SHA-256 of its canonical JSON without that field (:func:`row_checksum`). :meth:`Journal.rows`
returns only rows that pass it (without the field); a row edited by hand or corrupted is a
one-line :class:`JournalError` naming file and line, and so is a row without a checksum (a
journal of an older deepstock, which also lacks provenance: rerun with ``--restart``). Nothing
here is needed to discard a cell: a restart never parses a journal.

A write the storage refuses (disk full, quota, I/O error) while appending a row, cutting a torn
line or locking is a one-line :class:`deepstock.io.StorageError` naming the file; the rows that
reached the disk stay valid, so a rerun resumes from them.

A **lock** (:class:`CellLock`) is an exclusive ``fcntl.flock`` on ``<cell>/.lock``, held for the
whole cell and released by the kernel when the process ends, even on ``kill -9``; a second run on
the same folder fails at once with a one-line message naming the holder's pid.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from deepstock.errors import DeepstockError
from deepstock.io import os_error


class JournalError(DeepstockError):
    """A journal is malformed or belongs to other inputs than this run's."""


class CellBusy(DeepstockError):
    """Another process holds the cell's lock."""


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def digest(fingerprint: dict) -> str:
    """First 16 hex digits of the SHA-256 of the fingerprint's canonical JSON."""
    return hashlib.sha256(canonical_json(fingerprint).encode()).hexdigest()[:16]


def row_checksum(row: dict) -> str:
    """First 16 hex digits of the SHA-256 of the row's canonical JSON, ``checksum`` left out."""
    body = {k: v for k, v in row.items() if k != "checksum"}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()[:16]


def seal(row: dict) -> dict:
    """``row`` as a journal stores it: as JSON reads it back (numpy numbers as floats, tuples
    as lists), with its :func:`row_checksum` in ``checksum``."""
    body = {k: v for k, v in row.items() if k != "checksum"}
    plain = json.loads(json.dumps(body, sort_keys=True, default=float))
    return {**plain, "checksum": row_checksum(plain)}


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def dataset_provenance(path: str | os.PathLike) -> dict:
    """What a stored result records of its input: the dataset file, its SHA-256, our version."""
    from deepstock import __version__

    return {"data": str(Path(path).resolve()), "dataset_sha256": file_sha256(path),
            "version": __version__}


def describe_change(old: dict, new: dict, limit: int = 3) -> str:
    """``"num_samples 2 -> 5, dataset_sha256 1a2b3c4d -> 9f8e7d6c"``: the differing leaves."""
    diffs = _diff(old, new, "")
    shown = [f"{k} {_short(a)} -> {_short(b)}" for k, a, b in diffs[:limit]]
    more = f" (and {len(diffs) - limit} more)" if len(diffs) > limit else ""
    return ", ".join(shown) + more if shown else "nothing"


def _diff(old: Any, new: Any, key: str) -> list[tuple[str, Any, Any]]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in [*new, *(k for k in old if k not in new)]:  # the new fingerprint's order
            out += _diff(old.get(k, "<absent>"), new.get(k, "<absent>"),
                         f"{key}.{k}" if key else str(k))
        return out
    return [] if canonical_json(old) == canonical_json(new) else [(key, old, new)]


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else canonical_json(value)
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        return value[:8]  # a SHA-256
    return text if len(text) <= 40 else text[:37] + "..."


class Journal:
    """An append-only JSON-lines file of rows under a fingerprint header."""

    def __init__(self, path: Path, fingerprint: dict) -> None:
        self.path = Path(path)
        self.fingerprint = fingerprint

    def change(self) -> str | None:
        """None if the journal is absent or of this fingerprint, else what changed (one phrase)."""
        if not self.path.exists():
            return None
        lines = self._complete_lines()
        header = _parse(lines[0], self.path, 1) if lines else {}
        stored = header.get("fingerprint")
        if stored == self.fingerprint:
            return None
        if not isinstance(stored, dict):
            return "no fingerprint header (written by an older deepstock or by hand)"
        return describe_change(stored, self.fingerprint)

    def rows(self) -> list[dict]:
        """The finished rows, after creating the journal if absent and cutting a torn tail.

        The header must be this fingerprint (:meth:`change` is None): the caller decides first
        whether a changed journal is an error or a restart. Every row has passed its checksum
        (returned without it); one that fails or lacks it is a one-line JournalError.
        """
        if not self.path.exists():
            self._start()
            return []
        change = self.change()
        if change is not None:
            raise JournalError(f"{self.path} was produced by other inputs ({change}); rerun with "
                               "--restart to start the cell afresh")
        lines = self._complete_lines()
        return [_verified(_parse(line, self.path, i), self.path, i)
                for i, line in enumerate(lines[1:], start=2)]

    def append(self, row: dict) -> None:
        """Append ``row`` :func:`seal`-ed as one line, flushed to disk; a write the storage
        refuses is a one-line StorageError naming the journal (the rows before it stay valid)."""
        line = json.dumps(seal(row), sort_keys=True) + "\n"
        try:
            with open(self.path, "a") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise os_error("append to", self.path, exc) from None

    def _start(self) -> None:
        from deepstock.io import write_text

        write_text(self.path, canonical_json({"fingerprint": self.fingerprint}) + "\n")

    def _complete_lines(self) -> list[str]:
        """The newline-terminated lines; a torn tail is truncated away on disk."""
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise os_error("read", self.path, exc) from None
        end = data.rfind(b"\n") + 1
        if end < len(data):
            try:
                with open(self.path, "r+b") as fh:
                    fh.truncate(end)
                    os.fsync(fh.fileno())
            except OSError as exc:
                raise os_error("cut the torn last line of", self.path, exc) from None
        try:
            text = data[:end].decode()
        except UnicodeDecodeError:
            raise JournalError(f"{self.path} is not a text journal; remove it or rerun with "
                               "--restart") from None
        return text.splitlines()


def _parse(line: str, path: Path, number: int) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        row = None
    if not isinstance(row, dict):
        raise JournalError(f"{path} line {number} is not a journal row; remove it or rerun "
                           "with --restart")
    return row


def _verified(row: dict, path: Path, number: int) -> dict:
    """``row`` without its checksum, which it must carry and pass (else a one-line error)."""
    stored = row.pop("checksum", None)
    if stored is None:
        raise JournalError(f"{path} line {number} has no checksum (a journal of an older "
                           "deepstock, without provenance); rerun with --restart to start the "
                           "cell afresh")
    if stored != row_checksum(row):
        raise JournalError(f"{path} line {number} fails its checksum (edited by hand or "
                           "corrupted); delete that line to re-run its trial, or rerun with "
                           "--restart")
    return row


class CellLock:
    """Exclusive, non-blocking ``flock`` on ``<folder>/.lock`` for the life of a ``with`` block."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / ".lock"
        self._fd: int | None = None

    def __enter__(self) -> CellLock:
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise os_error("lock", self.path.parent, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise CellBusy(f"{self.path.parent} is being tuned by another process (pid "
                           f"{holder}); wait for it or stop it") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)  # releases the lock
            raise os_error("lock", self.path, exc) from None
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
