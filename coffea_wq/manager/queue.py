"""The task queue: every submitted task until ``wait`` hands it back, and the counters of it all.

Ready tasks are kept per priority in insertion order (a dict per priority: O(1) removal when a task
is dispatched or cancelled, ordered iteration for dispatch). Higher priority goes first, as CCTools.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice

from coffea_wq.manager.task import TaskSpec
from coffea_wq.protocol.codes import ResultCode, TaskState


@dataclass
class Counters:
    """Running totals with CCTools' stats names (docs/catalog.md, "Formats")."""

    workers_joined: int = 0
    workers_removed: int = 0
    workers_released: int = 0
    workers_idled_out: int = 0
    workers_fast_aborted: int = 0
    workers_lost: int = 0
    tasks_submitted: int = 0
    tasks_dispatched: int = 0
    tasks_done: int = 0
    tasks_failed: int = 0
    tasks_cancelled: int = 0
    tasks_exhausted_attempts: int = 0
    time_send: int = 0
    time_receive: int = 0
    time_send_good: int = 0
    time_receive_good: int = 0
    time_status_msgs: int = 0
    time_internal: int = 0
    time_polling: int = 0
    time_application: int = 0
    time_workers_execute: int = 0
    time_workers_execute_good: int = 0
    time_workers_execute_exhaustion: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0


class TaskQueue:
    """Tasks by id, the ready lists, and the retrieved tasks waiting for ``wait``."""

    def __init__(self, first_task_id: int = 1) -> None:
        self.tasks: dict[int, TaskSpec] = {}
        self._ready: dict[float, dict[int, TaskSpec]] = {}
        self._priorities: list[float] = []  # sorted, highest first
        self.retrieved: deque[TaskSpec] = deque()
        self.counters = Counters()
        self._next_id = first_task_id
        self.ready_count = 0
        self.category_totals: dict[str, dict[str, int]] = {}  # category -> tasks_dispatched/done/...
        # field-wise largest request of every task ever submitted (CCTools' max_task_resources_requested,
        # shown as the "whole queue" maxima of work_queue_status -A even after those tasks are gone)
        self.largest_requested: dict[str, float] = {}

    def count_for_category(self, category: str, key: str) -> None:
        totals = self.category_totals.setdefault(category, {})
        totals[key] = totals.get(key, 0) + 1

    def next_task_id(self) -> int:
        """The id of the next submitted task (the caller serialises calls)."""
        task_id = self._next_id
        self._next_id += 1
        return task_id

    def add(self, task: TaskSpec, now_us: int | None = None) -> int:
        """Make the task ready: with ``now_us``, a new task gets an id and its submission time; without,
        it has both already (``ManagerServer.submit`` gave them)."""
        if now_us is not None:
            task.task_id = self.next_task_id()
            task.time_when_submitted = now_us
        self.tasks[task.task_id] = task
        self.counters.tasks_submitted += 1
        for resource, value in task.requested.as_dict().items():
            self.largest_requested[resource] = max(self.largest_requested.get(resource, value), value)
        self.make_ready(task)
        return task.task_id

    def ensure_min_task_id(self, minimum: int) -> None:
        self._next_id = max(self._next_id, minimum)

    def make_ready(self, task: TaskSpec) -> None:
        task.state = TaskState.READY
        task.worker_key = 0
        bucket = self._ready.get(task.priority)
        if bucket is None:
            bucket = self._ready[task.priority] = {}
            self._priorities = sorted(self._ready, reverse=True)
        bucket[task.task_id] = task
        self.ready_count += 1

    def remove_ready(self, task: TaskSpec) -> None:
        bucket = self._ready.get(task.priority)
        if bucket is not None and bucket.pop(task.task_id, None) is not None:
            self.ready_count -= 1

    def ready_in_order(self, chunk: int = 64) -> Iterator[TaskSpec]:
        """Ready tasks, highest priority first, oldest first within a priority.

        The caller may dispatch (remove) the task it was just given. Tasks are read in small chunks,
        so a dispatch pass over a queue of 100,000 tasks costs only what it looks at.
        """
        for priority in list(self._priorities):
            bucket = self._ready.get(priority)
            if not bucket:
                continue
            kept = 0  # tasks at the front of the bucket that were looked at and left there
            while True:
                tasks = list(islice(bucket.values(), kept, kept + chunk))
                if not tasks:
                    break
                yield from tasks
                kept += sum(1 for task in tasks if bucket.get(task.task_id) is task)

    def retrieve(self, task: TaskSpec) -> None:
        """The task is finished and its outputs are here: hand it to the next ``wait``."""
        task.state = TaskState.RETRIEVED
        self.counters.tasks_done += 1
        self.count_for_category(task.category, "tasks_done")
        if task.result is not ResultCode.SUCCESS:
            self.counters.tasks_failed += 1
            self.count_for_category(task.category, "tasks_failed")
        self.retrieved.append(task)

    def pop_retrieved(self, tag: str | None = None) -> TaskSpec | None:
        """The oldest retrieved task (with ``tag``, if given), now DONE and out of the queue."""
        if tag is not None:
            return self._pop_retrieved_with_tag(tag)
        while self.retrieved:
            task = self.retrieved.popleft()
            if task.state is TaskState.RETRIEVED:
                return self._hand_over(task)
        return None

    def _pop_retrieved_with_tag(self, tag: str) -> TaskSpec | None:
        for task in list(self.retrieved):
            if task.state is not TaskState.RETRIEVED:
                self.retrieved.remove(task)  # cancelled after retrieval: nothing to hand over
            elif task.tag == tag:
                self.retrieved.remove(task)
                return self._hand_over(task)
        return None

    def _hand_over(self, task: TaskSpec) -> TaskSpec:
        task.state = TaskState.DONE
        self.tasks.pop(task.task_id, None)
        return task

    def forget(self, task: TaskSpec) -> None:
        """A cancelled task leaves the queue for good."""
        self.remove_ready(task)
        task.state = TaskState.CANCELED
        self.tasks.pop(task.task_id, None)
        self.counters.tasks_cancelled += 1
        self.count_for_category(task.category, "tasks_cancelled")

    def count(self, state: TaskState) -> int:
        if state is TaskState.READY:
            return self.ready_count
        return sum(1 for t in self.tasks.values() if t.state is state)

    @property
    def outstanding(self) -> int:
        """Tasks submitted and not yet returned by ``wait`` (nor cancelled)."""
        return len(self.tasks)
