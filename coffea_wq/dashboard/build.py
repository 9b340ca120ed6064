"""``RunView``: turns a manager's status records (and the executor's tracker, when there is one)
into ``Snapshot``s, remembering what single status answers cannot tell: workers that left, and
tasks done over time for a foreign manager's throughput.

One ``RunView`` serves one dashboard. The executor ``attach``es each run's manager and tracker
and ``finish``es it at the end (the last snapshot stays on the page); ``coffea-wq dashboard``
attaches a ``StatusQuerySource`` for as long as it runs.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import Any

from coffea_wq.catalog.query import StatusQueryError
from coffea_wq.dashboard.snapshot import (
    CategoryView,
    Progress,
    RunningTaskView,
    RunState,
    Snapshot,
    SourceInfo,
    TaskCounts,
    WorkerView,
)
from coffea_wq.dashboard.sources import ManagerSource, ManagerState
from coffea_wq.dashboard.tracker import RunTracker, SampleSeries

log = logging.getLogger(__name__)

CACHE_S = 0.25  # snapshots asked for within this time share one reading of the manager
POLL_S = 1.0  # the manager is read this often while a run is attached, whether a page is open or not
DEPARTED_KEPT = 100  # workers that left, still listed
RUNNING_TASKS_SHOWN = 50
COMMAND_CHARS = 160
WHOLE_QUEUE = "whole queue"


class WorkerHistory:
    """Workers seen across status answers: when each joined, and when it left."""

    def __init__(self) -> None:
        self._views: dict[str, WorkerView] = {}

    def update(self, records: list[dict[str, Any]], last_contact: dict[str, float], now: float) -> list[WorkerView]:
        present = set()
        for record in records:
            address = str(record.get("address_port", ""))
            present.add(address)
            view = self._views.get(address)
            joined = _seconds(record.get("start_time")) or now
            if view is None or view.left is not None or (view.joined and abs(view.joined - joined) > 1):
                view = self._views[address] = WorkerView(host=str(record.get("hostname", "?")), address=address,
                                                         joined=joined)
            view.cores = _num(record.get("cores_total"))
            view.memory = _num(record.get("memory_total"))
            view.disk = _num(record.get("disk_total"))
            view.gpus = _num(record.get("gpus_total"))
            view.running = int(_num(record.get("total_tasks_running")))
            view.done = int(_num(record.get("total_tasks_complete")))
            view.last_contact = last_contact.get(address, now)
            view.warm = view.done > 0
        for address, view in self._views.items():
            if address not in present and view.left is None:
                view.left = now
        departed = [a for a, v in self._views.items() if v.left is not None]
        for address in departed[:-DEPARTED_KEPT]:
            del self._views[address]
        return sorted(self._views.values(), key=lambda v: (v.left is not None, v.host, v.address))


class RunView:
    """The dashboard's model: the current source (if any), tracker (if any), and the latest snapshot."""

    def __init__(self, password: bool = False) -> None:
        self._lock = threading.Lock()
        self.password = password
        self.source: ManagerSource | None = None
        self.tracker: RunTracker | None = None
        self.state = RunState.WAITING
        self.history = WorkerHistory()
        self.series = SampleSeries()
        self._last: Snapshot | None = None
        self._last_at = 0.0
        self._last_state: ManagerState | None = None  # the latest manager state read successfully
        self._started: float | None = None
        self._poller: threading.Thread | None = None
        self._stop_polling = threading.Event()

    def attach(self, source: ManagerSource, tracker: RunTracker | None) -> None:
        """A new run (its manager and, from the executor, its tracker) replaces the previous one.

        A daemon thread reads the manager every ``POLL_S`` from now on: workers that come and go
        and the throughput of a foreign manager are seen even while no page is open, and the last
        reading survives a manager that stops answering (CCTools' answers only inside ``wait``).
        """
        self._stop()
        with self._lock:
            self.source, self.tracker = source, tracker
            self.state = RunState.RUNNING
            self.history = WorkerHistory()
            self.series = SampleSeries()
            self._started = tracker.started_wall if tracker is not None else time.time()
            self._last, self._last_at, self._last_state = None, 0.0, None
        self._stop_polling = threading.Event()
        self._poller = threading.Thread(target=self._poll, args=(self._stop_polling,), daemon=True,
                                        name="coffea-wq-dashboard-poller")
        self._poller.start()

    def finish(self) -> None:
        """The run ended: read the manager one last time (or keep its last reading), then keep that snapshot."""
        self._stop_polling.set()  # not joined: a poll in flight ends within its query timeout
        with self._lock:
            if self.source is None:
                return
            # a manager reached by status queries may not answer now (CCTools' answers only inside
            # wait(), and the run has stopped waiting): its last reading, with the counters of its
            # API where there is one, is final
            read_final = getattr(self.source, "read_final", None)
            if getattr(self.source, "reads_anytime", False):
                self._last = self._build()
            elif callable(read_final):
                self._last = self._build(given=read_final(self._last_state))
            else:
                self._last = self._build(read=False)
            self._last.state, self._last.error = RunState.FINISHED, ""
            self.state = RunState.FINISHED
            self.source = None

    def close(self) -> None:
        """Stop reading the manager (the dashboard is going away)."""
        self._stop()

    def _stop(self) -> None:
        self._stop_polling.set()
        if self._poller is not None and self._poller is not threading.current_thread():
            self._poller.join(timeout=10)
        self._poller = None

    def _poll(self, stop: threading.Event) -> None:
        # the first reading at once, not after POLL_S: a run may be over within a second (forked
        # local workers start at once), and CCTools' manager answers only while the run waits on it
        while True:
            try:
                self.snapshot()
            except Exception:  # a bug here must not end the polling, nor the user's run
                log.exception("dashboard: reading the manager failed")
            if stop.wait(POLL_S):
                return

    def snapshot(self) -> Snapshot:
        with self._lock:
            now = time.monotonic()
            if self.source is None and self._last is not None:
                return self._last
            if self._last is None or now - self._last_at >= CACHE_S:
                self._last, self._last_at = self._build(), now
            return self._last

    # ------------------------------------------------------------------ building (lock held)
    def _build(self, read: bool = True, given: ManagerState | None = None) -> Snapshot:
        now = time.time()
        info = SourceInfo(kind="executor" if self.tracker is not None else "status",
                          manager=self.source.address if self.source is not None else "", password=self.password)
        if self.source is None:
            return Snapshot(time=now, state=self.state, source=info, progress=Progress(), tasks=TaskCounts())
        error = ""
        try:
            if given is not None:
                state = given
            elif not read and self._last_state is not None:
                state = self._last_state
            else:
                state = self.source.read()
        except (StatusQueryError, OSError) as exc:
            log.debug("dashboard: cannot read the manager: %s", exc)
            if self.tracker is None:  # nothing else to show: keep the last numbers, say why they are old
                previous = self._last
                if previous is not None:  # a copy: pages may be serialising the previous one right now
                    return dataclasses.replace(previous, state=RunState.UNREACHABLE, error=str(exc), time=now)
                return Snapshot(time=now, state=RunState.UNREACHABLE, source=info, progress=Progress(),
                                tasks=TaskCounts(), error=str(exc))
            # the executor still knows its progress and failures (CCTools' manager with a password
            # refuses status queries); the manager's tables stay as last read
            error = f"the manager's status cannot be read: {exc}"
            state = self._last_state or ManagerState(queue={}, workers=[], tasks=[], categories=[])
        else:
            self._last_state = state
        queue = state.queue
        info.project = str(queue.get("project", "") or "")
        info.version = str(queue.get("version", "") or "")
        if self._started is None or self.tracker is None:
            self._started = _seconds(queue.get("time_when_started")) or self._started
        tasks = task_counts(queue, self.tracker)
        workers = self.history.update(state.workers, state.last_contact, now) if not error else \
            (self._last.workers if self._last is not None else [])
        if self.tracker is not None:
            progress = self.tracker.progress()
            throughput = self.tracker.throughput()
            failures = self.tracker.failures()
            totals = {"chunks": self.tracker.chunks_done_total, "events": self.tracker.events_done_total}
            breakdown = self.tracker.breakdown()
        else:
            self.series.add(tasks.done)
            progress = foreign_progress(tasks, self.series.recent_rate(), now - (self._started or now))
            throughput = self.series.points()
            failures, totals, breakdown = [], {}, {}
        return Snapshot(time=now, state=self.state, source=info, progress=progress, tasks=tasks,
                        throughput=throughput, workers=workers, categories=category_views(state, self.tracker),
                        failures=failures, running_tasks=running_tasks(state.tasks),
                        workers_connected=sum(1 for w in workers if w.connected),
                        started=self._started, run_totals=totals, error=error, breakdown=breakdown)


