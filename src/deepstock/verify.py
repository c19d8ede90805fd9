"""Re-execute a tuning cell under its recorded settings and compare it row by row.

``deepstock verify CELL_DIR [--trials n]`` reads the cell's ``winner.json`` and journals, checks
that they carry provenance (the cell fingerprint's ``stack_hash`` and numerics mode, each row's
commit and CPU), regenerates or reads its dataset (its SHA-256 must be the fingerprint's), plans
the same cell (scale, repetition, backend, batch k, device, train options; the packaged
hyper-parameters and search space must give the recorded fingerprint) and tunes it again in a
scratch folder — all of it, or its first n stage-1 trials. Then, in journal order:

- stage 1, trial by trial: configuration, seed and status must be equal, and the losses
  (validation, train, test) equal — *identical* — or within ``rtol`` relative — *within
  tolerance*; anything else is *diverged at trial i*, reported with both rows;
- stage 2 (full reruns), run by (configuration, seed), and the winner's reported test loss.

The verdict is one of ``identical``, ``within tolerance`` (with the largest relative difference)
or ``diverged``; where the rerun's stack or numerics differ from the recorded ones, it says so
first (bits are promised on the same stack, pinned numerics and an AVX2 CPU; docs/reproducibility.md).
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from deepstock.errors import DataError
from deepstock.journal import file_sha256

LOSSES = ("val_loss", "train_loss", "test_loss")
SAME = ("config", "seed", "status")


@dataclass
class Verdict:
    """The outcome of a comparison: ``identical``, ``within tolerance`` or ``diverged``."""

    status: str = "identical"
    max_rel: float = 0.0  # largest relative loss difference among rows that match otherwise
    where: str = ""  # "stage 1 trial 16", "stage 2 config ab12 seed 43", "winner"
    recorded: dict = field(default_factory=dict)
    rerun: dict = field(default_factory=dict)
    compared: int = 0  # rows compared
    notes: list[str] = field(default_factory=list)

    def line(self) -> str:
        if self.status == "diverged":
            return (f"diverged at {self.where}: recorded {_brief(self.recorded)} | rerun "
                    f"{_brief(self.rerun)}")
        extra = f" (largest relative difference {self.max_rel:.2e})" if self.max_rel else ""
        return f"{self.status} over {self.compared} rows{extra}"


def _brief(row: dict) -> str:
    keys = ("trial", "config", "seed", "status", *LOSSES)
    return json.dumps({k: row[k] for k in keys if k in row}, sort_keys=True)


def read_cell(cell: Path) -> dict:
    """The cell's ``winner.json``; one-line DataErrors for a folder that is not a complete cell
    or a cell written before provenance was recorded."""
    winner_path = cell / "winner.json"
    if not cell.is_dir() or not winner_path.is_file() or not (cell / "stage1.jsonl").is_file():
        raise DataError(f"{cell} is not a tuning cell (needs winner.json and stage1.jsonl, as "
                        "written by deepstock tune)")
    try:
        winner = json.loads(winner_path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"{winner_path}: not readable JSON ({exc})") from None
    fp = winner.get("fingerprint") if isinstance(winner, dict) else None
    if not isinstance(fp, dict) or "stack_hash" not in fp or "provenance" not in winner:
        raise DataError(f"{cell} has no provenance (written before deepstock recorded its "
                        "commit, stack and numerics): it cannot be verified; rerun it with "
                        "deepstock tune to get a verifiable cell")
    return winner


def journal_rows(path: Path) -> list[dict]:
    """A journal's rows (the header dropped), the latest of each key kept in order. A row that
    carries a checksum must pass it (a one-line DataError naming the line otherwise); rows of
    cells journaled before checksums existed are read as they are."""
    from deepstock.journal import row_checksum

    if not path.is_file():
        return []
    lines = [json.loads(x) for x in path.read_text().splitlines()[1:] if x.strip()]
    for number, row in enumerate(lines, start=2):
        if "checksum" in row and row.pop("checksum") != row_checksum(row):
            raise DataError(f"{path} line {number} fails its checksum (edited by hand or "
                            "corrupted): the recorded cell cannot be trusted")
    key = (lambda r: r["trial"]) if "trial" in (lines[0] if lines else {}) else (
        lambda r: (r["config_key"], r["seed"]))
    latest: dict = {}
    for r in lines:
        latest.pop(key(r), None)
        latest[key(r)] = r
    return list(latest.values())


def compare_rows(recorded: list[dict], rerun: list[dict], label, rtol: float) -> Verdict:
    """Row i against row i: :data:`SAME` equal and :data:`LOSSES` within ``rtol`` relative."""
    v = Verdict()
    for a, b in zip(recorded, rerun, strict=False):
        v.compared += 1
        rel = _rel(a, b)
        if any(a.get(k) != b.get(k) for k in SAME) or rel > rtol:
            return Verdict("diverged", rel if math.isfinite(rel) else 0.0, label(a), a, b,
                           v.compared)
        v.max_rel = max(v.max_rel, rel)
    if len(rerun) < len(recorded):
        return Verdict("diverged", v.max_rel, f"{label(recorded[len(rerun)])} (no rerun row)",
                       recorded[len(rerun)], {}, v.compared)
    v.status = "identical" if v.max_rel == 0 else "within tolerance"
    return v


def _rel(a: dict, b: dict) -> float:
    worst = 0.0
    for k in LOSSES:
        x, y = a.get(k), b.get(k)
        if x == y:
            continue
        if not isinstance(x, (int, float)) or not isinstance(y, (int, float)):
            return math.inf
        worst = max(worst, abs(x - y) / max(abs(x), abs(y), 1e-300))
    return worst


def dataset_for(winner: dict, data: str | None, tmp: Path) -> Path:
    """``data`` or the setting's regenerated paper-exact dataset; its SHA-256 must be the
    fingerprint's (a one-line DataError naming both otherwise)."""
    want = winner["fingerprint"]["dataset_sha256"]
    if data is None:
        from deepstock.problem.generators import generate_dataset

        path = tmp / f"{winner['setting']}.npz"
        generate_dataset(winner["setting"]).save(path)
    else:
        path = Path(data)
        if not path.is_file():
            raise DataError(f"--data {data}: no such file")
    have = file_sha256(path)
    if have != want:
        raise DataError(f"the dataset {'--data ' + str(data) if data else 'regenerated'} is not "
                        f"the cell's (SHA-256 {have[:8]} against {want[:8]}); pass the cell's "
                        "dataset with --data")
    return path


