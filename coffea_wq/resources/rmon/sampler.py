"""Sampling a process tree: peak memory, CPU time and cores, I/O, processes and sandbox disk.

Reads Linux's /proc directly (no third-party module, so it runs under any worker's python3), or
psutil where there is no /proc.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field

from .limits import CORES_FORGIVENESS, RESOURCE_TABLE, number_with_decimals

# --- reading processes ---------------------------------------------------------------------------------


@dataclass
class ProcSample:
    """What one process uses right now. Memory in bytes, times in seconds."""

    pid: int
    ppid: int
    pgid: int
    start_ticks: int
    cpu: float  # own user+system
    children_cpu: float  # of its children that it has waited for
    rss: int
    vms: int
    swap: int
    read_bytes: int
    written_bytes: int
    ctx_switches: int


class ProcFSReader:
    """Reads processes from Linux's /proc (no third-party module needed)."""

    def __init__(self) -> None:
        self.ticks = os.sysconf("SC_CLK_TCK")
        self.page = os.sysconf("SC_PAGE_SIZE")

    def pids(self) -> list[int]:
        return [int(name) for name in os.listdir("/proc") if name.isdigit()]

    def links(self) -> dict[int, tuple[int, int]]:
        """pid -> (parent pid, process group) of every process: one small read each."""
        found = {}
        for pid in self.pids():
            try:
                with open(f"/proc/{pid}/stat", "rb") as f:
                    stat = f.read().decode("ascii", "replace")
                fields_ = stat[stat.rindex(")") + 2 :].split(maxsplit=3)
                found[pid] = (int(fields_[1]), int(fields_[2]))
            except (OSError, ValueError, IndexError):
                continue
        return found

    def read(self, pid: int) -> ProcSample | None:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                stat = f.read().decode("ascii", "replace")
            fields_ = stat[stat.rindex(")") + 2 :].split()
            with open(f"/proc/{pid}/statm", "rb") as f:
                statm = f.read().split()
        except (OSError, ValueError):
            return None
        extra = self._status_and_io(pid)
        return ProcSample(
            pid=pid,
            ppid=int(fields_[1]),
            pgid=int(fields_[2]),
            start_ticks=int(fields_[19]),
            cpu=(int(fields_[11]) + int(fields_[12])) / self.ticks,
            children_cpu=(int(fields_[13]) + int(fields_[14])) / self.ticks,
            rss=int(statm[1]) * self.page,
            vms=int(statm[0]) * self.page,
            swap=extra.get("VmSwap", 0) * 1024,
            read_bytes=extra.get("rchar", 0),
            written_bytes=extra.get("wchar", 0),
            ctx_switches=extra.get("voluntary_ctxt_switches", 0) + extra.get("nonvoluntary_ctxt_switches", 0),
        )

    @staticmethod
    def _status_and_io(pid: int) -> dict[str, int]:
        values: dict[str, int] = {}
        for path in (f"/proc/{pid}/status", f"/proc/{pid}/io"):
            try:
                with open(path, "rb") as f:
                    lines = f.read().decode("ascii", "replace").splitlines()
            except OSError:
                continue  # /proc/PID/io may be unreadable; we measure without it
            for line in lines:
                key, _, rest = line.partition(":")
                if key in (
                    "VmSwap",
                    "rchar",
                    "wchar",
                    "voluntary_ctxt_switches",
                    "nonvoluntary_ctxt_switches",
                ):
                    parts = rest.split()
                    if parts and parts[0].isdigit():
                        values[key] = int(parts[0])
        return values


class PsutilReader:
    """Reads processes with psutil, where there is no /proc (macOS)."""

    def __init__(self, psutil_module) -> None:
        self.psutil = psutil_module

    def pids(self) -> list[int]:
        return self.psutil.pids()

    def links(self) -> dict[int, tuple[int, int]]:
        found = {}
        for pid in self.pids():
            try:
                found[pid] = (self.psutil.Process(pid).ppid(), os.getpgid(pid))
            except (self.psutil.Error, OSError):
                continue
        return found

    def read(self, pid: int) -> ProcSample | None:
        ps = self.psutil
        try:
            p = ps.Process(pid)
            with p.oneshot():
                times, mem = p.cpu_times(), p.memory_info()
                ctx = p.num_ctx_switches()
                try:
                    io = p.io_counters()
                    rd, wr = (
                        getattr(io, "read_chars", io.read_bytes),
                        getattr(io, "write_chars", io.write_bytes),
                    )
                except (AttributeError, ps.AccessDenied):
                    rd = wr = 0
                return ProcSample(
                    pid=pid,
                    ppid=p.ppid(),
                    pgid=os.getpgid(pid),
                    start_ticks=int(p.create_time() * 100),
                    cpu=times.user + times.system,
                    children_cpu=getattr(times, "children_user", 0) + getattr(times, "children_system", 0),
                    rss=mem.rss,
                    vms=mem.vms,
                    swap=getattr(mem, "swap", 0),
                    read_bytes=rd,
                    written_bytes=wr,
                    ctx_switches=ctx.voluntary + ctx.involuntary,
                )
        except (ps.Error, OSError):
            return None


