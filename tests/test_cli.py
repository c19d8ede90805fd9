"""The `deepstock` command: every subcommand has --help, and start-up stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deepstock.cli import COMMANDS, main


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: deepstock " + command in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 1
    assert "COMMAND" in capsys.readouterr().out


def test_parser_does_not_import_torch_pandas_or_ray():
    """`deepstock data` and `--help` must not pay torch/pandas/ray start-up (Snakemake runs many)."""
    code = (
        "import sys; from deepstock.cli import build_parser; build_parser(); "
        "heavy = [m for m in ('torch', 'pandas', 'ray', 'stable_baselines3') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
