"""``Task``: a shell command with its files and resources (CCTools' ``work_queue.Task``)."""

from __future__ import annotations

import os
from typing import Any

from coffea_wq.manager.task import Direction, FileKind, FileSpec, TaskSpec, cached_name_for
from coffea_wq.protocol.codes import ResultCode
from coffea_wq.resources.types import Resources
from coffea_wq.work_queue.constants import (
    WORK_QUEUE_CACHE,
    WORK_QUEUE_FAILURE_ONLY,
    WORK_QUEUE_INPUT,
    WORK_QUEUE_NOCACHE,
    WORK_QUEUE_OUTPUT,
)

_RESULT_STRINGS = {code: code.log_name for code in ResultCode}
_RESULT_STRINGS[ResultCode.TASK_TIMEOUT] = "END_TIME"
_RESULT_STRINGS[ResultCode.TASK_MAX_RUN_TIME] = "MAX_WALL_TIME"
_RESULT_STRINGS[ResultCode.DISK_ALLOC_FULL] = "DISK_FULL"
_RESULT_STRINGS[ResultCode.RMONITOR_ERROR] = "MONITOR_ERROR"


def work_queue_result_str(result: int) -> str:
    """The short name CCTools gives a result code (``SUCCESS``, ``OUTPUT_MISS``, ...)."""
    try:
        return _RESULT_STRINGS[ResultCode(result)]
    except ValueError:
        return "UNKNOWN"


def _file_flags(flags: int | None, cache: bool | None, failure_only: bool | None = None) -> int:
    """CCTools' rule: explicit ``flags`` first, then ``cache``/``failure_only`` switch their bits."""
    value = WORK_QUEUE_NOCACHE if flags is None else int(flags)
    if cache is not None:
        value = value | WORK_QUEUE_CACHE if cache else value & ~WORK_QUEUE_CACHE
    if failure_only is not None:
        value = value | WORK_QUEUE_FAILURE_ONLY if failure_only else value & ~WORK_QUEUE_FAILURE_ONLY
    return value


def _check_remote_name(remote_name: str) -> str:
    if not remote_name or os.path.isabs(remote_name):
        raise ValueError(f"remote name {remote_name!r} must be a non-empty path relative to the task's sandbox")
    return remote_name


