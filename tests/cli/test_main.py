"""The `coffea-wq` command: one subcommand per part, each reachable and documented."""

from __future__ import annotations

import subprocess

import pytest

from coffea_wq.cli.main import SUBCOMMANDS, main
from tests.support import coffea_wq_command


def test_help_lists_every_subcommand(capsys):
    assert main(["--help"]) == 0
    listed = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert f"  {name} " in listed


def test_unknown_subcommand_is_named_and_exits_2(capsys):
    assert main(["wroker"]) == 2
    assert "unknown subcommand 'wroker'" in capsys.readouterr().err


def test_no_subcommand_prints_usage_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: coffea-wq SUBCOMMAND" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_each_subcommand_has_its_own_help(name):
    done = subprocess.run(coffea_wq_command(name, "--help"), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"usage: coffea-wq {name}")
