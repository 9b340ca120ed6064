"""Watching a running process tree from a thread: sampling, checking limits, killing on a broken one.

``TreeWatch(pid, limits, interval, enforce)`` samples quickly at first (so short commands are seen)
and then every ``interval`` seconds; under ``enforce`` (watchdog) the first broken limit sends
SIGTERM to the whole tree and SIGKILL after a grace period. ``stop(returncode, rusage)`` takes a last
sample and returns the ``Summary``; the caller reaps the process (it is its child, not ours).
"""

from __future__ import annotations

import os
import resource
import signal
import threading
import time

from .limits import RM_OVERFLOW, RM_SUCCESS, RM_TASK_ERROR
from .sampler import TreeSampler, exceeded_limits
from .summary import Summary

KILL_GRACE_S = 5.0
FIRST_SAMPLE_S = 0.02

SERIES_HEADER = """# Units:
# wall_clock and cpu_time in microseconds
# virtual, resident and swap memory in megabytes.
# disk in megabytes.
# bandwidth in bits/s.
# cpu_time, bytes_read, bytes_written, bytes_sent, and bytes_received show cummulative values.
# wall_clock, max_concurrent_processes, virtual, resident, swap, files, and disk show values at the sample point.
#wall_clock cpu_time cores max_concurrent_processes virtual_memory memory swap_memory bytes_read bytes_written bytes_received bytes_sent bandwidth machine_load total_files disk
"""


