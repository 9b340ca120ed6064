"""Passwords both ways: (real worker, coffea-wq worker) x (coffea-wq manager).

A worker is accepted exactly when its password file matches the manager's byte for byte; a worker
with a password refuses (and is refused by) a manager without one, and vice versa.
"""

from __future__ import annotations

import subprocess
import time

import pytest

import coffea_wq.work_queue as wq
from tests.support import LOOPBACK, requires_cctools, worker_argv

REFUSAL_WAIT = 2.5


@pytest.fixture
def password_files(tmp_path):
    right = tmp_path / "right.pw"
    right.write_bytes(b"sekrit-pass\n")
    wrong = tmp_path / "wrong.pw"
    wrong.write_bytes(b"sekrit-pass")  # the same text without the newline: a different password
    return right, wrong


def start(processes, kind, port, tmp_path, name, password=None):
    extra = ["-P", str(password)] if password else []
    argv = worker_argv(kind, port, tmp_path / name, *extra, cores=1, memory=500, disk=500, idle_timeout=20)
    return processes.start(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
@requires_cctools
def test_manager_with_password(processes, tmp_path, password_files):
    right, wrong = password_files
    with wq.WorkQueue(port=0, host=LOOPBACK) as q:
        q.specify_password_file(str(right))
        for kind in ("cctools", "coffea-wq"):
            start(processes, kind, q.port, tmp_path, f"{kind}-wrong", wrong)
            start(processes, kind, q.port, tmp_path, f"{kind}-none")
        time.sleep(REFUSAL_WAIT)
        assert q.stats.workers_joined == 0, "a worker with a wrong or no password got in"

        for kind in ("cctools", "coffea-wq"):
            start(processes, kind, q.port, tmp_path, f"{kind}-right", right)
        assert q.wait_for_workers(2, 20), "workers with the right password were not accepted"
        for i in range(4):
            q.submit(wq.Task(f"echo ok {i}"))
        outputs = set()
        deadline = time.monotonic() + 30
        while not q.empty() and time.monotonic() < deadline:
            t = q.wait(1)
            if t:
                outputs.add(t.output)
        assert outputs == {f"ok {i}\n" for i in range(4)}
        assert q.stats.workers_joined == 2


@pytest.mark.slow
@requires_cctools
def test_worker_with_password_refuses_manager_without(processes, tmp_path, password_files):
    right, _ = password_files
    with wq.WorkQueue(port=0, host=LOOPBACK) as q:
        for kind in ("cctools", "coffea-wq"):
            start(processes, kind, q.port, tmp_path, f"{kind}-pw", right)
        time.sleep(REFUSAL_WAIT)
        assert q.stats.workers_joined == 0
        start(processes, "cctools", q.port, tmp_path, "cctools-plain")
        assert q.wait_for_workers(1, 20), "a worker without password should be accepted"


def test_a_peer_that_joined_before_the_password_was_set_is_dropped():
    """The queue listens from its creation: a stranger quicker than specify_password must not stay."""
    import socket

    from tests.support import wait_until

    with wq.WorkQueue(port=0, host=LOOPBACK) as q:
        early = socket.create_connection((LOOPBACK, q.port), timeout=10)
        try:
            early.sendall(b"workqueue 9 early Linux x86_64 8.0.0\nresource tag 0\n")
            wait_until(lambda: q.stats.workers_connected == 1, 10, "the early peer to join")
            q.specify_password(b"set-late\n")
            wait_until(lambda: q.stats.workers_connected == 0, 10, "the early peer to be dropped")
            assert early.recv(100) == b""
        finally:
            early.close()
