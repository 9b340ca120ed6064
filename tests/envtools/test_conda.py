"""The conda path: conda_pack driven on a prefix with conda-meta/ records, editables included.

conda cannot be installed here, so the test makes a conda-style prefix from parts that are real:
an unpacked envtools environment (a working Python), a ``conda-meta/python-<v>-0.json`` record
listing its files (what conda writes when it links a package), and the tiny package's editable
install files exactly as pip wrote them in the test venv. conda-pack then packs it for real, and
the runner unpacks it and runs conda-pack's own ``conda-unpack``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import warnings
from pathlib import Path

import pytest

import envtools
from envtools.source import EnvKind
from tests.envtools.conftest import Analysis, copy_runner


@pytest.fixture(scope="module")
def conda_prefix(analysis: Analysis, shared_cache: Path, tmp_path_factory) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tarball = envtools.get_environment(shared_cache, prefix=analysis.venv, analysis_dir=analysis.repo,
                                           unstaged="reuse")
    prefix = tmp_path_factory.mktemp("conda") / "ana"
    shutil.copytree(envtools.ensure_unpacked(tarball, prefix.parent / "unpacked"), prefix, symlinks=True)
    (prefix / ".coffea-wq-ready").unlink()
    (prefix / ".coffea-wq-env.json").unlink()
    site = prefix / "lib" / "python3.11" / "site-packages"
    shutil.rmtree(site / "tinypkg")
    shutil.rmtree(site / "tinypkg-0.1.dist-info")
    venv_site = analysis.venv / "lib" / "python3.11" / "site-packages"
    shutil.copytree(venv_site / "tinypkg-0.1.dist-info", site / "tinypkg-0.1.dist-info")
    for pth in venv_site.glob("__editable__*tinypkg*"):
        shutil.copy2(pth, site / pth.name)
    files = sorted(str(p.relative_to(prefix)) for p in prefix.rglob("*") if p.is_file() or p.is_symlink())
    version = json.loads(_meta(tarball))["python"]
    (prefix / "conda-meta").mkdir()
    record = {"name": "python", "version": version, "build": "0", "build_number": 0, "channel": "local",
              "url": f"file:///local/python-{version}-0.tar.bz2", "files": files, "link": None}
    (prefix / "conda-meta" / f"python-{version}-0.json").write_text(json.dumps(record))
    (prefix / "conda-meta" / "history").write_text("==> 2026-01-01 00:00:00 <==\n# cmd: conda create -p ana python\n")
    return prefix


def _meta(tarball: Path) -> str:
    with tarfile.open(tarball) as tar:
        return tar.extractfile(".coffea-wq-env.json").read().decode()


def test_conda_prefix_is_packed_with_conda_pack_and_runs_after_conda_unpack(conda_prefix: Path, analysis: Analysis,
                                                                              tmp_path: Path):
    env = envtools.describe_environment(conda_prefix)
    assert env.kind is EnvKind.CONDA and [e.name for e in env.editables] == ["tinypkg"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tarball = envtools.get_environment(tmp_path / "envs", prefix=conda_prefix, analysis_dir=analysis.repo,
                                           unstaged="reuse")
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    assert "bin/conda-unpack" in names  # written by conda-pack itself
    assert "lib/python3.11/site-packages/tinypkg/__init__.py" in names
    assert not any("__editable__" in n for n in names)
    assert json.loads(_meta(tarball))["layout"] == "conda-pack"

    sandbox = tmp_path / "ws" / "t.1"
    sandbox.mkdir(parents=True)
    os.link(tarball, sandbox / tarball.name)
    copy_runner(sandbox)
    probe = "import os, sys, tinypkg; print(sys.prefix, os.environ['CONDA_PREFIX'], tinypkg.VALUE)"
    result = subprocess.run([f"./{envtools.RUNNER_NAME}", tarball.name, "python3", "-c", probe], cwd=sandbox,
                            env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    prefix, conda_prefix_var, value = result.stdout.split()
    assert prefix == conda_prefix_var and Path(prefix).parent == tmp_path / "ws" / "coffea-wq-envs"
    assert value == analysis.package_file.read_text().split('"')[1]
