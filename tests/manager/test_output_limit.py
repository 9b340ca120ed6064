"""A task's output beyond what the manager keeps is dropped and the task says so (STDOUT_MISSING)."""

from __future__ import annotations

import pytest

import coffea_wq.work_queue as wq
from tests.manager.helpers import WORKER_KINDS, start_worker
from tests.support import LOOPBACK, requires_cctools


@requires_cctools
@pytest.mark.parametrize("kind", WORKER_KINDS)
def test_output_over_the_limit_is_cut_and_reported(kind, processes, tmp_path):
    with wq.WorkQueue(port=0, host=LOOPBACK) as q:
        assert q.tune("max-task-stdout-storage", 64) == 1
        start_worker(kind, processes, q.port, tmp_path / "w", cores=1)
        chatty = wq.Task("yes x | head -n 2048")
        quiet = wq.Task("echo short")
        for task in (chatty, quiet):
            task.specify_cores(1), task.specify_memory(50), task.specify_disk(50)
            q.submit(task)
        done = {}
        for _ in range(2):
            task = q.wait(60)
            assert task is not None, "a task did not come back within 60 s"
            done[task.command] = task
    cut, kept = done[chatty.command], done[quiet.command]
    assert cut.result == wq.WORK_QUEUE_RESULT_STDOUT_MISSING
    assert cut.output == "x\n" * 32
    assert kept.result == wq.WORK_QUEUE_RESULT_SUCCESS and kept.output == "short\n"


def test_limit_must_be_a_byte_count():
    with wq.WorkQueue(port=0, host=LOOPBACK) as q, pytest.raises(ValueError, match="max-task-stdout-storage"):
        q.tune("max-task-stdout-storage", -1)
