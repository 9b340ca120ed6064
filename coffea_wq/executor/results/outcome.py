"""Decode a task's output file into a ``TaskOutcome``: the function's value or a ``RemoteError``.

With reduction (docs/reduction.md) a task may also say its value joined a partial on its worker
(HELD), bring a partial back (PARTIAL: the value of several chunks, with their keys), or say a
partial it was asked for is not there (LOST); an error record may carry the partial of its slot.

The file comes from a worker, so it is unpickled under a ``ResultPolicy``
(``coffea_wq/safe_pickle/allow_list.py``): a result that would build anything off the allow-list
is ``REFUSED``, never loaded.

A partial's value is a second pickle after its record (``task_script.py``): ``read_outcome(...,
value=False)`` reads the record alone (the partial's id and keys), so the executor can decide to
leave a big value for an accumulation task without loading it (docs/reduction.md, section 2).
"""

from __future__ import annotations

import enum
import io
import pickletools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import lz4.frame

from coffea_wq.executor.errors import RemoteError
from coffea_wq.executor.tasks.task_script import VALUE_FOLLOWS, record_value_follows
from coffea_wq.safe_pickle.allow_list import RefusedResultError, ResultPolicy, load_result
from coffea_wq.safe_pickle.remote_exceptions import rebuild_chain


class OutcomeKind(enum.Enum):
    OK = "ok"  # the function returned; ``value`` holds what it returned
    REMOTE_ERROR = "remote-error"  # the function raised; ``remote`` says what
    MISSING = "missing"  # no output file came back
    UNREADABLE = "unreadable"  # an output came back but is not a runner record
    REFUSED = "refused"  # the output would build a type off the allow-list: not loaded
    HELD = "held"  # the value joined partial ``partial.partial_id`` on the worker
    PARTIAL = "partial"  # ``partial`` came back: its value and the chunk keys it holds
    LOST = "lost"  # the flush task found no partial ``partial.partial_id`` in its slot


@dataclass
class PartialResult:
    """A partial named in a record: its id, and (when it came back) its keys and value."""

    partial_id: str
    keys: list[int]
    value: Any = None
    count: int = 0  # HELD: how many chunks the partial holds now
    value_unread: bool = False  # its value follows in the record file, not read (``read_outcome(value=False)``)


@dataclass
class TaskOutcome:
    kind: OutcomeKind
    value: Any = None
    remote: RemoteError | None = None
    detail: str = ""
    wall_time: float | None = None
    refused: str = ""  # with REFUSED: the class or function the output tried to build
    partial: PartialResult | None = None  # HELD, PARTIAL, LOST; with REMOTE_ERROR: the partial it carried
    key: int | None = None  # HELD: the chunk key the task says it ran
    # seconds per phase of the task on its worker (task_clock.py; docs/executor.md, section 10);
    # ``write`` is there when the record's end was read (not when a partial's value was left unread)
    phases: dict[str, float] = field(default_factory=dict)


def read_outcome(path: Path, policy: ResultPolicy | None = None, worker: str = "", value: bool = True) -> TaskOutcome:
    """Read the record ``coffea_wq_task.py`` wrote at ``path`` under ``policy`` (default: the built-in
    allow-list); ``worker`` names the peer that sent it, for the refusal message. ``value=False``:
    a partial's value that follows its record is not read (``partial.value_unread``).

    Example:
        >>> read_outcome(Path("/nonexistent")).kind
        <OutcomeKind.MISSING: 'missing'>
    """
    following, trailer = None, None
    try:
        with open_record(path) as f:
            record = load_result(f, policy or ResultPolicy())
            unread = record_value_follows(record)
            if unread and value:
                following, unread = load_result(f, policy or ResultPolicy()), False
            if not unread:
                trailer = _trailer(f, policy or ResultPolicy())
    except RefusedResultError as exc:
        where = f" from worker {worker}" if worker else ""
        return TaskOutcome(OutcomeKind.REFUSED, refused=exc.qualified,
                           detail=f"refused the result{where}: {exc}; if you trust it, add its module to the "
                                  "executor option allowed_result_modules")
    except FileNotFoundError:
        return TaskOutcome(OutcomeKind.MISSING, detail=f"output file {path} did not come back")
    except Exception as exc:  # truncated transfer, foreign file, unpicklable class on this side
        return TaskOutcome(OutcomeKind.UNREADABLE, detail=f"cannot decode output {path}: {exc!r}")
    if not isinstance(record, dict) or record.get("status") not in ("ok", "error", "held", "partial", "lost"):
        return TaskOutcome(OutcomeKind.UNREADABLE, detail=f"output {path} is not a coffea-wq task record")
    outcome = _outcome_of(path, record, following, unread)
    outcome.phases = _phases(record.get("phases"), trailer)
    return outcome


