"""The worker side: coffea_wq_env_run and ensure_unpacked, without a worker (sandboxes by hand)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

import envtools
from tests.envtools.conftest import copy_runner

CLEAN_ENV = {"PATH": "/usr/bin:/bin"}
PROBE = "import sys, tinypkg; print(sys.prefix, tinypkg.VALUE)"


def make_sandbox(workspace: Path, name: str, tarball: Path, remote: str = "env.tar.gz") -> Path:
    sandbox = workspace / name
    sandbox.mkdir(exist_ok=True)
    os.link(tarball, sandbox / remote)  # the worker hard-links cached files into the sandbox
    copy_runner(sandbox)
    return sandbox


def run_in(sandbox: Path, *command: str, remote: str = "env.tar.gz", **kwargs) -> subprocess.Popen:
    return subprocess.Popen([f"./{envtools.RUNNER_NAME}", remote, *command], cwd=sandbox, env=CLEAN_ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def test_concurrent_tasks_unpack_once_and_run_inside(tarball: Path, tmp_path: Path, processes):
    sandboxes = [make_sandbox(tmp_path, f"t.{i}", tarball) for i in range(1, 5)]
    procs = [run_in(s, "python3", "-c", PROBE) for s in sandboxes]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0], outputs
    unpack_messages = [err for _, err in outputs if "unpacked env.tar.gz" in err]
    assert len(unpack_messages) == 1, outputs
    prefixes = {out.split()[0] for out, _ in outputs}
    assert len(prefixes) == 1
    env_dir = Path(prefixes.pop())
    assert env_dir.parent == tmp_path / "coffea-wq-envs"
    assert env_dir.name == envtools.unpack.unpack_key(tarball.parent / tarball.name).replace(
        tarball.name[: -len(".tar.gz")], "env")


def test_runner_sets_path_and_virtual_env(tarball: Path, tmp_path: Path):
    sandbox = make_sandbox(tmp_path, "t.1", tarball)
    out, err = run_in(sandbox, "sh", "-c", 'echo "$VIRTUAL_ENV"; command -v python3; '
                      '. "$VIRTUAL_ENV/bin/activate" && echo "activated $VIRTUAL_ENV"').communicate(timeout=120)
    env_dir, python3, activated = out.splitlines()
    assert python3 == f"{env_dir}/bin/python3"
    assert activated == f"activated {env_dir}"


@pytest.mark.parametrize("damage", ["truncated", "corrupted"])
def test_damaged_tarball_fails_clearly_and_leaves_nothing(tarball: Path, tmp_path: Path, damage: str):
    data = tarball.read_bytes()
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        middle = len(data) // 2
        data = data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 4096]) + data[middle + 4096:]
    bad = tmp_path / "bad" / "env_bad.tar.gz"
    bad.parent.mkdir()
    bad.write_bytes(data)
    sandbox = make_sandbox(tmp_path, "t.1", bad, remote="env_bad.tar.gz")
    proc = run_in(sandbox, "python3", "-c", "print('should not run')", remote="env_bad.tar.gz")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == envtools.CORRUPT_TARBALL_EXIT_CODE
    assert "env_bad.tar.gz" in err and "corrupt or truncated" in err
    assert out == ""
    leftovers = [p.name for p in (tmp_path / "coffea-wq-envs").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []
    with pytest.raises(envtools.CorruptTarballError, match="env_bad.tar.gz"):
        envtools.ensure_unpacked(bad, tmp_path / "coffea-wq-envs")
    leftovers = [p.name for p in (tmp_path / "coffea-wq-envs").iterdir() if not p.name.endswith(".lock")]
    assert leftovers == []
    # The next try, with a good tarball, starts clean and works.
    good = make_sandbox(tmp_path, "t.2", tarball)
    proc = run_in(good, "python3", "-c", PROBE)
    assert proc.communicate(timeout=120)[0].split()[1] and proc.returncode == 0


def test_ensure_unpacked_shares_the_runners_copy(tarball: Path, tmp_path: Path):
    sandbox = make_sandbox(tmp_path, "t.1", tarball, remote=tarball.name)
    proc = run_in(sandbox, "true", remote=tarball.name)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "unpacked" in err
    marker = next((tmp_path / "coffea-wq-envs").glob("*/.coffea-wq-ready"))
    stamp = marker.stat().st_mtime_ns
    env_dir = envtools.ensure_unpacked(tarball, tmp_path / "coffea-wq-envs")
    assert env_dir == marker.parent and marker.stat().st_mtime_ns == stamp
    out = subprocess.run([str(env_dir / "bin" / "python"), "-c", PROBE], env=envtools.activation_environ(env_dir, CLEAN_ENV),
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.split()[0] == str(env_dir)


def test_ensure_unpacked_alone_then_runner_reuses(tarball: Path, tmp_path: Path):
    env_dir = envtools.ensure_unpacked(tarball, tmp_path / "coffea-wq-envs")
    assert (env_dir / "bin" / "python").exists()
    sandbox = make_sandbox(tmp_path, "t.1", tarball, remote=tarball.name)
    proc = run_in(sandbox, "python3", "-c", PROBE, remote=tarball.name)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "unpacked" not in err
    assert out.split()[0] == str(env_dir)


def test_runner_usage_and_missing_tarball(tmp_path: Path):
    runner = copy_runner(tmp_path)
    usage = subprocess.run([str(runner)], capture_output=True, text=True, timeout=30)
    assert usage.returncode == 2 and "usage" in usage.stderr
    missing = subprocess.run([str(runner), "nope.tar.gz", "true"], capture_output=True, text=True, timeout=30,
                             cwd=tmp_path)
    assert missing.returncode == envtools.CORRUPT_TARBALL_EXIT_CODE and "nope.tar.gz" in missing.stderr


def test_runner_without_flock_uses_a_lock_directory(tarball: Path, tmp_path: Path):
    """Workers without util-linux's flock(1) still unpack once (mkdir is the lock)."""
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("sh", "tar", "gzip", "wc", "tr", "tail", "od", "basename", "dirname", "mkdir", "rm", "mv",
                 "sed", "date", "rmdir", "sleep", "cat", "true"):
        found = shutil.which(tool)
        if found:
            (tools / tool).symlink_to(found)
    sandboxes = [make_sandbox(tmp_path, f"t.{i}", tarball) for i in range(1, 4)]
    procs = [subprocess.Popen([f"./{envtools.RUNNER_NAME}", "env.tar.gz", "python3", "-c", PROBE], cwd=s,
                              env={"PATH": str(tools)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for s in sandboxes]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outputs
    assert sum("unpacked" in err for _, err in outputs) == 1


def test_python_unpack_without_tar_command_checks_crc(tarball: Path, tmp_path: Path):
    """The tarfile fallback (no tar on PATH) unpacks good tarballs and rejects corrupted ones."""
    from envtools.unpack import CorruptTarballError, _extract_with_tarfile

    good = tmp_path / "good"
    good.mkdir()
    _extract_with_tarfile(tarball, good)
    assert (good / "bin" / "python").exists()
    data = bytearray(tarball.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 4096] = bytes(b ^ 0xFF for b in data[middle:middle + 4096])
    bad = tmp_path / "env_bad.tar.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptTarballError, match="env_bad.tar.gz"):
        _extract_with_tarfile(bad, tmp_path / "bad")


def test_wrap_command_runs_shell_text_inside_the_environment(tarball: Path, tmp_path: Path):
    sandbox = make_sandbox(tmp_path, "t.1", tarball, remote=tarball.name)
    command = envtools.wrap_command("python3 -c 'import tinypkg; print(tinypkg.VALUE)' > out.txt && echo done",
                                    tarball.name)
    result = subprocess.run(command, shell=True, cwd=sandbox, env=CLEAN_ENV, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "done", result.stderr
    assert (sandbox / "out.txt").read_text().strip()
