"""The tree of accumulation tasks: which waiting results to add together on a worker, and when.

Pure planning (no I/O, no manager); ``coffea_wq/executor/tasks/accumulation.py`` does what it
decides. The rules are docs/reduction.md, section 3:

* a *waiting result* is an output file in the staging folder that nobody has read yet: the value
  of one chunk that ran cold, or the sum an accumulation task sent back. It knows its size, the
  chunk keys it covers and the worker that produced it (the culprit if it is refused later);
* while chunks are still being processed, a group is formed once ``2 * fan_in - 1`` results wait,
  and it takes the ``fan_in`` smallest. Waiting for more than ``fan_in`` (as coffea 0.7 did) is what
  makes "smallest first" a choice: big sums wait while fresh small results are added, so the tree
  stays balanced for results that grow when added (lists, column accumulators) and never re-reads a
  big sum once per few chunks;
* once nothing more will be processed (``final``), the waiting results are split into groups of at
  most ``fan_in`` (smallest first, at least two per group), run side by side, as long as what waits
  plus what runs is at least ``fan_in``. When fewer than ``fan_in`` remain and nothing runs, one
  last group takes them all if they are big (``big_bytes``: all but the largest weigh at least that
  much, compressed), so that the user's process reads one result, never holding the output while
  it loads another big one; otherwise the user's process merges them one at a time (``finished``).

Example:
    >>> planner = TreePlanner(fan_in=2)
    >>> for n, size in enumerate((30, 10, 20)):
    ...     planner.add(WaitingResult(f"r{n}", size=size, keys=(n,)))
    >>> [[r.name for r in job.inputs] for job in planner.plan(final=False)]
    [['r1', 'r2']]
    >>> planner.finished(final=True)
    False
    >>> big = TreePlanner(fan_in=20, big_bytes=100)
    >>> for n, size in enumerate((150, 120)):
    ...     big.add(WaitingResult(f"r{n}", size=size, keys=(n,)))
    >>> [[r.name for r in job.inputs] for job in big.plan(final=True)]
    [['r1', 'r0']]
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class WaitingResult:
    """An output file waiting in staging to be added: what it covers, and who made it."""

    name: str
    path: Path | None = None
    size: int = 0
    keys: tuple[int, ...] = ()
    hostname: str | None = None  # the worker that wrote it (the culprit if it is refused)
    address: str | None = None  # its ``host:port``, to disconnect it


@dataclass
class AccumulationJob:
    """One accumulation task: its inputs (in the order it reads them) and its attempts so far."""

    job_id: int
    inputs: list[WaitingResult]
    failures: int = 0

    @property
    def keys(self) -> tuple[int, ...]:
        return tuple(key for result in self.inputs for key in result.keys)


@dataclass
class TreePlanner:
    """Waiting results and running accumulation jobs of one call (see the module doc for the rules)."""

    fan_in: int
    big_bytes: int | None = None  # at the end, results this big (but the largest, summed) get a last task
    waiting: list[WaitingResult] = field(default_factory=list)
    running: dict[int, AccumulationJob] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=itertools.count)

    def __post_init__(self) -> None:
        if self.fan_in < 2:
            raise ValueError(f"fan_in={self.fan_in}: an accumulation task adds at least two results")

    def add(self, result: WaitingResult) -> None:
        self.waiting.append(result)

    def plan(self, final: bool) -> list[AccumulationJob]:
        """The jobs to start now (they count as running from here on)."""
        jobs = []
        if not final:
            while len(self.waiting) >= 2 * self.fan_in - 1:
                jobs.append(self._start(self.fan_in))
            return jobs
        while len(self.waiting) >= 2 and len(self.waiting) + len(self.running) >= self.fan_in:
            jobs.append(self._start(min(self.fan_in, len(self.waiting))))
        if not self.running and self._big_enough_for_a_last_task():
            jobs.append(self._start(len(self.waiting)))  # fewer than fan_in here
        return jobs

    def finished(self, final: bool) -> bool:
        """Nothing runs and no job would start: the user's process merges what waits."""
        if not final or self.running:
            return False
        return len(self.waiting) < self.fan_in and not self._big_enough_for_a_last_task()

    def _big_enough_for_a_last_task(self) -> bool:
        """Two or more results wait and, but the largest, they weigh ``big_bytes``: merged here, the
        output would hold that much while the largest loads (docs/reduction.md, section 3)."""
        if self.big_bytes is None or len(self.waiting) < 2:
            return False
        sizes = sorted(result.size for result in self.waiting)
        return sum(sizes[:-1]) >= self.big_bytes

    def succeeded(self, job_id: int, total: WaitingResult) -> AccumulationJob:
        """Job ``job_id`` sent back ``total`` (covering its inputs' keys): it waits in their place."""
        job = self.running.pop(job_id)
        self.waiting.append(total)
        return job

    def give_back(self, job_id: int, keep: list[WaitingResult] | None = None) -> AccumulationJob:
        """Job ``job_id`` ended without a sum: ``keep`` (default all its inputs) wait again."""
        job = self.running.pop(job_id)
        self.waiting.extend(job.inputs if keep is None else keep)
        return job

    def retry(self, job_id: int) -> AccumulationJob:
        """The same job again (same inputs), after a failure that a retry may not see."""
        job = self.running[job_id]
        job.failures += 1
        return job

    def abandon(self, job_id: int) -> AccumulationJob:
        """Job ``job_id`` failed for good: its inputs leave the tree (the user's process merges them)."""
        return self.running.pop(job_id)

    def take_waiting(self) -> list[WaitingResult]:
        """Every waiting result, smallest first, out of the planner."""
        taken = sorted(self.waiting, key=lambda r: r.size)
        self.waiting.clear()
        return taken

    def _start(self, count: int) -> AccumulationJob:
        self.waiting.sort(key=lambda r: r.size)  # stable: equal sizes keep their arrival order
        inputs, self.waiting = self.waiting[:count], self.waiting[count:]
        job = AccumulationJob(next(self._ids), inputs)
        self.running[job.job_id] = job
        return job
