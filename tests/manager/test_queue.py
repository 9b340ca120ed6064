"""The task queue's ordering: priority first, then submission order, while tasks are dispatched."""

from __future__ import annotations

from coffea_wq.manager.queue import TaskQueue
from coffea_wq.manager.task import TaskSpec


def test_ready_order_and_removal_during_iteration():
    queue = TaskQueue()
    tasks = [TaskSpec(command=str(i), priority=float(i % 3)) for i in range(200)]
    for task in tasks:
        queue.add(task, now_us=0)
    seen = []
    for task in queue.ready_in_order(chunk=7):
        seen.append(task.task_id)
        if task.task_id % 2:  # "dispatch" every odd task while iterating
            queue.remove_ready(task)
    expected = [t.task_id for p in (2.0, 1.0, 0.0) for t in tasks if t.priority == p]
    assert seen == expected
    assert queue.ready_count == 100
    assert [t.task_id for t in queue.ready_in_order()] == [i for i in expected if i % 2 == 0]
