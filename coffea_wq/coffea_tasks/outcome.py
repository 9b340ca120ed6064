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
    return RemoteError(
        type_name=str(record.get("type", "?")),
        message=str(record.get("message", "")),
        traceback=str(record.get("traceback", "")),
        exception=_rebuild_chain(record.get("exception_chain") or []),
        host=str(record.get("host", "?")),
    )


def _rebuild_chain(pickled: list) -> BaseException | None:
    """Unpickle the remote exception and re-link its ``__cause__``s (pickle does not keep them)."""
    chain: list[BaseException] = []
    for data in pickled:
        try:
            exc = pickle.loads(data) if data else None
        except Exception:  # its class does not exist on this side: keep the text only
            exc = None
        if not isinstance(exc, BaseException):
            break
        chain.append(exc)
    for exc, cause in zip(chain[:-1], chain[1:], strict=True):
        exc.__cause__ = cause
    return chain[0] if chain else None
