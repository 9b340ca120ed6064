"""Dynamic chunk size (coffea 0.7's ``dynamic_chunksize``): chunks sized to a wall-time or memory target.

Runner hands the executor its chunks already cut at ``chunksize``. With
``dynamic_chunksize={"wall_time": 60, "memory": 2000}`` the executor re-cuts them as it goes:
``EntryRanges`` joins the chunks of each file back into contiguous entry ranges and cuts the next
chunk, of whatever size is wanted, only when a task is about to be submitted.
``ChunkSizeModel`` learns from each processed chunk (its events, its wall time and, with
resource monitoring, its peak memory) how many events fit a target.

The model follows coffea 0.7's dynamic chunk sizes: per target, fit ``events = slope * measure +
intercept`` by least squares over the reports whose events-per-unit ratio is not in the lowest
quarter, falling back to the median ratio through zero when the fit is unusable (negative slope
or positive intercept: a task's memory includes a fixed interpreter baseline, which the fit's
intercept absorbs). The next size is the smallest prediction over the targets, rounded down to
a power of two so that sizes do not wander chunk by chunk. Until two reports exist it is the
Runner's ``chunksize``. Unlike coffea 0.7, a target given alone works (0.7 indexed ``memory``
even when only ``wall_time`` was given), and there is no random halving of requests.
"""

from __future__ import annotations

import dataclasses
import statistics
from collections import deque
from dataclasses import dataclass, field
from typing import Any

TARGETS = ("wall_time", "memory")
REPORTS_KEPT = 100  # recent chunks only: the model follows a workload whose cost drifts


class DynamicChunksizeError(ValueError):
    """A ``dynamic_chunksize`` option that cannot be used; the message names the culprit."""


def parse_targets(option: Any) -> dict[str, float]:
    """``{"wall_time": s, "memory": MB}`` (either or both), checked."""
    if not isinstance(option, dict) or not option:
        raise DynamicChunksizeError(f"dynamic_chunksize={option!r}: expected a dict such as "
                                    "{'wall_time': 60, 'memory': 2000}")
    targets = {}
    for name, value in option.items():
        if name not in TARGETS:
            raise DynamicChunksizeError(f"dynamic_chunksize: unknown target {name!r} (known: wall_time, memory)")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
            raise DynamicChunksizeError(f"dynamic_chunksize: {name}={value!r} must be a positive number")
        targets[name] = float(value)
    return targets


@dataclass
class ChunkSizeModel:
    """How many events fit the targets, learnt from processed chunks."""

    targets: dict[str, float]
    base: int  # the size until the model knows better (the Runner's chunksize)
    reports: dict[str, deque] = field(default_factory=dict)  # target -> (measure, events)
    cap: int | None = None  # the size of a chunk that exhausted its resources, halved

    def observe(self, events: int, wall_time_s: float | None, memory_mb: float | None) -> None:
        for name, measure in (("wall_time", wall_time_s), ("memory", memory_mb)):
            if name in self.targets and measure is not None and measure > 0 and events > 0:
                self.reports.setdefault(name, deque(maxlen=REPORTS_KEPT)).append((float(measure), events))

    def lower_to(self, events: int) -> None:
        """A chunk of ``events`` was too big (it exhausted its resources): never ask for more."""
        self.base = max(1, min(self.base, events))
        self.cap = max(1, events if self.cap is None else min(self.cap, events))

    def size(self) -> int:
        predictions = [p for p in (self._predict(name) for name in self.targets) if p is not None]
        size = min(predictions) if predictions else self.base
        if self.cap is not None:
            size = min(size, self.cap)
        return _power_of_two_at_most(max(1, int(size)))

    def _predict(self, name: str) -> float | None:
        reports = list(self.reports.get(name, ()))
        if len(reports) < 2:
            return None
        ratios = sorted(events / measure for measure, events in reports)
        floor = ratios[len(ratios) // 4]
        kept = [(m, e) for m, e in reports if e / m >= floor] or reports
        slope, intercept = _least_squares(kept)
        if slope is None or slope <= 0 or intercept > 0:
            slope, intercept = statistics.median(e / m for m, e in kept), 0.0
        return slope * self.targets[name] + intercept


def _least_squares(points: list[tuple[float, int]]) -> tuple[float | None, float]:
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx <= 0:
        return None, 0.0
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx
    return slope, mean_y - slope * mean_x


def _power_of_two_at_most(n: int) -> int:
    return 1 << (n.bit_length() - 1)


@dataclass
class _Range:
    item: Any  # a WorkItem; its entry range is the part not yet cut
    start: int
    stop: int


class EntryRanges:
    """The events of a list of WorkItems, as contiguous ranges per file, cut into chunks on demand.

    Example:
        >>> from coffea.processor.executor import WorkItem
        >>> ranges = EntryRanges([WorkItem("d", "f", "t", 0, 5, b""), WorkItem("d", "f", "t", 5, 10, b"")])
        >>> [(c.entrystart, c.entrystop) for c in iter(lambda: ranges.cut(4), None)]
        [(0, 4), (4, 8), (8, 10)]
    """

    def __init__(self, items: list[Any]):
        self.ranges: deque[_Range] = deque()
        for item in items:
            last = self.ranges[-1] if self.ranges else None
            if last is not None and last.stop == item.entrystart and _same_source(last.item, item):
                last.stop = item.entrystop
            else:
                self.ranges.append(_Range(item, item.entrystart, item.entrystop))
        self.events = sum(r.stop - r.start for r in self.ranges)

    def cut(self, size: int) -> Any | None:
        """The next chunk of at most ``size`` events (never across files), or None when all are cut.

        A remainder shorter than half a chunk joins the chunk before it, as Runner's chunking avoids
        a tiny last chunk.
        """
        if not self.ranges:
            return None
        current = self.ranges[0]
        stop = min(current.stop, current.start + max(1, size))
        if current.stop - stop < max(1, size) // 2:
            stop = current.stop
        chunk = dataclasses.replace(current.item, entrystart=current.start, entrystop=stop)
        current.start = stop
        if current.start >= current.stop:
            self.ranges.popleft()
        return chunk

    def remaining_items(self) -> list[Any]:
        """The events not cut yet, as one WorkItem per contiguous range."""
        return [dataclasses.replace(r.item, entrystart=r.start, entrystop=r.stop) for r in self.ranges]


def _same_source(a: Any, b: Any) -> bool:
    """Whether two WorkItems differ only by their entry range."""
    return dataclasses.replace(a, entrystart=0, entrystop=0) == dataclasses.replace(b, entrystart=0, entrystop=0)
