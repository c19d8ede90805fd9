"""Writes and reads of result files: every file deepstock writes goes through :func:`write_bytes`.

Guarantees of :func:`write_bytes` (and of the JSON, CSV and text helpers built on it):

- the target is a missing path or a regular file. Anything else there (a symbolic link, a
  folder, a device, a FIFO, a socket) is refused with a one-line :class:`DataError` before
  anything is written, and is left untouched; a link is never followed;
- missing parent folders are created; a parent that is a file, or a folder the process may not
  write to (as ``os.access`` reports it: for root, only a read-only mount), is a one-line
  :class:`DataError`;
- the bytes go to a temporary file in the target's folder, are flushed to disk and renamed over
  the target, so a reader sees the old file or the new one, never part of one; on any failure
  the temporary file is removed and the old file stays as it was.

:func:`write_folder` replaces a whole folder in one step under the same rules (a run folder of
:func:`deepstock.training.save_run`). Readers (:func:`read_json`, :func:`read_yaml`) turn a
missing, unreadable or unparsable file into a one-line error naming it.

A write the storage refuses — no space left on the device (``ENOSPC``), a disk quota
(``EDQUOT``), an I/O error (``EIO``) — is a :class:`StorageError` (a :class:`DataError`) whose one
line names the path and the cause ("No space left on device"): the machine failed, not the input
or a training, so callers do not record it as a result (:func:`os_error`). A process killed
between writing a temporary file and renaming it leaves ``.{name}.*.tmp`` beside the target;
:func:`remove_stale_temps` removes those of given names (for a folder whose writers are
excluded by a lock).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from deepstock.errors import ConfigError, DataError

_UMASK = os.umask(0)
os.umask(_UMASK)

#: errno values that mean the storage, not the input, failed: disk full, quota, I/O error
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO})


class StorageError(DataError):
    """The storage failed under a read or write (disk full, quota, I/O error): not the input's
    or a training's fault; free space or fix the device and rerun."""


def os_error(action: str, path: str | os.PathLike, exc: OSError) -> DataError:
    """The one-line error ``"cannot {action} {path}: {the system's message}"`` for ``exc``
    (e.g. "No space left on device"): a :class:`StorageError` for the :data:`STORAGE_ERRNOS`,
    else a :class:`DataError`."""
    reason = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc))
    kind = StorageError if exc.errno in STORAGE_ERRNOS else DataError
    return kind(f"cannot {action} {path}: {reason}")


def remove_stale_temps(folder: str | os.PathLike, names: tuple[str, ...]) -> list[Path]:
    """Remove the temporary files :func:`write_bytes` leaves beside ``folder/<name>`` for each of
    ``names`` when its process is killed (``.{name}.*.tmp``, regular files only); the removed paths.

    Only for a folder whose writers of these names are excluded meanwhile (a tuning cell's lock):
    a temporary file of a live writer would be removed under it.
    """
    removed = []
    for name in names:
        for entry in Path(folder).glob(f"{glob.escape(f'.{name}.')}*.tmp"):
            if entry.is_file() and not entry.is_symlink():
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
                    removed.append(entry)
    return removed


