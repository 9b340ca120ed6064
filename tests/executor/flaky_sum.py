"""Processors whose outputs behave differently inside an accumulation task than anywhere else.

An accumulation task's sandbox is recognised by the allow-list it ships (``coffea_wq_safe_results.py``
in the current directory). There ``Tally`` refuses to be added (a real failure of every
accumulation task, for the test that such failures fall back to merging in the user's process),
and ``SlowTally`` takes ``SLOW_ADD_S`` per addition (so a test can kill the worker while it runs).
Workers import this module by name (local workers get the tests' ``sys.path``).
"""

from __future__ import annotations

import os
import time

from coffea import processor

ACCUMULATION_SANDBOX_MARK = "coffea_wq_safe_results.py"
SLOW_ADD_S = 1.0


class Tally:
    """A count of events whose addition fails in accumulation tasks."""

    def __init__(self, n: int):
        self.n = n

    def __add__(self, other: Tally) -> Tally:
        _fail_in_accumulation_tasks()
        return Tally(self.n + other.n)

    def __iadd__(self, other: Tally) -> Tally:
        _fail_in_accumulation_tasks()
        self.n += other.n
        return self


def _fail_in_accumulation_tasks() -> None:
    if os.path.exists(ACCUMULATION_SANDBOX_MARK):
        raise RuntimeError("Tally refuses to be added in an accumulation task (by design of this test)")


class SlowTally(Tally):
    """A count of events whose addition is slow in accumulation tasks."""

    def __add__(self, other: Tally) -> Tally:
        _slow_in_accumulation_tasks()
        return SlowTally(self.n + other.n)

    def __iadd__(self, other: Tally) -> Tally:
        _slow_in_accumulation_tasks()
        self.n += other.n
        return self


def _slow_in_accumulation_tasks() -> None:
    if os.path.exists(ACCUMULATION_SANDBOX_MARK):
        time.sleep(SLOW_ADD_S)


class TallyProcessor(processor.ProcessorABC):
    """Per chunk: ``{"events": Tally(events in the chunk), "chunks": 1}`` (``slow``: a SlowTally)."""

    def __init__(self, slow: bool = False):
        self.slow = slow

    def process(self, events) -> dict:
        return {"events": (SlowTally if self.slow else Tally)(len(events)), "chunks": 1}

    def postprocess(self, accumulator: dict) -> dict:
        return accumulator