class TreeWatch:
    """Samples the tree of ``pid`` in a background thread until ``stop()``.

    Args:
        pid: the root process (already started).
        limits: resource -> limit (MB, s, cores, ...); None or {} for none.
        interval: the longest time between two samples, in seconds.
        enforce: kill the tree when a limit is broken (watchdog); otherwise only record it.
        measure_dirs: directories whose size is the task's ``disk`` (its sandbox).
        group: a process group whose members belong to the tree even after leaving it.
        series: an open text file to write one time-series row per sample to, or None.
        start: when the command started (epoch seconds); default now.
    """

    def __init__(
        self,
        pid: int,
        limits: dict[str, float] | None = None,
        interval: float = 1.0,
        enforce: bool = False,
        measure_dirs: list[str] | None = None,
        group: int | None = None,
        series=None,
        start: float | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"the sampling interval must be positive, not {interval}")
        self.limits = dict(limits or {})
        self.interval = interval
        self.enforce = enforce
        self.sampler = TreeSampler(pid, measure_dirs=list(measure_dirs or []), interval=interval, group=group)
        if start is not None:
            self.sampler.start = start
        self.exceeded: dict[str, float] = {}
        self.killed = False
        self.series = series
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"monitor-{pid}", daemon=True)
        if series is not None:
            series.write(SERIES_HEADER)

    @property
    def pid(self) -> int:
        return self.sampler.root

    def start(self) -> TreeWatch:
        self._sample_once()
        self._thread.start()
        return self

    def _run(self) -> None:
        delay = min(FIRST_SAMPLE_S, self.interval)
        while not self._stop.wait(delay):
            self._sample_once()
            delay = min(self.interval, delay * 2)

    def sample_now(self) -> bool:
        """Take one sample now (besides the thread's); False when it could not be taken."""
        return self._sample_once()

    def _sample_once(self) -> bool:
        with self._lock:
            try:
                values = self.sampler.sample()
            except OSError:
                return False  # the tree vanished between listing and reading: nothing to record
            self._write_series_row(values)
            self._check_limits()
            return True

    def _check_limits(self) -> None:
        current = dict(self.sampler.peaks)
        current["end"] = time.time()
        broken = exceeded_limits(current, self.limits)
        new = {k: v for k, v in broken.items() if k not in self.exceeded}
        if not new:
            return
        self.exceeded.update(new)
        if self.enforce and not self.killed:
            self.kill_tree()

    def kill_tree(self, signum: int = signal.SIGTERM) -> None:
        """Ask every process of the tree to stop, and force them after ``KILL_GRACE_S``."""
        self.killed = True
        self._signal_tree(signum)
        timer = threading.Timer(KILL_GRACE_S, self._signal_tree, args=(signal.SIGKILL,))
        timer.daemon = True
        timer.start()

    def _signal_tree(self, signum: int) -> None:
        # Our own group (the wrapper leads the task's group) is signalled member by member instead.
        if self.sampler.group is not None and self.sampler.group != os.getpgrp():
            try:
                os.killpg(self.sampler.group, signum)
            except OSError:
                pass
        for pid in [self.sampler.root, *self.sampler.tracked]:
            if pid in self.sampler.exclude:
                continue
            try:
                os.kill(pid, signum)
            except OSError:
                pass

    def _write_series_row(self, values: dict[str, float]) -> None:
        if self.series is None:
            return
        row = [
            f"{time.time():.6f}",
            f"{values['cpu_time']:.6f}",
            f"{values['cores']:.3f}",
            str(int(values["max_concurrent_processes"])),
            *(
                str(int(values[k]))
                for k in ("virtual_memory", "memory", "swap_memory", "bytes_read", "bytes_written")
            ),
            "0 0 0.000",
            str(int(os.getloadavg()[0])),
            str(int(values.get("total_files", 0))),
            str(int(values.get("disk", 0))),
        ]
        self.series.write(" ".join(row) + "\n")
        self.series.flush()

    def stop(
        self, returncode: int | None = None, rusage=None, command: str = "", end: float | None = None
    ) -> Summary:
        """Stop sampling and summarise.

        Args:
            returncode: how the root ended, like ``Popen.returncode`` (negative: killed by that
                signal); None when unknown (then 0 is reported).
            rusage: ``os.wait4``'s resource usage of the root, which also covers short-lived
                processes the samples missed (peak memory and CPU time); optional.
            command: the command line, for the summary.
            end: when the command ended (epoch seconds); default now.
        """
        end = time.time() if end is None else end
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self._sample_once()
        with self._lock:
            resources, peak_times = self._final_resources(rusage, end)
            current = dict(resources, cores=self._cores_beyond_tick_error(resources))
            self.exceeded.update(exceeded_limits(current, self.limits))
            return self._summary(resources, peak_times, returncode, command)

    def _final_resources(self, rusage, end: float) -> tuple[dict[str, float], dict[str, float]]:
        sampler = self.sampler
        wall = max(end - sampler.start, 1e-6)
        res = dict(sampler.peaks)
        if rusage is not None:
            res["cpu_time"] = max(res.get("cpu_time", 0.0), rusage.ru_utime + rusage.ru_stime)
            # ru_maxrss (KB on Linux) is the largest single process, short-lived ones included. But
            # Linux carries a forking parent's peak RSS across exec into the child's figure, so a
            # value not above our own peak may be inherited from us: trust only the samples then.
            child_peak_mb = rusage.ru_maxrss / 1024.0
            if child_peak_mb > _own_peak_rss_mb():
                res["memory"] = max(res.get("memory", 0.0), child_peak_mb)
        cpu = res.get("cpu_time", 0.0)
        res.update(start=sampler.start, end=end, wall_time=wall, cpu_time=cpu)
        res["cores_avg"] = cpu / wall
        res["cores"] = max(res.get("cores", 0.0), res["cores_avg"])
        res.setdefault("disk", 0)
        res.setdefault("total_files", 0)
        res.update(bytes_received=0, bytes_sent=0, bandwidth=0, workers=0, fs_nodes=self._free_nodes())
        res["gpus"] = max(0.0, self.limits.get("gpus", 0.0))  # not measured: reported as allocated
        res["machine_cpus"] = os.cpu_count() or 1
        res["machine_load"] = os.getloadavg()[0]
        peak_times = {k: v for k, v in sampler.peak_times.items() if k in res}
        for name in ("end", "wall_time", "cpu_time", "cores_avg"):
            peak_times[name] = wall
        peak_times["start"] = 0.0
        return res, peak_times

    def _cores_beyond_tick_error(self, res: dict[str, float]) -> float:
        """The cores a limit is checked against: the average only counts beyond its measuring error.

        CPU time comes in clock ticks (10 ms), with up to a tick of error per process and per
        reading: over a 30 ms task that error alone is a core.
        """
        readings = len(self.sampler.seen) + (1 if self.sampler.zero else 0)
        error = readings / os.sysconf("SC_CLK_TCK")
        average = max(0.0, res["cpu_time"] - error) / res["wall_time"]
        return max(self.sampler.peaks.get("cores", 0.0), average)

    def _free_nodes(self) -> int:
        if not self.sampler.measure_dirs:
            return 0
        try:
            return os.statvfs(self.sampler.measure_dirs[0]).f_ffree
        except OSError:
            return 0

    def _summary(
        self, res: dict[str, float], peak_times: dict[str, float], returncode, command: str
    ) -> Summary:
        summary = Summary(command=command, resources=res, peak_times=peak_times)
        if returncode is not None and returncode < 0:
            summary.exit_type = "signal"
            summary.signal = -returncode
            summary.exit_status = 128 - returncode
        else:
            summary.exit_status = int(returncode or 0)
        if self.exceeded:
            summary.exit_type = "limits"
            summary.limits_exceeded = dict(self.exceeded)
            if self.enforce:
                summary.exit_status = 128 + signal.SIGTERM
        if self.exceeded and self.enforce:
            summary.monitor_exit_code = RM_OVERFLOW
        elif summary.exit_status != 0:
            summary.monitor_exit_code = RM_TASK_ERROR
        else:
            summary.monitor_exit_code = RM_SUCCESS
        return summary


def _own_peak_rss_mb() -> float:
    """The peak RSS of this process's memory since its exec (VmHWM), in MB: the most a child forked
    (or vforked) from it can inherit into its ``ru_maxrss``.

    Not ``getrusage(RUSAGE_SELF).ru_maxrss``: that also holds what *our* parent passed on to us
    across our exec (a monitor started by a big pytest or worker process would then distrust every
    task's exact figure and fall back to samples that can miss a short peak).
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
