"""Chunks waiting out a retry's backoff before they are submitted again (retry_policy.py decides the wait).

The call loop asks ``due(now)`` before it submits; what is held still counts as work left, and a
stopped call lists it as unprocessed like any queued chunk.
"""

from __future__ import annotations

import heapq
from typing import Any


class HeldRetries:
    """Units to resubmit at a given time (monotonic seconds), earliest first.

    Example:
        >>> held = HeldRetries()
        >>> held.hold("chunk", delay_s=2.0, now=10.0)
        >>> held.due(11.0), held.due(12.0), len(held)
        ([], ['chunk'], 0)
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Any]] = []
        self._sequence = 0

    def hold(self, unit: Any, delay_s: float, now: float) -> None:
        self._sequence += 1
        heapq.heappush(self._heap, (now + max(0.0, delay_s), self._sequence, unit))

    def due(self, now: float) -> list[Any]:
        """The units whose wait is over, taken out."""
        ready = []
        while self._heap and self._heap[0][0] <= now:
            ready.append(heapq.heappop(self._heap)[2])
        return ready

    def __len__(self) -> int:
        return len(self._heap)
