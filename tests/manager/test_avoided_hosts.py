"""``Task.specify_avoided_host``: a retry steered away from the workers where it failed (docs/manager.md)."""

from __future__ import annotations

import socket

import pytest

import coffea_wq.work_queue as wq
from tests.manager.scripted_worker import ScriptedWorker
from tests.support import LOOPBACK, wait_until


@pytest.fixture
def queue():
    q = wq.WorkQueue(port=0, host=LOOPBACK)
    yield q
    q.shutdown()


def _task(avoid: list[str]) -> wq.Task:
    t = wq.Task("true")
    t.specify_cores(1)
    t.specify_memory(10)
    t.specify_disk(10)
    for host in avoid:
        t.specify_avoided_host(host)
    return t


def _address(worker: ScriptedWorker) -> str:
    host, port = worker.sock.getsockname()[:2]
    return f"{host}:{port}"


def test_an_avoided_worker_gets_no_task_while_another_is_connected(queue):
    avoided, other = ScriptedWorker(queue.port), ScriptedWorker(queue.port)
    try:
        wait_until(lambda: queue.stats.workers_connected == 2, 10, "two workers")
        for _ in range(2):
            queue.submit(_task([_address(avoided)]))
        received = [other.next_task(), other.next_task()]  # two one-core tasks on the other's two cores
        assert len(received) == 2
        with pytest.raises((TimeoutError, socket.timeout, OSError)):
            avoided.next_task(timeout=1.5)
    finally:
        avoided.close()
        other.close()


def test_when_only_avoided_workers_are_connected_any_of_them_will_do(queue):
    only = ScriptedWorker(queue.port)
    try:
        wait_until(lambda: queue.stats.workers_connected == 1, 10, "the worker")
        queue.submit(_task([_address(only)]))
        assert only.next_task() is not None  # not left waiting forever
    finally:
        only.close()
