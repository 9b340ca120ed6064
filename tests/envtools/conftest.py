"""Fixtures for envtools tests: a real git repository with a real venv and a real editable package.

The venv is small (pip, setuptools and one editable package) so packing it takes about a second;
it is built once per session because ``pip install -e`` takes a few seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import cannot_run_here

PACKAGE_INIT = 'VALUE = "v1"\n\n\ndef main():\n    print("tinypkg", VALUE)\n'
PYPROJECT = """[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "tinypkg"
version = "0.1"

[project.scripts]
tinypkg-hello = "tinypkg:main"
"""


@dataclass
class Analysis:
    """A git repository holding the analysis (notes.txt) and an editable package (pkg/src/tinypkg)."""

    repo: Path
    venv: Path

    @property
    def package_file(self) -> Path:
        return self.repo / "pkg" / "src" / "tinypkg" / "__init__.py"

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    def git(self, *args: str) -> str:
        return subprocess.run(["git", "-C", str(self.repo), *args], check=True, capture_output=True,
                              text=True).stdout

    def commit(self, message: str) -> None:
        self.git("add", "-A")
        self.git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "-m", message)

    def set_value(self, value: str, commit: bool) -> None:
        self.package_file.write_text(PACKAGE_INIT.replace('"v1"', f'"{value}"'))
        if commit:
            self.commit(f"tinypkg value {value}")


def _base_python() -> str:
    """The interpreter the project venv was made from (a venv of a venv is still a venv of it)."""
    return getattr(sys, "_base_executable", sys.executable)


@pytest.fixture(scope="session")
def analysis(tmp_path_factory) -> Analysis:
    root = tmp_path_factory.mktemp("envtools-analysis")
    repo = root / "analysis"
    (repo / "pkg" / "src" / "tinypkg").mkdir(parents=True)
    (repo / "pkg" / "pyproject.toml").write_text(PYPROJECT)
    (repo / "pkg" / "src" / "tinypkg" / "__init__.py").write_text(PACKAGE_INIT)
    (repo / "pkg" / "src" / "tinypkg" / "data.json").write_text('{"packaged": true}\n')
    (repo / "notes.txt").write_text("analysis notes\n")
    (repo / ".gitignore").write_text("*.egg-info/\nbuild/\nenvs/\n")
    analysis = Analysis(repo, root / "venv")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    analysis.commit("initial")
    subprocess.run([_base_python(), "-m", "venv", str(analysis.venv)], check=True)
    install = subprocess.run([str(analysis.python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                              "-e", str(repo / "pkg")], capture_output=True, text=True, timeout=300)
    if install.returncode != 0:
        # pip builds it in an isolated environment, with setuptools and wheel from the package index that
        # make venv installed from: without an index (offline) nothing here can run
        cannot_run_here(f"pip cannot install an editable package here (setuptools and wheel come from the "
                        f"package index): {install.stderr[-500:]}")
    return analysis


@pytest.fixture
def clean_analysis(analysis: Analysis) -> Analysis:
    """The analysis with every tracked file as committed, before and after the test."""
    analysis.git("checkout", "--", ".")
    yield analysis
    analysis.git("checkout", "--", ".")


@pytest.fixture(scope="session")
def project_environment(tmp_path_factory) -> Path:
    """The project venv (coffea, awkward, uproot; coffea-wq editable) packed ONCE per session (~20-40 s)."""
    import envtools
    from tests.support import REPO

    cache = tmp_path_factory.mktemp("project-env-cache")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a working checkout may have uncommitted edits
        return envtools.get_environment(cache, analysis_dir=REPO, prefix=sys.prefix, compress_level=1)


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """A cache directory shared by tests, so a tarball for one state of the analysis is built once."""
    return tmp_path_factory.mktemp("envtools-cache")


@pytest.fixture(scope="module")
def tarball(analysis: Analysis, shared_cache: Path) -> Path:
    """The analysis venv packed, unstaged edits reused (a module's tests share it)."""
    import envtools

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return envtools.get_environment(shared_cache, prefix=analysis.venv, analysis_dir=analysis.repo,
                                        unstaged="reuse")


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A directory laid out like a worker's workspace: ``t.1/`` is the task sandbox."""
    (tmp_path / "t.1").mkdir()
    return tmp_path


def copy_runner(sandbox: Path) -> Path:
    import envtools

    runner = sandbox / envtools.RUNNER_NAME
    shutil.copy2(envtools.runner_script_path(), runner)
    return runner
