"""Decode a task's output file into a ``TaskOutcome``: the function's value or a ``RemoteError``.

The file comes from a worker, so it is unpickled under a ``ResultPolicy`` (``safe_results.py``):
a result that would build anything off the allow-list is ``REFUSED``, never loaded.
"""

from __future__ import annotations

import enum
import pickletools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lz4.frame

from coffea_wq.executor.errors import RemoteError
from coffea_wq.executor.results.remote_exceptions import rebuild_chain
from coffea_wq.executor.results.safe_results import RefusedResultError, ResultPolicy, load_result


class OutcomeKind(enum.Enum):
    OK = "ok"  # the function returned; ``value`` holds what it returned
    REMOTE_ERROR = "remote-error"  # the function raised; ``remote`` says what
    MISSING = "missing"  # no output file came back
    UNREADABLE = "unreadable"  # an output came back but is not a runner record
    REFUSED = "refused"  # the output would build a type off the allow-list: not loaded


@dataclass
class TaskOutcome:
    kind: OutcomeKind
    value: Any = None
    remote: RemoteError | None = None
    detail: str = ""
    wall_time: float | None = None
    refused: str = ""  # with REFUSED: the class or function the output tried to build


def read_outcome(path: Path, policy: ResultPolicy | None = None, worker: str = "") -> TaskOutcome:
    """Read the record ``coffea_wq_task.py`` wrote at ``path`` under ``policy`` (default: the built-in
    allow-list); ``worker`` names the peer that sent it, for the refusal message.

    Example:
        >>> read_outcome(Path("/nonexistent")).kind
        <OutcomeKind.MISSING: 'missing'>
    """
    try:
        with lz4.frame.open(path, mode="rb") as f:
            record = load_result(f, policy or ResultPolicy())
    except RefusedResultError as exc:
        where = f" from worker {worker}" if worker else ""
        return TaskOutcome(OutcomeKind.REFUSED, refused=exc.qualified,
                           detail=f"refused the result{where}: {exc}; if you trust it, add its module to the "
                                  "executor option allowed_result_modules")
    except FileNotFoundError:
        return TaskOutcome(OutcomeKind.MISSING, detail=f"output file {path} did not come back")
    except Exception as exc:  # truncated transfer, foreign file, unpicklable class on this side
        return TaskOutcome(OutcomeKind.UNREADABLE, detail=f"cannot decode output {path}: {exc!r}")
    if not isinstance(record, dict) or record.get("status") not in ("ok", "error"):
        return TaskOutcome(OutcomeKind.UNREADABLE, detail=f"output {path} is not a coffea-wq task record")
    if record["status"] == "ok":
        return TaskOutcome(OutcomeKind.OK, value=record.get("value"), wall_time=record.get("wall_time"))
    return TaskOutcome(OutcomeKind.REMOTE_ERROR, remote=_remote_error(record), wall_time=record.get("wall_time"))


@dataclass(frozen=True)
class RecordPeek:
    """A record's ``status`` and whether its ``value`` is None, read without unpickling anything."""

    status: str | None = None  # None: not a record whose head could be read
    value_is_none: bool = False


_STRING_OPS = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"})
_SKIPPED_OPS = frozenset({"MEMOIZE", "FRAME", "PUT", "BINPUT", "LONG_BINPUT"})
_PEEK_OPS = 64


def peek_record(path: Path) -> RecordPeek:
    """Read the head of the record at ``path``: its status, and with ``ok`` whether the value is None.

    Why: a big result should wait in staging for an accumulation task (docs/reduction.md, section
    3) without being decompressed and unpickled here. The task runner writes its record as a dict
    whose first keys are ``version``, ``status`` and (ok records) ``value``, so the first few
    pickle opcodes say what it is; they are parsed (``pickletools.genops``), never run. A worker
    can lie here: the peek only routes the file, which is read under the allow-list wherever it
    is read.

    Example:
        >>> peek_record(Path("/nonexistent"))
        RecordPeek(status=None, value_is_none=False)
    """
    try:
        with lz4.frame.open(path, mode="rb") as stream:
            return _peek_opcodes(pickletools.genops(stream))
    except Exception:  # truncated, not lz4, not a pickle: the full read will say why
        return RecordPeek()


def _peek_opcodes(opcodes) -> RecordPeek:
    status, expecting = None, None
    for count, (opcode, arg, _) in enumerate(opcodes):
        if count > _PEEK_OPS:
            break
        if opcode.name in _SKIPPED_OPS:
            continue
        if expecting == "value":
            return RecordPeek(status, opcode.name == "NONE")
        if expecting == "status":
            status, expecting = (arg if isinstance(arg, str) else None), None
            if status != "ok":
                break
            continue
        expecting = arg if opcode.name in _STRING_OPS and arg in ("status", "value") else None
    return RecordPeek(status)


def _remote_error(record: dict) -> RemoteError:
    return RemoteError(
        type_name=str(record.get("type", "?")),
        message=str(record.get("message", "")),
        traceback=str(record.get("traceback", "")),
        exception=rebuild_chain(record.get("exception_chain") or []),
        host=str(record.get("host", "?")),
    )
