"""CCTools' ``work_queue`` Python API, on coffea-wq's pure-Python manager.

A script written for ``import work_queue as wq`` runs with ``import coffea_wq.work_queue as wq``::

    import coffea_wq.work_queue as wq

    q = wq.WorkQueue(port=9123)
    t = wq.Task("wc -l < data.txt > count.txt")
    t.specify_input_file("data.txt", cache=True)
    t.specify_output_file("count.txt")
    q.submit(t)
    while not q.empty():
        t = q.wait(5)
        if t:
            print(t.id, t.result, t.return_status, t.output)

Workers are the real ``work_queue_worker`` or ``coffea-wq worker``:
``work_queue_worker 127.0.0.1 9123``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any

from coffea_wq.manager.logs import ManagerLogs, attach_debug_log
from coffea_wq.manager.server import ManagerServer
from coffea_wq.manager.stats import QueueStats, collect_stats
from coffea_wq.manager.task import Direction, FileKind, FileSpec, TaskSpec, cached_name_for
from coffea_wq.protocol.codes import FileFlags, ResultCode, TaskState
from coffea_wq.resources.types import Resources

log = logging.getLogger("coffea_wq.work_queue")

# --- the constants CCTools' module exports, with its values
WORK_QUEUE_DEFAULT_PORT = 9123
WORK_QUEUE_RANDOM_PORT = 0
WORK_QUEUE_WAITFORTASK = -1
WORK_QUEUE_DEFAULT_KEEPALIVE_INTERVAL = 120
WORK_QUEUE_DEFAULT_KEEPALIVE_TIMEOUT = 30
WORK_QUEUE_INPUT = 0
WORK_QUEUE_OUTPUT = 1
WORK_QUEUE_NOCACHE = int(FileFlags.NOCACHE)
WORK_QUEUE_CACHE = int(FileFlags.CACHE)
WORK_QUEUE_SYMLINK = int(FileFlags.SYMLINK)
WORK_QUEUE_PREEXIST = int(FileFlags.PREEXIST)
WORK_QUEUE_THIRDGET = int(FileFlags.THIRDGET)
WORK_QUEUE_THIRDPUT = int(FileFlags.THIRDGET)
WORK_QUEUE_WATCH = int(FileFlags.WATCH)
WORK_QUEUE_FAILURE_ONLY = int(FileFlags.FAILURE_ONLY)
WORK_QUEUE_SUCCESS_ONLY = int(FileFlags.SUCCESS_ONLY)
WORK_QUEUE_FILE = 1
WORK_QUEUE_BUFFER = 2
WORK_QUEUE_REMOTECMD = 3
WORK_QUEUE_FILE_PIECE = 4
WORK_QUEUE_DIRECTORY = 5
WORK_QUEUE_URL = 6
WORK_QUEUE_SCHEDULE_UNSET = 0
WORK_QUEUE_SCHEDULE_FCFS = 1
WORK_QUEUE_SCHEDULE_FILES = 2
WORK_QUEUE_SCHEDULE_TIME = 3
WORK_QUEUE_SCHEDULE_RAND = 4
WORK_QUEUE_SCHEDULE_WORST = 5
WORK_QUEUE_TASK_ORDER_FIFO = 0
WORK_QUEUE_TASK_ORDER_LIFO = 1
WORK_QUEUE_MANAGER_MODE_STANDALONE = 0
WORK_QUEUE_MANAGER_MODE_CATALOG = 1
WORK_QUEUE_ALLOCATION_MODE_FIXED = 0
WORK_QUEUE_ALLOCATION_MODE_MAX = 1
WORK_QUEUE_ALLOCATION_MODE_MIN_WASTE = 2
WORK_QUEUE_ALLOCATION_MODE_MAX_THROUGHPUT = 3
for _code in ResultCode:
    globals()[f"WORK_QUEUE_RESULT_{_code.name}"] = int(_code)
for _state in TaskState:
    globals()[f"WORK_QUEUE_TASK_{_state.name}"] = int(_state)
del _code, _state

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

    __slots__ = ("_spec", "__weakref__")

    def __init__(self, command: str) -> None:
        self._spec = TaskSpec(command=str(command))

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

    def specify_environment_variable(self, name: str, value: str | None = None) -> int:
        self._spec.env.append((str(name), "" if value is None else str(value)))
        return 1

    def specify_max_retries(self, max_retries: int) -> int:
        self._spec.max_retries = int(max_retries)
        return 1

    def _set_resource(self, **value: float) -> int:
        (name, amount), = value.items()
        self._spec.requested = Resources(**{**self._spec.requested.as_dict(), name: None if amount is None or amount < 0 else float(amount)})
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

    def clone(self) -> Task:
        """A copy that can be submitted again (results are not copied)."""
        other = Task(self._spec.command)
        spec = self._spec
        other._spec = TaskSpec(
            command=spec.command, tag=spec.tag, category=spec.category, priority=spec.priority,
            requested=spec.requested, max_retries=spec.max_retries, running_time_max=spec.running_time_max,
            end_time=spec.end_time, env=list(spec.env), files=list(spec.files), features=list(spec.features),
        )
        return other

    # ---------------------------------------------------------------- results
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
        return self._spec.output

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

    def __repr__(self) -> str:
        return f"<Task {self.id or '(unsubmitted)'} {self._spec.state.log_name} {self._spec.command[:40]!r}>"


class WorkQueue:
    """The manager: listens for workers, runs submitted tasks on them (CCTools' ``WorkQueue``).

    Args:
        port: an int (0 for any free port), ``[low, high]`` or ``"low-high"`` (the first free one).
        name: the project name; when set, the manager advertises itself to the catalog.
        shutdown: send ``exit`` to idle workers when the queue is shut down.
        stats_log: path of the performance log (one row per second at most).
        transactions_log: path of the transactions log.
        debug_log: path of a debug log of everything the manager does.
        host: address to listen on ("" = all interfaces; "127.0.0.1" keeps it on loopback).
        catalog: catalog address(es) "host:port[,host:port]" used when ``name`` is set.

    Example::

        with WorkQueue(port=0) as q:
            print("workers can connect to port", q.port)
    """

    def __init__(self, port=WORK_QUEUE_DEFAULT_PORT, name: str | None = None, shutdown: bool = False,
                 stats_log: str | None = None, transactions_log: str | None = None, debug_log: str | None = None,
                 host: str = "", catalog: str | None = None) -> None:
        self._debug_handler = attach_debug_log(debug_log) if debug_log else None
        self._shutdown_on_exit = shutdown
        self._tasks: dict[int, Task] = {}
        self._logs = ManagerLogs(transactions_log, stats_log)
        self._server = ManagerServer(port, host, self._logs)
        self._name = name
        self._server.project = name
        self._priority = 0
        self._catalog_option = catalog
        self._advertiser = None
        from coffea_wq.manager.status import StatusReporter

        self._status = StatusReporter(self._server, self)
        self._server.status_provider = self._status.answer
        self._server.on_tick = self._on_tick
        self._server.on_workers_changed = self._notify_catalog
        self._closed = False
        if name:
            self._start_advertising()
        log.info("manager listening on port %d", self.port)

    # ---------------------------------------------------------------- properties
    @property
    def port(self) -> int:
        return self._server.port

    @property
    def name(self) -> str | None:
        return self._name

    @property
    def stats(self) -> QueueStats:
        with self._server.lock:
            return collect_stats(self._server, self._priority)

    # ---------------------------------------------------------------- tasks
    def submit(self, task: Task) -> int:
        """Queue a task; returns its id."""
        if not isinstance(task, Task):
            raise TypeError(f"submit() takes a Task, not {type(task).__name__}")
        if task._spec.state not in (TaskState.UNKNOWN, TaskState.DONE, TaskState.CANCELED):
            raise ValueError(f"task {task.id} is already in the queue")
        task._spec.reset_results()
        task._spec.try_count = 0
        task_id = self._server.submit(task._spec)
        self._tasks[task_id] = task
        return task_id

    def wait(self, timeout: float = WORK_QUEUE_WAITFORTASK) -> Task | None:
        """The next finished task, or None if none finished within ``timeout`` s (-1: forever)."""
        spec = self._server.wait(None if timeout is None or timeout < 0 else timeout)
        if spec is None:
            return None
        return self._tasks.pop(spec.task_id, None)

    def empty(self) -> bool:
        """True when no submitted task is still to be returned by ``wait``."""
        with self._server.lock:
            return self._server.queue.outstanding == 0

    def hungry(self) -> int:
        """How many more tasks the queue would like: keeps twice the connected cores waiting (at least 10)."""
        with self._server.lock:
            cores = sum((p.resources["cores"].total or 0) for p in self._server.core.peers.values() if p.ready_for_tasks)
            wanted = max(10, int(2 * cores))
            return max(0, wanted - self._server.queue.ready_count)

    def cancel_by_taskid(self, id: int) -> Task | None:
        """Remove a task from the queue (killing it if it runs); returns it, or None if unknown."""
        spec = self._server.call(lambda: self._server.core.cancel(int(id)))
        return self._tasks.pop(int(id), None) if spec is not None else None

    def cancel_by_tasktag(self, tag: str) -> Task | None:
        with self._server.lock:
            match = next((t for t in self._server.queue.tasks.values() if t.tag == tag), None)
        return self.cancel_by_taskid(match.task_id) if match is not None else None

    def task_state(self, taskid: int) -> int:
        with self._server.lock:
            spec = self._server.queue.tasks.get(int(taskid))
            return int(spec.state) if spec is not None else int(TaskState.UNKNOWN)

    # ---------------------------------------------------------------- workers
    def shutdown_workers(self, n: int) -> int:
        """Tell up to ``n`` idle workers (0: all idle workers) to exit; returns how many were told."""
        from coffea_wq.manager.workers import PeerKind
        from coffea_wq.protocol.manager_side import WorkerConnection

        def tell() -> int:
            told = 0
            for peer in list(self._server.core.peers.values()):
                if peer.kind is PeerKind.WORKER and not peer.tasks and not peer.closing and (n <= 0 or told < n):
                    peer.send(WorkerConnection.send_exit())
                    peer.closing = True
                    peer.disconnect_reason = "EXPLICIT"
                    told += 1
            return told

        return int(self._server.call(tell))

    def wait_for_workers(self, count: int, timeout: float) -> bool:
        """Block until ``count`` workers are ready for tasks (True) or ``timeout`` s pass (False)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._server.lock:
                ready = sum(1 for p in self._server.core.peers.values() if p.ready_for_tasks)
            if ready >= count:
                return True
            time.sleep(0.05)
        return False

    # ---------------------------------------------------------------- configuration
    def specify_password(self, password: str | bytes) -> int:
        self._server.password = password.encode() if isinstance(password, str) else bytes(password)
        return 1

    def specify_password_file(self, file: str) -> int:
        """Require workers to prove they know the password in ``file`` (its raw bytes)."""
        try:
            with open(file, "rb") as handle:
                self._server.password = handle.read()
        except OSError as error:
            raise OSError(f"cannot read the password file {file!r}: {error.strerror}") from None
        return 1

    def specify_keepalive_interval(self, interval: float) -> int:
        self._server.keepalive_interval = float(interval)
        return 1

    def specify_keepalive_timeout(self, timeout: float) -> int:
        self._server.keepalive_timeout = float(timeout)
        return 1

    def specify_name(self, name: str) -> int:
        self._name = name
        self._server.project = name
        if name and self._advertiser is None:
            self._start_advertising()
        return 1

    def specify_priority(self, priority: int) -> int:
        self._priority = priority
        return 1

    def specify_catalog_server(self, hostname: str, port: int) -> int:
        self._catalog_option = f"{hostname}:{port}"
        self._restart_advertising()
        return 1

    def specify_catalog_servers(self, hosts: str) -> int:
        self._catalog_option = hosts
        self._restart_advertising()
        return 1

    def specify_log(self, logfile: str) -> int:
        """Write the performance (stats) log to ``logfile``."""
        with self._server.lock:
            self._logs.open_stats(logfile)
        return 1

    def specify_transactions_log(self, logfile: str) -> int:
        """Write the transactions log to ``logfile``."""
        with self._server.lock:
            self._logs.open_transactions(logfile)
        return 1

    # ---------------------------------------------------------------- catalog
    def _start_advertising(self) -> None:
        from coffea_wq.manager.advertise import start_advertiser

        self._advertiser = start_advertiser(self._catalog_option, self._status.queue_record_for_catalog)

    def _restart_advertising(self) -> None:
        if self._advertiser is not None:
            self._advertiser.stop()
            self._advertiser = None
        if self._name:
            self._start_advertising()

    def _notify_catalog(self) -> None:
        if self._advertiser is not None:
            self._advertiser.notify_change()

    def _on_tick(self) -> None:
        self._logs.write_stats(self._status.stats_row())

    # ---------------------------------------------------------------- shutdown
    def shutdown(self) -> None:
        """Release every worker, stop the manager thread and close every socket and log."""
        if self._closed:
            return
        self._closed = True
        if self._shutdown_on_exit:
            self.shutdown_workers(0)
        if self._advertiser is not None:
            self._advertiser.stop()
            self._advertiser = None
        with self._server.lock:
            self._logs.write_stats(self._status.stats_row(), force=True)
        self._server.stop()
        if self._debug_handler is not None:
            logging.getLogger("coffea_wq").removeHandler(self._debug_handler)
            self._debug_handler.close()

    def __enter__(self) -> WorkQueue:
        return self

    def __exit__(self, *exc_info) -> None:
        self.shutdown()

    def __del__(self) -> None:
        try:
            self.shutdown()
        except Exception:
            pass


def hostname() -> str:
    return socket.gethostname()
