"""Where a run's time went: per-task phases summed per run, dataset and worker, with one line of advice.

Pure: no I/O, no clock. The executor feeds it each returned task (``add_task``: the worker's phases
from the task's record, the manager's from the task's timestamps) and the time this process spends
merging (``add_here``); ``last_report().breakdown``, the dashboard, ``/metrics``, the transactions
log and ``coffea-wq report`` read it. Phases and what they mean: docs/executor.md, section 10.

Example:
    >>> b = Breakdown()
    >>> _ = b.add({"process": 8.6, "read": 0.9, "write": 0.5}, dataset="ttbar", worker="w1")
    >>> b.advice()
    '86% of worker time in your processor, 9% reading: add workers'
    >>> round(b.by_dataset["ttbar"].seconds["process"], 1)
    8.6
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from coffea_wq.executor.tasks.task_facts import FinishedTask

# told of every addition: (task id or None, the phases added, dataset, worker)
Listener = Callable[[int | None, dict[str, float], str | None, str | None], None]

# on the worker, in the order a task meets them (task_clock.py writes them)
WORKER_PHASES = ("inputs", "start_cold", "start_warm", "open", "read", "process", "accumulate", "write")
# "other": the task's run time on its worker that no worker phase accounts for
# on the manager: waiting in the queue, sending inputs, fetching outputs, decoding and merging here
MANAGER_PHASES = ("send", "receive", "decode", "merge")
BUSY_PHASES = (*WORKER_PHASES, "other", *MANAGER_PHASES)  # the bar: time something works on a task
PHASES = (*BUSY_PHASES, "queue")  # queue: a task waiting for a worker (not busy time: shown apart)
LABELS = {
    "inputs": "inputs", "start_cold": "cold start", "start_warm": "warm start", "open": "opening files",
    "read": "reading", "process": "process()", "accumulate": "adding on workers", "write": "writing result",
    "other": "worker, other", "send": "sending inputs", "receive": "fetching outputs", "decode": "decoding here",
    "merge": "merging here", "queue": "queued",
}  # fmt: skip
# the groups the advice weighs, and what to do when one of them leads
_GROUPS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("in your processor", ("process",), "add workers"),
    ("reading", ("open", "read", "inputs"), "move the data closer to the workers or read fewer branches"),
    ("starting Python", ("start_cold",), "use coffea-wq workers (warm slots) or larger chunks"),
    ("adding results on workers", ("accumulate",), "fill fewer or smaller histograms"),
    ("waiting for the manager", ("start_warm", "write", "other", "send", "receive", "decode", "merge"),
     "larger chunks"),
)


@dataclass
class PhaseTotals:
    """Seconds per phase summed over ``tasks`` tasks."""

    seconds: dict[str, float] = field(default_factory=dict)
    tasks: int = 0

    def add(self, phases: dict[str, float]) -> None:
        for name, value in phases.items():
            if value > 0:
                self.seconds[name] = self.seconds.get(name, 0.0) + value

    def busy(self) -> float:
        """Seconds of work on tasks (every phase but the queue wait)."""
        return sum(self.seconds.get(name, 0.0) for name in BUSY_PHASES)

    def shares(self) -> dict[str, float]:
        """Each busy phase's fraction of the busy time (zeros left out)."""
        busy = self.busy()
        return {name: self.seconds[name] / busy for name in BUSY_PHASES if self.seconds.get(name)} if busy else {}


