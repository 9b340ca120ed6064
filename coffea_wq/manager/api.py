"""``Manager``: the manager's public API, what the user's thread may ask of it.

The ``WorkQueue`` facade (``coffea_wq/work_queue/``), the dashboard and a factory serving the queue
hold a ``Manager`` and call its named methods; none of them walks the connected peers, sets a peer's
fields or reads the loop's state (docs/design.md). Every method takes the manager lock itself, acts,
and wakes the I/O loop when the loop has something to send; none blocks on the network.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from coffea_wq.manager.logs import ManagerLogs
from coffea_wq.manager.server import ManagerServer
from coffea_wq.manager.stats import QueueStats, collect_stats
from coffea_wq.manager.status import StatusReporter
from coffea_wq.manager.task import TaskSpec
from coffea_wq.manager.tls_setup import queue_ssl_context
from coffea_wq.manager.workers import Peer, PeerKind
from coffea_wq.protocol.codes import TaskState
from coffea_wq.resources.allocation import AllocationMode
from coffea_wq.resources.types import Resources

# the tunable switches of ManagerCore (tune() names map onto these in the facade)
CORE_SWITCHES = ("proportional_resources", "proportional_whole_tasks")
# the per-category limits set_category_limit() may set, and the log line each writes
CATEGORY_LIMITS = {"max_allocation": "category_max", "min_allocation": "category_min"}


@dataclass
class StatusSnapshot:
    """The four status records (``queue_status``, ``worker_status``, ``task_status``,
    ``wable_status``) read at one instant, and each worker's last contact (s since the epoch, by
    its ``address_port``), which the records themselves do not carry."""

    queue: dict[str, Any]
    workers: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    categories: list[dict[str, Any]]
    last_contact: dict[str, float] = field(default_factory=dict)


class Manager:
    """One manager: its I/O loop (``ManagerServer``), status answers and logs, behind named methods.

    Args:
        port: an int, ``[low, high]``, ``"low-high"`` (first free port), or 0 (any).
        host: the address to listen on ("" for all interfaces).
        logs: the transactions/stats logs.
        ssl: ``WorkQueue``'s ``ssl`` option: None/False (plain TCP), True (a self-signed certificate
            made for this manager, removed at ``stop``) or ``(key_file, cert_file)``.
        project: the project name (None: not advertised).
    """

    def __init__(self, port=0, host: str = "", logs: ManagerLogs | None = None, ssl=None,
                 project: str | None = None) -> None:
        ssl_context, self._tls_dir = queue_ssl_context(ssl)
        self.logs = logs or ManagerLogs()
        self.priority = 0  # reported in the status records and the catalog (specify_priority)
        try:
            self._server = ManagerServer(port, host, self.logs, ssl_context=ssl_context)
        except BaseException:
            self._remove_tls_dir()
            raise
        self._server.handlers.project = project
        self._status = StatusReporter(self._server, self)
        self._server.handlers.status_provider = self._status.answer
        self._advertiser = None  # a catalog advertiser while the manager has a project name
        self._catalog_seen: tuple = ()
        self._server.on_tick = self._each_second
        self._server.on_workers_changed = self._notify_catalog

    # ------------------------------------------------------------------ identity
    @property
    def port(self) -> int:
        return self._server.port

    @property
    def project(self) -> str | None:
        return self._server.handlers.project

    @project.setter
    def project(self, name: str | None) -> None:
        self._server.handlers.project = name

    @property
    def listening_host(self) -> str:
        """The address the manager listens on ("0.0.0.0" for every interface)."""
        return self._server.listener.getsockname()[0]

    @property
    def using_ssl(self) -> bool:
        return self._server.ssl_context is not None

    # ------------------------------------------------------------------ tasks
    def submit(self, spec: TaskSpec) -> int:
        """Queue ``spec``; returns its task id."""
        task_id = self._server.submit(spec)
        self._notify_catalog()  # the catalog shows the new WAITING count within a second
        return task_id

    def wait(self, timeout: float | None, tag: str | None = None) -> TaskSpec | None:
        """A finished task (tagged ``tag`` if given), or None after ``timeout`` s (None: while tasks remain)."""
        return self._server.wait(timeout, tag)

    def cancel(self, task_id: int) -> TaskSpec | None:
        """Remove task ``task_id`` from the queue, killing it where it runs; None if unknown."""
        return self._call(lambda: self._server.core.cancel(int(task_id)))

    def task_ids(self, category: str | None = None, tag: str | None = None) -> list[int]:
        """Ids of the tasks still in the queue, of ``category`` and/or with ``tag`` when given."""
        with self._server.lock:
            return [t.task_id for t in self._server.queue.tasks.values()
                    if (category is None or t.category == category) and (tag is None or t.tag == tag)]

    def task_state(self, task_id: int) -> TaskState:
        with self._server.lock:
            spec = self._server.queue.tasks.get(int(task_id))
            return spec.state if spec is not None else TaskState.UNKNOWN

    def ensure_min_task_id(self, minimum: int) -> None:
        self._server.ensure_min_task_id(int(minimum))

    def empty(self) -> bool:
        """True when no submitted task is still to be returned by ``wait``."""
        with self._server.lock:
            return self._server.queue.outstanding == 0

    def hungry(self) -> int:
        """How many more tasks the queue would like: twice the ready workers' cores waiting (at least 10)."""
        with self._server.lock:
            cores = sum((p.resources["cores"].total or 0) for p in self._ready_workers())
            wanted = max(10, int(2 * cores))
            return max(0, wanted - self._server.queue.ready_count)

    # ------------------------------------------------------------------ workers
    def exit_idle_workers(self, n: int) -> int:
        """Tell up to ``n`` idle workers (0: all) to exit; returns how many were told."""
        def idle(peer: Peer) -> bool:
            return peer.kind is PeerKind.WORKER and not peer.tasks and not peer.closing

        return int(self._call(lambda: self._server.core.exit_workers(idle, limit=n)))

    def block_host(self, host: str, timeout: float = float("inf")) -> None:
        """Refuse workers from ``host`` for ``timeout`` s; release the connected ones."""
        def block() -> None:
            self._server.handlers.blocked_hosts[host] = time.monotonic() + float(timeout)
            self._server.core.release_workers(lambda peer: peer.hostname == host and not peer.closing)

        self._call(block)

    def unblock_host(self, host: str | None = None) -> None:
        """Accept ``host`` again (every host when None)."""
        def unblock() -> None:
            if host is None:
                self._server.handlers.blocked_hosts.clear()
            else:
                self._server.handlers.blocked_hosts.pop(host, None)

        self._call(unblock)

    def disconnect_worker(self, address: str) -> bool:
        """Release the worker connected from ``address`` ("ip:port"); its tasks are requeued."""
        def release() -> int:
            return self._server.core.release_workers(lambda peer: peer.address == address and not peer.closing,
                                                     limit=1)

        return bool(self._call(release))

    def drain_host(self, hostname: str, drain: bool = True) -> int:
        """Let workers on ``hostname`` finish their tasks but take no new ones (or undo it); how many."""
        def mark() -> int:
            count = 0
            for peer in self._server.core.peers.values():
                if peer.hostname == hostname:
                    peer.draining = bool(drain)
                    count += 1
            return count

        return int(self._call(mark))

    def invalidate_cached_file(self, cached_name: str) -> int:
        """Make every worker drop its cached copy named ``cached_name``; how many held one."""
        return int(self._call(lambda: self._server.core.forget_cached_file(cached_name)))

    def ready_workers(self) -> int:
        """How many workers are ready for tasks."""
        with self._server.lock:
            return sum(1 for _ in self._ready_workers())

    def worker_features(self) -> set[str]:
        """The features of every connected worker, together (the executor's reduction checks with it
        whether the worker holding a partial is still here, docs/reduction.md)."""
        with self._server.lock:
            features: set[str] = set()
            for peer in self._server.core.peers.values():
                if peer.kind is PeerKind.WORKER and not peer.closing:
                    features |= peer.features
            return features

    def worker_sizes(self) -> dict[tuple[int, int, int, int], int]:
        """(cores, memory, disk, gpus) -> how many ready workers have that size."""
        sizes: dict[tuple[int, int, int, int], int] = {}
        with self._server.lock:
            for peer in self._ready_workers():
                total = peer.total
                key = (int(total.cores or 0), int(total.memory or 0), int(total.disk or 0), int(total.gpus or 0))
                sizes[key] = sizes.get(key, 0) + 1
        return sizes

    def refused_peers(self) -> list:
        """The peers refused for a password or TLS mismatch, one ``RefusedPeer`` per IP."""
        with self._server.lock:
            return self._server.handlers.refusals.snapshot()

    # ------------------------------------------------------------------ settings
    def set_password(self, password: bytes | None) -> None:
        self._server.set_password(password)

    def set_keepalive(self, interval: float | None = None, timeout: float | None = None) -> None:
        if interval is not None:
            self._server.keepalive_interval = float(interval)
        if timeout is not None:
            self._server.keepalive_timeout = float(timeout)

    def set_max_task_output(self, size: int) -> None:
        """Bytes of one task's output kept (the rest is dropped: STDOUT_MISSING)."""
        with self._server.lock:
            self._server.max_task_output = int(size)

    def set_peer_transfers(self, enabled: bool | None = None, min_bytes: int | None = None,
                           per_source: int | None = None) -> None:
        """Worker-to-worker transfers of cached files (manager/peers.py): on/off, the smallest file
        sent that way, and how many transfers one worker serves at once."""
        with self._server.lock:
            planner = self._server.core.planner
            if enabled is not None:
                planner.enabled = bool(enabled)
            if min_bytes is not None:
                planner.min_bytes = max(0, int(min_bytes))
            if per_source is not None:
                planner.per_source = max(1, int(per_source))

    def peer_transfer_counts(self) -> dict[str, int]:
        """Copies of cached files made by workers and by the manager, and peer failures fallen back from."""
        with self._server.lock:
            counts = self._server.core.planner.counts
            return {"peer_copies": counts.peer_copies, "manager_copies": counts.manager_copies,
                    "failures": counts.failures}

    def set_output_quota(self, quota: float) -> None:
        """Outputs larger than this are refused (staging_quota.py)."""
        with self._server.lock:
            self._server.core.output_quota = float(quota)

    def set_steady_n_tasks(self, count: int) -> None:
        with self._server.lock:
            self._server.core.set_steady_n_tasks(int(count))

    def set_switch(self, name: str, on: bool) -> None:
        """One of ``CORE_SWITCHES`` (``proportional_resources``, ``proportional_whole_tasks``)."""
        if name not in CORE_SWITCHES:
            raise ValueError(f"unknown manager switch {name!r}; expected one of {CORE_SWITCHES}")
        self._call(lambda: setattr(self._server.core, name, bool(on)))

    def enable_monitoring(self, settings) -> None:
        """Wrap every task in the resource monitor (a ``MonitorSettings``)."""
        with self._server.lock:
            self._server.core.monitor = settings

    # ------------------------------------------------------------------ categories
    def set_category_mode(self, category: str, mode: AllocationMode) -> None:
        with self._server.lock:
            target = self._server.core.category(category)
            target.mode = mode
            self.logs.category_first(category, mode.log_name, target.first_allocation)

    def set_category_limit(self, category: str, limit: str, value: Resources) -> None:
        """``limit`` is ``max_allocation`` or ``min_allocation``."""
        if limit not in CATEGORY_LIMITS:
            raise ValueError(f"unknown category limit {limit!r}; expected one of {tuple(CATEGORY_LIMITS)}")

        def apply() -> None:
            setattr(self._server.core.category(category), limit, value)
            getattr(self.logs, CATEGORY_LIMITS[limit])(category, value)

        self._call(apply)

    def set_first_allocation_guess(self, category: str, value: Resources) -> None:
        self._call(lambda: self._server.core.category(category).set_first_allocation_guess(value))

    def set_category_max_concurrent(self, category: str, count: int) -> None:
        def apply() -> None:
            self._server.core.category(category).max_concurrent = int(count)

        self._call(apply)

    # ------------------------------------------------------------------ reading the state
    def stats(self, category: str | None = None) -> QueueStats:
        """The queue's statistics; with ``category``, its task counts are that category's."""
        with self._server.lock:
            stats = collect_stats(self._server, self.priority)
            if category is not None:
                self._narrow_to_category(stats, category)
        return stats

    def status_records(self, kind: str = "queue_status") -> list:
        """The records a ``kind`` status query would get (a list of dicts; [] for an unknown kind)."""
        with self._server.lock:
            body = self._status.answer(kind)
        return json.loads(body) if body else []

    def snapshot(self) -> StatusSnapshot:
        """The four status records at one instant, with each worker's last contact."""
        with self._server.lock:
            now_wall, now_mono = time.time(), time.monotonic()
            return StatusSnapshot(
                self._status.queue_record(), self._status.worker_records(), self._status.task_records(),
                self._status.category_records(),
                # last_received is monotonic; the status records carry no last-contact time
                {peer.address: now_wall - (now_mono - peer.last_received)
                 for peer in self._server.core.peers.values()})

    def catalog_record(self) -> dict[str, Any]:
        """The queue record the catalog gets."""
        return self._status.queue_record_for_catalog()

    def _counts(self) -> tuple[int, ...]:
        """What the catalog record counts (tasks by state, workers, cores), cheaply, to see a change."""
        with self._server.lock:
            server = self._server
            peers = server.core.peers.values()
            on_workers = sum(len(peer.tasks) for peer in peers)
            return (server.queue.ready_count, server.queue.outstanding, on_workers,
                    server.queue.counters.tasks_done, len(server.core.peers),
                    sum(1 for peer in peers if peer.ready_for_tasks))

    # ------------------------------------------------------------------ catalog
    @property
    def advertiser(self):
        """The running ``CatalogAdvertiser`` (``updates_sent``, ...), or None when not advertising."""
        return self._advertiser

    def advertise(self, catalog: str | None) -> None:
        """(Re)start advertising the queue to ``catalog`` ("host:port[,host:port]"; None: the
        default catalog) under its project name; nothing without a project name."""
        self.stop_advertising()
        if self.project:
            from coffea_wq.manager.advertise import start_advertiser

            self._advertiser = start_advertiser(catalog, self.catalog_record)

    def stop_advertising(self) -> None:
        if self._advertiser is not None:
            self._advertiser.stop()
            self._advertiser = None

    def _notify_catalog(self) -> None:
        if self._advertiser is not None:
            self._advertiser.notify_change()

    def _each_second(self) -> None:
        # on the loop thread with the lock held: a task that started or finished, or a worker that
        # came or went, is advertised at the next second (the advertiser sends at most 1/s)
        if self._advertiser is not None:
            seen = self._counts()
            if seen != self._catalog_seen:
                self._catalog_seen = seen
                self._advertiser.notify_change()
        if self.logs.stats is not None:  # the row walks every worker: only when a stats log is kept
            self.logs.write_stats(self._status.stats_row())

    # ------------------------------------------------------------------ logs and shutdown
    def open_stats_log(self, path: str) -> None:
        with self._server.lock:
            self.logs.open_stats(path)

    def open_transactions_log(self, path: str) -> None:
        with self._server.lock:
            self.logs.open_transactions(path)

    def write_stats(self, force: bool = False) -> None:
        with self._server.lock:
            self.logs.write_stats(self._status.stats_row(), force=force)

    def stop(self) -> None:
        """Stop advertising, write the last stats row, release every worker, stop the loop, close
        every socket and log, remove a certificate made for this manager."""
        self.stop_advertising()
        self.write_stats(force=True)
        self._server.stop()
        self._remove_tls_dir()

    def _remove_tls_dir(self) -> None:
        if self._tls_dir is not None:
            self._tls_dir.cleanup()
            self._tls_dir = None

    # ------------------------------------------------------------------ helpers
    def _call(self, function: Callable[[], Any]) -> Any:
        return self._server.call(function)

    def _ready_workers(self):
        return (p for p in self._server.core.peers.values() if p.ready_for_tasks)

    def _narrow_to_category(self, stats: QueueStats, category: str) -> None:
        tasks = [t for t in self._server.queue.tasks.values() if t.category == category]
        stats.tasks_waiting = sum(1 for t in tasks if t.state is TaskState.READY)
        stats.tasks_running = sum(1 for t in tasks if t.state is TaskState.RUNNING)
        retrieving = sum(1 for t in tasks if t.state in (TaskState.WAITING_RETRIEVAL, TaskState.RETRIEVED))
        stats.tasks_with_results = retrieving
        stats.tasks_on_workers = stats.tasks_running + retrieving
        for name in ("tasks_submitted", "tasks_done", "tasks_failed", "tasks_cancelled"):
            setattr(stats, name, self._server.queue.category_totals.get(category, {}).get(name, 0))
