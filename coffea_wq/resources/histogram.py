"""Bucketed histograms of measured peaks, and the first-allocation formulas computed from them.

A category keeps one histogram per labeled resource (cores, gpus, memory, disk). Each completed task
adds its measured peak to the bucket that holds it, together with its wall time. From those CCTools
picks the first allocation a new task of the category is tried with:

* MAX: the largest peak seen, rounded up to a bucket (after adding half a bucket of headroom);
* MIN_WASTE: the bucket ``a`` minimising the expected resource-seconds wasted,
  ``a * tau_mean + a_max * time_of_tasks_above(a)``;
* MAX_THROUGHPUT: the bucket maximising the expected tasks completed per second,
  ``(count_le(a) * a_max / a + count_gt(a)) / (tau_mean + time_of_tasks_above(a))``;

where ``a_max`` is the allocation a task gets when it exhausts the first one (the category maximum or
the whole worker) and ``time_of_tasks_above(a)`` is the wall time of the larger tasks, per task.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# CCTools' bucket sizes (category.c): 1 core, 1 gpu, 250 MB of memory or disk.
DEFAULT_BUCKET_SIZES: dict[str, float] = {"cores": 1, "gpus": 1, "memory": 250, "disk": 250}


@dataclass
class Bucket:
    """How many tasks fell in one bucket, and their accumulated wall time (s)."""

    count: int = 0
    wall_time_s: float = 0.0


@dataclass
class Histogram:
    """Measured peaks of one resource, by bucket. Buckets are keyed by their upper end.

    Example::

        >>> h = Histogram(bucket_size=250)
        >>> h.insert(100, wall_time_s=2.0); h.insert(600, wall_time_s=3.0)
        >>> h.keys()
        [250.0, 750.0]
        >>> h.round_up(251)
        500.0
    """

    bucket_size: float
    buckets: dict[float, Bucket] = field(default_factory=dict)
    max_value: float = 0.0

    def round_up(self, value: float) -> float:
        """The upper end of the bucket ``value`` falls in (0 stays 0)."""
        return self.bucket_size * math.ceil(value / self.bucket_size)

    def insert(self, value: float, wall_time_s: float) -> None:
        """Count one task's peak ``value``; negative values or times (unmeasured) are ignored."""
        if value < 0 or wall_time_s < 0:
            return
        bucket = self.buckets.setdefault(self.round_up(value), Bucket())
        bucket.count += 1
        bucket.wall_time_s += wall_time_s
        self.max_value = max(self.max_value, value)

    def keys(self) -> list[float]:
        return sorted(self.buckets)

    @property
    def total_count(self) -> int:
        return sum(b.count for b in self.buckets.values())

    def __len__(self) -> int:
        return len(self.buckets)


@dataclass(frozen=True)
class _TimeProfile:
    keys: list[float]
    counts_accum: list[float]  # tasks in buckets <= keys[i]
    times_above: list[float]  # wall time of tasks in buckets > keys[i], divided by all tasks
    tau_mean: float  # mean wall time of all tasks


def _time_profile(h: Histogram) -> _TimeProfile:
    keys = h.keys()
    counts = [h.buckets[k].count for k in keys]
    times = [h.buckets[k].wall_time_s for k in keys]
    counts_accum: list[float] = []
    running = 0.0
    for c in counts:
        running += c
        counts_accum.append(running)
    total = counts_accum[-1]
    times_above = [0.0] * len(keys)
    for i in range(len(keys) - 2, -1, -1):
        times_above[i] = times_above[i + 1] + times[i + 1] / total
    tau_mean = times_above[0] + times[0] / total
    return _TimeProfile(keys, counts_accum, times_above, tau_mean)


def first_allocation_min_waste(h: Histogram, top: float) -> float | None:
    """MIN_WASTE's first allocation, or None when nothing was measured or ``top`` is unknown."""
    if top < 0 or len(h) < 1:
        return None
    profile = _time_profile(h)
    best, best_waste = top, math.inf
    for i, a in enumerate(profile.keys):
        if a < 1:
            continue
        waste = a * profile.tau_mean + top * profile.times_above[i]
        if waste < best_waste:
            best, best_waste = a, waste
    return h.round_up(min(best, top))


def first_allocation_max_throughput(h: Histogram, top: float) -> float | None:
    """MAX_THROUGHPUT's first allocation, or None when nothing was measured or ``top`` is unknown."""
    if top < 0 or len(h) < 1:
        return None
    profile = _time_profile(h)
    total = profile.counts_accum[-1]
    best, best_rate = top, 0.0
    for i, a in enumerate(profile.keys):
        if a < 1:
            continue
        before = profile.counts_accum[i]
        after = total - before
        denominator = profile.tau_mean + profile.times_above[i]
        if denominator <= 0:
            continue  # every measured task took no time: nothing to compare
        rate = ((before * top) / a + after) / denominator
        if rate > best_rate:
            best, best_rate = a, rate
    return h.round_up(min(best, top))


def first_allocation_max_seen(
    h: Histogram, top: float, max_worker: float, max_explicit: float
) -> float | None:
    """MAX's first allocation: the largest peak plus half a bucket, rounded up, within the limits."""
    if top < 0 or len(h) < 1:
        return None
    rounded = h.round_up(h.max_value + math.floor(h.bucket_size / 2))
    caps = [v for v in (max_explicit, max_worker) if v > -1]
    return min([rounded, *caps])