class Task:
    """A shell command with its input and output files (CCTools' ``work_queue.Task``).

    Args:
        command: the shell command line, run by ``/bin/sh -c`` in the task's sandbox.

    Example::

        t = Task("gzip -c data.txt > data.txt.gz")
        t.specify_input_file("data.txt", cache=True)
        t.specify_output_file("data.txt.gz")
        t.specify_cores(1)
    """

    __slots__ = ("_spec", "_running_time_min", "__weakref__")

    def __init__(self, command: str) -> None:
        self._spec = TaskSpec(command=str(command))
        self._running_time_min = 0.0

    # ---------------------------------------------------------------- specification
    def specify_command(self, command: str) -> int:
        self._spec.command = str(command)
        return 1

    def specify_tag(self, tag: str) -> int:
        self._spec.tag = str(tag)
        return 1

    def specify_category(self, name: str) -> int:
        self._spec.category = str(name)
        return 1

    def specify_feature(self, name: str) -> int:
        self._spec.features.append(str(name))
        return 1

    def specify_avoided_host(self, host: str) -> int:
        """coffea-wq: do not run on the worker at ``host`` ("ip:port", as ``task.host`` says) while another
        worker is connected; with none other, any worker will do (docs/manager.md, section 3)."""
        self._spec.avoid_hosts.append(str(host))
        return 1

    def specify_prefer_oldest_worker(self) -> int:
        """coffea-wq: run on the longest-connected worker where the task fits (on a churning pool, the
        one most likely to stay; docs/manager.md, section 3)."""
        self._spec.prefer_oldest = True
        return 1

    def specify_priority(self, priority: float) -> int:
        self._spec.priority = float(priority)
        return 1

    def specify_file(self, local_name, remote_name=None, type=None, flags=None, cache=None, failure_only=None) -> int:
        """Attach a local file (or directory) as an input or an output of the task."""
        local_name = str(local_name)
        remote_name = _check_remote_name(str(remote_name) if remote_name else os.path.basename(local_name.rstrip("/")))
        direction = Direction.OUTPUT if type == WORK_QUEUE_OUTPUT else Direction.INPUT
        value = _file_flags(flags, cache, failure_only)
        name = cached_name_for(FileKind.FILE, local_name, bool(value & WORK_QUEUE_CACHE), remote_name)
        self._spec.files.append(FileSpec(FileKind.FILE, direction, local_name, remote_name, value, name))
        return 1

    def specify_input_file(self, local_name, remote_name=None, flags=None, cache=None) -> int:
        return self.specify_file(local_name, remote_name, WORK_QUEUE_INPUT, flags, cache)

    def specify_output_file(self, local_name, remote_name=None, flags=None, cache=None, failure_only=None) -> int:
        return self.specify_file(local_name, remote_name, WORK_QUEUE_OUTPUT, flags, cache, failure_only)

    def specify_directory(self, local_name, remote_name=None, type=None, flags=None, recursive=False, cache=None,
                          failure_only=None) -> int:
        """An input directory (its contents with ``recursive=True``, else an empty one) or an output one."""
        local_name = str(local_name) if local_name else ""
        remote_name = _check_remote_name(str(remote_name) if remote_name else os.path.basename(local_name.rstrip("/")))
        direction = Direction.OUTPUT if type == WORK_QUEUE_OUTPUT else Direction.INPUT
        if direction is Direction.INPUT and not recursive:
            value = _file_flags(flags, cache, failure_only)
            self._spec.files.append(FileSpec(FileKind.DIRECTORY, direction, "", remote_name, value, remote_name))
            return 1
        return self.specify_file(local_name, remote_name, type, flags, cache, failure_only)

    def specify_buffer(self, buffer, remote_name, flags=None, cache=None) -> int:
        """Literal contents (str or bytes) for a file named ``remote_name`` in the sandbox."""
        data = buffer.encode() if isinstance(buffer, str) else bytes(buffer)
        value = _file_flags(flags, cache)
        remote_name = _check_remote_name(str(remote_name))
        name = cached_name_for(FileKind.BUFFER, data, bool(value & WORK_QUEUE_CACHE), remote_name)
        self._spec.files.append(FileSpec(FileKind.BUFFER, Direction.INPUT, data, remote_name, value, name))
        return 1

    def specify_file_piece(self, local_name, remote_name=None, start_byte=0, end_byte=0, type=None, flags=None,
                           cache=None, failure_only=None) -> int:
        """Bytes ``start_byte`` to ``end_byte`` (both included, as CCTools) of a local file, as an input.

        The piece is read now and sent as the file's contents. Inputs only.
        """
        if type == WORK_QUEUE_OUTPUT:
            raise NotImplementedError(f"specify_file_piece({local_name!r}): only inputs can be pieces")
        local_name = str(local_name)
        if int(end_byte) < int(start_byte):
            raise ValueError(f"specify_file_piece({local_name!r}): end_byte {end_byte} is before start_byte {start_byte}")
        with open(local_name, "rb") as handle:
            handle.seek(int(start_byte))
            piece = handle.read(int(end_byte) - int(start_byte) + 1)
        remote_name = str(remote_name) if remote_name else os.path.basename(local_name.rstrip("/"))
        return self.specify_buffer(piece, remote_name, flags, cache)

    def specify_url(self, url: str, remote_name: str, type=None, flags=None, cache=None) -> int:
        """An input the worker downloads from ``url`` (CCTools >= 7.4). A URL the worker cannot
        fetch makes the task come back as INPUT_MISSING (coffea-wq's worker; CCTools' worker runs
        ``curl -f``). Outputs to URLs are not supported."""
        if type == WORK_QUEUE_OUTPUT:
            raise NotImplementedError(f"specify_url({url!r}): uploading outputs to a URL is not supported")
        return self._add_worker_made_input(FileKind.URL, str(url), remote_name, flags, cache)

    def specify_file_command(self, remote_name: str, cmd: str, type=None, flags=None, cache=None) -> int:
        """An input the worker makes by running the shell command ``cmd``, in which ``%%`` stands for
        the file to create (CCTools >= 7.4), e.g. ``curl -o %% https://...``. Output commands are not
        supported."""
        if type == WORK_QUEUE_OUTPUT:
            raise NotImplementedError(f"specify_file_command({cmd!r}): output commands are not supported")
        return self._add_worker_made_input(FileKind.COMMAND, str(cmd), remote_name, flags, cache)

    def _add_worker_made_input(self, kind: FileKind, source: str, remote_name, flags, cache) -> int:
        remote_name = _check_remote_name(str(remote_name))
        value = _file_flags(flags, cache)
        name = cached_name_for(kind, source, bool(value & WORK_QUEUE_CACHE), remote_name)
        self._spec.files.append(FileSpec(kind, Direction.INPUT, source, remote_name, value, name))
        return 1

    def specify_environment_variable(self, name: str, value: str | None = None) -> int:
        self._spec.env.append((str(name), "" if value is None else str(value)))
        return 1

    def specify_max_retries(self, max_retries: int) -> int:
        self._spec.max_retries = int(max_retries)
        return 1

    def _set_resource(self, **value: float) -> int:
        (name, amount), = value.items()
        r = self._spec.requested
        values = {"cores": r.cores, "memory": r.memory, "disk": r.disk, "gpus": r.gpus}
        values[name] = None if amount is None or amount < 0 else float(amount)
        self._spec.requested = Resources(**values)
        return 1

    def specify_cores(self, cores: float) -> int:
        return self._set_resource(cores=cores)

    def specify_memory(self, memory: float) -> int:
        return self._set_resource(memory=memory)

    def specify_disk(self, disk: float) -> int:
        return self._set_resource(disk=disk)

    def specify_gpus(self, gpus: float) -> int:
        return self._set_resource(gpus=gpus)

    def specify_running_time_max(self, seconds: float) -> int:
        self._spec.running_time_max = max(0.0, float(seconds))
        return 1

    def specify_running_time(self, useconds: float) -> int:
        return self.specify_running_time_max(float(useconds) / 1e6)

    def specify_end_time(self, useconds: float) -> int:
        self._spec.end_time = max(0.0, float(useconds) / 1e6)
        return 1

    def specify_running_time_min(self, seconds: float) -> int:
        """Accepted; coffea-wq's manager does not use a task's minimum running time to pick a worker."""
        self._running_time_min = max(0.0, float(seconds))
        return 1

    def specify_start_time_min(self, useconds: float) -> int:
        """Accepted; coffea-wq's manager does not hold tasks back until a start time (docs/manager.md)."""
        return 1

    def specify_coprocess(self, coprocess: str) -> int:
        """CCTools 8's serverless coprocesses are not supported by coffea-wq (docs/manager.md)."""
        raise NotImplementedError(f"specify_coprocess({coprocess!r}): coffea-wq has no worker coprocesses; "
                                  "use PythonTask")

    def specify_algorithm(self, algorithm: int) -> int:
        """Accepted; coffea-wq's manager has one scheduling rule (docs/manager.md)."""
        return 1

    def specify_preferred_host(self, hostname: str) -> int:
        """Accepted; coffea-wq's manager does not prefer hosts (docs/manager.md)."""
        return 1

    def specify_monitor_output(self, monitor_output: str) -> int:
        """Accepted; monitor summaries go where ``WorkQueue.enable_monitoring(dirname)`` says."""
        return 1

    def specify_snapshot_file(self, filename: str) -> int:
        """Accepted; the monitor takes no snapshots (docs/manager.md)."""
        return 1

    def clone(self) -> Task:
        """A copy that can be submitted again (results are not copied)."""
        other = Task(self._spec.command)
        spec = self._spec
        other._spec = TaskSpec(
            command=spec.command, tag=spec.tag, category=spec.category, priority=spec.priority,
            requested=spec.requested, max_retries=spec.max_retries, running_time_max=spec.running_time_max,
            end_time=spec.end_time, env=list(spec.env), files=list(spec.files), features=list(spec.features),
            avoid_hosts=list(spec.avoid_hosts),
        )
        return other

    # ---------------------------------------------------------------- results
    @property
    def _task(self) -> TaskSpec:
        """What CCTools' binding calls the C task (``t._task.result``, read by CCTools' own
        ``work_queue_futures`` module): here the task's record, which has the same fields."""
        return self._spec

    @property
    def id(self) -> int:
        return self._spec.task_id

    @property
    def tag(self) -> str | None:
        return self._spec.tag

    @property
    def category(self) -> str:
        return self._spec.category

    @property
    def command(self) -> str:
        return self._spec.command

    @property
    def priority(self) -> float:
        return self._spec.priority

    @property
    def output(self) -> str:
        return self._spec.read_output()

    std_output = output

    @property
    def return_status(self) -> int:
        return self._spec.return_status

    @property
    def result(self) -> int:
        return int(self._spec.result)

    @property
    def result_str(self) -> str:
        return work_queue_result_str(self._spec.result)

    @property
    def hostname(self) -> str:
        return self._spec.hostname

    @property
    def host(self) -> str:
        return self._spec.host

    @property
    def total_submissions(self) -> int:
        return self._spec.try_count

    @property
    def exhausted_attempts(self) -> int:
        return self._spec.exhausted_attempts

    @property
    def submit_time(self) -> int:
        return self._spec.time_when_submitted

    @property
    def finish_time(self) -> int:
        return self._spec.time_when_done

    @property
    def send_input_start(self) -> int:
        return self._spec.time_when_commit_start

    @property
    def send_input_finish(self) -> int:
        return self._spec.time_when_commit_end

    @property
    def algorithm(self) -> int:
        return 0  # WORK_QUEUE_SCHEDULE_UNSET: the queue's rule

    @property
    def execute_cmd_start(self) -> int:
        """When the command started (µs since the epoch; approximated by the end of the input transfer)."""
        return self._spec.time_when_commit_end

    @property
    def execute_cmd_finish(self) -> int:
        return self._spec.time_when_commit_end + self._spec.cmd_execution_time if self._spec.time_when_commit_end else 0

    @property
    def receive_output_start(self) -> int:
        return self.execute_cmd_finish

    @property
    def receive_output_finish(self) -> int:
        return self._spec.time_when_done

    @property
    def total_transfer_time(self) -> int:
        """µs spent sending inputs and fetching outputs (what is not the command's own time)."""
        sent = self._spec.time_when_commit_end - self._spec.time_when_commit_start
        back = self.receive_output_finish - self.receive_output_start
        return max(0, sent) + max(0, back)

    @property
    def app_delay(self) -> int:
        return 0

    @property
    def total_cmd_exhausted_execute_time(self) -> int:
        return 0

    @property
    def cmd_execution_time(self) -> int:
        return self._spec.cmd_execution_time

    @property
    def total_cmd_execution_time(self) -> int:
        return self._spec.total_cmd_execution_time

    @property
    def total_bytes_sent(self) -> int:
        return self._spec.bytes_sent

    @property
    def total_bytes_received(self) -> int:
        return self._spec.bytes_received

    @property
    def total_bytes_transferred(self) -> int:
        return self._spec.bytes_sent + self._spec.bytes_received

    @property
    def resources_requested(self) -> Resources:
        return self._spec.requested

    @property
    def resources_allocated(self) -> Resources | None:
        return self._spec.allocated

    @property
    def resources_measured(self) -> Any:
        return self._spec.measured

    @property
    def limits_exceeded(self) -> Any:
        return self._spec.limits_exceeded

    @property
    def exhaustion_message(self) -> str:
        """Why a RESOURCE_EXHAUSTION task was stopped, e.g. ``memory exceeded: peak 312 MB > limit 100 MB``
        ("" otherwise). Not in CCTools' API, where only ``limits_exceeded`` and ``resources_measured`` say it."""
        return self._spec.exhaustion_message

    def __repr__(self) -> str:
        return f"<Task {self.id or '(unsubmitted)'} {self._spec.state.log_name} {self._spec.command[:40]!r}>"
