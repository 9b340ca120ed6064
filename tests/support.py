"""Helpers shared by the tests: free loopback ports, bounded waits, process clean-up, CCTools."""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

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

# `make test` (what CI runs) installs every Debian package the tests drive, then sets this: there a test
# that would skip for want of one fails instead, so no interoperability test passes unrun.
REQUIRE_SYSTEM_PACKAGES = os.environ.get("COFFEA_WQ_REQUIRE_SYSTEM_PACKAGES") == "1"
# Custom mark: a test that needs a missing package, under make test (tests/conftest.py fails it).
NOT_INSTALLED_MARK = "not_installed"


@functools.cache
def makefile_system_packages() -> set[str]:
    """The Debian packages ``make test`` installs (the Makefile's SYSTEM_PACKAGES)."""
    text = (REPO / "Makefile").read_text()
    match = re.search(r"^SYSTEM_PACKAGES :=((?:.*\\\n)*.*)$", text, re.MULTILINE)
    assert match, "the Makefile has no SYSTEM_PACKAGES line"
    return set(match.group(1).replace("\\\n", " ").split())


def not_installed(what: str, package: str) -> str:
    """Why a test cannot run without ``package``; the package must be one that ``make test`` installs."""
    if package not in makefile_system_packages():
        raise ValueError(f"{package!r} is not in the Makefile's SYSTEM_PACKAGES: make test would not install it")
    return f"{what} is not installed (Debian's {package}: make test installs it)"


def needs_system(missing: bool, what: str, package: str) -> pytest.MarkDecorator:
    """Skip the test when ``missing``, outside ``make test``; under it, fail the test."""
    reason = not_installed(what, package)
    if missing and REQUIRE_SYSTEM_PACKAGES:
        return getattr(pytest.mark, NOT_INSTALLED_MARK)(reason)
    return pytest.mark.skipif(missing, reason=reason)


def cannot_run_here(reason: str) -> NoReturn:
    """Skip the test outside ``make test``; under it, where everything the tests need is set up, fail it."""
    if REQUIRE_SYSTEM_PACKAGES:
        pytest.fail(f"make test should have set this up: {reason}", pytrace=False)
    pytest.skip(reason)


def skip_not_installed(what: str, package: str) -> NoReturn:
    """From inside a test or fixture: as ``needs_system`` for a package found missing."""
    cannot_run_here(not_installed(what, package))


requires_cctools = needs_system(REAL_WORKER is None, "work_queue_worker", "coop-computing-tools")
requires_cctools_python = needs_system(not HAS_CCTOOLS_PY, "the work_queue Python module", "python3-workqueue")


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


def _signal_process_or_group(proc: subprocess.Popen, sig: signal.Signals) -> bool:
    """Signal the process group ``proc`` leads, else ``proc`` alone; False when it is gone already."""
    try:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    except ProcessLookupError:
        return False
    return True


def stop_process(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """Terminate a process (and its process group when it leads one), then kill it."""
    if proc.poll() is not None or not _signal_process_or_group(proc, signal.SIGTERM):
        return
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_process_or_group(proc, signal.SIGKILL)
        proc.wait(timeout=grace)


class LineReader:
    """Collects a process's output lines in a thread, so tests can wait for a line."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in iter(stream.readline, ""):
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    def snapshot(self) -> list[str]:
        with self._lock:
            return list(self.lines)

    def wait_for(self, predicate, timeout: float, what: str, start: int = 0):
        """The first line from index ``start`` on that satisfies ``predicate``; fail after ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index, line in enumerate(self.snapshot()[start:], start):
                if predicate(line):
                    return index, line
            time.sleep(0.05)
        tail = "\n".join(self.snapshot()[-30:])
        pytest.fail(f"timed out after {timeout} s waiting for {what}; last lines:\n{tail}")


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


def worker_argv(kind: str, port: int, workdir: Path, *extra: str, cores: float | None = None,
                memory: int | None = None, disk: int | None = None, gpus: int | None = None,
                idle_timeout: int = 60) -> list[str]:
    """A worker of ``kind`` ("coffea-wq" or "cctools", Debian's ``work_queue_worker``) for 127.0.0.1:``port``.

    It works in ``workdir`` (made here), offers the resources given (the others it measures), takes the
    ``extra`` options, and exits after ``idle_timeout`` s without a manager.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    options = ["-t", str(idle_timeout)]
    for name, value in (("cores", cores), ("memory", memory), ("disk", disk), ("gpus", gpus)):
        if value is not None:
            options += [f"--{name}", str(value)]
    options += ["-s", str(workdir), *extra, LOOPBACK, str(port)]
    if kind == "coffea-wq":
        return coffea_wq_command("worker", *options)
    if kind == "cctools":
        return [REAL_WORKER, *options]
    raise ValueError(f"unknown worker kind {kind!r}: 'coffea-wq' or 'cctools'")

# Bytes and outputs captured from the Debian CCTools binaries (copied from the research notes, see its README).
SAMPLES = REPO / "tests" / "data" / "cctools-samples"
