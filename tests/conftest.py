from __future__ import annotations

import signal

import psutil
import pytest

from tests.support import NOT_INSTALLED_MARK, Processes

# How long a test module's processes may take to exit after it ends before they count as leaked.
LEAK_GRACE_SECONDS = 10.0


def pytest_configure(config):
    """Ctrl-C as a terminal delivers it, even when the suite was started in the background.

    A shell starts a background job with SIGINT ignored, and Python then keeps it ignored; the
    soft-termination tests send SIGINT to this process and to children (which inherit an ignored
    signal across exec, not a handler). With Python's own handler here, both behave as in a terminal.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_runtest_setup(item):
    """Under ``make test`` a test that needs a missing Debian package fails (tests/support.py, needs_system)."""
    for mark in item.iter_markers(NOT_INSTALLED_MARK):
        pytest.fail(f"make test should have set this up: {mark.args[0]}", pytrace=False)


@pytest.fixture
def processes():
    """Start processes with ``processes.start(argv)``; all are stopped when the test ends."""
    procs = Processes()
    yield procs
    procs.stop_all()


# Helpers that multiprocessing and loky (coffea's FuturesExecutor) start once and keep for the
# life of the interpreter, by design: not a test's leak.
INTERPRETER_LIFETIME_HELPERS = ("resource_tracker import main",)


def _children() -> dict[int, psutil.Process]:
    children = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            command = " ".join(proc.cmdline())
        except psutil.Error:
            continue
        if not any(marker in command for marker in INTERPRETER_LIFETIME_HELPERS):
            children[proc.pid] = proc
    return children


@pytest.fixture(autouse=True, scope="module")
def no_leaked_processes(request):
    """Every process a test module starts is stopped by it: fail the module that leaks one."""
    before = set(_children())
    yield
    leaked = [p for pid, p in _children().items() if pid not in before]
    _, alive = psutil.wait_procs(leaked, timeout=LEAK_GRACE_SECONDS)
    if not alive:
        return
    described = []
    for proc in alive:
        try:
            described.append(f"{proc.pid}: {' '.join(proc.cmdline())[:200]}")
            proc.kill()
        except psutil.Error:
            continue
    psutil.wait_procs(alive, timeout=5)
    if described:
        pytest.fail(f"{request.module.__name__} left processes running:\n  " + "\n  ".join(described))
