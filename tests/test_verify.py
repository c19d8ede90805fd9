"""``deepstock verify``: a tuning cell re-executed under its recorded settings, row by row."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from deepstock.cli import main
from deepstock.journal import seal
from deepstock.problem.generators import generate_dataset


@pytest.fixture(scope="module")
def cell(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("verify")
    data = root / "s1.npz"
    generate_dataset("s1").save(data)
    out = root / "cell"
    rc = main(["tune", "s1", "--method", "ds", "--reg", "base", "--scale", "tiny", "--executor",
               "local", "--device", "cpu", "--num-samples", "3", "--data", str(data), "--out",
               str(out), "--quiet"])
    assert rc == 0
    return out, data


def _copy(cell: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "cell"
    shutil.copytree(cell, dst)
    return dst


def test_a_cell_verified_whole_is_identical_in_every_part(cell, capsys):
    out, _ = cell
    assert main(["verify", str(out)]) == 0  # the dataset is regenerated (paper-exact)
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split(": ")[1] for line in lines] == ["stage 1", "stage 2", "winner"]
    assert all(": identical over" in line for line in lines)


def test_a_changed_recorded_loss_is_reported_as_diverged_at_that_trial(cell, tmp_path, capsys):
    out = _copy(cell[0], tmp_path)
    lines = (out / "stage1.jsonl").read_text().splitlines()
    row = json.loads(lines[2])  # trial 2
    row["val_loss"] += 1e-3
    lines[2] = json.dumps(seal(row))  # a consistent record of another result
    (out / "stage1.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["verify", str(out), "--trials", "2", "--data", str(cell[1])]) == 1
    text = capsys.readouterr().out
    assert "stage 1: diverged at stage 1 trial 2: recorded" in text and "| rerun" in text


def test_a_tiny_loss_difference_is_within_tolerance_and_named(cell, tmp_path, capsys):
    out = _copy(cell[0], tmp_path)
    lines = (out / "stage1.jsonl").read_text().splitlines()
    row = json.loads(lines[1])
    row["test_loss"] *= 1 + 1e-12
    lines[1] = json.dumps(seal(row))
    (out / "stage1.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["verify", str(out), "--trials", "1"]) == 0
    assert "stage 1: within tolerance over 1 rows (largest relative difference 1.0" in \
        capsys.readouterr().out


@pytest.mark.parametrize("case", ["not-a-cell", "no-provenance", "wrong-data", "trials", "edited"])
def test_bad_verify_input_is_a_one_line_error(cell, tmp_path, capsys, case):
    out = _copy(cell[0], tmp_path)
    args = ["verify", str(out)]
    if case == "not-a-cell":
        args = ["verify", str(tmp_path)]
    elif case == "no-provenance":
        w = json.loads((out / "winner.json").read_text())
        del w["provenance"], w["fingerprint"]["stack_hash"]
        (out / "winner.json").write_text(json.dumps(w))
    elif case == "wrong-data":
        other = tmp_path / "s2.npz"
        generate_dataset("s2").save(other)
        args += ["--data", str(other)]
    elif case == "edited":
        lines = (out / "stage1.jsonl").read_text().splitlines()
        row = json.loads(lines[1])
        row["val_loss"] = 0.01  # edited by hand: the checksum no longer holds
        (out / "stage1.jsonl").write_text("\n".join([lines[0], json.dumps(row), *lines[2:]]) + "\n")
    else:
        args += ["--trials", "9"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    expected = {"not-a-cell": "is not a tuning cell", "no-provenance": "has no provenance",
                "wrong-data": "is not the cell's", "trials": "the cell has 3 stage-1 trials",
                "edited": "line 2 fails its checksum"}
    assert expected[case] in err


def test_every_row_stage_table_and_winner_of_a_cell_records_its_provenance(cell):
    import pandas as pd

    from deepstock import provenance

    out, _ = cell
    for journal in ("stage1.jsonl", "stage2.jsonl"):
        rows = [json.loads(x) for x in (out / journal).read_text().splitlines()[1:]]
        assert rows and all(r["provenance"]["stack_hash"] == provenance.stack_hash() for r in rows)
        assert all(r["provenance"]["executor"] == "local" for r in rows)
    for table in ("stage1.csv", "stage2.csv"):
        df = pd.read_csv(out / table)
        assert {"commit", "dirty", "stack_hash", "cpu"} <= set(df.columns)
        assert set(df["stack_hash"]) == {provenance.stack_hash()}
    w = json.loads((out / "winner.json").read_text())
    assert w["fingerprint"]["stack_hash"] == provenance.stack_hash()
    assert w["fingerprint"]["numerics"] == "pinned"
    assert [t["rows"] for t in w["trained_by"]] == [3 + 2]  # one commit, stack and CPU
    final = json.loads((out / "final" / "metrics.json").read_text())
    assert final["provenance"]["executor"] == "local" and final["provenance"]["batch"] == 1
