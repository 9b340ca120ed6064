"""What the executor's task loop tells the dashboard: progress per dataset, failures, measurements.

The manager knows tasks; only the executor knows that a task is a chunk of a dataset's file with
so many events, that it was retried or split, and what the error said. The executor's call driver
calls the ``RunTracker`` methods below (executor/call/driver.py, from the state's notes); the
dashboard's HTTP threads read ``progress()`` and friends. Everything is guarded by one lock and
bounded in memory (throughput samples are thinned, failures are the latest ``FAILURES_KEPT``).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from coffea_wq.dashboard.snapshot import (
    BucketCounts,
    CategoryView,
    DatasetProgress,
    FailureView,
    Progress,
    ThroughputPoint,
)

FAILURES_KEPT = 50
ERROR_LINES = 8  # lines of an error shown per failure
RATE_WINDOW_S = 30.0  # the rate (and ETA) is measured over this much recent time
SAMPLE_SPACING_S = 1.0  # throughput samples closer than this replace each other
THROUGHPUT_POINTS = 240  # at most this many points are plotted
MIN_STEP_S = 2.0  # the throughput plot's finest time step
# bucket upper edges, shared by the page's histograms and the Prometheus histograms
MEMORY_BUCKETS_MB = (50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 16000)
WALL_TIME_BUCKETS_S = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
RESULT_EXHAUSTION = 16


@dataclass
class _Sample:
    t: float  # monotonic
    chunks: int
    events: int


@dataclass
class _CategoryRecord:
    name: str
    allocation: dict[str, float] = field(default_factory=dict)
    peaks: dict[str, float] = field(default_factory=dict)
    memory: BucketCounts = field(default_factory=lambda: BucketCounts.empty(MEMORY_BUCKETS_MB))
    wall_time: BucketCounts = field(default_factory=lambda: BucketCounts.empty(WALL_TIME_BUCKETS_S))
    exhaustions: int = 0
    splits: int = 0


class RunTracker:
    """The executor's side of a run, for the dashboard and ``/metrics``.

    Example:
        >>> tracker = RunTracker()
        >>> tracker.call_started("Processing", "chunk", [])
        >>> tracker.progress().chunks_total
        0
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started_wall = time.time()
        self._started = time.monotonic()
        self.phase = ""
        self.unit = "chunk"
        self.active = False
        self._chunks_known = True
        self._datasets: dict[str, DatasetProgress] = {}
        self._call_started = self._started
        self._samples: list[_Sample] = []
        self._chunks_done_run = 0  # over every call (what /metrics counts)
        self._events_done_run = 0
        self.retries = 0
        self.splits = 0
        self._churn: tuple[int, int, str] = (0, 0, "")  # partials lost, chunks redone, hold bound
        self._failures: deque[FailureView] = deque(maxlen=FAILURES_KEPT)
        self._categories: dict[str, _CategoryRecord] = {}
        # the whole run's breakdown, every call (docs/executor.md, section 10): a Breakdown the executor
        # hands over (``keep_breakdown``; this layer does not import the executor's)
        self._breakdown: Any = None

    # ------------------------------------------------------------------ hooks (the task loop's thread)
    def call_started(self, desc: str, unit: str, items: list[Any], chunks_known: bool = True) -> None:
        """A new executor call: its items (WorkItems or FileMetas) are the new totals.

        With dynamic chunk sizes (``chunks_known=False``) ``items`` give the events; chunks are
        counted as they are cut (``chunks_added``).
        """
        with self._lock:
            self.phase, self.unit, self.active = desc, unit, True
            self._call_started = time.monotonic()
            self._chunks_known = chunks_known
            self._datasets = {}
            for item in items:
                self._dataset(item).chunks_total += 1 if chunks_known else 0
                self._dataset(item).events_total += _events(item)
            self._sample()

    def item_restored(self, item: Any) -> None:
        """An item whose result came from ``checkpoint_dir``: done without a task."""
        if not self._chunks_known:
            with self._lock:
                self._dataset(item).chunks_total += 1
        self.item_processed(item)

    def chunks_added(self, items: list[Any]) -> None:
        """Items that were not planned at the start (chunks cut by dynamic chunk sizes)."""
        with self._lock:
            for item in items:
                self._dataset(item).chunks_total += 1

    def task_returned(self, task: Any, category: str) -> None:
        """A task came back (any result): record its allocation and measured peaks."""
        measured = _summary(task, "resources_measured")
        allocated = _summary(task, "resources_allocated")
        wall = measured.get("wall_time")
        if wall is None:
            try:
                wall = float(task.cmd_execution_time) / 1e6
            except (AttributeError, TypeError, ValueError):
                wall = None
        exhausted = _int(getattr(task, "result", None)) == RESULT_EXHAUSTION
        with self._lock:
            record = self._category(category)
            if allocated:
                record.allocation = {k: v for k, v in allocated.items() if k in ("cores", "memory", "disk", "gpus")}
            for name in ("cores", "memory", "disk"):
                if name in measured:
                    record.peaks[name] = max(record.peaks.get(name, 0.0), measured[name])
            if "memory" in measured:
                record.memory.observe(measured["memory"])
            if wall is not None and wall >= 0:
                record.wall_time.observe(wall)
                record.peaks["wall_time"] = max(record.peaks.get("wall_time", 0.0), wall)
            if exhausted:
                record.exhaustions += 1

    def keep_breakdown(self, breakdown: Any) -> None:
        """The ``Breakdown`` to sum the run's phases in (the first one handed over is kept)."""
        with self._lock:
            if self._breakdown is None:
                self._breakdown = breakdown

    def phases_reported(self, phases: dict[str, float], dataset: str | None, worker: str | None,
                        task: bool = True) -> None:
        """A task's phases, or (``task=False``) time spent outside any task (merging here)."""
        with self._lock:
            if self._breakdown is None:
                return
            if task:
                self._breakdown.add(phases, dataset, worker)
            else:
                self._breakdown.total.add(phases)

    def item_processed(self, item: Any) -> None:
        """An item's result was accumulated (or skipped by ``skipbadfiles``)."""
        events = _events(item)
        with self._lock:
            progress = self._dataset(item)
            progress.chunks_done += 1
            progress.events_done += events
            self._chunks_done_run += 1
            self._events_done_run += events
            self._sample()

    def attempt_failed(self, item: Any, reason: str, host: str | None, attempt: int, final: bool) -> None:
        """An attempt failed: ``final`` when the item will not be tried again (the run stops)."""
        with self._lock:
            if not final:
                self.retries += 1
            self._failures.append(_failure(item, reason, host, attempt, final))

    def item_split(self, item: Any, pieces: list[Any], reason: str, host: str | None, category: str) -> None:
        """An item exhausted its resources and was replaced by ``pieces``."""
        with self._lock:
            self.splits += 1
            self._category(category).splits += 1
            progress = self._dataset(item)
            progress.chunks_total += len(pieces) - 1
            self._failures.append(_failure(item, f"split into {len(pieces)}: {reason}", host, 1, False))

    def churn(self, partials_lost: int, chunks_redone: int, hold_bound: str) -> None:
        """What workers leaving cost so far (docs/reduction.md, section 6), over the run's calls."""
        with self._lock:
            self._churn = (partials_lost, chunks_redone, hold_bound)

    def churn_counts(self) -> tuple[int, int, str]:
        with self._lock:
            return self._churn

    def call_ended(self) -> None:
        with self._lock:
            self.active = False
            self._sample()

    # ------------------------------------------------------------------ reads (any thread)
    @property
    def chunks_done_total(self) -> int:
        with self._lock:
            return self._chunks_done_run

    @property
    def events_done_total(self) -> int:
        with self._lock:
            return self._events_done_run

    def progress(self) -> Progress:
        with self._lock:
            datasets = [DatasetProgress(**vars(d)) for d in self._datasets.values()]
            chunks_done = sum(d.chunks_done for d in datasets)
            chunks_total = sum(d.chunks_total for d in datasets)
            events_done = sum(d.events_done for d in datasets)
            events_total = sum(d.events_total for d in datasets)
            rate_chunks, rate_events = self._recent_rates()
            elapsed = time.monotonic() - self._call_started
        has_events = events_total > 0
        eta = None
        if has_events and rate_events:
            eta = max(0.0, (events_total - events_done) / rate_events)
        elif rate_chunks:
            eta = max(0.0, (chunks_total - chunks_done) / rate_chunks)
        return Progress(phase=self.phase, unit=self.unit, chunks_done=chunks_done, chunks_total=chunks_total,
                        events_done=events_done if has_events else None,
                        events_total=events_total if has_events else None,
                        rate_events_s=rate_events if has_events else None, rate_chunks_s=rate_chunks,
                        eta_s=eta, elapsed_s=elapsed, datasets=datasets)

    def throughput(self) -> list[ThroughputPoint]:
        with self._lock:
            samples = list(self._samples)
        return throughput_points(samples, self._started)

    def failures(self) -> list[FailureView]:
        with self._lock:
            return list(reversed(self._failures))  # newest first

    def breakdown(self) -> dict[str, Any]:
        """Where the run's time went so far: ``Breakdown.as_dict()``."""
        with self._lock:
            return self._breakdown.as_dict() if self._breakdown is not None else {}

    def categories(self) -> list[CategoryView]:
        with self._lock:
            return [CategoryView(name=r.name, allocation=dict(r.allocation), peaks=dict(r.peaks),
                                 memory=BucketCounts(list(r.memory.bounds), list(r.memory.counts), r.memory.total),
                                 wall_time=BucketCounts(list(r.wall_time.bounds), list(r.wall_time.counts),
                                                     r.wall_time.total),
                                 exhaustions=r.exhaustions, splits=r.splits)
                    for r in self._categories.values()]

    # ------------------------------------------------------------------ internals (lock held)
    def _dataset(self, item: Any) -> DatasetProgress:
        name = str(getattr(item, "dataset", "") or "")
        progress = self._datasets.get(name)
        if progress is None:
            progress = self._datasets[name] = DatasetProgress(name)
        return progress

    def _category(self, name: str) -> _CategoryRecord:
        record = self._categories.get(name)
        if record is None:
            record = self._categories[name] = _CategoryRecord(name)
        return record

    def _sample(self) -> None:
        now = time.monotonic()
        sample = _Sample(now, self._chunks_done_run, self._events_done_run)
        if len(self._samples) >= 2 and now - self._samples[-2].t < SAMPLE_SPACING_S:
            self._samples[-1] = sample  # keep one sample per SAMPLE_SPACING_S
        else:
            self._samples.append(sample)

    def _recent_rates(self) -> tuple[float | None, float | None]:
        if not self._samples:
            return None, None
        now = time.monotonic()
        last = self._samples[-1]
        first = next((s for s in self._samples if s.t >= now - RATE_WINDOW_S), last)
        span = now - first.t
        if span <= 0.5 or not self.active:
            return None, None
        return (last.chunks - first.chunks) / span, (last.events - first.events) / span


