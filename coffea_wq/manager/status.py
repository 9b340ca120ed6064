"""Answers to ``work_queue_status HOST PORT`` and HTTP GETs, and the catalog record.

The JSON follows CCTools' ``queue_to_jx``, ``task_to_jx``, ``worker_to_jx`` and
``categories_to_jx`` (docs/catalog.md, "Formats"): compact JSON arrays, no trailing newline.
Everything here is called on the manager's loop thread with the manager lock held.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from typing import Any

from coffea_wq.manager.stats import collect_stats, total_workers
from coffea_wq.manager.workers import PeerKind, now_us
from coffea_wq.protocol import CCTOOLS_VERSION
from coffea_wq.protocol.codes import TaskState

# As the real manager answers task_status: "running" in lower case, every other state upper case.
TASK_STATE_NAMES = {state: state.log_name for state in TaskState}
TASK_STATE_NAMES[TaskState.RUNNING] = "running"

# the performance log's 55 columns (docs/catalog.md, "Formats"), in order
STATS_LOG_COLUMNS = (
    "timestamp workers_connected workers_init workers_idle workers_busy workers_able workers_joined "
    "workers_removed workers_released workers_idled_out workers_blocked workers_fast_aborted workers_lost "
    "tasks_waiting tasks_on_workers tasks_running tasks_with_results tasks_submitted tasks_dispatched tasks_done "
    "tasks_failed tasks_cancelled tasks_exhausted_attempts time_when_started time_send time_receive time_send_good "
    "time_receive_good time_status_msgs time_internal time_polling time_application time_execute time_execute_good "
    "time_execute_exhaustion bytes_sent bytes_received bandwidth capacity_tasks capacity_cores capacity_memory "
    "capacity_disk capacity_instantaneous capacity_weighted manager_load total_cores total_memory total_disk "
    "committed_cores committed_memory committed_disk max_cores max_memory max_disk min_cores min_memory min_disk"
).split()

_QUEUE_STAT_KEYS = (
    "workers_connected workers_init workers_idle workers_busy workers_able workers_joined workers_removed "
    "workers_released workers_idled_out workers_fast_aborted workers_lost tasks_waiting tasks_on_workers "
    "tasks_running tasks_with_results tasks_submitted tasks_dispatched tasks_done tasks_failed tasks_cancelled "
    "tasks_exhausted_attempts time_when_started time_send time_receive time_send_good time_receive_good "
    "time_status_msgs time_internal time_polling time_application time_workers_execute time_workers_execute_good "
    "time_workers_execute_exhaustion bytes_sent bytes_received capacity_tasks capacity_cores capacity_memory "
    "capacity_disk capacity_gpus capacity_instantaneous capacity_weighted"
).split()


def network_interfaces(bound_host: str) -> list[dict[str, str]]:
    """The addresses workers can reach us at; only loopback for a manager bound to loopback."""
    if bound_host in ("127.0.0.1", "localhost"):
        return [{"interface": "lo", "host": "127.0.0.1", "family": "AF_INET"}]
    if bound_host == "::1":
        return [{"interface": "lo", "host": "::1", "family": "AF_INET6"}]
    if bound_host:
        return [{"interface": "bound", "host": bound_host, "family": "AF_INET6" if ":" in bound_host else "AF_INET"}]
    try:
        import psutil
    except ImportError:
        return []
    found = []
    for name, addresses in psutil.net_if_addrs().items():
        for address in addresses:
            family = {socket.AF_INET: "AF_INET", socket.AF_INET6: "AF_INET6"}.get(address.family)
            if family is None or address.address.startswith(("127.", "::1", "fe80")):
                continue
            found.append({"interface": name, "host": address.address.split("%")[0], "family": family})
    return found


def _number(value: float | None) -> int | float:
    if value is None:
        return -1
    return int(value) if float(value).is_integer() else float(value)


class StatusReporter:
    """Builds the status JSON of one manager: its loop (``server``) and its settings (``settings``:
    any object with ``project`` and ``priority``, the ``Manager`` of ``manager/api.py``)."""

    def __init__(self, server, settings) -> None:
        self.server = server
        self.settings = settings

    # ------------------------------------------------------------------ dispatch
    def answer(self, kind: str) -> str | None:
        builders = {
            "queue_status": lambda: [self.queue_record()],
            "resources_status": lambda: [self.queue_record()],
            "task_status": self.task_records,
            "worker_status": self.worker_records,
            "wable_status": self.category_records,
        }
        builder = builders.get(kind)
        if builder is None:
            return None
        return json.dumps(builder(), separators=(",", ":"))

    # ------------------------------------------------------------------ queue
    def queue_record(self) -> dict[str, Any]:
        server = self.server
        workers = total_workers(server.core.peers.values())
        stats = collect_stats(server, self.settings.priority, workers)
        record: dict[str, Any] = {
            "type": "wq_master",
            "project": self.settings.project or "",
            "starttime": server.time_when_started // 1_000_000,
            "working_dir": os.getcwd(),
            "owner": _owner(),
            "version": CCTOOLS_VERSION,
            "port": server.port,
            "priority": stats.priority,
            "manager_preferred_connection": "by_ip",
            "network_interfaces": network_interfaces(server.host),
            "workers": stats.workers_connected,
        }
        for key in _QUEUE_STAT_KEYS:
            record[key] = getattr(stats, key)
        record["tasks_left"] = 0
        record["tasks_complete"] = stats.tasks_done
        record["manager_load"] = 0
        for resource in ("workers", "cores", "memory", "disk", "gpus"):
            inuse = 0 if resource == "workers" else workers.inuse[resource]
            record[f"{resource}_inuse"] = _number(inuse)
            record[f"{resource}_total"] = _number(workers.all_total[resource])
            record[f"{resource}_smallest"] = _number(workers.all_smallest.get(resource, 0))
            record[f"{resource}_largest"] = _number(workers.all_largest[resource])
        per_category, requested = _count_tasks(server.queue.tasks.values())
        record["categories"] = self.category_records(able=workers.able, per_category=per_category)
        for resource in ("cores", "memory", "disk", "gpus"):
            record[f"tasks_total_{resource}"] = _number(requested[resource])
        return record

    def queue_record_for_catalog(self) -> dict[str, Any]:
        with self.server.lock:
            return self.queue_record()

    # ------------------------------------------------------------------ tasks
    def task_records(self) -> list[dict[str, Any]]:
        now = now_us()
        records = []
        for task in self.server.queue.tasks.values():
            record: dict[str, Any] = {"taskid": task.task_id, "state": TASK_STATE_NAMES.get(task.state, "unknown")}
            if task.tag is not None:
                record["tag"] = task.tag
            record["category"] = task.category
            record["command"] = task.command
            if task.state in (TaskState.RUNNING, TaskState.WAITING_RETRIEVAL):
                record["host"] = task.hostname
            for resource in ("cores", "gpus", "memory", "disk"):
                record[resource] = _number(getattr(task.requested, resource))
            record["priority"] = f"{task.priority:.0f}" if float(task.priority).is_integer() else f"{task.priority:.2g}"
            if task.state is TaskState.RUNNING:
                record["address_port"] = task.host
                record["time_when_submitted"] = task.time_when_submitted
                record["time_when_commit_start"] = task.time_when_commit_start
                record["time_when_commit_end"] = task.time_when_commit_end
                record["current_time"] = now
            records.append(record)
        return records

    # ------------------------------------------------------------------ workers
    def worker_records(self) -> list[dict[str, Any]]:
        now = now_us()
        records = []
        for peer in self.server.core.peers.values():
            if peer.kind is not PeerKind.WORKER or peer.worker_id is None and peer.tag < 0:
                continue
            running = [t for t in peer.tasks.values() if t.state is TaskState.RUNNING]
            record: dict[str, Any] = {
                "hostname": peer.hostname,
                "os": peer.os,
                "arch": peer.arch,
                "address_port": peer.address,
                "ncpus": _number(peer.resources["cores"].total),
                "total_tasks_complete": peer.tasks_completed,
                "total_tasks_running": len(running),
                "total_bytes_transferred": peer.bytes_sent + peer.bytes_received,
                "total_transfer_time": peer.transfer_time_us,
                "start_time": peer.start_time,
                "current_time": now,
            }
            for resource in ("workers", "cores", "memory", "disk", "gpus"):
                row = peer.resources[resource]
                inuse = 0 if resource == "workers" else getattr(peer.inuse, resource) or 0
                record[f"{resource}_inuse"] = _number(inuse)
                record[f"{resource}_total"] = _number(row.total)
                record[f"{resource}_smallest"] = _number(row.smallest)
                record[f"{resource}_largest"] = _number(row.largest)
            for index, task in enumerate(running):
                record[f"current_task_{index:03d}_id"] = task.task_id
                record[f"current_task_{index:03d}_command"] = task.command
            records.append(record)
        return records

    # ------------------------------------------------------------------ categories
    def category_records(self, able: int | None = None,
                         per_category: dict[str, dict[str, int]] | None = None) -> list[dict[str, Any]]:
        """One object per category with tasks, then the pseudo-category "whole queue" (``able`` and
        ``per_category``: the ready workers and ``_count_tasks``, when the caller has them already)."""
        server = self.server
        if per_category is None:
            per_category = _count_tasks(server.queue.tasks.values())[0]
        for name, totals in server.queue.category_totals.items():
            counts = per_category.setdefault(name, _empty_counts())
            for key in ("tasks_dispatched", "tasks_done", "tasks_failed", "tasks_cancelled"):
                counts[key] = totals.get(key, 0)
        if able is None:
            able = sum(1 for p in server.core.peers.values() if p.ready_for_tasks)
        whole = _empty_counts()
        for counts in per_category.values():
            for key in whole:
                whole[key] += counts[key]
        # the real manager lists "whole queue" first, with the largest request among all tasks as its max
        records = [self._category_record("whole queue", whole, able, self._largest_requests())]
        records += [self._category_record(name, counts, able) for name, counts in per_category.items()]
        return records

    def _largest_requests(self) -> dict[str, float]:
        """The "whole queue" maxima: every request ever submitted and every category's explicit max.

        As CCTools (``q->max_task_resources_requested`` merged with each ``c->max_allocation``), so
        the row keeps its values once the tasks that declared them are gone.
        """
        largest = dict(self.server.queue.largest_requested)
        for category in self.server.core.categories.values():
            for resource, value in category.max_allocation.as_dict().items():
                largest[resource] = max(largest.get(resource, value), value)
        return largest

    def _category_record(self, name: str, counts: dict[str, int], able: int,
                         largest: dict[str, float] | None = None) -> dict[str, Any]:
        """One ``categories`` entry; max strings from the category's explicit max or its measurements."""
        from coffea_wq.resources.types import Resources

        record: dict[str, Any] = {"category": name, **counts, "workers_able": able}
        category = self.server.core.categories.get(name)
        if largest is not None:
            declared: Resources | None = Resources(**largest) if largest else None
        elif category is not None and category.max_allocation.as_dict():
            declared = category.max_allocation
        else:
            declared = None
        if category is not None:
            record.update(category.max_strings(declared))
        elif declared is not None:
            from coffea_wq.resources.categories import Category

            record.update(Category(name).max_strings(declared))
        record["first_allocation_count"] = 0
        record["max_allocation_count"] = counts["tasks_waiting"] + counts["tasks_running"]
        return record

    # ------------------------------------------------------------------ stats log
    def stats_row(self) -> dict[str, Any]:
        stats = collect_stats(self.server, self.settings.priority)
        values = stats.as_dict()
        values["timestamp"] = now_us()
        values["time_execute"] = stats.time_workers_execute
        values["time_execute_good"] = stats.time_workers_execute_good
        values["time_execute_exhaustion"] = stats.time_workers_execute_exhaustion
        return {column: values.get(column, 0) for column in STATS_LOG_COLUMNS}


