"""The cache (keep-N cleaning, in-use protection, atomic writes) and `coffea-wq env build|list|clean`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import envtools
from envtools.naming import parse_tarball_name
from tests.envtools.conftest import Analysis
from tests.support import coffea_wq_command, wait_until


def five_tarballs(tarball: Path, cache: Path) -> list[Path]:
    """Five real tarballs, oldest first, one hour apart."""
    cache.mkdir(exist_ok=True)
    paths = []
    now = time.time()
    for index in range(5):
        path = cache / f"env_{index:010x}_{index:012x}.tar.gz"
        shutil.copyfile(tarball, path)
        os.utime(path, (now - (5 - index) * 3600, now - (5 - index) * 3600))
        paths.append(path)
    return paths


def run_cli(*args: str, module: bool = False) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "envtools", *args] if module else coffea_wq_command("env", *args)
    return subprocess.run(argv, capture_output=True, text=True, timeout=300)


def test_clean_keeps_three_newest_and_the_one_in_use(tarball: Path, tmp_path: Path, processes):
    cache = tmp_path / "envs"
    paths = five_tarballs(tarball, cache)
    holder = processes.start(["sleep", "120"])  # stands for a running manager shipping the oldest
    envtools.mark_in_use(paths[0], pid=holder.pid)

    dry = run_cli("clean", "--cache-dir", str(cache), "--keep", "3", "--dry-run")
    assert dry.returncode == 0 and f"would remove {paths[1].name}" in dry.stdout
    assert all(p.exists() for p in paths)

    result = run_cli("clean", "--cache-dir", str(cache), "--keep", "3")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in cache.glob("env_*")) == sorted(p.name for p in [paths[0], *paths[2:]])

    holder.kill()
    holder.wait(timeout=10)
    wait_until(lambda: not envtools.is_in_use(paths[0]), 10, "the in-use marker to go stale")
    result = run_cli("clean", "--cache-dir", str(cache), "--keep", "3", module=True)
    assert result.returncode == 0 and f"removed {paths[0].name}" in result.stdout
    assert sorted(p.name for p in cache.glob("env_*")) == sorted(p.name for p in paths[2:])
    assert list((cache / ".in-use").iterdir()) == []


def test_list_shows_name_size_age_commit(tarball: Path, tmp_path: Path):
    cache = tmp_path / "envs"
    paths = five_tarballs(tarball, cache)
    envtools.mark_in_use(paths[4])
    result = run_cli("list", "--cache-dir", str(cache))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "AGE", "COMMIT", "IN", "USE"]
    assert lines[1].split()[0] == paths[4].name  # newest first
    newest = lines[1].split()
    assert newest[1:3] == [f"{tarball.stat().st_size / 1e6:.1f}", "MB"]
    assert newest[3:5] == ["1", "h"] and newest[5] == parse_tarball_name(paths[4].name).commit
    assert lines[-1].split()[3:5] == ["5", "h"]
    # the marker belongs to this test process, which is alive: shown in use
    assert newest[-1] == "yes"
    envtools.release(paths[4])
    assert run_cli("list", "--cache-dir", str(tmp_path / "none")).stdout.startswith("no environments in")


def test_cli_build_dry_run_then_build_and_reuse(analysis: Analysis, tmp_path: Path):
    cache = tmp_path / "envs"
    common = ["--cache-dir", str(cache), "--prefix", str(analysis.venv), "--unstaged", "reuse"]
    planned = run_cli("build", "--dry-run", *common)
    assert planned.returncode == 0, planned.stderr
    assert not cache.exists()
    built = run_cli("build", *common)
    assert built.returncode == 0, built.stderr
    path = Path(built.stdout.strip())
    assert path.exists() and path.parent == cache.resolve()
    assert path.name == Path(planned.stdout.strip()).name
    stamp = path.stat().st_mtime_ns
    again = run_cli("build", *common, module=True)
    assert Path(again.stdout.strip()) == path and path.stat().st_mtime_ns == stamp


def test_cli_errors_name_the_culprit(tmp_path: Path):
    result = run_cli("build", "--cache-dir", str(tmp_path / "envs"), "--prefix", str(tmp_path))
    assert result.returncode == 1
    assert str(tmp_path) in result.stderr and "neither a venv" in result.stderr
    assert "Traceback" not in result.stderr


def test_concurrent_builds_never_expose_a_partial_tarball(analysis: Analysis, tmp_path: Path):
    cache = tmp_path / "envs"
    argv = [sys.executable, "-m", "envtools", "build", "--cache-dir", str(cache), "--prefix", str(analysis.venv),
            "--unstaged", "reuse"]
    planned = Path(subprocess.run([*argv, "--dry-run"], capture_output=True, text=True, timeout=60).stdout.strip())
    builders = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    sizes_seen = set()
    while any(b.poll() is None for b in builders):
        if planned.exists():
            sizes_seen.add(planned.stat().st_size)
        time.sleep(0.01)
    outputs = [b.communicate(timeout=60) for b in builders]
    assert [b.returncode for b in builders] == [0, 0], outputs
    assert {Path(out.strip()) for out, _ in outputs} == {planned}
    assert sizes_seen <= {planned.stat().st_size}, "a reader saw a half-written tarball"
    assert subprocess.run(["gzip", "-t", str(planned)], timeout=120).returncode == 0
    assert list(cache.glob(".tmp-*")) == []
