"""What an exception raised while reading input says about a retry (docs/executor.md, "When things go wrong").

Pure functions over an exception chain (as rebuilt from a task's error record): no I/O, no state.
``classify_read_error`` sorts a chain into

* ``TRANSIENT``: the storage or the network failed this time (a reset, a timeout, a server error,
  an XRootD "Operation expired"); the same read may succeed a moment later or from another worker.
* ``MISSING_HERE``: a *local* path does not exist. The file may be absent on this worker only
  (a mount that is missing on one node), so another worker should try before the chunk fails.
* ``DISK_FULL``: the worker's disk (or quota) filled up while the task wrote: another worker
  with room should run it.
* ``PERMANENT``: every worker would get the same answer: the storage server says the file does not
  exist or may not be read, the tree or branch is not in the file, a basket does not decompress.
* ``OTHER``: not recognisably a read error (the processor's own bug, say): the caller's usual rule.

Remote exceptions arrive rebuilt from plain data (coffea_wq/safe_pickle/remote_exceptions.py): a
class the manager has not imported comes back as its nearest imported base (often ``OSError``),
so the rules look at class names along the MRO, at ``errno``, and at XRootD's status text.
"""

from __future__ import annotations

import errno
import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum


class ReadErrorKind(Enum):
    TRANSIENT = "transient"
    MISSING_HERE = "missing-here"
    PERMANENT = "permanent"
    DISK_FULL = "disk-full"
    OTHER = "other"


@dataclass(frozen=True)
class ReadErrorClass:
    """The verdict on one exception chain: its kind and, in words, why."""

    kind: ReadErrorKind
    reason: str = ""


MAX_CHAIN = 20  # causes followed (a cycle or a very long chain stops here)

# class names, anywhere along an exception's MRO
TRANSIENT_CLASSES = {
    "ConnectionError": "the connection failed",  # resets, refusals, broken pipes, aborts
    "TimeoutError": "a read timed out",
    "FSTimeoutError": "a read timed out",  # fsspec's
    "ServerDisconnectedError": "the server disconnected",  # aiohttp's (HTTP storage)
    "ClientPayloadError": "the server sent a truncated response",
    "ClientConnectionError": "the connection failed",
    "IncompleteRead": "the server sent a truncated response",
}
PERMANENT_CLASSES = {
    "KeyInFileError": "the file has no such tree or branch",
    "UprootMissTreeError": "the file has no such tree",
    "DeserializationError": "the file is corrupt (a record does not deserialise)",
    "PermissionError": "the input may not be read",
}
MISSING_CLASSES = {
    "FileNotFoundError": "the input file does not exist here",
    "NotADirectoryError": "a folder in the input's path is a file here",
    "IsADirectoryError": "the input is a directory here",
}
TRANSIENT_ERRNOS = {
    errno.ECONNRESET, errno.ETIMEDOUT, errno.EPIPE, errno.ECONNREFUSED, errno.ECONNABORTED,
    errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN, errno.EAGAIN, errno.ESTALE, errno.EREMOTEIO,
}
STAGING_QUOTA_TEXT = re.compile(r"output \S+ \(\d+ bytes\) refused: over the staging quota[^\n]*")
DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
DISK_FULL_TEXT = re.compile(r"no space left on device|disk quota exceeded|disk full on worker", re.IGNORECASE)
# XRootD status codes (XProtocol's kXR_*) in "[ERROR] Server responded with an error: [3011] ..."
XROOTD_PERMANENT_CODES = {
    3000: "the request is invalid", 3001: "the request is invalid", 3002: "the path is too long",
    3010: "the server refuses access", 3011: "the storage server has no such file",
    3015: "the path is not a file", 3016: "the path is a directory", 3030: "authentication failed",
}
XROOTD_CODE = re.compile(r"\[(3\d{3})\]")
# what the XRootD client says when the network or the server failed (its XrdCl status texts)
XROOTD_TRANSIENT_TEXT = re.compile(
    r"operation expired|socket error|socket timeout|connection error|stream disconnect|invalid session|"
    r"operation interrupted|socket disconnected|poller error|redirect limit|connection reset|broken pipe|"
    r"timed out|server responded with an error: \[30(?:05|07|12|14|24|29|33|34|35)\]",
    re.IGNORECASE)