_KINDS = (
    (stat.S_ISREG, "a regular file"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


def file_kind(mode: int) -> str:
    """'a regular file', 'a folder', 'a character device', ... for an ``st_mode``."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "an unknown kind of file"


def _lstat_target(path: Path) -> os.stat_result | None:
    """``lstat`` of a write target: None if missing; DataError if a link or unreadable."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise DataError(f"cannot write {path}: {exc.strerror or exc}") from None
    if stat.S_ISLNK(st.st_mode):
        raise DataError(
            f"cannot write {path}: it is a symbolic link; deepstock does not write through links"
        )
    return st


def check_target(path: Path) -> bool:
    """True if ``path`` is a regular file, False if missing; DataError for anything else.

    Uses ``lstat``: a symbolic link is refused, never followed.
    """
    st = _lstat_target(path)
    if st is None:
        return False  # a parent that is a file is reported by ensure_folder
    if not stat.S_ISREG(st.st_mode):
        raise DataError(f"cannot write {path}: it is {file_kind(st.st_mode)}, not a regular file")
    return True


def ensure_folder(folder: Path, target: Path | None = None) -> None:
    """Create ``folder`` and its parents if missing; DataError if impossible or not writable.

    ``target`` (default ``folder``) is the path named in the error.
    """
    target = folder if target is None else target
    ancestor = folder
    while ancestor != ancestor.parent and not os.path.lexists(ancestor):
        ancestor = ancestor.parent
    if os.path.lexists(ancestor) and not ancestor.is_dir():
        raise DataError(f"cannot write {target}: {ancestor} is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot write {target}: cannot create {folder}: "
                        f"{exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(f"cannot write {target}: the folder {folder} is not writable")


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring for what is refused)."""
    path = Path(path)
    check_target(path)
    ensure_folder(path.parent, path)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise os_error("write", path, exc) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            os.fchmod(fh.fileno(), 0o666 & ~_UMASK)  # mkstemp creates 0600
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        check_target(path)  # nothing may have appeared there meanwhile
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise os_error("write", path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | os.PathLike, text: str) -> Path:
    write_bytes(Path(path), text.encode())
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_default) + "\n")


def _read_text(path: Path, kind: str, error: type) -> str:
    """A text file's content; missing or unreadable is a one-line ``error`` naming it."""
    if not path.is_file():
        raise error(f"{kind} not found: {path}")
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; missing, unreadable or invalid JSON is a one-line DataError naming it."""
    path = Path(path)
    text = _read_text(path, "file", DataError)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg}, line {exc.lineno})") from None


def write_csv(path: str | os.PathLike, frame) -> Path:
    """Write a pandas DataFrame as CSV atomically."""
    return write_text(path, frame.to_csv(index=False))


def _default(o: Any):
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def read_yaml(path: str | os.PathLike, *, kind: str = "file", error: type = ConfigError) -> Any:
    """Parse a YAML file; a missing file or a syntax error is a one-line ``error`` naming it."""
    import yaml

    path = Path(path)
    text = _read_text(path, kind, error)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{path}: invalid YAML ({str(exc).splitlines()[0]})") from None
    except RecursionError:
        raise error(f"{path}: invalid YAML (nested too deeply)") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise error(f"{path}: invalid YAML ({exc})") from None


# ----------------------------------------------------------------------------- folders
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def write_folder(path: str | os.PathLike, fill: Callable[[Path], None],
                 owned: Callable[[str], bool] = lambda name: True) -> Path:
    """Replace the folder ``path`` in one step by what ``fill(tmp)`` writes into ``tmp``.

    ``tmp`` is a fresh hidden sibling ``.{name}.tmp-{pid}-*``; ``fill`` writes its files with
    :func:`write_bytes` (flushed to disk). Once ``fill`` returns, ``tmp`` is swapped with ``path``
    (one atomic exchange where the system has it, else old aside, new in, old removed). Until
    then ``path`` keeps its old content; if ``fill`` or the swap fails, ``tmp`` is removed and
    ``path`` is as it was. Leftovers of a killed process are removed first (or, if ``path`` went
    missing mid-swap, its old content is put back).

    Refused with a one-line DataError: ``path`` is a symbolic link or not a folder, holds an
    entry for which ``owned(name)`` is false (deepstock replaces only its own folders), or
    contains the working directory.
    """
    path = Path(os.path.abspath(path))
    check_folder_target(path, owned)
    ensure_folder(path.parent, path)
    _clean_leftovers(path)
    try:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-{os.getpid()}-"))
        os.chmod(tmp, 0o777 & ~_UMASK)  # mkdtemp creates 0700
    except OSError as exc:
        raise os_error("write", path, exc) from None
    try:
        fill(tmp)
        _fsync_folder(tmp)
        _swap_in(tmp, path)
        _fsync_folder(path.parent)
    except OSError as exc:
        raise os_error("write", path, exc) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # after an exchange: the old folder
    return path


def check_folder_target(path: Path, owned: Callable[[str], bool]) -> None:
    """DataError unless :func:`write_folder` may replace ``path`` (see there); touches nothing."""
    try:
        cwd = Path.cwd()
    except OSError:
        cwd = None
    if cwd is not None and (path == cwd or path in cwd.parents):
        raise DataError(f"cannot write {path}: it contains the working directory")
    st = _lstat_target(path)
    if st is None:
        return
    if not stat.S_ISDIR(st.st_mode):
        raise DataError(f"cannot write {path}: it is {file_kind(st.st_mode)}, not a folder")
    try:
        foreign = sorted(e.name for e in os.scandir(path)
                         if not (e.is_file(follow_symlinks=False) and owned(e.name)))
    except OSError as exc:
        raise DataError(f"cannot write {path}: {exc.strerror or exc}") from None
    if foreign:
        raise DataError(f"cannot write {path}: the folder holds {foreign[0]!r}, which deepstock "
                        f"did not write; it replaces only its own folders")


def _leftovers(path: Path) -> list[tuple[Path, str, int]]:
    """(entry, 'tmp' | 'old', pid) of the hidden siblings of ``path`` a swap leaves behind."""
    out = []
    for kind in ("tmp", "old"):
        prefix = f".{path.name}.{kind}-"
        for entry in path.parent.glob(f"{glob.escape(prefix)}*"):
            pid = entry.name[len(prefix):].partition("-")[0]
            if pid.isdigit() and entry.is_dir() and not entry.is_symlink():
                out.append((entry, kind, int(pid)))
    return out


def _clean_leftovers(path: Path) -> None:
    """Remove the swap leftovers of processes that no longer run; restore a lost old folder."""
    for entry, kind, pid in _leftovers(path):
        if _alive(pid):
            continue
        if kind == "old" and not os.path.lexists(path):
            with contextlib.suppress(OSError):  # left in place if it cannot be put back
                os.rename(entry, path)
        else:
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def _swap_in(new: Path, path: Path) -> None:
    """Put ``new`` at ``path``; afterwards ``new`` is gone or holds the old folder."""
    if not os.path.lexists(path):
        os.rename(new, path)
    elif not _exchange(new, path):
        old = new.with_name(f".{path.name}.old-{new.name[len(path.name) + 6:]}")
        os.rename(path, old)
        try:
            os.rename(new, path)
        except BaseException:
            os.rename(old, path)
            raise
        shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False if unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    fn = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if fn is None:
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _fsync_folder(path: Path) -> None:
    """Flush a folder's entries to disk (best effort: some file systems cannot)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a folder
    finally:
        os.close(fd)
