"""Helpers shared by the tests: free loopback ports, bounded waits, process clean-up, CCTools."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"

REAL_WORKER = shutil.which("work_queue_worker")
REAL_STATUS = shutil.which("work_queue_status")
REAL_CATALOG = shutil.which("catalog_server")
REAL_MONITOR = shutil.which("resource_monitor")
REAL_FACTORY = shutil.which("work_queue_factory")
REAL_MAKEFLOW = shutil.which("makeflow")
# Debian's python3-workqueue is built for the system interpreter only.
SYSTEM_PYTHON = "/usr/bin/python3"
HAS_CCTOOLS_PY = Path("/usr/lib/python3/dist-packages/work_queue.py").exists() and Path(SYSTEM_PYTHON).exists()

requires_cctools = pytest.mark.skipif(
    REAL_WORKER is None,
    reason="Debian's coop-computing-tools is not installed (make test installs it with apt-get)",
)
requires_cctools_python = pytest.mark.skipif(
    not HAS_CCTOOLS_PY,
    reason="Debian's python3-workqueue is not installed (make test installs it with apt-get)",
)


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> object:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def stop_process(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """Terminate a process (and its process group when it leads one), then kill it."""
    if proc.poll() is not None:
        return
    try:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.terminate()
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        try:
            if os.getpgid(proc.pid) == proc.pid:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
        except ProcessLookupError:
            pass
        proc.wait(timeout=grace)


class Processes:
    """Starts processes for a test and stops every one of them at teardown."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def start(self, argv: list[str], **kwargs) -> subprocess.Popen:
        kwargs.setdefault("start_new_session", True)
        proc = subprocess.Popen([str(a) for a in argv], **kwargs)
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            stop_process(proc)


def coffea_wq_command(*args: str) -> list[str]:
    """The `coffea-wq` command of this checkout, run with the test's interpreter."""
    return [sys.executable, "-m", "coffea_wq", *args]

# Bytes and outputs captured from the Debian CCTools binaries (copied from the research notes, see its README).
SAMPLES = REPO / "tests" / "data" / "cctools-samples"
