"""Monitored tasks in warm slots: the worker does the shipped monitor's job around a slot's task.

With monitoring on, the manager wraps each task as CCTools does::

    ./cctools-monitor --no-pprint --with-output-files=cctools-monitor -L 'memory: 4000' ... \
        --sh 'python3 coffea_wq_task.py FN ITEM OUT'

Run as written, that starts a cold Python for every task: 0.7 s of imports per chunk, which made
the topcoffea settings (``resource-monitor: True``) 2.6x slower at 100k-event chunks and 5x at
10k. A coffea-wq worker instead runs the inner command in a warm slot and measures the slot's
process tree for the duration of that task with the monitor's own code (``resources/rmon``):

* counters that accumulate over a process's life (CPU time, I/O, context switches) start from
  zero at the task's start, since the slot ran other tasks before;
* memory is the slot's resident set, which is what the task's process occupies (a cold task
  would have imported the same libraries);
* a broken limit under the watchdog stops the task through the zygote, which signals the slot
  only while it still runs this task;
* the same summary file is written in the sandbox and the task exits with the monitor's code
  (0, 1, or 2 for a broken limit), so the manager cannot tell the two apart.

A task the worker kills (timeout, cancellation) ends with its signal and no summary, as the
wrapper would, being killed with it. Options the worker cannot honour this way (``--pid``, debug
output) send the task down the cold path, where the shipped wrapper runs as written.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shlex
import signal
import time
from typing import Any

from coffea_wq.resources.rmon.runner import MonitorPlan, add_arguments, finish, plan_from_args
from coffea_wq.resources.rmon.watch import TreeWatch
from coffea_wq.resources.wrapper import MONITOR_REMOTE_NAME

MONITOR_COMMAND = f"./{MONITOR_REMOTE_NAME}"


def split_monitored(command: str) -> tuple[argparse.Namespace, str] | None:
    """``(monitor options, inner command)`` of a wrapped command, or None for any other shape."""
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if len(words) < 2 or words[0] != MONITOR_COMMAND:
        return None
    parser = argparse.ArgumentParser(prog=MONITOR_REMOTE_NAME, add_help=False, exit_on_error=False)
    add_arguments(parser)
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # a shape we do not take is not an error
            args = parser.parse_args(words[1:])
    except (argparse.ArgumentError, SystemExit):
        return None
    if not args.sh or args.pid is not None or args.command or args.version or args.debug or args.debug_file:
        return None
    return args, args.sh


class _SlotTaskWatch(TreeWatch):
    """A TreeWatch whose kills go through the zygote: only while the slot runs this task."""

    def __init__(self, process: Any, **kwargs: Any):
        self.process = process
        super().__init__(process.pid, group=process.pid, **kwargs)

    def _signal_tree(self, signum: int) -> None:
        self.process.send_signal(signum)


class MonitoredWarmProcess:
    """A warm task measured as ``./cctools-monitor`` would measure it; Popen-like, as WarmProcess."""

    def __init__(self, process: Any, plan: MonitorPlan, started: float):
        self.process = process
        self.plan = plan
        self.pid = process.pid
        self.args = process.args
        self.returncode: int | None = None
        self.signalled = False
        self.series = open(plan.series_path, "w") if plan.series_path else None  # noqa: SIM115 - closed in _finish
        self.watch = _SlotTaskWatch(process, start=started, series=self.series, **plan.watch_args)
        self.watch.sampler.zero_counters()
        self.watch.start()

    @property
    def event_driven(self) -> bool:
        """As the warm process it measures: its end (a limit broken too) comes from the zygote."""
        return bool(getattr(self.process, "event_driven", False))

    def poll(self) -> int | None:
        if self.returncode is None:
            code = self.process.poll()
            if code is not None:
                self.returncode = self._finish(code)
        return self.returncode

    def _finish(self, code: int) -> int:
        try:
            summary = self.watch.stop(code, None, self.plan.command_text)
        finally:
            if self.series is not None:
                self.series.close()
        if self.signalled and code < 0:
            return code  # killed by the worker: the wrapper would have died with the task
        return finish(summary, self.plan)

    def wait(self, timeout: float | None = None) -> int:
        self.process.wait(timeout)
        result = self.poll()
        assert result is not None
        return result

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            self.signalled = True
            self.process.send_signal(sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def monitored(process: Any, monitor_args: argparse.Namespace, cwd: str, started: float | None = None) -> Any:
    """Wrap a started warm task in the monitor its command asked for."""
    plan = plan_from_args(monitor_args, cwd)
    return MonitoredWarmProcess(process, plan, time.time() if started is None else started)