@dataclass
class Breakdown:
    """A run's (or call's) phases: in total, per dataset and per worker."""

    total: PhaseTotals = field(default_factory=PhaseTotals)
    by_dataset: dict[str, PhaseTotals] = field(default_factory=dict)
    by_worker: dict[str, PhaseTotals] = field(default_factory=dict)
    listener: Listener | None = field(default=None, repr=False, compare=False)  # the dashboard, the log

    def add(self, phases: dict[str, float], dataset: str | None = None, worker: str | None = None,
            execute: float | None = None) -> dict[str, float]:
        """One task's phases; ``execute`` (its run time on the worker) gives ``other``. Returns what was added."""
        clean = {name: float(value) for name, value in phases.items() if name in PHASES and value > 0}
        if execute is not None:
            # the worker times the task from launch to exit: every worker phase but its inputs
            on_worker = sum(clean.get(name, 0.0) for name in WORKER_PHASES if name != "inputs")
            clean["other"] = max(0.0, execute - on_worker)
        targets = [self.total]
        if dataset is not None:
            targets.append(self.by_dataset.setdefault(dataset, PhaseTotals()))
        if worker is not None:
            targets.append(self.by_worker.setdefault(worker, PhaseTotals()))
        for totals in targets:
            totals.add(clean)
            totals.tasks += 1
        return clean

    def add_task(self, task: FinishedTask, phases: dict[str, float], dataset: str | None = None, worker: str | None = None,
                 decode: float = 0.0) -> dict[str, float]:
        """A returned task: its worker's ``phases``, its timestamps' (``manager_phases``) and ``decode``."""
        manager = manager_phases(task)
        execute = manager.pop("execute", None)
        added = self.add({**phases, **manager, "decode": decode}, dataset, worker, execute)
        if self.listener is not None:
            self.listener(getattr(task, "id", None), added, dataset, worker)
        return added

    def add_here(self, phase: str, seconds: float) -> None:
        """Time this process spent outside any one task (merging results): in the total only."""
        self.total.add({phase: seconds})
        if self.listener is not None:
            self.listener(None, {phase: seconds}, None, None)

    def shares(self) -> dict[str, float]:
        return self.total.shares()

    def advice(self) -> str:
        """One sentence: which group of phases leads, by how much, and what to change.

        Example:
            >>> Breakdown().advice()
            'no task has reported its phases yet'
        """
        shares = self.shares()
        if not shares:
            return "no task has reported its phases yet"
        weights = [(sum(shares.get(p, 0.0) for p in phases), what, fix) for what, phases, fix in _GROUPS]
        weights.sort(key=lambda w: -w[0])
        (lead, what, fix), (second, second_what, _) = weights[0], weights[1]
        worker = " of worker time" if what == "in your processor" else ""
        also = f", {_percent(second)} {second_what}" if second >= 0.05 else ""
        return f"{_percent(lead)}{worker} {what}{also}: {fix}"

    def as_dict(self) -> dict[str, Any]:
        """Plain data (JSON): totals, shares, advice, per dataset and per worker."""
        def one(t: PhaseTotals) -> dict[str, Any]:
            return {"tasks": t.tasks, "seconds": dict(t.seconds), "shares": t.shares()}
        return {**one(self.total), "advice": self.advice(),
                "datasets": {k: one(v) for k, v in self.by_dataset.items()},
                "workers": {k: one(v) for k, v in self.by_worker.items()}}


def _percent(share: float) -> str:
    return f"{round(100 * share)}%"


def manager_phases(task: FinishedTask) -> dict[str, float]:
    """Seconds a task waited, was sent and was fetched, from its µs timestamps (both Work Queue APIs),
    and ``execute``: its run time on the worker. A timestamp that is missing or 0 gives no phase.

    Example:
        >>> class T: submit_time, send_input_start, send_input_finish, cmd_execution_time = 0, 3e6, 4e6, 2e6
        >>> manager_phases(T())
        {'execute': 2.0, 'send': 1.0}
    """
    def stamp(name: str) -> float:
        try:
            return float(getattr(task, name) or 0)
        except (AttributeError, TypeError, ValueError):
            return 0.0

    out: dict[str, float] = {}
    execute = stamp("cmd_execution_time")
    if execute > 0:
        out["execute"] = execute / 1e6
    for phase, start, end in (("queue", "submit_time", "send_input_start"),
                              ("send", "send_input_start", "send_input_finish"),
                              ("receive", "receive_output_start", "receive_output_finish")):
        began, ended = stamp(start), stamp(end)
        if began > 0 and ended >= began:
            out[phase] = (ended - began) / 1e6
    return out