CORRUPT_TEXT = re.compile(r"error -3 while decompressing|invalid (?:block type|distance|stored block)|"
                          r"incorrect header check|data corrupt|corrupted", re.IGNORECASE)


def exception_chain(exc: BaseException | None) -> list[BaseException]:
    """``exc`` and its ``__cause__``s, outermost first (only causes: a remote chain carries no other link)."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen and len(chain) < MAX_CHAIN:
        seen.add(id(exc))
        chain.append(exc)
        exc = exc.__cause__
    return chain


def classify_read_error(exc: BaseException | None, type_name: str = "", message: str = "") -> ReadErrorClass:
    """Sort an exception chain into transient / missing-here / permanent / other.

    ``type_name`` and ``message`` are the worker's own words for the outermost exception (a class
    the manager could not import is lost from the rebuilt chain but not from them).

    A permanent cause anywhere in the chain wins over a transient one (a missing tree stays
    missing however often the connection is retried); a transient one wins over a local path
    missing (the chain of a dropped mount can hold both).

    Example:
        >>> classify_read_error(ConnectionResetError(104, "Connection reset by peer")).kind.value
        'transient'
        >>> classify_read_error(OSError("Failed to open file: [ERROR] Server responded with an error: "
        ...                             "[3011] Unable to open /a.root; no such file or directory")).kind.value
        'permanent'
        >>> classify_read_error(FileNotFoundError(2, "No such file or directory", "/data/a.root")).kind.value
        'missing-here'
        >>> classify_read_error(ZeroDivisionError("division by zero")).kind.value
        'other'
    """
    verdicts = [_classify_one(e) for e in exception_chain(exc)]
    verdicts.append(_classify_text(type_name, message))
    for kind in (ReadErrorKind.PERMANENT, ReadErrorKind.DISK_FULL, ReadErrorKind.TRANSIENT, ReadErrorKind.MISSING_HERE):
        for verdict in verdicts:
            if verdict.kind is kind:
                return verdict
    return ReadErrorClass(ReadErrorKind.OTHER)


def _classify_one(exc: BaseException) -> ReadErrorClass:
    names = [cls.__name__ for cls in type(exc).__mro__]
    described = f"{type(exc).__name__}: {_short(exc)}"
    for name in names:
        if name in PERMANENT_CLASSES:
            return ReadErrorClass(ReadErrorKind.PERMANENT, f"{PERMANENT_CLASSES[name]} ({described})")
    if isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS:
        return ReadErrorClass(ReadErrorKind.DISK_FULL, f"disk full ({described})")
    text = _classify_text(type(exc).__name__, _text_of(exc))
    if text.kind is not ReadErrorKind.OTHER:
        return text
    if isinstance(exc, OSError) and exc.errno in TRANSIENT_ERRNOS:
        return ReadErrorClass(ReadErrorKind.TRANSIENT, f"{errno.errorcode.get(exc.errno, exc.errno)} ({described})")
    for name in names:
        if name in TRANSIENT_CLASSES:
            return ReadErrorClass(ReadErrorKind.TRANSIENT, f"{TRANSIENT_CLASSES[name]} ({described})")
    for name in names:
        if name in MISSING_CLASSES:
            return ReadErrorClass(ReadErrorKind.MISSING_HERE, f"{MISSING_CLASSES[name]} ({described})")
    if names[0] == "error" and type(exc).__module__ == "zlib":
        return ReadErrorClass(ReadErrorKind.PERMANENT, f"a basket does not decompress ({described})")
    return ReadErrorClass(ReadErrorKind.OTHER)


def _classify_text(type_name: str, message: str) -> ReadErrorClass:
    """XRootD's and the decompressors' words (they raise plain OSError / ValueError / zlib.error)."""
    if not message:
        return ReadErrorClass(ReadErrorKind.OTHER)
    described = f"{type_name.rsplit('.', 1)[-1]}: {_short(message)}" if type_name else _short(message)
    quota = STAGING_QUOTA_TEXT.search(message)
    if quota is not None:  # the same output on every worker: a retry would be refused again
        return ReadErrorClass(ReadErrorKind.PERMANENT, f"raise staging_quota or make the output smaller ({quota.group(0)})")
    if DISK_FULL_TEXT.search(message):
        return ReadErrorClass(ReadErrorKind.DISK_FULL, f"disk full ({described})")
    code = XROOTD_CODE.search(message)
    if code is not None and int(code.group(1)) in XROOTD_PERMANENT_CODES:
        return ReadErrorClass(ReadErrorKind.PERMANENT, f"{XROOTD_PERMANENT_CODES[int(code.group(1))]} ({described})")
    if XROOTD_TRANSIENT_TEXT.search(message):
        return ReadErrorClass(ReadErrorKind.TRANSIENT, f"the storage did not answer in time or dropped the "
                                                       f"connection ({described})")
    if CORRUPT_TEXT.search(message):
        return ReadErrorClass(ReadErrorKind.PERMANENT, f"the file is corrupt ({described})")
    return ReadErrorClass(ReadErrorKind.OTHER)


def _text_of(exc: BaseException) -> str:
    """``str(exc)``, or its args where a rebuilt exception's ``__str__`` needs attributes it lacks."""
    try:
        return str(exc)
    except Exception:
        return " ".join(str(arg) for arg in exc.args)