def options_of(winner: dict, trials: int | None):
    """The recorded cell's tuning options (local executor: it asks the same configurations as
    Ray, tested), with ``trials`` stage-1 trials when given."""
    from deepstock.tuning import TuneOptions

    fp, scale = winner["fingerprint"], winner["fingerprint"]["scale"]
    return TuneOptions(scale=scale["name"], repetition=fp["repetition"], device=fp["device"],
                       backend=fp["backend"], stage2_winner=winner["stage2_winner"],
                       train_options=dict(fp["train_options"]), quiet=True,
                       num_samples=trials or scale["num_samples"], batch=scale["batch"],
                       executor="local")


def plan_notes(recorded: dict, planned: dict) -> list[str]:
    """Refuse (one line) a recorded cell whose hyper-parameters or search space the packaged
    YAML no longer gives; name a stack or numerics that differ from the recorded ones."""
    differ = [k for k in ("hparams", "search_space", "train_options", "device", "method",
                          "backend", "reg", "setting") if recorded.get(k) != planned.get(k)]
    if differ:
        raise DataError(f"the cell was tuned with other {', '.join(differ)} than this deepstock "
                        "plans for it (a custom --hparams/--space file, or a changed default): "
                        "it cannot be re-executed as recorded")
    return [f"the rerun's {k} {planned.get(k)} differs from the recorded {recorded.get(k)}: "
            "bits may differ" for k in ("stack_hash", "numerics") if recorded.get(k) != planned.get(k)]


def verify_cell(cell: str | Path, data: str | None = None, trials: int | None = None,
                rtol: float = 1e-9) -> list[tuple[str, Verdict]]:
    """Re-execute ``cell`` (all of it, or its first ``trials`` stage-1 trials) and compare
    (module docstring); the verdicts of stage 1, and for a full rerun of stage 2 and the winner."""
    from deepstock.tuning import plan_cell, tune_cell

    cell = Path(cell)
    winner = read_cell(cell)
    recorded1 = sorted(journal_rows(cell / "stage1.jsonl"), key=lambda r: r["trial"])
    if trials is not None and not 1 <= trials <= len(recorded1):
        raise DataError(f"--trials {trials}: the cell has {len(recorded1)} stage-1 trials")
    with tempfile.TemporaryDirectory() as tmp:
        path = dataset_for(winner, data, Path(tmp))
        args = (winner["setting"], winner["method"], winner["reg"], path)
        opts = options_of(winner, trials)
        notes = plan_notes(winner["fingerprint"], plan_cell(*args, opts).fingerprint)
        rerun = tune_cell(*args, Path(tmp) / "cell", opts, stage1_only=trials is not None)
        out = Path(tmp) / "cell"
        rows1 = sorted(journal_rows(out / "stage1.jsonl"), key=lambda r: r["trial"])
        verdicts = [("stage 1", compare_rows(recorded1[: len(rows1) if trials else None], rows1,
                                             lambda r: f"stage 1 trial {r['trial']}", rtol))]
        if trials is None:
            verdicts += _stage2_verdicts(cell, out, winner, rerun, rtol)
    for _, v in verdicts:
        v.notes = notes
    return verdicts


def _stage2_verdicts(cell: Path, out: Path, winner: dict, rerun: dict,
                     rtol: float) -> list[tuple[str, Verdict]]:
    def key(r: dict) -> tuple:
        return (r["config_key"], r["seed"])

    rec = sorted(journal_rows(cell / "stage2.jsonl"), key=key)
    new = sorted(journal_rows(out / "stage2.jsonl"), key=key)
    label = lambda r: f"stage 2 config {r['config_key']} seed {r['seed']}"  # noqa: E731
    win = {k: winner[k] for k in (*LOSSES, "reported_seed")}
    won = {k: rerun[k] for k in (*LOSSES, "reported_seed")}
    w = compare_rows([{**win, "seed": win["reported_seed"]}],
                     [{**won, "seed": won["reported_seed"]}], lambda r: "the winner", rtol)
    return [("stage 2", compare_rows(rec, new, label, rtol)), ("winner", w)]