def default_reader():
    """/proc where it exists, else psutil."""
    if os.path.isdir("/proc/self"):
        return ProcFSReader()
    import psutil  # only needed off Linux

    return PsutilReader(psutil)


def directory_footprint(paths: list[str]) -> tuple[int, int]:
    """(bytes, entries) under ``paths``, not following links; unreadable parts are skipped."""
    total = count = 0
    stack = list(paths)
    while stack:
        path = stack.pop()
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    count += 1
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
            continue
    return total, count


# --- the measurements of one tree ------------------------------------------------------------------------


@dataclass
class _Tracked:
    start_ticks: int
    last: ProcSample


@dataclass
class TreeSampler:
    """Follows a root process and all its descendants, keeping peaks and totals.

    ``sample()`` reads every process of the tree once; ``peaks`` holds the maxima (MB, s, counts) and
    ``peak_times`` when each was reached (seconds after ``start``).
    """

    root: int
    measure_dirs: list[str] = field(default_factory=list)
    reader: object = None
    start: float = field(default_factory=time.time)
    peaks: dict[str, float] = field(default_factory=dict)
    peak_times: dict[str, float] = field(default_factory=dict)
    tracked: dict[int, _Tracked] = field(default_factory=dict)
    finished_cpu: float = 0.0  # of tree processes gone without a tracked parent to count them
    finished_io: list[int] = field(default_factory=lambda: [0, 0, 0])
    seen: set = field(default_factory=set)
    cpu_window: list[tuple[float, float]] = field(default_factory=list)
    interval: float = 1.0
    group: int | None = None  # a process group that belongs to the tree (the task's own group)
    exclude: set = field(default_factory=lambda: {os.getpid()})  # never measure the monitor itself
    last_disk_walk: float = 0.0
    # cumulative counters of the tree when measuring began (a task run by a long-lived process)
    zero: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.reader is None:
            self.reader = default_reader()
        self.cpu_window.append((0.0, 0.0))

    def _tree(self) -> dict[int, ProcSample]:
        # Every process's parent and group (one small read each), then the full reading only for
        # the tree's members: a batch node runs hundreds of processes that are none of ours.
        links = self.reader.links()
        members: set[int] = {self.root} if self.root in links else set()
        children: dict[int, list[int]] = {}
        for pid, (ppid, pgid) in links.items():
            children.setdefault(ppid, []).append(pid)
            # Processes that left the tree by double-forking keep the task's process group.
            if self.group is not None and pgid == self.group and pid not in self.exclude:
                members.add(pid)
        stack = [self.root, *(pid for pid in self.tracked if pid in links)]
        while stack:
            for child in children.get(stack.pop(), ()):
                if child not in members:
                    members.add(child)
                    stack.append(child)
        tree: dict[int, ProcSample] = {}
        for pid in members:
            sample = self.reader.read(pid)
            if sample is not None:
                tree[pid] = sample
        return tree

    def zero_counters(self) -> None:
        """Count CPU time, I/O and context switches from now on, not from the processes' starts.

        For a root process that ran other work before (a warm slot running its next task): its
        cumulative counters so far are not this measurement's.
        """
        self.zero = _counters(self._tree().values())

    def sample(self, now: float | None = None) -> dict[str, float]:
        """Read the tree once; returns the values of this sample (and updates the peaks)."""
        now = time.time() if now is None else now
        tree = self._tree()
        self._forget_finished(tree)
        for pid, s in tree.items():
            known = self.tracked.get(pid)
            if known is None or known.start_ticks != s.start_ticks:
                self.seen.add((pid, s.start_ticks))
            self.tracked[pid] = _Tracked(s.start_ticks, s)
        wall = max(0.0, now - self.start)
        now_counters, zero = _counters(tree.values()), self.zero
        cpu = self.finished_cpu + now_counters["cpu_time"] - zero.get("cpu_time", 0.0)
        cpu = max(cpu, self.peaks.get("cpu_time", 0.0), 0.0)
        read = self.finished_io[0] + now_counters["bytes_read"] - zero.get("bytes_read", 0.0)
        written = self.finished_io[1] + now_counters["bytes_written"] - zero.get("bytes_written", 0.0)
        switches = self.finished_io[2] + now_counters["context_switches"] - zero.get("context_switches", 0)
        mb = 1024.0 * 1024.0
        values = {
            "wall_time": wall,
            "cpu_time": cpu,
            "memory": sum(s.rss for s in tree.values()) / mb,
            "virtual_memory": sum(s.vms for s in tree.values()) / mb,
            "swap_memory": sum(s.swap for s in tree.values()) / mb,
            "bytes_read": max(0.0, read) / mb,
            "bytes_written": max(0.0, written) / mb,
            "context_switches": max(0, switches),
            "max_concurrent_processes": len(tree),
            "total_processes": len(self.seen),
            "cores": self._peak_cores(wall, cpu),
            "cores_avg": cpu / wall if wall > 0 else 0.0,
        }
        if self.measure_dirs and now - self.last_disk_walk >= self.interval:
            # Walking a sandbox can take a while: at most once per interval.
            self.last_disk_walk = now
            size, files = directory_footprint(self.measure_dirs)
            values["disk"] = math.ceil(size / mb)
            values["total_files"] = files
        self.record(values, wall)
        return values

    def _forget_finished(self, tree: dict[int, ProcSample]) -> None:
        """Processes gone since the last sample: their CPU moves to a tracked parent, or is kept here."""
        for pid in [
            p for p in self.tracked if p not in tree or tree[p].start_ticks != self.tracked[p].start_ticks
        ]:
            last = self.tracked.pop(pid).last
            if last.ppid not in tree:  # no tracked parent will count it in its children's time
                self.finished_cpu += last.cpu + last.children_cpu
            self.finished_io[0] += last.read_bytes
            self.finished_io[1] += last.written_bytes
            self.finished_io[2] += last.ctx_switches

    def _peak_cores(self, wall: float, cpu: float) -> float:
        """CPU use over the last few minutes, like resource_monitor (short bursts do not count)."""
        window = 180.0 + 2 * self.interval
        self.cpu_window.append((wall, cpu))
        while len(self.cpu_window) > 2 and self.cpu_window[0][0] + window < wall:
            self.cpu_window.pop(0)
        head_wall, head_cpu = self.cpu_window[0]
        span = window if wall < window else wall - head_wall
        return (cpu - head_cpu) / span if span > 0 else 0.0

    def record(self, values: dict[str, float], at: float) -> None:
        """Keep the maxima of ``values`` and when they were reached."""
        for name, value in values.items():
            if value is None:
                continue
            if name not in self.peaks or value > self.peaks[name]:
                self.peaks[name] = value
                self.peak_times[name] = at


def _counters(samples) -> dict[str, float]:
    """The cumulative counters of some processes, summed: CPU time (s), bytes read and written, switches."""
    samples = list(samples)
    return {
        "cpu_time": sum(s.cpu + s.children_cpu for s in samples),
        "bytes_read": sum(s.read_bytes for s in samples),
        "bytes_written": sum(s.written_bytes for s in samples),
        "context_switches": sum(s.ctx_switches for s in samples),
    }


def exceeded_limits(peaks: dict[str, float], limits: dict[str, float]) -> dict[str, float]:
    """The limits broken by ``peaks``: resource -> limit (resource_monitor's ``limits_exceeded``)."""
    broken = {}
    for name, limit in limits.items():
        measured = peaks.get(name)
        if measured is None or measured <= 0:
            continue
        # compared as the summary reports it (memory in whole MB): a peak of 100.5 MB written as
        # "100 MB" must not break a 100 MB limit, or the report would read "peak 100 > limit 100"
        measured = number_with_decimals(measured, RESOURCE_TABLE.get(name, ("", 6))[1])
        forgiven = CORES_FORGIVENESS if name == "cores" else 0.0
        if limit < measured - forgiven:
            broken[name] = limit
    return broken
