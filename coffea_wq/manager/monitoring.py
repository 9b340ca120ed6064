"""Resource monitoring of tasks, as CCTools' ``enable_monitoring``.

See docs/resources.md, "Monitoring tasks in a run". At dispatch the task's command is wrapped in
the shipped monitor (``cctools-monitor``, through ``coffea_wq.resources.wrapper.wrap_command``),
the monitor goes along as a cached input and its summary comes back as an output. After retrieval
the summary decides the task's ``return_status`` (the command's, not the monitor's), its measured
resources, and whether it exhausted its allocation (monitor exit code 2 -> RESOURCE_EXHAUSTION,
3 -> TASK_TIMEOUT) or left no summary (RMONITOR_ERROR).
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass

from coffea_wq.manager.task import Direction, FileKind, FileSpec, TaskSpec
from coffea_wq.protocol.codes import FileFlags, ResultCode
from coffea_wq.resources.types import Resources

log = logging.getLogger("coffea_wq.manager")

MONITOR_EXIT_LIMITS = 2
MONITOR_EXIT_TIME = 3


class ResourceSummary(dict):
    """Measured resources with attribute access (``t.resources_measured.memory``), like CCTools' rmsummary.

    Missing resources read as -1, as in CCTools.
    """

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return self.get(name, -1)


@dataclass
class MonitorSettings:
    """``enable_monitoring(dirname, watchdog)``: where summaries go and whether limits are enforced."""

    output_dir: str
    watchdog: bool = False
    keep_summaries: bool = False

    @classmethod
    def create(cls, dirname: str | None, watchdog: bool) -> MonitorSettings:
        if dirname:
            os.makedirs(dirname, exist_ok=True)
            return cls(os.path.abspath(dirname), watchdog, keep_summaries=True)
        return cls(tempfile.mkdtemp(prefix="coffea-wq-monitor-"), watchdog)

    def summary_path(self, task: TaskSpec) -> str:
        return os.path.join(self.output_dir, f"wq-{os.getpid()}-task-{task.task_id}.summary")


def monitor_files(settings: MonitorSettings, task: TaskSpec) -> list[FileSpec]:
    """The monitor executable (cached) and the summary output (uncached) for one attempt."""
    from coffea_wq.resources.wrapper import MONITOR_REMOTE_NAME, MONITOR_SUMMARY_NAME, wrapper_script_path

    program = str(wrapper_script_path())
    base = os.path.basename(program).replace(".", "-")
    monitor = FileSpec(FileKind.FILE, Direction.INPUT, program, MONITOR_REMOTE_NAME, int(FileFlags.CACHE),
                       f"file-0-{base}")
    summary = FileSpec(FileKind.FILE, Direction.OUTPUT, settings.summary_path(task), MONITOR_SUMMARY_NAME,
                       int(FileFlags.NOCACHE), f"file-{task.task_id}-{task.try_count + 1}-cctools-monitor.summary")
    return [monitor, summary]


def wrapped_command(settings: MonitorSettings, task: TaskSpec, box: Resources) -> str:
    from coffea_wq.resources.wrapper import wrap_command

    wall_time = task.running_time_max if task.running_time_max > 0 else None
    return wrap_command(task.command, box, task.task_id, task.category, settings.watchdog, wall_time_s=wall_time)


def apply_summary(settings: MonitorSettings, task: TaskSpec) -> None:
    """Read the task's summary back and set its result, return status and measured resources."""
    from coffea_wq.resources.monitor import Summary, SummaryError

    path = settings.summary_path(task)
    monitor_exit = task.return_status
    try:
        with open(path) as handle:
            summary = Summary.from_json(handle.read(), origin=path)
    except (OSError, SummaryError, ValueError) as error:
        log.warning("task %d: no usable monitor summary (%s)", task.task_id, error)
        if task.result in (ResultCode.SUCCESS, ResultCode.OUTPUT_MISSING):
            task.result = ResultCode.RMONITOR_ERROR
        return
    finally:
        if not settings.keep_summaries:
            try:
                os.unlink(path)
            except OSError:
                pass
    measured = ResourceSummary(summary.resources)
    task.measured = measured
    task.limits_exceeded = ResourceSummary(summary.limits_exceeded) if summary.limits_exceeded else None
    task.return_status = summary.exit_status
    # under --measure-only our monitor still records the broken limit (exit_type "limits") but lets the
    # command finish: only a watchdog kill is an exhaustion
    if monitor_exit == MONITOR_EXIT_LIMITS or (settings.watchdog and summary.exit_type == "limits"):
        task.result = ResultCode.RESOURCE_EXHAUSTION
        task.exhaustion_message = summary.exhaustion_message()
    elif monitor_exit == MONITOR_EXIT_TIME:
        task.result = ResultCode.TASK_TIMEOUT
