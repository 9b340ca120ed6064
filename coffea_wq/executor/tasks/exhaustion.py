"""Why a task came back as resource exhaustion, in words a user can act on.

coffea-wq's manager gives ``task.exhaustion_message`` ("memory exceeded: peak 812 MB > limit 700 MB");
CCTools' manager only gives ``limits_exceeded`` and ``resources_measured`` (rmsummary objects whose
unset fields read -1), from which the same sentence is built here.
"""

from __future__ import annotations

from typing import Any

from coffea_wq.executor.tasks.task_facts import FinishedTask

LIMITED_RESOURCES = (("cores", ""), ("memory", " MB"), ("disk", " MB"), ("gpus", ""), ("wall_time", " s"))


def _number(summary: Any, name: str) -> float | None:
    if summary is None:
        return None
    try:
        value = summary.get(name) if isinstance(summary, dict) else getattr(summary, name, None)
    except Exception:  # a half-filled rmsummary
        return None
    if isinstance(value, (list, tuple)) and value:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return None
    return float(value)


def exhaustion_reason(task: FinishedTask) -> str:
    """``memory exceeded: peak 812 MB > limit 700 MB``, or what is known when nothing was measured.

    Example:
        >>> class T: limits_exceeded = {"memory": 700}; resources_measured = {"memory": 812}
        >>> exhaustion_reason(T())
        'memory exceeded: peak 812 MB > limit 700 MB'
    """
    message = getattr(task, "exhaustion_message", "")
    if isinstance(message, str) and message:
        return message
    limits, measured = getattr(task, "limits_exceeded", None), getattr(task, "resources_measured", None)
    parts = []
    for name, unit in LIMITED_RESOURCES:
        limit = _number(limits, name)
        if limit is None or limit == 0:
            continue
        peak = _number(measured, name)
        peak_text = f"{peak:g}{unit}" if peak is not None else "unmeasured"
        parts.append(f"{name} exceeded: peak {peak_text} > limit {limit:g}{unit}")
    if parts:
        return "; ".join(parts)
    return "the worker stopped it for exceeding its allocation (no measurement came back)"


def allocation_text(task: FinishedTask) -> str:
    """``cores 1, memory 700 MB, disk 8000 MB`` of the task's last allocation ("" when unknown)."""
    box = getattr(task, "resources_allocated", None)
    parts = []
    for name, unit in LIMITED_RESOURCES[:4]:
        value = _number(box, name)
        if value:
            parts.append(f"{name} {value:g}{unit}")
    return ", ".join(parts)


def exhaustion_failure(reason: str, allocated: str, resources_mode: str, not_split_because: str = "") -> str:
    """The reason a TaskFailedError gives for an exhaustion that neither a retry nor a split can fix.

    Example:
        >>> exhaustion_failure("memory exceeded: peak 812 MB > limit 700 MB", "", "fixed").split(";")[0]
        'RESOURCE_EXHAUSTION: memory exceeded: peak 812 MB > limit 700 MB'
    """
    text = f"RESOURCE_EXHAUSTION: {reason}"
    if allocated:
        text += f" (allocated {allocated})"
    if resources_mode == "fixed":
        text += "; raise the executor's cores/memory/disk (or category_resources), or use resources_mode='auto'"
    else:
        text += f"; it exhausted the category maximum in resources_mode={resources_mode!r}: raise cores/memory/disk"
    if not_split_because:
        text += f" (not split: {not_split_because})"
    return text
