"""The dashboard's data: one read-only snapshot of a run, as plain dataclasses and as JSON.

``/api/snapshot`` serves ``Snapshot.as_json()``; the page (``assets/dashboard.js``) and the
Prometheus collector (``metrics.py``) read nothing else, so what the page shows and what
``/metrics`` counts always agree. A snapshot is built by ``build.py`` from the manager's status
records (``ManagerState``) and, when the executor runs the manager, the run's ``RunTracker``.
Fields a source cannot know are ``None`` (the page shows a dash): a foreign manager reached by
status queries knows tasks, not events.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass, field

SNAPSHOT_VERSION = 1


class RunState(enum.Enum):
    WAITING = "waiting"  # the dashboard is up, no call has started (or no manager answered yet)
    RUNNING = "running"
    FINISHED = "finished"  # the run ended; the snapshot keeps its final state
    UNREACHABLE = "unreachable"  # the manager did not answer the latest status query


@dataclass
class BucketCounts:
    """Counts of observations per bucket; ``bounds`` are the buckets' upper edges (the last one is +inf)."""

    bounds: list[float]
    counts: list[int]
    total: float = 0.0  # sum of the observations (Prometheus' ``_sum``)

    @classmethod
    def empty(cls, bounds: tuple[float, ...]) -> BucketCounts:
        return cls(list(bounds), [0] * (len(bounds) + 1))

    def observe(self, value: float) -> None:
        index = next((i for i, bound in enumerate(self.bounds) if value <= bound), len(self.bounds))
        self.counts[index] += 1
        self.total += value

    @property
    def observations(self) -> int:
        return sum(self.counts)


@dataclass
class DatasetProgress:
    name: str
    chunks_done: int = 0
    chunks_total: int = 0
    events_done: int = 0
    events_total: int = 0


@dataclass
class Progress:
    """The current executor call (or, for a foreign manager, its tasks)."""

    phase: str = ""  # "Preprocessing", "Processing", or "tasks" for a foreign manager
    unit: str = "chunk"
    chunks_done: int = 0
    chunks_total: int = 0
    events_done: int | None = None
    events_total: int | None = None
    rate_events_s: float | None = None  # over the last RATE_WINDOW_S seconds
    rate_chunks_s: float | None = None
    eta_s: float | None = None
    elapsed_s: float = 0.0
    datasets: list[DatasetProgress] = field(default_factory=list)


@dataclass
class TaskCounts:
    waiting: int = 0
    running: int = 0
    on_workers: int = 0
    submitted: int = 0
    dispatched: int = 0
    done: int = 0
    failed: int = 0
    cancelled: int = 0
    retries: int | None = None  # known to the executor only
    exhaustions: int = 0  # attempts stopped for exceeding their allocation
    splits: int | None = None  # chunks split after an exhaustion (executor only)
    # workers that left with partials (executor only, docs/reduction.md, section 6): partials lost,
    # chunk runs redone because of them, and the hand-back bound in force
    partials_lost: int | None = None
    chunks_redone: int | None = None
    hold_bound: str = ""
    bytes_sent: int = 0
    bytes_received: int = 0


@dataclass
class ThroughputPoint:
    t: float  # seconds since the run started
    events_s: float | None
    chunks_s: float


@dataclass
class WorkerView:
    host: str
    address: str
    cores: float = 0
    memory: float = 0  # MB
    disk: float = 0  # MB
    gpus: float = 0
    running: int = 0
    done: int = 0
    joined: float | None = None  # epoch seconds
    left: float | None = None  # epoch seconds; None while connected
    last_contact: float | None = None  # epoch seconds
    warm: bool = False  # has finished a task of this connection: caches and warm slots are filled

    @property
    def connected(self) -> bool:
        return self.left is None


@dataclass
class CategoryView:
    name: str
    waiting: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    allocation: dict[str, float] = field(default_factory=dict)  # latest allocation (or the category max)
    peaks: dict[str, float] = field(default_factory=dict)  # largest measured: cores, memory, disk, wall_time
    memory: BucketCounts | None = None  # measured peak memory, MB
    wall_time: BucketCounts | None = None  # wall time, s
    exhaustions: int = 0
    splits: int = 0


@dataclass
class FailureView:
    time: float  # epoch seconds
    dataset: str | None
    file: str | None
    entry_start: int | None
    entry_stop: int | None
    host: str | None
    attempt: int
    final: bool  # True: the item failed for good (the run stops); False: it was retried or split
    error: list[str]  # the first lines of the error


@dataclass
class RunningTaskView:
    """A task running on a worker, from the manager's ``task_status`` (``work_queue_status -T``)."""

    task_id: int
    category: str
    host: str
    command: str  # cut to COMMAND_CHARS
    started: float | None  # epoch seconds the task was sent to its worker


@dataclass
class SourceInfo:
    kind: str  # "executor" (the run's own manager) or "status" (any manager, by status queries)
    manager: str  # host:port
    project: str = ""
    version: str = ""
    password: bool = False  # the page is protected by the manager's password


@dataclass
class Snapshot:
    time: float
    state: RunState
    source: SourceInfo
    progress: Progress
    tasks: TaskCounts
    throughput: list[ThroughputPoint] = field(default_factory=list)
    workers: list[WorkerView] = field(default_factory=list)
    categories: list[CategoryView] = field(default_factory=list)
    failures: list[FailureView] = field(default_factory=list)
    running_tasks: list[RunningTaskView] = field(default_factory=list)  # the longest-running first
    workers_connected: int = 0
    started: float | None = None  # epoch seconds
    error: str = ""  # why the manager could not be read (state UNREACHABLE)
    run_totals: dict[str, int] = field(default_factory=dict)  # executor: items and events over every call
    # executor: where the time went (``Breakdown.as_dict()``, docs/executor.md, section 10); {} otherwise
    breakdown: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        data = asdict(self)
        data["version"] = SNAPSHOT_VERSION
        data["state"] = self.state.value
        for view, worker in zip(data["workers"], self.workers, strict=True):
            view["connected"] = worker.connected
        return data

    def as_json(self) -> str:
        return json.dumps(self.as_dict(), separators=(",", ":"), allow_nan=False, default=str)
