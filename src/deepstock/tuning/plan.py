"""The cell plan: options, validation, fingerprint, the cell folder (no compute)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from deepstock.errors import ConfigError, DataError
from deepstock.hparams import (
    Dimension,
    Scale,
    encode_choice,
    get_scale,
    read_mapping,
    resolve_hparams,
    search_space,
)
from deepstock.io import (
    os_error,
    remove_stale_temps,
)
from deepstock.journal import Journal, JournalError, digest, file_sha256
from deepstock.registry import EXECUTORS, get_method
from deepstock.training.backends import resolve_device
from deepstock.tuning.trials import CELL_FILES, RUN_FOLDER, SWAP_LEFTOVER, CellSpec


# ----------------------------------------------------------------------------- options
@dataclass
class TuneOptions:
    scale: str = "quick"
    repetition: int = 0
    device: str = "auto"
    backend: str | None = None  # the method's training backend (registry); None = its default
    address: str | None = None
    max_concurrent: int | None = None
    stage2_winner: str = "mean"
    space_path: str | None = None
    hparams_path: str | None = None
    train_options: dict = field(default_factory=dict)
    quiet: bool = False
    num_samples: int | None = None  # override of the scale's budget
    batch: int | None = None  # stage-1 configurations asked at a time (None: the scale's)
    executor: str = "auto"  # ray: Ray Tune Tuner; local: same TPE study in this process; auto
    cpus: int | None = None  # CPUs of a local Ray instance (None: all)
    restart: bool = False  # discard the cell's journals and runs, start afresh
    restart_if_changed: bool = False  # start afresh only if the fingerprint changed
    retry_failed: bool = False  # re-run trials whose journal row says failed


def resolve_executor(opts: TuneOptions, scale: Scale) -> str:
    """``auto`` -> ``ray`` with a cluster address, or where the scale asks for Ray and a cell can
    run several trials at once (more than one CPU, ``max_concurrent`` not 1); else ``local``."""
    if opts.executor not in EXECUTORS:
        raise ConfigError(f"executor must be one of {EXECUTORS}, got {opts.executor!r}")
    if opts.address and opts.executor == "local":
        raise ConfigError("address needs executor 'ray' (or 'auto'); the local executor runs "
                          "trials in this process")
    if opts.executor != "auto":
        return opts.executor
    if opts.address:
        return "ray"
    cpus = opts.cpus or os.cpu_count() or 1
    parallel = cpus > 1 and opts.max_concurrent != 1
    return "ray" if scale.executor == "ray" and parallel else "local"


def check_options(opts: TuneOptions) -> None:
    """Every numeric option in range before any file is touched."""
    for name in ("cpus", "max_concurrent", "num_samples", "batch"):
        value = getattr(opts, name)
        if value is not None and value < 1:
            raise ConfigError(f"{name.replace('_', '-')} must be >= 1, got {value}")
    if opts.repetition < 0:
        raise ConfigError(f"repetition must be >= 0, got {opts.repetition}")
    if opts.stage2_winner not in ("mean", "median"):
        raise ConfigError(f"stage2_winner must be 'mean' or 'median', got {opts.stage2_winner!r}")
    if opts.restart and opts.restart_if_changed:
        raise ConfigError("give either restart or restart-if-changed, not both")


def concurrency(opts: TuneOptions, n: int) -> int:
    if opts.max_concurrent:
        return max(1, min(opts.max_concurrent, n))
    import ray

    cpus = int(ray.available_resources().get("CPU", 1)) or 1
    return max(1, min(cpus, n))


# ----------------------------------------------------------------------------- the cell plan
@dataclass
class CellPlan:
    """A validated cell: what its trials need, its budgets and its fingerprint (no compute)."""

    spec: CellSpec
    scale: Scale
    opts: TuneOptions
    dims: dict[str, Dimension]
    num_samples: int
    fingerprint: dict
    batch: int = 1  # stage-1 configurations asked and trained at a time
    first_config: dict | None = None  # stage-1 trial 1 (encoded), when the scale enqueues one
    notes: list[str] = field(default_factory=list)  # where user values replace the scale's


def plan_cell(setting: str, method: str, reg: str, data_path: str | Path,
              opts: TuneOptions) -> CellPlan:
    """Validate every input of a cell and compute its fingerprint; writes nothing."""
    from deepstock import __version__, numerics, provenance
    from deepstock.problem.data import load_dataset

    check_options(opts)
    backend = get_method(method).backend(opts.backend).name
    opts = replace(opts, backend=backend)
    data_path = str(Path(data_path).resolve())
    # fail on a wrong or missing dataset before any compute; custom settings come from the file
    cell_setting = load_dataset(data_path, expect_setting=setting).setting
    scale = get_scale(opts.scale)
    opts = replace(opts, executor=resolve_executor(opts, scale))
    notes: list[str] = []
    base = resolve_hparams(method, cell_setting, reg, path=opts.hparams_path, scale=scale,
                           notes=notes)
    dims = search_space(method, cell_setting, reg, path=opts.space_path)
    fixed = dict(scale.budget(method))
    if opts.hparams_path is not None:
        fixed.update(read_mapping(opts.hparams_path))
    for key in sorted(set(dims) & set(fixed)):  # a value fixed by the scale or the user
        notes.append(f"{key} is fixed at {base[key]!r}: not searched")
        del dims[key]
    if not dims:
        raise ConfigError(f"empty search space for {method}/{setting}/{reg}")
    device = resolve_device(method, opts.device, backend)
    num_samples = opts.num_samples or scale.num_samples
    batch = opts.batch or scale.batch
    first = default_config(base, dims) if scale.enqueue_defaults else None
    fingerprint = {
        "setting": setting, "method": method, "backend": backend, "reg": reg,
        "repetition": opts.repetition, "dataset_sha256": file_sha256(data_path),
        "scale": {"name": scale.name, "num_samples": num_samples,
                  "n_startup_trials": scale.n_startup_trials, "top_k": scale.top_k,
                  "seeds": list(scale.seeds), "batch": batch, "first_config": first,
                  "significant_digits": scale.significant_digits},
        "hparams": base,
        "search_space": {k: [d.dist, list(d.args)] for k, d in sorted(dims.items())},
        "device": device, "train_options": dict(opts.train_options), "version": __version__,
        # the libraries' versions and the numerics (mode and its settings) decide bits: another
        # stack or flag set is another cell (each row records its commit and CPU, not this)
        "stack_hash": provenance.stack_hash(), "numerics": numerics.mode(),
        "numerics_settings": numerics.settings(numerics.mode()),
    }
    spec = CellSpec(setting=setting, method=method, reg=reg, data_path=data_path,
                    base_hparams=base, device=device, backend=backend,
                    train_options=dict(opts.train_options),
                    fingerprint=digest(fingerprint),
                    run={"executor": opts.executor, "batch": batch})
    return CellPlan(spec, scale, opts, dims, num_samples, fingerprint, batch, first, notes)


def default_config(base: dict, dims: dict[str, Dimension]) -> dict:
    """The cell's default values of the searched keys (encoded), those inside the search space."""
    return {k: encode_choice(base[k]) for k, d in sorted(dims.items()) if d.contains(base[k])}


