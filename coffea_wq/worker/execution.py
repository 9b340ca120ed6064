"""Running one task's command: environment, process start, time limits, result codes.

A task is started by ``start_task_process``, which returns a Popen-like handle (``pid``,
``poll``, ``wait``, ``send_signal``, ``kill``): a warm Python slot when the warm pool
recognises the command, else ``/bin/sh -c CMD`` in its own process group, with stdin from
/dev/null and stdout and stderr merged into one file, exactly like ``work_queue_worker``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from coffea_wq.protocol.codes import ResultCode
from coffea_wq.protocol.messages import TaskAssignment

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class ProcessHandle(Protocol):
    """What the worker needs from a running task: ``subprocess.Popen`` or a warm slot."""

    pid: int

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


class WarmStarter(Protocol):
    """What starting a task needs of the warm pool (``warm.WarmPythonPool``, which imports this
    module for its cold fallback): a parsed warm command, or None, and a slot started on it."""

    def parse_warm_command(self, command: str, env: dict[str, str]) -> Any: ...

    def start_async(self, request: Any, cwd: Path, env: dict[str, str], output_path: Path) -> ProcessHandle: ...


class TaskObserver(Protocol):
    """Hook for per-task resource monitoring: told each task's pid when it starts and ends."""

    def task_started(self, taskid: int, pid: int) -> None: ...

    def task_finished(self, taskid: int) -> None: ...


def task_environment(
    task: TaskAssignment, workspace: Path, sandbox: Path, tmpdir: Path, base: dict[str, str] | None = None
) -> dict[str, str]:
    """The worker's environment, the resource variables, then the task's own ``env`` lines.

    Resource variables (CORES, OMP_NUM_THREADS, MEMORY, DISK, GPUS) are set when positive, as
    CCTools does; a task's explicit ``env`` wins over them. ``NAME`` without ``=`` unsets NAME.

    Example::

        env = task_environment(task, Path("/tmp/worker-1-2"), sandbox, sandbox / "tmp")
    """
    env = dict(os.environ if base is None else base)
    env.pop("DISPLAY", None)
    env.setdefault("WORK_QUEUE_SANDBOX", str(workspace))
    for name, value in (("CORES", task.cores), ("OMP_NUM_THREADS", task.cores), ("MEMORY", task.memory),
                        ("DISK", task.disk), ("GPUS", task.gpus)):
        if value and value > 0:
            env[name] = str(value)
    for variable in ("TMPDIR", "TEMP", "TMP"):
        env[variable] = str(tmpdir)
    for entry in task.env:
        name, sep, value = entry.partition("=")
        if not name:
            continue
        if sep:
            env[name] = value
        else:
            env.pop(name, None)
    return env


def _die_with_parent() -> None:
    # A worker killed with SIGKILL cannot clean up; this makes the kernel kill its task shells too.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def start_cold(command: str, cwd: Path, env: dict[str, str], output_path: Path) -> subprocess.Popen:
    """``/bin/sh -c command`` in ``cwd``, its own session, output (both streams) to ``output_path``."""
    with open(output_path, "wb") as output, open(os.devnull, "rb") as devnull:
        return subprocess.Popen(
            ["/bin/sh", "-c", command],
            cwd=cwd,
            env=env,
            stdin=devnull,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            # PR_SET_PDEATHSIG fires when the *thread* that forked exits, so a task started from
            # the warm pool's start thread (its cold fallback) would be SIGKILLed at once (exit
            # status 9, no output); those tasks are stopped by the worker's own cleanup instead
            preexec_fn=_die_with_parent if threading.current_thread() is threading.main_thread() else None,
        )


def start_task_process(
    task: TaskAssignment, cwd: Path, env: dict[str, str], output_path: Path, warm_pool: WarmStarter | None = None
) -> ProcessHandle:
    """Start a task: in a warm Python slot if the pool takes the command, else cold."""
    if warm_pool is not None:
        try:
            request = warm_pool.parse_warm_command(task.command, env)
        except Exception:  # a broken warm pool must not break plain tasks
            log.exception("task %d: the warm pool could not parse the command; running it cold", task.taskid)
            request = None
        if request is not None:
            return warm_pool.start_async(request, cwd, env, output_path)
    return start_cold(task.command, cwd, env, output_path)


def kill_process(handle: ProcessHandle) -> None:
    """SIGKILL a task and everything in its process group."""
    signal_process(handle, signal.SIGKILL)


def signal_process(handle: ProcessHandle, sig: int) -> None:
    """Signal a task: all of a cold task's process group (it leads one), or through its handle."""
    try:
        if isinstance(handle, subprocess.Popen) and os.getpgid(handle.pid) == handle.pid:
            os.killpg(handle.pid, sig)
        else:
            handle.send_signal(sig)
    except (ProcessLookupError, PermissionError):
        pass


def exit_code_of(returncode: int) -> int:
    """CCTools reports a task killed by a signal as exit code = the signal number."""
    return -returncode if returncode < 0 else returncode


def exceeded_time_limit(task: TaskAssignment, started_wall: float, now_wall: float) -> ResultCode | None:
    """TASK_TIMEOUT once ``end_time`` passed, TASK_MAX_RUN_TIME once ``wall_time`` is used up."""
    if task.end_time is not None and task.end_time > 0 and now_wall >= task.end_time:
        return ResultCode.TASK_TIMEOUT
    if task.wall_time is not None and task.wall_time > 0 and now_wall - started_wall >= task.wall_time:
        return ResultCode.TASK_MAX_RUN_TIME
    return None


@dataclass
class ProcessOutcome:
    """What goes into the ``result`` line (and the output file that follows it)."""

    status: int
    exit_code: int
    execution_time_us: int
    output_path: Path | None = None

    @property
    def output_length(self) -> int:
        if self.output_path is None:
            return 0
        try:
            return self.output_path.stat().st_size
        except OSError:
            return 0


@dataclass
class RunningTask:
    """A started task: its handle, when it started, and why we killed it (if we did)."""

    task: TaskAssignment
    sandbox: Path
    output_path: Path
    handle: ProcessHandle
    started_monotonic: float = field(default_factory=time.monotonic)
    started_wall: float = field(default_factory=time.time)
    limit_status: ResultCode | None = None

    def enforce_limits(self, now_wall: float) -> None:
        """Kill the task if it is still running past its ``end_time`` or ``wall_time``.

        The process is polled first: one that already exited (the loop noticed it only now, after
        a tiny limit passed) finished in time and is not flagged (CCTools' worker reaps first too).
        """
        if self.limit_status is not None or self.handle.poll() is not None:
            return
        exceeded = exceeded_time_limit(self.task, self.started_wall, now_wall)
        if exceeded is not None:
            log.info("task %d: %s exceeded, killing it", self.task.taskid, exceeded.log_name)
            self.limit_status = exceeded
            kill_process(self.handle)

    def finished(self) -> ProcessOutcome | None:
        """The outcome once the process has ended, else None."""
        returncode = self.handle.poll()
        if returncode is None:
            return None
        elapsed_us = int((time.monotonic() - self.started_monotonic) * 1e6)
        status = int(self.limit_status) if self.limit_status is not None else int(ResultCode.SUCCESS)
        return ProcessOutcome(status, exit_code_of(returncode), elapsed_us, self.output_path)

    def kill(self) -> None:
        kill_process(self.handle)
        try:
            self.handle.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log.warning("task %d (pid %d) did not die within 5 s of SIGKILL", self.task.taskid, self.handle.pid)
