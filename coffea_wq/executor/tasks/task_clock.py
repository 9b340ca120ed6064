"""Where one task's time went on its worker: shipped with every task as ``coffea_wq_task_clock.py``.

The task runner (``task_script.py``) loads this file from the task's sandbox, so, like the runner,
it imports only the standard library and never coffea_wq. A ``TaskClock`` sums seconds per phase
into ``seconds``, which the runner writes into the task's record as ``"phases"``; the executor
adds them up (``coffea_wq/executor/results/breakdown.py``). Phases: docs/executor.md, section 10.

Example:
    >>> clock = TaskClock(entered=0.0)
    >>> clock.call(len, [1, 2, 3])
    3
    >>> sorted(clock.seconds)
    ['process', 'read']
"""

from __future__ import annotations

import os
import sys
import time

# set by a coffea-wq worker in every task's environment (the names of coffea_wq/worker/warm_contract.py)
LAUNCHED_ENV = "COFFEA_WQ_LAUNCHED"  # time.time() when the worker started the task's process
INPUTS_ENV = "COFFEA_WQ_INPUTS_S"  # seconds the worker spent preparing the task's inputs
# "0" in a task's environment: no phases measured (how benchmarks/bench_e2e.py measures what they cost)
PHASES_ENV = "COFFEA_WQ_PHASES"


def new_clock(entered: float) -> TaskClock | UnusedClock:
    """The task's clock: a ``TaskClock``, or an ``UnusedClock`` when ``COFFEA_WQ_PHASES=0``."""
    return UnusedClock() if os.environ.get(PHASES_ENV) == "0" else TaskClock(entered)


class UnusedClock:
    """Measures nothing: the record's ``phases`` stay empty."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, phase: str, seconds: float) -> None:
        pass

    def started(self, warm: bool) -> None:
        pass

    def call(self, function, item):
        return function(item)


class TaskClock:
    """Where one task's time went, in seconds per phase (docs/executor.md, section 10).

    ``inputs`` (the worker preparing the sandbox) and ``start_warm``/``start_cold`` (launch to
    this file's first line, plus loading the function and item) come from what a coffea-wq worker
    puts in the environment; ``open``, ``read``, ``process`` split the function's call: uproot's
    ``TBranch.array``/``arrays`` are timed while it runs (``read``, nested calls once), and when
    coffea's NanoEvents are made (``NanoEventsFactory.events``) the time before is ``open`` and
    after is the user's ``process()``, less the reads in each. ``accumulate``: adding into the
    slot's partial.
    """

    def __init__(self, entered: float):
        self.entered = entered
        self.seconds: dict[str, float] = {}
        self.read_s, self.depth = 0.0, 0
        self.events_at: float | None = None
        self.read_before_events = 0.0
        self._undo: list = []

    def add(self, phase: str, seconds: float) -> None:
        self.seconds[phase] = self.seconds.get(phase, 0.0) + max(0.0, seconds)

    def started(self, warm: bool) -> None:
        """Launch (as the worker says) to now, and the worker's input preparation."""
        now = time.time()
        try:
            launched = float(os.environ.get(LAUNCHED_ENV, ""))
        except ValueError:
            launched = self.entered
        self.add("start_warm" if warm else "start_cold", now - min(launched, self.entered))
        try:
            self.add("inputs", float(os.environ[INPUTS_ENV]))
        except (KeyError, ValueError):
            pass

    def call(self, function, item):
        """``function(item)``, its time split into open, read and process."""
        self._hook()
        began = time.perf_counter()
        try:
            return function(item)
        finally:
            ended = time.perf_counter()
            self._unhook()
            if self.events_at is None:
                self.add("process", ended - began - self.read_s)
            else:
                self.add("open", self.events_at - began - self.read_before_events)
                self.add("process", ended - self.events_at - (self.read_s - self.read_before_events))
            self.add("read", self.read_s)

    def _hook(self) -> None:
        behaviors = getattr(sys.modules.get("uproot.behaviors.TBranch"), "TBranch", None)
        branches = getattr(sys.modules.get("uproot.behaviors.TBranch"), "HasBranches", None)
        for owner, name in ((behaviors, "array"), (branches, "arrays")):
            if owner is not None and callable(owner.__dict__.get(name)):
                self._patch(owner, name, self._timed_read)
        factory = getattr(sys.modules.get("coffea.nanoevents"), "NanoEventsFactory", None)
        if factory is not None and callable(factory.__dict__.get("events")):
            self._patch(factory, "events", self._noting_events)

    def _patch(self, owner, name: str, wrap) -> None:
        original = owner.__dict__[name]
        setattr(owner, name, wrap(original))
        self._undo.append((owner, name, original))

    def _unhook(self) -> None:
        while self._undo:
            owner, name, original = self._undo.pop()
            setattr(owner, name, original)

    def _timed_read(self, original):
        def timed(*args, **kwargs):
            if self.depth:
                return original(*args, **kwargs)
            self.depth += 1
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.depth -= 1
                self.read_s += time.perf_counter() - began
        return timed

    def _noting_events(self, original):
        def noted(*args, **kwargs):
            events = original(*args, **kwargs)
            if self.events_at is None:
                self.events_at, self.read_before_events = time.perf_counter(), self.read_s
            return events
        return noted
