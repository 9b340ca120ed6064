"""A task as the manager keeps it: what to run, its files, and what came back.

``TaskSpec`` is plain data with ``__slots__`` (a queue may hold 100,000 of them). The user-facing
``coffea_wq.work_queue.Task`` wraps one; the manager reads and fills it.
"""

from __future__ import annotations

import enum
import hashlib
import itertools
import os
import re
from dataclasses import dataclass, field
from typing import Any

from coffea_wq.manager.stdout import remove_quietly
from coffea_wq.protocol.codes import FileFlags, ResultCode, TaskState
from coffea_wq.resources.types import Resources


class FileKind(enum.Enum):
    FILE = 1
    BUFFER = 2
    DIRECTORY = 5  # an empty directory created in the sandbox (CCTools' WORK_QUEUE_DIRECTORY)
    COMMAND = 3  # an input the worker makes by running a command (CCTools' WORK_QUEUE_REMOTECMD)
    URL = 6  # an input the worker downloads (CCTools' WORK_QUEUE_URL)


class Direction(enum.Enum):
    INPUT = 0
    OUTPUT = 1


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_nocache_counter = itertools.count(1)
_PREFIXES = {FileKind.BUFFER: "buffer", FileKind.URL: "url", FileKind.COMMAND: "cmd"}


def cached_name_for(kind: FileKind, source: str | bytes, cache: bool, remote_name: str) -> str:
    """The name a file has in the worker's cache: CCTools' ``file-<id>-<md5>-<base>`` scheme.

    ``<id>`` is 0 for cached files (so every task naming the same local path shares one copy) and a
    fresh counter for uncached ones. Only ``[A-Za-z0-9._-]`` is used: the C worker decodes some of
    these names and not others (docs/protocol.md, "Names"), so nothing in them may need encoding.

    Example::

        >>> cached_name_for(FileKind.FILE, "/data/in put.txt", True, "in.txt")[:7]
        'file-0-'
    """
    cache_id = 0 if cache else next(_nocache_counter)
    if kind in (FileKind.BUFFER, FileKind.URL, FileKind.COMMAND):
        digest = hashlib.md5(source if isinstance(source, bytes) else source.encode()).hexdigest()
        return f"{_PREFIXES[kind]}-{cache_id}-{digest}"
    path = os.path.abspath(source) if isinstance(source, str) else ""
    digest = hashlib.md5(path.encode("utf-8", "surrogateescape")).hexdigest()
    base = _UNSAFE.sub("_", os.path.basename(path.rstrip("/")) or remote_name)[:64]
    return f"file-{cache_id}-{digest}-{base}"


@dataclass(slots=True)
class FileSpec:
    """One input or output of a task.

    ``local`` is a path (FILE), the bytes (BUFFER), "" (DIRECTORY), the URL (URL) or the shell
    command (COMMAND, ``%%`` standing for the file it makes); ``remote`` is the name in the task's
    sandbox.
    """

    kind: FileKind
    direction: Direction
    local: str | bytes
    remote: str
    flags: int
    cached_name: str

    @property
    def cached(self) -> bool:
        return bool(self.flags & FileFlags.CACHE)


@dataclass(slots=True)
class TaskSpec:
    """Everything about one task; ``task_id`` is 0 until submitted."""

    command: str
    task_id: int = 0
    tag: str | None = None
    category: str = "default"
    priority: float = 0.0
    requested: Resources = field(default_factory=Resources)
    max_retries: int = 0  # 0: retry forever (CCTools)
    running_time_max: float = 0.0  # s; 0: no limit
    end_time: float = 0.0  # s since the epoch; 0: none
    env: list[tuple[str, str]] = field(default_factory=list)
    files: list[FileSpec] = field(default_factory=list)
    features: list[str] = field(default_factory=list)
    # coffea-wq: workers ("ip:port") to pass over while another worker is connected (a retry after a
    # read error there; docs/manager.md, section 3)
    avoid_hosts: list[str] = field(default_factory=list)
    prefer_oldest: bool = False  # coffea-wq: the longest-connected worker that fits, not the next in turn
    # -- filled by the manager
    state: TaskState = TaskState.UNKNOWN
    result: ResultCode = ResultCode.UNKNOWN
    return_status: int = -1
    output: str = ""  # the task's stdout+stderr, when it fits in memory (see output_path)
    output_path: str | None = None  # the spool file holding a larger stdout (manager/stdout.py)
    hostname: str = ""
    host: str = ""  # host:port of the worker that ran it
    try_count: int = 0
    exhausted_attempts: int = 0
    allocated: Resources | None = None
    measured: dict | None = None
    limits_exceeded: dict | None = None
    exhaustion_message: str = ""  # "memory exceeded: peak 312 MB > limit 100 MB" after a watchdog kill
    time_when_submitted: int = 0  # µs timestamps, as CCTools
    time_when_commit_start: int = 0
    time_when_commit_end: int = 0
    time_when_done: int = 0
    cmd_execution_time: int = 0  # µs
    total_cmd_execution_time: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    worker_key: int = 0  # the worker connection it is on (0: none)
    missing_outputs: int = 0
    label: int = 0  # CCTools' resource request label: 0 FIRST, 1 MAX (after an exhaustion)
    attempt_files: list[FileSpec] = field(default_factory=list)  # added per attempt (the monitor's)
    # the API object this record is the state of (a work_queue ``Task``), handed back by ``wait``: the
    # manager's queue is the only registry of tasks, the facade keeps no table of its own
    view: Any = field(default=None, repr=False, compare=False)

    def all_files(self) -> list[FileSpec]:
        return self.files + self.attempt_files if self.attempt_files else self.files

    def inputs(self) -> list[FileSpec]:
        return [f for f in self.all_files() if f.direction is Direction.INPUT]

    def outputs(self) -> list[FileSpec]:
        return [f for f in self.all_files() if f.direction is Direction.OUTPUT]

    def read_output(self) -> str:
        """The task's stdout+stderr: in memory, or read back from its spool file when large."""
        if self.output_path is None:
            return self.output
        try:
            with open(self.output_path, "rb") as handle:
                return handle.read().decode("utf-8", errors="replace")
        except OSError:
            return self.output

    def discard_output(self) -> None:
        """Forget the stdout of an earlier attempt (and its spool file)."""
        self.output = ""
        if self.output_path is not None:
            remove_quietly(self.output_path)
            self.output_path = None

    def reset_results(self) -> None:
        """Forget a previous attempt's results before the task runs again."""
        self.result = ResultCode.UNKNOWN
        self.return_status = -1
        self.discard_output()
        self.missing_outputs = 0
        self.measured = None
        self.limits_exceeded = None
        self.exhaustion_message = ""
