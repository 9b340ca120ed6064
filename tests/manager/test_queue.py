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


def test_submit_does_not_wait_for_the_manager_lock():
    """The loop may hold the lock for a whole busy turn: submit() hands the task over without it, and the
    lock's next holder (here ``stats``) sees every submitted task, in order, with the ids submit gave."""
    import threading

    import coffea_wq.work_queue as wq

    q = wq.WorkQueue(port=0, host="127.0.0.1")
    try:
        lock = q._manager._server.lock
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with lock:
                held.set()
                release.wait(30)

        holder = threading.Thread(target=hold)
        holder.start()
        assert held.wait(10)
        ids: list[int] = []
        submitter = threading.Thread(target=lambda: ids.extend(q.submit(wq.Task(f"echo {n}")) for n in range(50)))
        submitter.start()
        submitter.join(20)
        blocked = submitter.is_alive()
        release.set()
        holder.join(10)
        submitter.join(10)
        assert not blocked, "submit() waited for the manager lock"
        assert ids == list(range(ids[0], ids[0] + 50))
        assert q.stats.tasks_waiting == 50 and q.stats.tasks_submitted == 50
        assert sorted(q._manager.task_ids()) == ids
    finally:
        q.shutdown()
