"""Churn: real workers killed and replaced while a run goes on, and a processor that counts its runs.

Shared by ``benchmarks/bench_churn.py`` and ``tests/executor/test_churn.py``:

* :class:`ChurnPool` starts N real workers (``coffea-wq worker`` or Debian's ``work_queue_worker``),
  each leading its own process group, for a manager on 127.0.0.1:PORT; :meth:`ChurnPool.replace`
  SIGKILLs one worker's process group, and the groups of what it started (a coffea-wq worker's
  zygote and warm slots lead sessions of their own, docs/worker.md), as a batch system's job kill
  would, then starts a worker of the same kind in its place. :meth:`ChurnPool.start_churning` does
  that from a thread at random intervals; :meth:`ChurnPool.stop` (also on leaving a ``with``)
  ends the churn and every process the pool started, and reaps them.
* :class:`CountingProcessor` wraps a coffea processor and appends one line per chunk execution to
  a file opened with ``O_APPEND`` (one ``write`` per line: lines from concurrent workers never
  interleave), so a run's executions are counted by the processor itself, whatever the executor
  believes; :func:`read_executions` reads them back.
* :class:`StopAfter` asks the executor call in the main thread to stop softly after a bound (a
  SIGINT to this process, the first Ctrl-C of docs/executor.md), and to abort ``grace`` s later,
  so a run that cannot finish ends within its bound and still stops its manager.
* :class:`StatusSampler` reads the manager's ``work_queue_stats``-style counters once a second.

Example:
    >>> ChurnSchedule(every=(0.5, 1.0), batch=1).next_interval(random.Random(1)) < 1.0
    True
"""

from __future__ import annotations

import collections
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from coffea import processor

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
WORKER_KINDS = ("coffea-wq", "cctools")
STOP_GRACE_S = 5.0


def worker_command(kind: str, port: int, workdir: Path, cores: int = 1, idle_timeout: int = 60) -> list[str]:
    """A worker of ``kind`` for 127.0.0.1:``port``, offering ``cores`` cores, working in ``workdir``.

    It exits after ``idle_timeout`` s without a manager (a backstop: the pool stops it anyway).
    """
    options = ["-t", str(idle_timeout), "--cores", str(cores), "-s", str(workdir), LOOPBACK, str(port)]
    if kind == "coffea-wq":
        return [sys.executable, "-m", "coffea_wq", "worker", *options]
    if kind == "cctools":
        binary = shutil.which("work_queue_worker")
        if binary is None:
            raise FileNotFoundError("work_queue_worker is not installed (Debian's coop-computing-tools)")
        return [binary, *options]
    raise ValueError(f"unknown worker kind {kind!r}: one of {WORKER_KINDS}")


def _signal_tree(leader: int, descendants: list[psutil.Process], sig: int) -> None:
    """``sig`` to the process group ``leader`` leads and to the groups its descendants lead (or them alone)."""
    try:
        os.killpg(leader, sig)
    except ProcessLookupError:
        pass
    for child in descendants:
        try:
            if os.getpgid(child.pid) == child.pid:
                os.killpg(child.pid, sig)
            else:
                child.send_signal(sig)  # psutil checks the pid still names this process
        except (ProcessLookupError, psutil.Error):
            continue


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


@dataclass
class PoolWorker:
    """One worker process of the pool (``slot`` is its place in the pool, kept by its replacements)."""

    slot: int
    kind: str
    proc: subprocess.Popen
    started: float
    workdir: Path
    chunks_started: int = 0  # chunks its processes have started (lines of the execution log)


