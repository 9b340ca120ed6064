"""Decode a task's output file into a ``TaskOutcome``: the function's value or a ``RemoteError``."""

from __future__ import annotations

import enum
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lz4.frame

from coffea_wq.coffea_tasks.errors import RemoteError


class OutcomeKind(enum.Enum):
    OK = "ok"  # the function returned; ``value`` holds what it returned
    REMOTE_ERROR = "remote-error"  # the function raised; ``remote`` says what
    MISSING = "missing"  # no output file came back
    UNREADABLE = "unreadable"  # an output came back but is not a runner record


@dataclass
class TaskOutcome:
    kind: OutcomeKind
    value: Any = None
    remote: RemoteError | None = None
    detail: str = ""
    wall_time: float | None = None


def read_outcome(path: Path) -> TaskOutcome:
    """Read the record ``coffea_wq_task.py`` wrote at ``path``.

    Example:
        >>> read_outcome(Path("/nonexistent")).kind
        <OutcomeKind.MISSING: 'missing'>
    """
    try:
        with lz4.frame.open(path, mode="rb") as f:
            record = pickle.load(f)
    except FileNotFoundError:
        return TaskOutcome(OutcomeKind.MISSING, detail=f"output file {path} did not come back")
    except Exception as exc:  # truncated transfer, foreign file, unpicklable class on this side
        return TaskOutcome(OutcomeKind.UNREADABLE, detail=f"cannot decode output {path}: {exc!r}")
    if not isinstance(record, dict) or record.get("status") not in ("ok", "error"):
        return TaskOutcome(OutcomeKind.UNREADABLE, detail=f"output {path} is not a coffea-wq task record")
    if record["status"] == "ok":
        return TaskOutcome(OutcomeKind.OK, value=record.get("value"), wall_time=record.get("wall_time"))
    return TaskOutcome(OutcomeKind.REMOTE_ERROR, remote=_remote_error(record), wall_time=record.get("wall_time"))


def _remote_error(record: dict) -> RemoteError:
    exception = None
    if record.get("exception"):
        try:
            exception = pickle.loads(record["exception"])
        except Exception:  # the exception's class does not exist here: keep the text only
            exception = None
    return RemoteError(
        type_name=str(record.get("type", "?")),
        message=str(record.get("message", "")),
        traceback=str(record.get("traceback", "")),
        exception=exception if isinstance(exception, BaseException) else None,
        host=str(record.get("host", "?")),
    )
