"""``WorkQueue.stats``: a snapshot with CCTools' ``work_queue_stats`` attribute names."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from coffea_wq.manager.workers import PeerKind
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


def collect_stats(server, priority: int = 0) -> QueueStats:
    """Counters and totals from a ``ManagerServer``; call with the manager lock held."""
    queue = server.queue
    counters = queue.counters
    stats = QueueStats(port=server.port, priority=priority, time_when_started=server.time_when_started)
    stats.start_time = server.time_when_started
    for name, value in asdict(counters).items():
        setattr(stats, name, value)
    stats.tasks_complete = counters.tasks_done
    workers = [p for p in server.core.peers.values() if p.kind is PeerKind.WORKER]
    stats.workers_connected = len(workers)
    stats.workers_init = sum(1 for p in workers if not p.ready_for_tasks)
    stats.workers_idle = sum(1 for p in workers if p.ready_for_tasks and not p.tasks)
    stats.workers_busy = sum(1 for p in workers if p.tasks)
    stats.workers_able = sum(1 for p in workers if p.ready_for_tasks)
    stats.workers_ready = stats.workers_idle
    running = retrieving = 0
    for peer in workers:
        for task in peer.tasks.values():
            if task.state is TaskState.RUNNING:
                running += 1
            elif task.state is TaskState.WAITING_RETRIEVAL:
                retrieving += 1
    stats.tasks_waiting = queue.ready_count
    stats.tasks_running = running
    stats.tasks_on_workers = running + retrieving
    stats.tasks_with_results = retrieving + len(queue.retrieved)
    for resource in ("cores", "memory", "disk", "gpus"):
        rows = [p.resources[resource] for p in workers if p.ready_for_tasks]
        setattr(stats, f"total_{resource}", int(sum(r.total for r in rows)))
        setattr(stats, f"max_{resource}", int(max((r.largest for r in rows), default=0)))
        setattr(stats, f"min_{resource}", int(min((r.smallest for r in rows), default=0)))
        inuse = sum((getattr(p.inuse, resource) or 0) for p in workers)
        setattr(stats, f"committed_{resource}", int(inuse))
    elapsed_s = max(1e-6, (_now_us() - server.time_when_started) / 1e6)
    stats.bandwidth = (counters.bytes_sent + counters.bytes_received) / elapsed_s / 1e6
    return stats


def _now_us() -> int:
    from coffea_wq.manager.workers import now_us

    return now_us()
