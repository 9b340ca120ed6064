"""How many workers to submit or remove this cycle: a pure function of the managers' status.

The rule follows CCTools' ``work_queue_factory``:

1. Each manager needs ``ceil((tasks_waiting + tasks_left + tasks_on_workers) / tasks_per_worker)``
   workers, or more when its tasks declared more cores/memory/disk/gpus in total than that many
   workers hold (``tasks_total_*``).
2. The sum over managers is clamped to ``[min_workers, max_workers]``.
3. Workers connected from elsewhere (more connected than this factory submitted) count as ours.
4. At most ``workers_per_cycle`` new ones per cycle (0: no limit).

Where we differ, on purpose: CCTools never removes workers and waits for them to idle out. We do
too below ``max_workers``, but when ``max_workers`` is lowered (an edit of the JSON file) we remove
the excess at once, so that the pool follows the new limit within a cycle.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from coffea_wq.factory.config import FactoryConfig


@dataclass(frozen=True)
class ManagerDemand:
    """What one manager's status record says about the workers it could use."""

    label: str
    tasks: int
    tasks_running: int
    workers_needed: int
    workers_connected: int


@dataclass(frozen=True)
class CyclePlan:
    """The decision of one cycle (numbers as CCTools prints them in its status line)."""

    submitted: int
    needed: int
    connected: int
    to_submit: int
    to_remove: int

    @property
    def waiting_connection(self) -> int:
        return max(0, self.submitted - self.connected)

    def status_line(self) -> str:
        """``|submitted: 2 |needed: 4 |waiting connection: 1 |requested: 2``"""
        return (f"|submitted: {self.submitted} |needed: {self.needed} "
                f"|waiting connection: {self.waiting_connection} |requested: {self.to_submit}")


def _number(record: Mapping[str, Any], key: str) -> float:
    value = record.get(key, 0)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def manager_demand(record: Mapping[str, Any], config: FactoryConfig) -> ManagerDemand:
    """The workers one manager needs, from its ``queue_status``/catalog record.

    Example:
        >>> cfg = FactoryConfig(manager_name="x", cores=2)
        >>> manager_demand({"tasks_waiting": 5, "tasks_on_workers": 2}, cfg).workers_needed
        4
    """
    running = int(_number(record, "tasks_on_workers"))
    tasks = int(_number(record, "tasks_waiting") + _number(record, "tasks_left")) + running
    needed = math.ceil(tasks / config.effective_tasks_per_worker)
    per_worker = {"cores": config.cores, "memory": config.memory, "disk": config.disk, "gpus": config.gpus}
    for name, size in per_worker.items():
        total = _number(record, f"tasks_total_{name}")
        if size and size > 0 and total > 0:
            needed = max(needed, math.ceil(total / size))
    label = f"{record.get('project') or '-'} {record.get('name', '?')}:{record.get('port', '?')}"
    return ManagerDemand(label, tasks, running, needed, int(_number(record, "workers")))


def plan_cycle(records: Sequence[Mapping[str, Any]], submitted: int, config: FactoryConfig) -> CyclePlan:
    """Workers to submit and to remove, given the managers' records and our alive jobs.

    Example:
        >>> cfg = FactoryConfig(manager_name="x", min_workers=1, max_workers=3, workers_per_cycle=2)
        >>> plan_cycle([{"tasks_waiting": 10}], submitted=0, config=cfg).to_submit
        2
    """
    demands = [manager_demand(record, config) for record in records]
    needed = sum(d.workers_needed for d in demands)
    connected = sum(d.workers_connected for d in demands)
    needed = max(config.min_workers, min(config.max_workers, needed))
    external = max(0, connected - submitted)
    to_submit = max(0, needed - submitted - external)
    if config.workers_per_cycle > 0:
        to_submit = min(to_submit, config.workers_per_cycle)
    to_remove = max(0, submitted - config.max_workers)
    return CyclePlan(submitted, needed, connected, to_submit, to_remove)
