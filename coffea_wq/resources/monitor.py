"""Measuring and limiting a task's process tree: the API the coffea-wq worker and manager use.

* ``ProcessTreeMonitor(pid, limits, interval, watchdog, sandbox)``: watch a task the worker started;
  ``start()``, then ``stop(returncode, rusage)`` once it has exited, which returns a ``Summary``.
  Under ``watchdog`` a broken limit kills the task's tree at once; ``exceeded`` says which limits.
* ``Summary``: resource_monitor's summary (``to_json()``, ``Summary.read(path)``,
  ``Summary.from_json(text)`` for ours and CCTools'), with ``measured()`` for a task's
  ``resources_measured`` and ``exhaustion_message()`` for logs and errors.
* ``MonitorMode``: the executor's ``resource_monitor`` option (off / measure / watchdog; True means
  watchdog).

Example::

    proc = subprocess.Popen(["python3", "-c", "b = bytearray(300 * 2**20)"], start_new_session=True)
    monitor = ProcessTreeMonitor(proc.pid, limits={"memory": 100}, watchdog=True).start()
    _, status, rusage = os.wait4(proc.pid, 0)
    summary = monitor.stop(os.waitstatus_to_exitcode(status), rusage)
    summary.exhaustion_message()   # 'memory exceeded: peak 309 MB > limit 100 MB'
"""

from __future__ import annotations

import enum
import os
from pathlib import Path

from coffea_wq.resources.rmon.limits import (
    RM_MONITOR_ERROR,
    RM_OVERFLOW,
    RM_SUCCESS,
    RM_TASK_ERROR,
    RM_TIME_EXPIRE,
    LimitError,
    parse_limits,
)
from coffea_wq.resources.rmon.summary import Summary, SummaryError
from coffea_wq.resources.rmon.watch import TreeWatch
from coffea_wq.resources.types import RESOURCE_NAMES, Resources

__all__ = [
    "RM_MONITOR_ERROR",
    "RM_OVERFLOW",
    "RM_SUCCESS",
    "RM_TASK_ERROR",
    "RM_TIME_EXPIRE",
    "LimitError",
    "MonitorMode",
    "ProcessTreeMonitor",
    "Summary",
    "SummaryError",
    "limits_from_resources",
    "parse_limits",
]


class MonitorMode(enum.Enum):
    """The ``resource_monitor`` executor option."""

    OFF = "off"
    MEASURE = "measure"
    WATCHDOG = "watchdog"

    @classmethod
    def parse(cls, value: str | bool | None | MonitorMode) -> MonitorMode:
        """off / measure / watchdog; ``True`` is watchdog and ``False``/``None`` off, as coffea accepted.

        Example: ``MonitorMode.parse(True) is MonitorMode.WATCHDOG``.
        """
        if isinstance(value, MonitorMode):
            return value
        if value is None or value is False:
            return cls.OFF
        if value is True:
            return cls.WATCHDOG
        text = str(value).strip().lower()
        try:
            return cls(text)
        except ValueError:
            raise ValueError(
                f"unknown resource_monitor mode {value!r}: expected off, measure or watchdog (or True/False)"
            ) from None

    @property
    def enabled(self) -> bool:
        return self is not MonitorMode.OFF


def limits_from_resources(box: Resources, wall_time_s: float | None = None) -> dict[str, float]:
    """The limits a task's allocation imposes: its declared cores, memory, disk and gpus (> 0).

    Example: ``limits_from_resources(Resources(cores=1, memory=100)) == {"cores": 1.0, "memory": 100.0}``.
    """
    limits = {name: float(getattr(box, name)) for name in RESOURCE_NAMES if (getattr(box, name) or 0) > 0}
    if wall_time_s is not None and wall_time_s > 0:
        limits["wall_time"] = float(wall_time_s)
    return limits


class ProcessTreeMonitor:
    """Watches a running task's process tree (started by the caller) until ``stop()``.

    Args:
        pid: the task's process; when it leads its own process group (``start_new_session=True``),
            every process of that group is counted too, even after leaving the tree.
        limits: resource -> limit (``"memory"`` MB, ``"disk"`` MB, ``"cores"``, ``"wall_time"`` s, ...).
        interval: the longest time between samples, in seconds (the first ones come sooner).
        watchdog: kill the tree when a limit is broken; otherwise broken limits are only recorded.
        sandbox: the task's directory, whose size is its ``disk``; None to not measure disk.
    """

    def __init__(
        self,
        pid: int,
        limits: dict[str, float] | None = None,
        interval: float = 1.0,
        watchdog: bool = False,
        sandbox: Path | None = None,
    ) -> None:
        group = pid if _leads_group(pid) else None
        dirs = [str(sandbox)] if sandbox is not None else []
        self._watch = TreeWatch(pid, limits, interval, enforce=watchdog, measure_dirs=dirs, group=group)

    @property
    def pid(self) -> int:
        return self._watch.pid

    @property
    def exceeded(self) -> dict[str, float]:
        """Broken limits so far: resource -> limit (empty while none)."""
        return dict(self._watch.exceeded)

    @property
    def killed(self) -> bool:
        """True when the watchdog killed the task."""
        return self._watch.killed

    def start(self) -> ProcessTreeMonitor:
        self._watch.start()
        return self

    def stop(self, returncode: int | None = None, rusage=None, command: str = "") -> Summary:
        """Stop watching and summarise (``returncode`` as ``Popen.returncode``; ``rusage`` from
        ``os.wait4`` makes peak memory and CPU time exact for short-lived processes)."""
        return self._watch.stop(returncode, rusage, command)


def _leads_group(pid: int) -> bool:
    try:
        return os.getpgid(pid) == pid
    except OSError:
        return False
