"""get_environment(): naming by commit, rebuild rules, editables as regular installs, relocatable result."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
import time
import warnings
from pathlib import Path

import pytest

import envtools
from envtools.naming import parse_tarball_name
from tests.envtools.conftest import Analysis


def build(analysis: Analysis, cache: Path, **kwargs) -> Path:
    kwargs.setdefault("analysis_dir", analysis.repo)
    return envtools.get_environment(cache, prefix=analysis.venv, **kwargs)


def member_text(tarball: Path, name: str) -> str:
    with tarfile.open(tarball) as tar:
        return tar.extractfile(name).read().decode()


def built_at(tarball: Path) -> str:
    return json.loads(member_text(tarball, ".coffea-wq-env.json"))["built_at"]


def test_same_commit_same_name_and_no_rebuild(clean_analysis: Analysis, shared_cache: Path):
    first = build(clean_analysis, shared_cache)
    head = clean_analysis.git("log", "-1", "--format=%H").strip()
    assert parse_tarball_name(first.name).commit == head[:12]
    stamp = built_at(first)
    started = time.monotonic()
    second = build(clean_analysis, shared_cache)
    elapsed = time.monotonic() - started
    assert second == first
    assert built_at(second) == stamp, "the cached tarball was rebuilt"
    assert elapsed < 2.0, f"cached get_environment() took {elapsed:.2f} s"


def test_committed_edit_gives_new_name_with_new_code(clean_analysis: Analysis, shared_cache: Path):
    before = build(clean_analysis, shared_cache)
    clean_analysis.set_value("v-committed", commit=True)
    after = build(clean_analysis, shared_cache)
    assert after.name != before.name
    code = member_text(after, "lib/python3.11/site-packages/tinypkg/__init__.py")
    assert '"v-committed"' in code
    # package data and metadata come along; the editable hooks do not
    with tarfile.open(after) as tar:
        names = set(tar.getnames())
    assert "lib/python3.11/site-packages/tinypkg/data.json" in names
    assert "lib/python3.11/site-packages/tinypkg-0.1.dist-info/METADATA" in names
    assert not any("__editable__" in n for n in names)
    assert not any(n.endswith("direct_url.json") and "tinypkg" in n for n in names)


def test_uncommitted_change_is_head_and_rebuilt_each_call(clean_analysis: Analysis, tmp_path: Path):
    clean_analysis.set_value("v-dirty", commit=False)
    with pytest.warns(envtools.UncommittedChangesWarning, match="uncommitted changes in .*__init__.py"):
        first = build(clean_analysis, tmp_path)
    assert first.name.endswith("_HEAD.tar.gz")
    assert '"v-dirty"' in member_text(first, "lib/python3.11/site-packages/tinypkg/__init__.py")
    stamp = built_at(first)
    with pytest.warns(envtools.UncommittedChangesWarning):
        second = build(clean_analysis, tmp_path)
    assert second == first and built_at(second) != stamp

    with pytest.raises(envtools.UncommittedChangesError, match="commit them first"):
        build(clean_analysis, tmp_path, unstaged="fail")
    with pytest.warns(envtools.UncommittedChangesWarning, match="reusing"):
        reused = build(clean_analysis, tmp_path, unstaged="reuse")
    assert built_at(reused) == built_at(second)


def test_change_outside_watched_paths_does_not_rebuild(clean_analysis: Analysis, shared_cache: Path):
    first = build(clean_analysis, shared_cache)
    stamp = built_at(first)
    notes = clean_analysis.repo / "notes.txt"
    notes.write_text("edited notes\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "rebuilding" warning either
        assert build(clean_analysis, shared_cache) == first
    clean_analysis.commit("edit notes")
    assert build(clean_analysis, shared_cache) == first
    assert built_at(first) == stamp
    # ...unless the analysis asks for notes.txt to be watched
    notes.write_text("edited again\n")
    with pytest.warns(envtools.UncommittedChangesWarning, match="notes.txt"):
        watched = build(clean_analysis, shared_cache, watch=["notes.txt"])
    assert watched.name.endswith("_HEAD.tar.gz")


def test_new_spec_gives_new_name(analysis: Analysis, tmp_path: Path):
    """Installing or upgrading a distribution changes the spec hash part of the name."""
    env = envtools.describe_environment(analysis.venv)
    fake = analysis.venv / "lib" / "python3.11" / "site-packages" / "extra_marker-1.0.dist-info"
    before = build(analysis, tmp_path, unstaged="reuse")
    fake.mkdir()
    try:
        after_env = envtools.describe_environment(analysis.venv)
        assert "extra-marker==1.0" in after_env.distributions and env.distributions != after_env.distributions
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            after = build(analysis, tmp_path, unstaged="reuse")
        assert parse_tarball_name(after.name).spec_hash != parse_tarball_name(before.name).spec_hash
    finally:
        fake.rmdir()


def test_returned_tarball_is_marked_in_use_and_defaults_untouched(clean_analysis: Analysis, shared_cache: Path):
    defaults = envtools.get_environment.__defaults__
    path = build(clean_analysis, shared_cache, watch=["notes.txt"])
    assert envtools.get_environment.__defaults__ == defaults
    assert envtools.is_in_use(path)
    envtools.release(path)
    assert not envtools.is_in_use(path)


def test_unpacked_elsewhere_runs_with_clean_environment(clean_analysis: Analysis, shared_cache: Path, tmp_path: Path):
    expected = clean_analysis.package_file.read_text().split('"')[1]
    tarball = build(clean_analysis, shared_cache)
    env_dir = envtools.ensure_unpacked(tarball, tmp_path / "elsewhere")
    hidden = clean_analysis.venv.with_name("venv-hidden")
    probe = (
        "import os, sys, tinypkg, json; "
        "maps = open('/proc/self/maps').read(); "
        "libs = sorted({l.split()[-1] for l in maps.splitlines() if 'libpython' in l}); "
        "print(json.dumps([tinypkg.VALUE, sys.prefix, os.__file__, libs]))"
    )
    os.rename(clean_analysis.venv, hidden)  # the source venv is gone while the copy runs
    try:
        out = subprocess.run([str(env_dir / "bin" / "python"), "-c", probe], env={"PATH": "/usr/bin:/bin"},
                             capture_output=True, text=True, timeout=60, cwd=tmp_path)
        script = subprocess.run([str(env_dir / "bin" / "tinypkg-hello")], env={"PATH": "/usr/bin:/bin"},
                                capture_output=True, text=True, timeout=60)
    finally:
        os.rename(hidden, clean_analysis.venv)
    assert out.returncode == 0, out.stderr
    value, prefix, os_file, libs = json.loads(out.stdout)
    assert value == expected and Path(prefix) == env_dir
    assert Path(os_file).is_relative_to(env_dir)
    assert all(Path(lib).is_relative_to(env_dir) for lib in libs), libs
    assert script.stdout.strip() == f"tinypkg {expected}", script.stderr


def test_not_a_venv_is_a_clear_error(tmp_path: Path):
    with pytest.raises(envtools.UnsupportedEnvironmentError, match="neither a venv"):
        envtools.get_environment(tmp_path / "envs", prefix=tmp_path)


def test_bad_arguments_are_named(analysis: Analysis, tmp_path: Path):
    with pytest.raises(ValueError, match=r"unstaged='sometimes'.*'rebuild', 'fail', 'reuse'"):
        build(analysis, tmp_path, unstaged="sometimes")
    with pytest.raises(ValueError, match=r"watched path '\.\./elsewhere' is outside the git repository"):
        build(analysis, tmp_path, watch=["../elsewhere"])
