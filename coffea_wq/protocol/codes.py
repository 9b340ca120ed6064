"""Numbers that cross the wire or appear in logs (docs/protocol.md, "Results")."""

from __future__ import annotations

import enum


class ResultCode(enum.IntEnum):
    """A task's result, as CCTools' ``work_queue_result_t``."""

    SUCCESS = 0
    INPUT_MISSING = 1
    OUTPUT_MISSING = 2
    STDOUT_MISSING = 4
    SIGNAL = 8
    RESOURCE_EXHAUSTION = 16
    TASK_TIMEOUT = 24
    UNKNOWN = 32
    FORSAKEN = 40
    MAX_RETRIES = 48
    TASK_MAX_RUN_TIME = 56
    DISK_ALLOC_FULL = 64
    RMONITOR_ERROR = 72

    @property
    def log_name(self) -> str:
        """The word the transactions log writes for this result."""
        return _LOG_NAMES.get(self, "UNKNOWN")


_LOG_NAMES = {
    ResultCode.SUCCESS: "SUCCESS",
    ResultCode.INPUT_MISSING: "INPUT_MISS",
    ResultCode.OUTPUT_MISSING: "OUTPUT_MISS",
    ResultCode.STDOUT_MISSING: "STDOUT_MISS",
    ResultCode.SIGNAL: "SIGNAL",
    ResultCode.RESOURCE_EXHAUSTION: "RESOURCE_EXHAUSTION",
    ResultCode.TASK_TIMEOUT: "END_TIME",
    ResultCode.UNKNOWN: "UNKNOWN",
    ResultCode.FORSAKEN: "FORSAKEN",
    ResultCode.MAX_RETRIES: "MAX_RETRIES",
    ResultCode.TASK_MAX_RUN_TIME: "MAX_WALL_TIME",
}


class TaskState(enum.IntEnum):
    """Task states as ``work_queue_task_state_t``; ``log_name`` is what logs and status print."""

    UNKNOWN = 0
    READY = 1
    RUNNING = 2
    WAITING_RETRIEVAL = 3
    RETRIEVED = 4
    DONE = 5
    CANCELED = 6

    @property
    def log_name(self) -> str:
        return "WAITING" if self is TaskState.READY else self.name


class FileFlags(enum.IntFlag):
    """``infile``/``outfile`` flags (work_queue.h)."""

    NOCACHE = 0
    CACHE = 1
    SYMLINK = 2
    PREEXIST = 4
    THIRDGET = 8
    WATCH = 16
    FAILURE_ONLY = 32
    SUCCESS_ONLY = 64