def task_counts(queue: dict[str, Any], tracker: RunTracker | None) -> TaskCounts:
    counts = TaskCounts(
        waiting=int(_num(queue.get("tasks_waiting"))), running=int(_num(queue.get("tasks_running"))),
        on_workers=int(_num(queue.get("tasks_on_workers"))), submitted=int(_num(queue.get("tasks_submitted"))),
        dispatched=int(_num(queue.get("tasks_dispatched"))), done=int(_num(queue.get("tasks_done"))),
        failed=int(_num(queue.get("tasks_failed"))), cancelled=int(_num(queue.get("tasks_cancelled"))),
        exhaustions=int(_num(queue.get("tasks_exhausted_attempts"))),
        bytes_sent=int(_num(queue.get("bytes_sent"))), bytes_received=int(_num(queue.get("bytes_received"))))
    if tracker is not None:
        counts.retries, counts.splits = tracker.retries, tracker.splits
        counts.partials_lost, counts.chunks_redone, counts.hold_bound = tracker.churn_counts()
    return counts


def running_tasks(records: list[dict[str, Any]]) -> list[RunningTaskView]:
    """The tasks running now, the longest-running first (those are the ones to look at)."""
    views = []
    for record in records:
        if str(record.get("state", "")).lower() != "running":
            continue
        views.append(RunningTaskView(task_id=int(_num(record.get("taskid"))), category=str(record.get("category", "")),
                                     host=str(record.get("host", "") or record.get("address_port", "")),
                                     command=str(record.get("command", ""))[:COMMAND_CHARS],
                                     started=_seconds(record.get("time_when_commit_end"))))
    views.sort(key=lambda v: (v.started is None, v.started or 0.0, v.task_id))
    return views[:RUNNING_TASKS_SHOWN]


