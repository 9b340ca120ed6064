"""A processor whose output cannot be added inside an accumulation task, but can anywhere else.

``Tally.__add__``/``__iadd__`` raise when the current directory holds the allow-list that
accumulation tasks ship (``coffea_wq_safe_results.py``), that is inside an accumulation task's
sandbox: a real failure of every accumulation task, for the test that such failures fall back to
merging in the user's process with nothing lost (docs/reduction.md, section 3). Workers import
this module by name (local workers get the tests' ``sys.path``).
"""

from __future__ import annotations

import os

from coffea import processor

ACCUMULATION_SANDBOX_MARK = "coffea_wq_safe_results.py"


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


class TallyProcessor(processor.ProcessorABC):
    """Per chunk: ``{"events": Tally(events in the chunk), "chunks": 1}``."""

    def process(self, events) -> dict:
        return {"events": Tally(len(events)), "chunks": 1}

    def postprocess(self, accumulator: dict) -> dict:
        return accumulator