class SampleSeries:
    """Cumulative (chunks, events) samples over time, thinned to one per ``SAMPLE_SPACING_S``.

    Used for a foreign manager, whose throughput is measured from its ``tasks_done`` at each poll.
    """

    def __init__(self) -> None:
        self.started = time.monotonic()
        self._samples: list[_Sample] = []

    def add(self, chunks: int, events: int = 0) -> None:
        now = time.monotonic()
        sample = _Sample(now, chunks, events)
        if len(self._samples) >= 2 and now - self._samples[-2].t < SAMPLE_SPACING_S:
            self._samples[-1] = sample
        else:
            self._samples.append(sample)

    def points(self) -> list[ThroughputPoint]:
        return throughput_points(self._samples, self.started, with_events=False)

    def recent_rate(self) -> float | None:
        if len(self._samples) < 2:
            return None
        last = self._samples[-1]
        first = next((s for s in self._samples if s.t >= last.t - RATE_WINDOW_S), self._samples[0])
        span = last.t - first.t
        return (last.chunks - first.chunks) / span if span > 0.5 else None


def throughput_points(samples: list[_Sample], started: float, with_events: bool = True) -> list[ThroughputPoint]:
    """Rates on a regular time grid (at most ``THROUGHPUT_POINTS`` steps of at least ``MIN_STEP_S``).

    Each point is the growth of the cumulative counts over the step before it: results arrive in
    bursts, and a fixed step turns them into a readable curve.
    """
    if len(samples) < 2:
        return []
    first, last = samples[0].t, samples[-1].t
    step = max(MIN_STEP_S, (last - first) / THROUGHPUT_POINTS)
    points, index, previous = [], 0, samples[0]
    t = first + step
    while t < last + step:
        while index + 1 < len(samples) and samples[index + 1].t <= t:
            index += 1
        current = samples[index]
        points.append(ThroughputPoint(t=round(t - started, 3),
                                      events_s=(current.events - previous.events) / step if with_events else None,
                                      chunks_s=(current.chunks - previous.chunks) / step))
        previous = current
        t += step
    return points


