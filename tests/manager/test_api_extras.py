"""The rest of CCTools' WorkQueue API: blocking hosts, draining, min task id, worker summary, no-ops."""

from __future__ import annotations

import time

import pytest

import coffea_wq.work_queue as wq
from tests.manager.scripted_worker import ScriptedWorker
from tests.support import LOOPBACK, wait_until


@pytest.fixture
def queue():
    q = wq.WorkQueue(port=0, host=LOOPBACK)
    yield q
    q.shutdown()


def test_blocked_host_is_refused_until_unblocked(queue):
    queue.block_host("badhost")
    bad = ScriptedWorker(queue.port, hostname="badhost")
    with pytest.raises(EOFError):
        bad.read_line(timeout=5)
    assert queue.stats.workers_connected == 0
    queue.unblock_host("badhost")
    ok = ScriptedWorker(queue.port, hostname="badhost")
    wait_until(lambda: queue.stats.workers_connected == 1, 10, "the unblocked worker")
    ok.close()
    bad.close()


def test_blocking_a_connected_host_releases_it(queue):
    worker = ScriptedWorker(queue.port, hostname="soon-bad")
    wait_until(lambda: queue.stats.workers_connected == 1, 10, "the worker")
    queue.block_host("soon-bad")
    assert worker.read_line() == "release"
    worker.close()


def test_draining_worker_gets_no_new_tasks(queue):
    worker = ScriptedWorker(queue.port, hostname="drainme", cores=1)
    wait_until(lambda: queue.stats.workers_connected == 1, 10, "the worker")
    assert queue.specify_draining_by_hostname("drainme") == 1
    queue.submit(wq.Task("true"))
    time.sleep(0.5)
    assert queue.stats.tasks_running == 0 and queue.stats.tasks_waiting == 1
    queue.specify_draining_by_hostname("drainme", False)
    task = worker.next_task()
    assert task.command == "true"
    worker.close()


def test_min_taskid_workers_summary_and_ignored_settings(queue):
    queue.specify_min_taskid(100)
    assert queue.submit(wq.Task("true")) == 100
    assert queue.submit(wq.Task("true")) == 101
    workers = [ScriptedWorker(queue.port, hostname=f"w{i}", cores=4, memory=8000, disk=4000) for i in range(2)]
    wait_until(lambda: queue.stats.workers_connected == 2, 10, "two workers")
    assert queue.workers_summary() == [{"workers": 2, "cores": 4, "memory": 8000, "disk": 4000, "gpus": 0}]
    assert queue.specify_algorithm(wq.WORK_QUEUE_SCHEDULE_FCFS) == 0
    assert queue.tune("keepalive-interval", 60) == 1
    assert queue.tune("hungry-minimum", 5) == 0
    for worker in workers:
        worker.close()