def foreign_progress(tasks: TaskCounts, rate: float | None, elapsed: float) -> Progress:
    """A foreign manager's progress in tasks: done out of everything submitted and not cancelled."""
    total = tasks.done + tasks.waiting + tasks.on_workers
    eta = (total - tasks.done) / rate if rate else None
    return Progress(phase="tasks", unit="task", chunks_done=tasks.done, chunks_total=total, rate_chunks_s=rate,
                    eta_s=eta, elapsed_s=max(0.0, elapsed))


def category_views(state: ManagerState, tracker: RunTracker | None) -> list[CategoryView]:
    """The manager's categories (counts, maxima) merged with the tracker's measurements."""
    measured = {c.name: c for c in tracker.categories()} if tracker is not None else {}
    views = []
    for record in state.categories:
        name = str(record.get("category", ""))
        if name == WHOLE_QUEUE:
            continue
        view = measured.pop(name, None) or CategoryView(name=name)
        view.waiting = int(_num(record.get("tasks_waiting")))
        view.running = int(_num(record.get("tasks_running")))
        view.done = int(_num(record.get("tasks_done")))
        view.failed = int(_num(record.get("tasks_failed")))
        if not view.allocation:
            view.allocation = _category_maxima(record)
        views.append(view)
    return views + list(measured.values())


def _category_maxima(record: dict[str, Any]) -> dict[str, float]:
    """``max_cores``/``max_memory``/``max_disk`` of a category record ("~2000", ">1000", "???")."""
    maxima = {}
    for name in ("cores", "memory", "disk", "gpus"):
        text = str(record.get(f"max_{name}", "")).lstrip("~>")
        try:
            maxima[name] = float(text)
        except ValueError:
            continue
    return maxima


def _num(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if number >= 0 and number == number and number != float("inf") else 0.0


def _seconds(microseconds: Any) -> float | None:
    """CCTools' times are microseconds since the epoch (sometimes as strings)."""
    value = _num(microseconds)
    return value / 1e6 if value > 0 else None