def _outcome_of(path: Path, record: dict, following: Any, unread: bool) -> TaskOutcome:
    wall_time = record.get("wall_time")
    if record["status"] == "ok":
        return TaskOutcome(OutcomeKind.OK, value=record.get("value"), wall_time=wall_time)
    if record["status"] == "error":
        carried = _partial(record.get("partial"), "id", following, unread)
        return TaskOutcome(OutcomeKind.REMOTE_ERROR, remote=_remote_error(record), wall_time=wall_time,
                           partial=carried)
    partial = _partial(record, "partial", following, unread)
    if partial is None or (record["status"] == "held" and not isinstance(record.get("key"), int)):
        return TaskOutcome(OutcomeKind.UNREADABLE, detail=f"output {path}: a malformed {record['status']} record")
    kind = {"held": OutcomeKind.HELD, "partial": OutcomeKind.PARTIAL, "lost": OutcomeKind.LOST}[record["status"]]
    return TaskOutcome(kind, wall_time=wall_time, partial=partial, key=record.get("key"))


def _trailer(stream: Any, policy: ResultPolicy) -> Any:
    """The pickle after a record (and its value): ``{"write": seconds}`` from runners that time it."""
    try:
        return load_result(stream, policy)
    except EOFError:  # an older runner's record: nothing after it
        return None


def _phases(fields: Any, trailer: Any) -> dict[str, float]:
    """A record's ``phases`` (seconds by name) and the trailer's ``write``, where their types are right."""
    phases = {}
    for source in (fields, trailer):
        if isinstance(source, dict):
            phases.update({name: float(seconds) for name, seconds in source.items()
                           if isinstance(name, str) and isinstance(seconds, (int, float))
                           and not isinstance(seconds, bool) and 0 <= seconds < 1e9})
    return phases


def open_record(path: Path) -> io.BufferedReader:
    """A task's record file, decompressed as it is read, straight into the reader's buffers.

    Why not ``lz4.frame.open``: the unpickler reads a big array's bytes with one ``readinto``,
    which ``lz4.frame.open`` serves by decompressing them into a new bytes object first, then
    copying: one more copy of the result at the peak of loading it (a 64 MiB histogram: +160 MiB
    instead of +130; docs/reduction.md, section 3). Here ``readinto`` fills the caller's buffer
    a megabyte at a time.

    Example:
        >>> open_record(Path("/nonexistent"))
        Traceback (most recent call last):
        ...
        FileNotFoundError: [Errno 2] No such file or directory: '/nonexistent'
    """
    raw = open(path, "rb")  # noqa: SIM115 (the reader returned owns it, and closes it)
    return io.BufferedReader(_Lz4FrameReader(raw))


class _Lz4FrameReader(io.RawIOBase):
    """One lz4 frame of ``raw``, decompressed into the caller's buffer (``readinto``)."""

    READ_BYTES = 64 * 1024  # compressed bytes read at a time
    OUT_BYTES = 1 << 20  # most decompressed bytes held here at a time

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.decompressor = lz4.frame.LZ4FrameDecompressor()
        self.ready = memoryview(b"")  # decompressed, not handed out yet

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with memoryview(buffer) as view, view.cast("B") as target:
            while not self.ready:
                if self.decompressor.eof:
                    return 0
                data = self.raw.read(self.READ_BYTES) if self.decompressor.needs_input else b""
                if not data and self.decompressor.needs_input:
                    raise EOFError("the lz4 frame ends early (a truncated file)")
                self.ready = memoryview(self.decompressor.decompress(data, max_length=self.OUT_BYTES))
            count = min(len(target), len(self.ready))
            target[:count] = self.ready[:count]
            self.ready = self.ready[count:]
            return count

    def close(self) -> None:
        self.raw.close()
        super().close()


def _partial(fields: Any, id_field: str, following: Any = None, unread: bool = False) -> PartialResult | None:
    """The partial a record names, if its fields have the right types (a worker wrote them).

    Its value is the record's ``value`` field (records of version 2, kept in ``checkpoint_dir``)
    or ``following``, the pickle after the record; ``unread``: that one was not read.
    """
    if not isinstance(fields, dict) or not isinstance(fields.get(id_field), str):
        return None
    keys = fields.get("keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, int) and not isinstance(k, bool) for k in keys):
        return None
    count = fields.get("count", len(keys))
    value = following if fields.get(VALUE_FOLLOWS) is True else fields.get("value")
    return PartialResult(fields[id_field], keys, value, count if isinstance(count, int) else 0, unread)


def carried_value(outcome: TaskOutcome) -> tuple[bool, Any]:
    """``(True, value)`` of an outcome that carries a read value (an ok record, or a partial's), else ``(False, None)``.

    Example:
        >>> carried_value(TaskOutcome(OutcomeKind.OK, value=3))
        (True, 3)
    """
    if outcome.kind is OutcomeKind.OK:
        return True, outcome.value
    partial = outcome.partial
    if outcome.kind in (OutcomeKind.PARTIAL, OutcomeKind.REMOTE_ERROR) and partial is not None and \
            not partial.value_unread:
        return True, partial.value
    return False, None


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
