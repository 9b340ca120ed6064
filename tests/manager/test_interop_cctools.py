"""Acceptance: the same Work Queue script gives the same results under CCTools' manager and ours.

``interop_script.py`` runs 200 shell tasks (inputs, cached inputs, buffers, outputs, directory
outputs, a missing output, a non-zero exit, a task killed by a signal) served by two real
``work_queue_worker``s; the JSON it prints must be identical under Debian's ``work_queue`` and under
``coffea_wq.work_queue``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.manager.helpers import start_real_worker
from tests.support import (
    SYSTEM_PYTHON,
    requires_cctools,
    requires_cctools_python,
    worker_argv,
)

SCRIPT = Path(__file__).with_name("interop_script.py")
TASKS = 200


def start_our_worker(processes, port: int, workdir: Path) -> None:
    processes.start(worker_argv("coffea-wq", port, workdir, cores=2, memory=1000, disk=2000, idle_timeout=30),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_script(processes, python: str, module: str, workdir: Path, tasks: int = TASKS,
               start_worker=start_real_worker) -> dict:
    workdir.mkdir()
    manager = processes.start(
        [python, SCRIPT, "--module", module, "--workdir", workdir, "--count", str(tasks), "--timeout", "150"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    first = manager.stdout.readline()
    assert first.startswith("PORT "), f"{module}: no port line, got {first!r}: {manager.stderr.read()}"
    port = int(first.split()[1])
    for n in range(2):
        start_worker(processes, port, workdir.parent / f"{workdir.name}-worker{n}")
    out, err = manager.communicate(timeout=200)
    assert manager.returncode == 0, f"{module} failed: {err[-2000:]}"
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
@requires_cctools
@requires_cctools_python
def test_same_results_as_the_cctools_manager(processes, tmp_path):
    ours = run_script(processes, sys.executable, "coffea_wq.work_queue", tmp_path / "ours")
    theirs = run_script(processes, SYSTEM_PYTHON, "work_queue", tmp_path / "cctools")
    assert theirs["tasks_done"] == TASKS + 1, "the reference run did not finish"
    assert ours["tasks_done"] == TASKS + 1
    assert sorted(ours["results"]) == sorted(theirs["results"])
    for tag, expected in theirs["results"].items():
        assert ours["results"][tag] == expected, tag
    # the mix really covers what the acceptance names
    kinds = {(r["result_str"], r["return_status"]) for r in ours["results"].values()}
    assert {("SUCCESS", 0), ("OUTPUT_MISS", 0), ("SUCCESS", 3), ("SUCCESS", 9), ("MAX_WALL_TIME", 9)} <= kinds
    assert any("/sub/" in name for r in ours["results"].values() for name in r["files"])


@pytest.mark.slow
@requires_cctools
def test_coffea_wq_workers_give_the_same_results_as_real_workers(processes, tmp_path):
    """The same mix through our manager, served once by real workers and once by coffea-wq workers."""
    real = run_script(processes, sys.executable, "coffea_wq.work_queue", tmp_path / "real", tasks=48)
    ours = run_script(processes, sys.executable, "coffea_wq.work_queue", tmp_path / "ours", tasks=48,
                      start_worker=start_our_worker)
    assert real["tasks_done"] == ours["tasks_done"] == 48 + 1
    for tag, expected in real["results"].items():
        assert ours["results"][tag] == expected, tag
