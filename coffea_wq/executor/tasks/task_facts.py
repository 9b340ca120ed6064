"""What a returned task says about itself, read defensively (both Work Queue implementations, any
version): the worker that ran it, its result name, runtime, resources, and the queue's worker counts."""

from __future__ import annotations

from typing import Any, Protocol

from coffea_wq.executor.errors import describe_item
from coffea_wq.executor.verbose import task_report_lines


class FinishedTask(Protocol):
    """What the executor reads of a task the manager returned (both Work Queue implementations);
    the rest (resources, times, exhaustion) is read with ``getattr`` and a default."""

    id: int
    result: int
    return_status: int
    output: str
    command: str


def worker_name(task: FinishedTask) -> str:
    """``hostname (ip:port)`` of the worker that ran ``task``, as far as the manager knows."""
    hostname, address = getattr(task, "hostname", None) or "?", getattr(task, "host", None)
    return f"{hostname} ({address})" if address and address != hostname else str(hostname)


def verbose_report(task: FinishedTask, item: Any) -> list[str]:
    """coffea's verbose lines for a finished task (complete / allocated / measured) and its item."""
    lines = task_report_lines(task.id, task.command, task.return_status, task_resources(task, "resources_allocated"),
                              task_resources(task, "resources_measured") or None, runtime_s(task))
    lines.insert(1, f"    {describe_item(item)} on {getattr(task, 'hostname', '?')}, result {result_name(task)}")
    return lines


def task_resources(task: FinishedTask, attribute: str) -> dict[str, Any]:
    try:
        summary = getattr(task, attribute)
    except (AttributeError, TypeError, ValueError):  # a manager without measurements
        return {}
    if summary is None:
        return {}
    if isinstance(summary, dict):
        return summary
    return {name: getattr(summary, name, None) for name in ("cores", "memory", "disk", "gpus")}


def runtime_s(task: FinishedTask) -> float | None:
    try:
        return float(task.cmd_execution_time) / 1e6
    except (AttributeError, TypeError, ValueError):
        return None


def connected_workers(queue: Any) -> int:
    try:
        stats = queue.stats
        return int(getattr(stats, "workers_connected", 0) or 0)
    except (AttributeError, TypeError, ValueError):
        return 0


def connected_cores(queue: Any) -> int:
    try:
        return int(getattr(queue.stats, "total_cores", 0) or 0)
    except (AttributeError, TypeError, ValueError):
        return 0


def exit_status(task: FinishedTask) -> int | None:
    try:
        return int(task.return_status)
    except (AttributeError, TypeError, ValueError):
        return None


def result_name(task: FinishedTask) -> str:
    try:
        return str(task.result_str)
    except (AttributeError, TypeError, ValueError):
        return str(task.result)
