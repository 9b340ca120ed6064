"""``Task.specify_prefer_oldest_worker``: a task offered to the longest-connected worker first (docs/manager.md)."""

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


def _task(prefer_oldest: bool) -> wq.Task:
    t = wq.Task("true")
    t.specify_cores(1)
    t.specify_memory(10)
    t.specify_disk(10)
    if prefer_oldest:
        t.specify_prefer_oldest_worker()
    return t


def test_tasks_that_prefer_the_oldest_worker_go_there_while_it_has_room(queue):
    oldest = ScriptedWorker(queue.port)
    wait_until(lambda: queue.stats.workers_connected == 1, 10, "the first worker")
    younger = [ScriptedWorker(queue.port) for _ in range(3)]
    try:
        wait_until(lambda: queue.stats.workers_connected == 4, 10, "four workers")
        for _ in range(2):
            queue.submit(_task(prefer_oldest=True))
        assert [oldest.next_task(), oldest.next_task()] != [None, None]  # both on its two cores
        for worker in younger:
            with pytest.raises((TimeoutError, socket.timeout, OSError)):
                worker.next_task(timeout=0.5)
        queue.submit(_task(prefer_oldest=True))  # the oldest is full: the next oldest takes it
        assert younger[0].next_task() is not None
    finally:
        for worker in [oldest, *younger]:
            worker.close()


def test_without_the_preference_tasks_go_round_the_workers(queue):
    workers = [ScriptedWorker(queue.port) for _ in range(2)]
    try:
        wait_until(lambda: queue.stats.workers_connected == 2, 10, "two workers")
        for _ in range(2):
            queue.submit(_task(prefer_oldest=False))
        assert all(worker.next_task() is not None for worker in workers)  # one each, in turn
    finally:
        for worker in workers:
            worker.close()