def _short(value: object, limit: int = 300) -> str:
    text = " ".join((_text_of(value) if isinstance(value, BaseException) else str(value)).split())
    return text if len(text) <= limit else text[:limit] + "..."


def unwrap_coffea_retries(function: Callable) -> tuple[Callable, tuple[type[BaseException], ...]]:
    """coffea's Runner wraps every task function in ``partial(Runner.automatic_retries, retries,
    skipbadfiles, fn, use_result_type=...)``: retried at once inside the task, and, under
    ``skipbadfiles``, any ``OSError`` swallowed as a bad file, a timeout as much as a missing file.
    The executor retries with backoff and elsewhere instead (retry_policy.py), so it ships ``fn``
    alone and applies ``skipbadfiles`` itself once the retries are spent: returns ``(fn, the
    exception types to skip)``; anything else comes back unchanged with no types.

    With ``use_result_type`` the Runner wants the exception to wrap it as ``Err``: nothing is
    skipped here (the error is returned as for any failure).
    """
    if not (isinstance(function, functools.partial) and len(function.args) == 3
            and getattr(function.func, "__qualname__", "") == "Runner.automatic_retries"
            and set(function.keywords) <= {"use_result_type"} and callable(function.args[2])):
        return function, ()
    _, skipbadfiles, inner = function.args
    if function.keywords.get("use_result_type") or not skipbadfiles:
        return inner, ()
    if skipbadfiles is True:
        return inner, (OSError,)
    return inner, tuple(skipbadfiles)


SIGKILL_STATUSES = {137, -9, 9}  # a shell's 128 + 9, a killed child's -9, the signal as coffea-wq workers report it


def killed_for_memory(return_status: int | None, remote_exception: object = None) -> bool:
    """A task the kernel killed (SIGKILL: the OOM killer, a cgroup's limit) or that raised MemoryError
    (an ``ulimit -v`` limit): memory ran out, whatever the resource monitor saw.

    Example:
        >>> killed_for_memory(137), killed_for_memory(1), killed_for_memory(1, MemoryError())
        (True, False, True)
    """
    if return_status in SIGKILL_STATUSES:
        return True
    exc = getattr(remote_exception, "exception", remote_exception)
    return any(isinstance(e, MemoryError) for e in exception_chain(exc if isinstance(exc, BaseException) else None))