def _events(item: Any) -> int:
    start, stop = getattr(item, "entrystart", None), getattr(item, "entrystop", None)
    if isinstance(start, int) and isinstance(stop, int):
        return max(0, stop - start)
    return 0


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _summary(task: Any, attribute: str) -> dict[str, float]:
    """A task's resources summary (ours: a dict-like object; CCTools: an rmsummary) as numbers >= 0."""
    try:
        summary = getattr(task, attribute)
    except Exception:  # a manager without measurements
        return {}
    if summary is None:
        return {}
    values = {}
    for name in ("cores", "memory", "disk", "gpus", "wall_time"):
        try:
            value = summary.get(name) if isinstance(summary, dict) else getattr(summary, name, None)
        except Exception:
            continue
        if isinstance(value, (list, tuple)) and value:
            value = value[0]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            continue
        values[name] = float(value)
    return values


def _failure(item: Any, reason: str, host: str | None, attempt: int, final: bool) -> FailureView:
    start, stop = getattr(item, "entrystart", None), getattr(item, "entrystop", None)
    lines = [line for line in str(reason).splitlines() if line.strip()][:ERROR_LINES]
    return FailureView(time=time.time(), dataset=getattr(item, "dataset", None), file=getattr(item, "filename", None),
                       entry_start=start if isinstance(start, int) else None,
                       entry_stop=stop if isinstance(stop, int) else None,
                       host=host, attempt=attempt, final=final, error=lines)