def _count_tasks(tasks) -> tuple[dict[str, dict[str, int]], dict[str, float]]:
    """One pass over the queue's tasks: counts by category and state, and the resources requested
    by the tasks ready or running."""
    per_category: dict[str, dict[str, int]] = {}
    requested = dict.fromkeys(("cores", "memory", "disk", "gpus"), 0.0)
    ready, running, retrieval = TaskState.READY, TaskState.RUNNING, TaskState.WAITING_RETRIEVAL
    for task in tasks:
        counts = per_category.get(task.category)
        if counts is None:
            counts = per_category[task.category] = _empty_counts()
        state = task.state
        if state is ready:
            counts["tasks_waiting"] += 1
        elif state is running:
            counts["tasks_running"] += 1
            counts["tasks_on_workers"] += 1
        elif state is retrieval:
            counts["tasks_on_workers"] += 1
        if state is ready or state is running:
            box = task.requested
            for name in requested:
                requested[name] += getattr(box, name) or 0
    return per_category, requested


def _empty_counts() -> dict[str, int]:
    keys = ("tasks_waiting", "tasks_running", "tasks_on_workers", "tasks_dispatched", "tasks_done", "tasks_failed",
            "tasks_cancelled")
    return dict.fromkeys(keys, 0)


def _owner() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "unknown"
