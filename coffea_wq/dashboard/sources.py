"""Where the dashboard reads a manager's state: the same four records ``work_queue_status`` reads.

A ``ManagerState`` holds the answers to ``queue_status``, ``worker_status``, ``task_status`` and
``wable_status`` (``work_queue_status -l``, ``-W``, ``-T``, ``-A``; see docs/manager.md §5), as
CCTools' JSON. Two sources fill it:

* ``EmbeddedSource``: coffea-wq's manager in this process, read through ``WorkQueue.snapshot()``. This
  works with a password (the status protocol has none) and also gives each worker's last contact.
* ``StatusQuerySource``: any manager, ours or CCTools' C manager, over the status protocol on
  its port (``coffea_wq.catalog.query``). Used by ``coffea-wq dashboard HOST PORT`` and by the
  executor when it drives CCTools' manager.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from coffea_wq.catalog.query import StatusQueryError, query_manager

QUERY_TIMEOUT_S = 5.0
EXECUTOR_QUERY_TIMEOUT_S = 3.0


@dataclass
class ManagerState:
    queue: dict[str, Any]
    workers: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    categories: list[dict[str, Any]]
    last_contact: dict[str, float] = field(default_factory=dict)  # worker address -> epoch seconds
    read_at: float = field(default_factory=time.time)


class ManagerSource(Protocol):
    address: str

    def read(self) -> ManagerState:
        """The manager's state now; raises ``StatusQueryError`` when it cannot be read."""
        ...


class StatusQuerySource:
    """A manager at ``host:port`` asked with the status protocol (no password possible).

    Example:
        >>> StatusQuerySource("127.0.0.1", 9123).address
        '127.0.0.1:9123'
    """

    reads_anytime = False  # CCTools' manager answers only while its program is inside wait()

    def __init__(self, host: str, port: int, timeout: float = QUERY_TIMEOUT_S) -> None:
        self.host, self.port, self.timeout = host, int(port), timeout
        self.address = f"{host}:{self.port}"

    def read(self) -> ManagerState:
        queue = query_manager(self.host, self.port, "queue_status", self.timeout)
        if not queue or not isinstance(queue[0], dict):
            raise StatusQueryError(f"manager {self.address}: empty queue_status reply")
        return ManagerState(queue=queue[0],
                            workers=query_manager(self.host, self.port, "worker_status", self.timeout),
                            tasks=query_manager(self.host, self.port, "task_status", self.timeout),
                            categories=query_manager(self.host, self.port, "wable_status", self.timeout))


class EmbeddedSource:
    """coffea-wq's manager running in this process (a ``coffea_wq.work_queue.WorkQueue``)."""

    reads_anytime = True

    def __init__(self, queue: Any) -> None:
        # the very records the manager's port answers, read through WorkQueue.snapshot()
        self._queue = queue
        self.address = f"127.0.0.1:{queue.port}"

    def read(self) -> ManagerState:
        snapshot = self._queue.snapshot()
        return ManagerState(snapshot.queue, snapshot.workers, snapshot.tasks, snapshot.categories,
                            snapshot.last_contact)


class CctoolsQueueSource(StatusQuerySource):
    """CCTools' manager driven by the executor in this process: status queries while the run
    waits, and at the end its counters from the ``WorkQueue.stats`` of the API (called from the
    executor's own thread, the only one that may call into the C library)."""

    COUNTERS = ("tasks_waiting", "tasks_on_workers", "tasks_running", "tasks_with_results", "tasks_submitted",
                "tasks_dispatched", "tasks_done", "tasks_failed", "tasks_cancelled", "tasks_exhausted_attempts",
                "bytes_sent", "bytes_received", "workers_connected")

    def __init__(self, queue: Any, host: str, timeout: float) -> None:
        super().__init__(host, int(queue.port), timeout)
        self._queue = queue

    def read_final(self, last: ManagerState | None) -> ManagerState:
        """The last status answers with the manager's counters as they are now."""
        stats = self._queue.stats
        record = dict(last.queue) if last is not None else {}
        for key in self.COUNTERS:
            value = getattr(stats, key, None)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                record[key] = value
        if last is None:
            return ManagerState(record, [], [], [])
        return ManagerState(record, last.workers, last.tasks, last.categories, last.last_contact)


def source_for_queue(queue: Any, host: str = "127.0.0.1") -> ManagerSource:
    """The best way to read the executor's own manager: in-process for ours, status queries for CCTools'."""
    from coffea_wq.work_queue.queue import WorkQueue

    if isinstance(queue, WorkQueue):
        return EmbeddedSource(queue)
    # the C manager answers within a second (the executor waits 1 s at a time): no need to wait long
    return CctoolsQueueSource(queue, host, timeout=EXECUTOR_QUERY_TIMEOUT_S)
