"""``WorkQueue.stats``: a snapshot with CCTools' ``work_queue_stats`` attribute names."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from coffea_wq.manager.workers import RESOURCE_KEYS, PeerKind
from coffea_wq.protocol.codes import TaskState

# CCTools' estimates when nothing has been measured yet (seen in real queue_status records)
DEFAULT_CAPACITY = {"tasks": 10, "cores": 10, "memory": 5120, "disk": 10240, "gpus": 0}


@dataclass
class QueueStats:
    """Counters and resource totals of a queue at one moment (µs for times, MB for memory/disk)."""

    port: int = 0
    priority: int = 0
    workers_connected: int = 0
    workers_init: int = 0
    workers_idle: int = 0
    workers_busy: int = 0
    workers_able: int = 0
    workers_ready: int = 0
    workers_full: int = 0
    workers_joined: int = 0
    workers_removed: int = 0
    workers_released: int = 0
    workers_idled_out: int = 0
    workers_fast_aborted: int = 0
    workers_blocked: int = 0
    workers_blacklisted: int = 0
    workers_lost: int = 0
    tasks_waiting: int = 0
    tasks_on_workers: int = 0
    tasks_running: int = 0
    tasks_with_results: int = 0
    tasks_submitted: int = 0
    tasks_dispatched: int = 0
    tasks_done: int = 0
    tasks_complete: int = 0
    tasks_failed: int = 0
    tasks_cancelled: int = 0
    tasks_exhausted_attempts: int = 0
    time_when_started: int = 0
    start_time: int = 0
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
    bandwidth: float = 0.0
    capacity_tasks: int = DEFAULT_CAPACITY["tasks"]
    capacity_cores: int = DEFAULT_CAPACITY["cores"]
    capacity_memory: int = DEFAULT_CAPACITY["memory"]
    capacity_disk: int = DEFAULT_CAPACITY["disk"]
    capacity_gpus: int = DEFAULT_CAPACITY["gpus"]
    capacity_instantaneous: int = DEFAULT_CAPACITY["tasks"]
    capacity_weighted: int = DEFAULT_CAPACITY["tasks"]
    manager_load: float = 0.0
    total_cores: int = 0
    total_memory: int = 0
    total_disk: int = 0
    total_gpus: int = 0
    committed_cores: int = 0
    committed_memory: int = 0
    committed_disk: int = 0
    committed_gpus: int = 0
    max_cores: int = 0
    max_memory: int = 0
    max_disk: int = 0
    max_gpus: int = 0
    min_cores: int = 0
    min_memory: int = 0
    min_disk: int = 0
    min_gpus: int = 0

    # CCTools' older names for the same numbers
    @property
    def total_workers_connected(self) -> int:
        return self.workers_connected

    @property
    def total_tasks_dispatched(self) -> int:
        return self.tasks_dispatched

    @property
    def total_tasks_complete(self) -> int:
        return self.tasks_done

    @property
    def total_tasks_cancelled(self) -> int:
        return self.tasks_cancelled

    @property
    def total_bytes_sent(self) -> int:
        return self.bytes_sent

    @property
    def total_bytes_received(self) -> int:
        return self.bytes_received

    def as_dict(self) -> dict:
        return asdict(self)


RESOURCES = ("cores", "memory", "disk", "gpus")


@dataclass
class WorkerTotals:
    """What the status records say about the workers, gathered in one pass over them.

    ``ready_*``: over workers ready for tasks (QueueStats' total/max/min); ``all_*``: over every
    worker (the queue record's ``*_total``/``*_smallest``/``*_largest``, workers row included).
    """

    connected: int = 0
    init: int = 0
    idle: int = 0
    busy: int = 0
    able: int = 0
    running: int = 0
    retrieving: int = 0
    inuse: dict = field(default_factory=lambda: dict.fromkeys(RESOURCES, 0.0))
    ready_total: dict = field(default_factory=lambda: dict.fromkeys(RESOURCES, 0.0))
    ready_max: dict = field(default_factory=lambda: dict.fromkeys(RESOURCES, 0.0))
    ready_min: dict = field(default_factory=dict)
    all_total: dict = field(default_factory=lambda: dict.fromkeys(RESOURCE_KEYS, 0.0))
    all_largest: dict = field(default_factory=lambda: dict.fromkeys(RESOURCE_KEYS, 0.0))
    all_smallest: dict = field(default_factory=dict)


def total_workers(peers) -> WorkerTotals:
    """One pass over the connected peers (a status query must not walk 10,000 workers ten times)."""
    totals = WorkerTotals()
    inuse, ready_total, ready_max, ready_min = totals.inuse, totals.ready_total, totals.ready_max, totals.ready_min
    all_total, all_largest, all_smallest = totals.all_total, totals.all_largest, totals.all_smallest
    running_state, retrieval_state = TaskState.RUNNING, TaskState.WAITING_RETRIEVAL
    for peer in peers:
        if peer.kind is not PeerKind.WORKER:
            continue
        totals.connected += 1
        ready = peer.ready_for_tasks
        tasks = peer.tasks
        if ready:
            totals.able += 1
            if not tasks:
                totals.idle += 1
        else:
            totals.init += 1
        if tasks:
            totals.busy += 1
            for task in tasks.values():
                if task.state is running_state:
                    totals.running += 1
                elif task.state is retrieval_state:
                    totals.retrieving += 1
        rows = peer.resources
        for name in RESOURCE_KEYS:
            row = rows[name]
            all_total[name] += row.total
            if row.largest > all_largest[name]:
                all_largest[name] = row.largest
            if name not in all_smallest or row.smallest < all_smallest[name]:
                all_smallest[name] = row.smallest
        box = peer.inuse
        for name in RESOURCES:
            inuse[name] += getattr(box, name) or 0
            if ready:
                row = rows[name]
                ready_total[name] += row.total
                if row.largest > ready_max[name]:
                    ready_max[name] = row.largest
                if name not in ready_min or row.smallest < ready_min[name]:
                    ready_min[name] = row.smallest
    return totals


def collect_stats(server, priority: int = 0, workers: WorkerTotals | None = None) -> QueueStats:
    """Counters and totals from a ``ManagerServer``; call with the manager lock held."""
    queue = server.queue
    counters = queue.counters
    stats = QueueStats(port=server.port, priority=priority, time_when_started=server.time_when_started)
    stats.start_time = server.time_when_started
    for name, value in asdict(counters).items():
        setattr(stats, name, value)
    stats.tasks_complete = counters.tasks_done
    w = workers if workers is not None else total_workers(server.core.peers.values())
    stats.workers_connected = w.connected
    stats.workers_init = w.init
    stats.workers_idle = w.idle
    stats.workers_busy = w.busy
    stats.workers_able = w.able
    stats.workers_ready = stats.workers_idle
    stats.tasks_waiting = queue.ready_count
    stats.tasks_running = w.running
    stats.tasks_on_workers = w.running + w.retrieving
    stats.tasks_with_results = w.retrieving + len(queue.retrieved)
    for resource in RESOURCES:
        setattr(stats, f"total_{resource}", int(w.ready_total[resource]))
        setattr(stats, f"max_{resource}", int(w.ready_max[resource]))
        setattr(stats, f"min_{resource}", int(w.ready_min.get(resource, 0)))
        setattr(stats, f"committed_{resource}", int(w.inuse[resource]))
    elapsed_s = max(1e-6, (_now_us() - server.time_when_started) / 1e6)
    stats.bandwidth = (counters.bytes_sent + counters.bytes_received) / elapsed_s / 1e6
    return stats


def _now_us() -> int:
    from coffea_wq.manager.workers import now_us

    return now_us()
