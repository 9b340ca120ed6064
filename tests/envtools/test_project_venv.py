"""The environment users pack: the project venv (coffea, awkward, uproot; coffea-wq editable)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import envtools


@pytest.mark.slow
def test_project_venv_runs_coffea_after_unpacking_elsewhere(tmp_path: Path, project_environment: Path):
    tarball = project_environment
    env_dir = envtools.ensure_unpacked(tarball, tmp_path / "worker" / "coffea-wq-envs")
    probe = ("import sys, coffea, coffea.processor, awkward, uproot, coffea_wq, envtools; "
             "print(sys.prefix); print(coffea_wq.__file__)")
    result = subprocess.run([str(env_dir / "bin" / "python"), "-c", probe], env={"PATH": "/usr/bin:/bin"},
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    prefix, coffea_wq_file = result.stdout.split()
    assert Path(prefix) == env_dir
    # coffea-wq (editable in the project venv) is a regular install inside the environment
    assert Path(coffea_wq_file).is_relative_to(env_dir)
    cli = subprocess.run([str(env_dir / "bin" / "coffea-wq"), "--help"], env={"PATH": "/usr/bin:/bin"},
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0 and "subcommands" in cli.stdout
