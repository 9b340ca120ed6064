"""Shared helpers for the CCTools-API tests: a queue with one worker of each kind, waits."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

import coffea_wq.work_queue as wq
from tests.support import LOOPBACK, requires_cctools, wait_until, worker_argv

# every test here runs against both workers; the real one is skipped where CCTools is missing
WORKER_KINDS = ["coffea-wq", pytest.param("cctools", marks=[requires_cctools, pytest.mark.cctools])]


def start_worker(kind: str, processes, port: int, workdir: Path, *, cores: int = 2, memory: int = 1000,
                 disk: int = 1000, gpus: int = 0) -> subprocess.Popen:
    """A worker of ``kind`` ("coffea-wq" or "cctools") offering exactly these resources."""
    argv = worker_argv(kind, port, workdir, cores=cores, memory=memory, disk=disk, gpus=gpus)
    log = open(workdir / "worker.log", "wb")  # noqa: SIM115 (the child keeps its own descriptor)
    with log:
        return processes.start(argv, stdout=log, stderr=subprocess.STDOUT)


def queue_with_worker(kind: str, processes, workdir: Path, **resources) -> wq.WorkQueue:
    """A loopback queue with one ready worker of ``kind``; the caller shuts it down."""
    q = wq.WorkQueue(port=0, host=LOOPBACK)
    start_worker(kind, processes, q.port, workdir, **resources)
    wait_until(lambda: q.stats.workers_connected >= 1 and q.workers_summary(), 60, f"the {kind} worker")
    return q


def wait_for(q: wq.WorkQueue, timeout: float = 60.0, tag: str | None = None) -> wq.Task:
    """The next finished task (with ``tag`` if given); fails the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = q.wait_for_tag(tag, 1) if tag is not None else q.wait(1)
        if task is not None:
            return task
    pytest.fail(f"no task{' tagged ' + tag if tag else ''} came back within {timeout} s")
