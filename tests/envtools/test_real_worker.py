"""The runner under Debian's real work_queue_worker and under coffea-wq's worker, both driven by a
real CCTools manager (/usr/bin/python3).

Tasks run with PATH=/usr/bin:/bin, where python3 is the system Python (no tinypkg): everything the
task imports comes from the shipped tarball, unpacked once per worker by the shipped runner.
"""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

import envtools
from tests.support import (
    REAL_WORKER,
    SYSTEM_PYTHON,
    coffea_wq_command,
    requires_cctools,
    requires_cctools_python,
    wait_until,
)

MANAGER = Path(__file__).with_name("wq_manager.py")
PROBE = "import sys, tinypkg; print('RESULT', tinypkg.VALUE, sys.prefix)"


def worker_argv(kind: str) -> list[str]:
    return [REAL_WORKER] if kind == "cctools" else coffea_wq_command("worker")


def run_manager_and_worker(tasks: list[dict], tmp_path: Path, processes, cores: int,
                           kind: str = "cctools") -> tuple[list[dict], Path]:
    spec = tmp_path / "tasks.json"
    spec.write_text(json.dumps(tasks))
    manager = processes.start([SYSTEM_PYTHON, MANAGER, spec, "120"], stdout=subprocess.PIPE, text=True,
                              env={"PATH": "/usr/bin:/bin"})
    port = int(manager.stdout.readline())
    workdir = tmp_path / "worker"
    workdir.mkdir()
    worker = processes.start([*worker_argv(kind), "--single-shot", "-t", "60", "--cores", str(cores), "--memory", "4000",
                              "--disk", "8000", "-s", workdir, "127.0.0.1", str(port)],
                             env={"PATH": "/usr/bin:/bin"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = json.loads(manager.stdout.readline() or "[]")
    manager.wait(timeout=30)
    worker.wait(timeout=60)
    return results, workdir


@requires_cctools
@requires_cctools_python
@pytest.mark.cctools
@pytest.mark.parametrize("kind", ["cctools", "coffea-wq"])
def test_four_tasks_on_one_worker_unpack_once(tarball: Path, tmp_path: Path, processes, kind: str):
    inputs = [[str(tarball), tarball.name], [str(envtools.runner_script_path()), envtools.RUNNER_NAME]]
    command = f"./{envtools.RUNNER_NAME} {tarball.name} python3 -c {shlex.quote(PROBE)}"
    results, workdir = run_manager_and_worker([{"command": command, "inputs": inputs}] * 4, tmp_path, processes, 4,
                                               kind)
    assert len(results) == 4, results
    assert all(r["return_status"] == 0 for r in results), results
    lines = [next(line for line in r["output"].splitlines() if line.startswith("RESULT")) for r in results]
    prefixes = {line.split()[2] for line in lines}
    assert len(prefixes) == 1
    prefix = Path(prefixes.pop())
    assert prefix.parent.name == "coffea-wq-envs" and prefix.parent.parent.name.startswith("worker-")
    assert sum("coffea_wq_env_run: unpacked" in r["output"] for r in results) == 1, results
    # The worker removed its workspace, the unpacked environment with it.
    wait_until(lambda: not prefix.exists(), 10, "the worker to remove its workspace")
    assert list(workdir.iterdir()) == []


@requires_cctools
@requires_cctools_python
@pytest.mark.cctools
@pytest.mark.parametrize("kind", ["cctools", "coffea-wq"])
def test_truncated_tarball_fails_the_task_with_a_clear_message(tarball: Path, tmp_path: Path, processes, kind: str):
    truncated = tmp_path / "env_truncated.tar.gz"
    truncated.write_bytes(tarball.read_bytes()[: tarball.stat().st_size // 3])
    inputs = [[str(truncated), truncated.name], [str(envtools.runner_script_path()), envtools.RUNNER_NAME]]
    command = f"./{envtools.RUNNER_NAME} {truncated.name} python3 -c {shlex.quote(PROBE)}"
    results, _ = run_manager_and_worker([{"command": command, "inputs": inputs}], tmp_path, processes, 1, kind)
    assert len(results) == 1
    assert results[0]["return_status"] == envtools.CORRUPT_TARBALL_EXIT_CODE
    assert "env_truncated.tar.gz" in results[0]["output"] and "corrupt or truncated" in results[0]["output"]
    assert "RESULT" not in results[0]["output"]