@dataclass(frozen=True)
class ChurnSchedule:
    """Every ``every`` s (uniform between its two bounds) ``batch`` workers, picked at random, are replaced."""

    every: tuple[float, float]
    batch: int = 1
    # kill only workers that have started this many chunks (one-core workers: with 2, each killed worker
    # finished one first): start-up, slow on a loaded machine, is never the whole life of a worker, so a
    # run makes progress at any load (the pool needs an execution log)
    min_chunks: int = 0

    def __post_init__(self) -> None:
        low, high = self.every
        if not 0 < low <= high:
            raise ValueError(f"churn interval must be 0 < low <= high seconds, not {self.every}")
        if self.batch < 1:
            raise ValueError(f"churn batch must be at least 1 worker, not {self.batch}")
        if self.min_chunks < 0:
            raise ValueError(f"min_chunks must be 0 or more, not {self.min_chunks}")

    def next_interval(self, rng: random.Random) -> float:
        return rng.uniform(*self.every)


@dataclass
class Kill:
    """One replacement: when (monotonic), which slot, the killed worker's kind and how long it had lived."""

    at: float
    slot: int
    kind: str
    lifetime: float


class ChurnPool:
    """Real workers for a manager on 127.0.0.1:``port``, killed and replaced on demand or by a thread.

    Example:
        >>> with ChurnPool(9123, ["coffea-wq"] * 4, Path("/tmp/w"), env) as pool:    # doctest: +SKIP
        ...     pool.start_churning(ChurnSchedule(every=(0.5, 1.0)))
        ...     run_the_analysis()
        >>> pool.kills                                                               # doctest: +SKIP
    """

    def __init__(self, port: int, kinds: Sequence[str], workdir: Path, env: dict[str, str] | None = None,
                 cores: int = 1, seed: int = 0, executions_log: Path | None = None) -> None:
        for kind in kinds:
            if kind not in WORKER_KINDS:
                raise ValueError(f"unknown worker kind {kind!r}: one of {WORKER_KINDS}")
        self.port = port
        self.kinds = list(kinds)
        self.workdir = Path(workdir)
        self.env = env
        self.cores = cores
        self.rng = random.Random(seed)
        self.executions_log = executions_log
        self._log_offset = 0
        self.workers: list[PoolWorker] = []
        self.retired: list[subprocess.Popen] = []  # killed workers not yet reaped
        self.killed: list[Kill] = []
        self.started_count = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def kills(self) -> int:
        return len(self.killed)

    def __enter__(self) -> ChurnPool:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Start one worker per entry of ``kinds``."""
        with self._lock:
            for slot, kind in enumerate(self.kinds):
                self.workers.append(self._launch(slot, kind))

    def _launch(self, slot: int, kind: str) -> PoolWorker:
        self.started_count += 1
        workdir = self.workdir / f"w{slot}-{self.started_count}"
        workdir.mkdir(parents=True, exist_ok=True)
        with open(workdir / "worker.log", "ab") as out:  # the child keeps its own descriptor
            proc = subprocess.Popen(worker_command(kind, self.port, workdir, self.cores), env=self.env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        return PoolWorker(slot, kind, proc, time.monotonic(), workdir)

    def replace(self, slot: int | None = None) -> Kill | None:
        """SIGKILL the worker in ``slot`` (random when None) with all it started; start one of its kind there."""
        with self._lock:
            if self._stop.is_set() or not self.workers:
                return None
            if slot is None:
                slot = self.rng.randrange(len(self.workers))
            victim = self.workers[slot]
            _signal_tree(victim.proc.pid, _descendants(victim.proc.pid), signal.SIGKILL)
            self.retired.append(victim.proc)
            self.workers[slot] = self._launch(slot, victim.kind)
            kill = Kill(time.monotonic(), slot, victim.kind, time.monotonic() - victim.started)
            self.killed.append(kill)
            self._reap_retired()
            return kill

    def _reap_retired(self) -> None:
        self.retired = [proc for proc in self.retired if proc.poll() is None]

    def start_churning(self, schedule: ChurnSchedule) -> None:
        """From now on, a thread replaces ``schedule.batch`` random workers every interval, until :meth:`stop`."""
        if self._thread is not None:
            raise RuntimeError("the pool is churning already")
        if schedule.min_chunks and self.executions_log is None:
            raise ValueError("churn with min_chunks needs the pool's executions_log")
        self._thread = threading.Thread(target=self._churn, args=(schedule,), daemon=True, name="churn")
        self._thread.start()

    def _churn(self, schedule: ChurnSchedule) -> None:
        while not self._pause(schedule.next_interval(self.rng), schedule):
            candidates = self._candidates(schedule)
            while not candidates and not self._pause(0.1, schedule):  # none has worked yet: wait for one
                candidates = self._candidates(schedule)
            for slot in self.rng.sample(candidates, min(schedule.batch, len(candidates))):
                self.replace(slot)

    def _pause(self, seconds: float, schedule: ChurnSchedule) -> bool:
        """Wait ``seconds`` (True: the pool is stopping); with ``min_chunks``, watch for work 10 times a
        second meanwhile (a cold task's process lives only while it runs)."""
        if not schedule.min_chunks:
            return self._stop.wait(seconds)
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if self._stop.wait(min(0.1, left)):
                return True
            with self._lock:
                self._count_chunks()
        return self._stop.is_set()

    def _candidates(self, schedule: ChurnSchedule) -> list[int]:
        """The slots whose worker may be killed now."""
        with self._lock:
            if not schedule.min_chunks:
                return list(range(len(self.workers)))
            self._count_chunks()
            return [w.slot for w in self.workers if w.chunks_started >= schedule.min_chunks]

    def _count_chunks(self) -> None:
        """Credit each new line of the execution log to the worker one of whose processes (worker,
        zygote, slot, task) wrote it (a line whose process is gone already is credited to none)."""
        assert self.executions_log is not None
        try:
            with open(self.executions_log, "rb") as f:
                f.seek(self._log_offset)
                new = f.read()
        except FileNotFoundError:
            return
        complete = new[:new.rfind(b"\n") + 1]  # a line still being written waits for the next look
        self._log_offset += len(complete)
        pids = [int(line.rsplit(b"\t", 1)[1]) for line in complete.splitlines() if b"\t" in line]
        if not pids:
            return
        owner = {p.pid: w for w in self.workers for p in [w.proc, *_descendants(w.proc.pid)]}
        for pid in pids:
            if pid in owner:
                owner[pid].chunks_started += 1

    def stop(self) -> None:
        """End the churn, then every worker and all they started: SIGTERM, and SIGKILL after a grace."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._lock:
            live = [w.proc for w in self.workers]
            trees = {proc.pid: _descendants(proc.pid) for proc in live}
            for proc in live:
                if proc.poll() is None:
                    _signal_tree(proc.pid, trees[proc.pid], signal.SIGTERM)
            deadline = time.monotonic() + STOP_GRACE_S
            for proc in live:
                try:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
            for proc in live:  # what is left, and what a worker's exit left behind (its zygote's slots)
                _signal_tree(proc.pid, [p for p in trees[proc.pid] if p.is_running()], signal.SIGKILL)
            for proc in [*live, *self.retired]:
                try:
                    proc.wait(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    log.warning("worker %d did not exit after SIGKILL", proc.pid)
            self.retired = []

    def lifetimes(self) -> list[float]:
        """Seconds each killed worker had lived."""
        return [kill.lifetime for kill in self.killed]


class CountingProcessor(processor.ProcessorABC):
    """``inner``'s results; each execution of a chunk first appends a line to ``log_path``.

    The line is ``dataset<TAB>file<TAB>entrystart<TAB>entrystop<TAB>pid``, written with one
    ``write`` to a file opened ``O_APPEND``: lines of concurrent tasks never mix. An execution that
    is killed halfway is counted: the line says the work was started.
    """

    def __init__(self, inner: processor.ProcessorABC, log_path: Path | str) -> None:
        self.inner = inner
        self.log_path = str(log_path)

    def process(self, events):
        meta = events.metadata
        line = f"{meta['dataset']}\t{meta['filename']}\t{meta['entrystart']}\t{meta['entrystop']}\t{os.getpid()}\n"
        fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
        return self.inner.process(events)

    def postprocess(self, accumulator):
        return self.inner.postprocess(accumulator)


ChunkKey = tuple[str, str, int, int]


def read_executions(log_path: Path | str) -> collections.Counter[ChunkKey]:
    """(dataset, file, entrystart, entrystop) -> how many times :class:`CountingProcessor` ran it."""
    counts: collections.Counter[ChunkKey] = collections.Counter()
    path = Path(log_path)
    if not path.exists():
        return counts
    for number, line in enumerate(path.read_text().splitlines(), 1):
        parts = line.split("\t")
        if len(parts) != 5:
            raise ValueError(f"{path}:{number}: not an execution line: {line!r}")
        counts[(parts[0], parts[1], int(parts[2]), int(parts[3]))] += 1
    return counts


def chunk_key(item: Any) -> ChunkKey:
    """The :func:`read_executions` key of a coffea ``WorkItem``."""
    return (item.dataset, item.filename, int(item.entrystart), int(item.entrystop))


class StopAfter:
    """Stop the executor call running in the main thread once ``seconds`` have passed (a context manager).

    A SIGINT to this process is the executor's first Ctrl-C: the run stops softly and returns the
    partial output (docs/executor.md, "Soft termination"); a second one ``grace`` s later aborts it
    (``KeyboardInterrupt``, raised once the workers are stopped). ``fired`` counts the SIGINTs sent.
    The main thread's SIGINT handler must be Python's own (a background shell ignores SIGINT: it
    is put back here).
    """

    def __init__(self, seconds: float, grace: float = 20.0) -> None:
        self.seconds = seconds
        self.grace = grace
        self.fired = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name="stop-after")

    def __enter__(self) -> StopAfter:
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        for wait in (self.seconds, self.grace):
            if self._done.wait(wait):
                return
            self.fired += 1
            log.warning("run not finished after %.0f s: SIGINT %d to this process", self.seconds, self.fired)
            os.kill(os.getpid(), signal.SIGINT)


@dataclass
class StatusSample:
    """The manager's counters at one moment (``at``: monotonic seconds)."""

    at: float
    workers_connected: int
    workers_idle: int
    workers_busy: int
    tasks_waiting: int
    tasks_running: int


@dataclass
class StatusSampler:
    """Reads ``queue.stats`` (``work_queue_stats``'s names) every ``interval`` s in a thread, until stopped."""

    read_stats: Callable[[], Any]
    interval: float = 1.0
    samples: list[StatusSample] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True, name="status-sampler")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _sample(self) -> None:
        while True:
            try:
                s = self.read_stats()
            except Exception as exc:  # a manager that is closing: the next reading or the end
                log.debug("status reading failed: %s", exc)
            else:
                self.samples.append(StatusSample(time.monotonic(), s.workers_connected, s.workers_idle,
                                                 s.workers_busy, s.tasks_waiting, s.tasks_running))
            if self._stop.wait(self.interval):
                return


def longest_idle_interval(samples: Sequence[StatusSample], waiting_only: bool = False) -> float:
    """The longest time in which some worker was idle (and, with ``waiting_only``, tasks were
    waiting too): from the first sample that saw it to the next that did not (or the last sample).
    Every sample must have been taken while chunks were left (during the processing call).

    Example:
        >>> at = lambda t, idle: StatusSample(t, 4, idle, 4 - idle, 0, 4 - idle)
        >>> longest_idle_interval([at(0, 0), at(1, 2), at(2, 1), at(3, 0), at(4, 1)])
        2.0
    """
    longest, since = 0.0, None
    for sample in samples:
        idle = sample.workers_idle > 0 and (sample.tasks_waiting > 0 or not waiting_only)
        if idle and since is None:
            since = sample.at
        elif not idle and since is not None:
            longest, since = max(longest, sample.at - since), None
    if since is not None and samples:
        longest = max(longest, samples[-1].at - since)
    return float(longest)