def prepare_folder(out: Path, plan: CellPlan) -> tuple[Journal, Journal]:
    """The two journals of ``out``, after clearing the cell if asked (``restart``: the journals
    are not read, so an unreadable one is discarded too) or if its inputs changed. Every row of
    a kept journal has passed its checksum here, before any training."""
    journals = (Journal(out / "stage1.jsonl", plan.fingerprint),
                Journal(out / "stage2.jsonl", plan.fingerprint))
    if plan.opts.restart:
        clear_cell(out)
        return journals
    changes = [c for c in (j.change() for j in journals) if c is not None]
    if changes and plan.opts.restart_if_changed:
        clear_cell(out)
    elif changes:
        raise JournalError(f"{out} holds trials of other inputs ({changes[0]}); rerun with "
                           "--restart to start the cell afresh")
    for journal in journals:
        if journal.path.exists():
            journal.rows()  # a row edited by hand is refused now, not after stage 1
    return journals


def run_folders(out: Path) -> list[Path]:
    """The cell's run folders present: ``final`` and ``stage2/<config key>_s<seed>``."""
    found = [out / "final"] if os.path.lexists(out / "final") else []
    stage2 = out / "stage2"
    if stage2.is_dir() and not stage2.is_symlink():
        found += sorted(p for p in stage2.iterdir() if RUN_FOLDER.fullmatch(p.name))
    return found


def foreign_entry(out: Path) -> Path | None:
    """The first path deepstock did not write where the cell replaces folders whole: ``stage2``
    or a run folder that is a link or not a folder, or an entry of a run folder that is not a
    run file (:func:`deepstock.training.common.is_run_file`); None if there is none."""
    from deepstock.training.common import is_run_file

    stage2 = out / "stage2"
    if os.path.lexists(stage2) and (stage2.is_symlink() or not stage2.is_dir()):
        return stage2
    for folder in run_folders(out):
        if folder.is_symlink() or not folder.is_dir():
            return folder
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise os_error("read", folder, exc) from None
        for entry in entries:
            if not (entry.is_file(follow_symlinks=False) and is_run_file(entry.name)):
                return folder / entry.name
    return None


def check_run_folders(out: Path) -> None:
    """Refuse (one line naming the file), before any training, a cell whose ``final/`` or a
    stage-2 run folder holds a file deepstock did not write: the cell replaces those whole."""
    foreign = foreign_entry(out)
    if foreign is not None:
        raise DataError(f"cannot write {foreign.parent}: it holds {foreign.name!r}, which "
                        "deepstock did not write; it replaces only its own folders: move it away")


def clear_cell(out: Path) -> None:
    """Remove what the cell wrote (module docstring, "Folders") and nothing else, reading no
    journal; refuse (one line naming the file), removing nothing, if a folder it would replace
    holds a file deepstock did not write."""
    from deepstock.training.common import is_run_file

    foreign = foreign_entry(out)
    if foreign is not None:
        raise DataError(f"cannot restart {out}: {foreign} was not written by deepstock, and "
                        "--restart removes only the cell's own files; move it away first")
    for folder in run_folders(out):
        for entry in folder.iterdir():
            if entry.is_file() and not entry.is_symlink() and is_run_file(entry.name):
                entry.unlink()
        remove_empty(folder)
    for folder in (out, out / "stage2"):
        for entry in folder.glob(".*") if folder.is_dir() else []:
            if SWAP_LEFTOVER.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
    remove_empty(out / "stage2")
    for name in CELL_FILES:
        if (out / name).is_symlink() or (out / name).is_file():
            (out / name).unlink()
    remove_stale_temps(out, CELL_FILES)
    ray = out / ".ray"
    if ray.is_symlink():
        ray.unlink()
    elif ray.is_dir():
        shutil.rmtree(ray, ignore_errors=True)


def remove_empty(folder: Path) -> None:
    """Remove ``folder`` if it is an empty folder (not a link); else leave it."""
    if folder.is_dir() and not folder.is_symlink() and not any(folder.iterdir()):
        folder.rmdir()
