"""The local back-end on its own: real processes, their process groups, listing and removal."""

from __future__ import annotations

import time

import psutil

from coffea_wq.factory.backends.local import LocalBackend
from coffea_wq.resources.types import Resources


def _children_pids(pid: int) -> list[int]:
    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_remove_stops_the_worker_and_everything_it_started(tmp_path):
    backend = LocalBackend(tmp_path)
    # A "worker" that starts a child and ignores SIGTERM itself: removal must still end both.
    ids = backend.submit(2, ["sh", "-c", "trap '' TERM; sleep 60 & echo started; wait"], Resources(cores=1))
    assert backend.list() == ids
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not all(_children_pids(int(i)) for i in ids):
        time.sleep(0.05)
    descendants = [pid for i in ids for pid in _children_pids(int(i))]
    assert descendants
    backend.remove(ids)
    assert backend.list() == []
    assert all(_gone(int(i)) for i in ids)  # the workers themselves are reaped by remove()
    # Their children got SIGKILL with the group; dying takes the kernel a moment.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not all(_gone(pid) for pid in descendants):
        time.sleep(0.05)
    assert all(_gone(pid) for pid in descendants)
    logs = sorted((tmp_path / "logs").glob("local-*.log"))
    assert len(logs) == 2 and all(log.read_text() == "started\n" for log in logs)


def test_list_forgets_workers_that_exited_by_themselves(tmp_path):
    backend = LocalBackend(tmp_path)
    quick = backend.submit(1, ["true"], Resources())
    slow = backend.submit(1, ["sleep", "30"], Resources())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and backend.list() != slow:
        time.sleep(0.05)
    assert backend.list() == slow and quick[0] not in backend.list()
    backend.remove(slow)
    assert backend.list() == []
