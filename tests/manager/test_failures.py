"""Workers that die: their tasks run again elsewhere, nothing lost or duplicated; max_retries."""

from __future__ import annotations

import os
import signal
import time

import pytest

import coffea_wq.work_queue as wq
from tests.manager.helpers import start_real_worker
from tests.support import LOOPBACK, requires_cctools, wait_until


def drain(q, timeout: float) -> list:
    done = []
    deadline = time.monotonic() + timeout
    while not q.empty() and time.monotonic() < deadline:
        t = q.wait(0.5)
        if t is not None:
            done.append(t)
    return done


@pytest.mark.slow
@requires_cctools
def test_sigkilled_worker_tasks_run_again_elsewhere(processes, tmp_path):
    with wq.WorkQueue(port=0, host=LOOPBACK) as q:
        victim = start_real_worker(processes, q.port, tmp_path / "victim")
        assert q.wait_for_workers(1, 20)
        ids = []
        for i in range(6):
            t = wq.Task(f"sleep 1; echo task {i}")
            t.specify_cores(1)
            t.specify_memory(100)
            t.specify_disk(100)
            ids.append(q.submit(t))
        wait_until(lambda: q.stats.tasks_running == 2, 20, "two tasks running on the victim")
        os.killpg(victim.pid, signal.SIGKILL)  # the worker and the tasks it runs
        wait_until(lambda: q.stats.workers_connected == 0, 20, "the manager to notice the dead worker")
        assert q.stats.tasks_waiting == 6, "the dead worker's tasks were not requeued"
        start_real_worker(processes, q.port, tmp_path / "survivor")
        done = drain(q, 60)
    assert sorted(t.id for t in done) == sorted(ids), "a task was lost or returned twice"
    assert {t.output for t in done} == {f"task {i}\n" for i in range(6)}
    assert all(t.result == wq.WORK_QUEUE_RESULT_SUCCESS and t.return_status == 0 for t in done)
    assert sum(t.total_submissions == 2 for t in done) == 2  # exactly the two that were running
    assert q.stats.workers_lost == 1


@pytest.mark.slow
@requires_cctools
def test_max_retries_gives_up_after_that_many_worker_failures(processes, tmp_path):
    with wq.WorkQueue(port=0, host=LOOPBACK) as q:
        t = wq.Task("kill -9 $PPID")  # takes its worker down every time it runs
        t.specify_max_retries(2)
        task_id = q.submit(t)
        survivor = wq.Task("echo fine")
        for n in range(3):
            start_real_worker(processes, q.port, tmp_path / f"w{n}", cores=1)
        done = drain(q, 60)
        assert [d.id for d in done] == [task_id]
        assert done[0].result == wq.WORK_QUEUE_RESULT_MAX_RETRIES
        assert done[0].result_str == "MAX_RETRIES"
        assert done[0].total_submissions == 3
        q.submit(survivor)  # the queue still works afterwards
        start_real_worker(processes, q.port, tmp_path / "w3", cores=1)
        assert [d.output for d in drain(q, 30)] == ["fine\n"]
