"""The manager's end of one connection, sans-IO: ``WorkerConnection`` (docs/protocol.md).

Rules of this module:

- it never touches sockets, files, threads or the clock;
- everything that decides what this end may read next lives here: the reading state, its
  transitions (``_STEPS``, one reader per state) and the replies it awaits;
- it knows what it sent: ``send(message)`` encodes a message and, for ``get`` and
  ``send_results``, remembers that a reply ending in ``end`` is owed, in order. A reply line
  (``file``, ``dir``, ``missing``) while no ``get`` is owed, or an ``end`` while nothing is, is a
  protocol error;
- every peer line is demultiplexed by its keyword, because asynchronous lines (``info``,
  ``alive``, ``resource``, ``available_results``, ``feature``) may arrive in the middle of a
  reply (docs/protocol.md, "Asynchronous lines");
- the first line decides what the peer is: a worker (``workqueue ...``), a status client
  (``queue_status`` ...), an HTTP client (``GET ...``) or a ``name`` query;
- payloads are read by length, a chunk at a time, so what a peer *announces* never decides
  what is held: a task's output comes out as ``ResultOutput`` chunks up to
  ``max_result_output`` bytes and the rest is dropped unread; the output of a task this peer
  does not hold (``holds_task`` says) is dropped whole; output files and watched-file updates
  come out in chunks too (docs/manager.md, "Bounded memory");
- every way the connection ends is one last event, as on the worker's side: ``ConnectionClosed``
  when the peer hangs up, ``ConnectionFailed`` when it breaks the protocol or the password
  exchange; after it ``next_event`` returns ``NEED_DATA`` forever.

Theory of operation
-------------------
The I/O layer sends ``start()`` once the socket is up, feeds every received byte string to
``receive_data``, sends ``data_to_send()`` (the password exchange answers by itself), and
drains ``next_event`` until it returns ``NEED_DATA``. What the manager wants to say goes
through ``send(message)``, which only returns bytes; writing them is the caller's job. Input is
consumed by ``_step``: the reader for the current ``_Reading`` state takes a line or a chunk,
appends events and may move to another state.

Example::

    conn = WorkerConnection()
    conn.receive_data(b"workqueue 9 host Linux x86_64 8.0.0\\n")
    conn.next_event()  # Handshake(protocol=9, hostname='host', ...)
    sock.sendall(conn.send(KillTask(7)))
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from coffea_wq.protocol import PROTOCOL_VERSION
from coffea_wq.protocol import messages as m
from coffea_wq.protocol.auth import AuthState, PasswordAuth
from coffea_wq.protocol.encoding import encode
from coffea_wq.protocol.framing import ByteStream, ProtocolError, parse_int, parse_number
from coffea_wq.protocol.urlcode import url_decode

STATUS_REQUESTS = ("queue_status", "task_status", "worker_status", "wable_status", "resources_status")
RESOURCE_NAMES = ("workers", "disk", "memory", "gpus", "cores")
FILE_CHUNK = 1 << 20
# CCTools' MAX_TASK_STDOUT_STORAGE: a task's output beyond this is read and dropped, and the
# result says so (``truncated``), so one chatty task cannot make the manager keep gigabytes
MAX_TASK_STDOUT_STORAGE = 1 << 30
TLS_HANDSHAKE_RECORD = 0x16  # the first byte a TLS client sends (a ClientHello record)
_REPLY_LINES = (m.FileReply, m.DirectoryStart, m.FileMissing)


class RefusalError(ProtocolError):
    """The peer cannot be served with this manager's settings: ``refusal`` is "password" or "tls"."""

    def __init__(self, message: str, refusal: str):
        super().__init__(message)
        self.refusal = refusal


class _Reading(enum.Enum):
    AUTH = "auth"
    LINES = "lines"
    RESULT_OUTPUT = "result-output"
    FILE_DATA = "file-data"
    WATCH_DATA = "watch-data"
    HTTP_HEADERS = "http-headers"
    CLOSED = "closed"


@dataclass
class _Owed:
    """A request whose reply (ending with ``end``) has not fully arrived, and the caller's note."""

    request: m.GetRequest | m.SendResults
    context: object


class WorkerConnection:
    """Manager side of one connection: bytes in, events out; ``send(message)`` -> bytes out.

    Args:
        password: the password file's raw bytes, or None for no authentication.
        challenge: our 63-character challenge (random by default; fixed only to replay transcripts).
        max_result_output: bytes of a task's output handed out; the rest is read and dropped.
        holds_task: whether this peer runs task ``id`` now; a ``result`` for any other task is read
            and dropped without being handed out (None: every task counts as held).
    """

    def __init__(self, password: bytes | None = None, challenge: str | None = None,
                 max_result_output: int = MAX_TASK_STDOUT_STORAGE,
                 holds_task: Callable[[int], bool] | None = None) -> None:
        self._stream = ByteStream()
        self._max_result_output = max_result_output
        self.holds_task = holds_task
        self._events: deque = deque()
        self._owed: deque[_Owed] = deque()
        self._auth: PasswordAuth | None = None
        if password is not None:
            self._auth = PasswordAuth(password) if challenge is None else PasswordAuth(password, challenge)
        self._reading = _Reading.AUTH if self._auth else _Reading.LINES
        self._result_keep = 0  # bytes of the current result's output still to hand out
        self._result_left = 0  # bytes of it still to read
        self._result_truncated = False  # more was announced than is handed out
        self._pending_update: tuple[int, str, int, int] | None = None
        self._file_left = 0
        self._file_context: object = None
        self._http_path = ""
        self._outbox = b""
        self.is_worker = False
        self.closed = False
        self._received_any = False

    # ------------------------------------------------------------------ the I/O layer's interface
    def start(self) -> bytes:
        """What to send as soon as the connection is accepted (the auth opening, if any)."""
        return self._auth.start() if self._auth else b""

    def data_to_send(self) -> bytes:
        """Bytes the connection produced by itself (the password exchange); call after ``receive_data``."""
        reply, self._outbox = self._outbox, b""
        return reply

    def send(self, message: object, context: object = None) -> bytes:
        """The bytes of ``message``; a ``get`` or ``send_results`` is remembered as owed a reply,
        and ``context`` comes back on that reply's events (``FileReply``, ``FileData``,
        ``DirectoryStart``, ``FileMissing``, ``ReplyEnd``)."""
        if isinstance(message, (m.GetRequest, m.SendResults)):
            self._owed.append(_Owed(message, context))
        return encode(message)

    def awaits(self, kind: type) -> bool:
        """Whether a reply to a request of type ``kind`` (``GetRequest``, ``SendResults``) is owed."""
        return any(isinstance(owed.request, kind) for owed in self._owed)

    def abandon_replies(self) -> list:
        """The contexts of every reply still owed, forgotten (the caller drops the connection)."""
        contexts = [owed.context for owed in self._owed]
        self._owed.clear()
        return contexts

    def receive_data(self, data: bytes) -> None:
        """Feed received bytes; ``b""`` means the peer closed its end."""
        if self.closed:
            return
        if data and not self._received_any and data[0] == TLS_HANDSHAKE_RECORD:
            self._fail("the peer speaks TLS (a worker started with --ssl?) but this manager does not use TLS; "
                       "give the manager ssl=... or start the worker without --ssl", "tls")
            return
        self._received_any = self._received_any or bool(data)
        if self._reading is _Reading.CLOSED and data:
            return  # a status or HTTP client has asked its one question: more bytes are ignored, not kept
        self._stream.feed(data)
        try:
            while _STEPS[self._reading](self):
                pass
        except ProtocolError as error:
            self._fail(str(error), getattr(error, "refusal", ""))
            return
        if self._stream.closed and not self.closed:
            self._events.append(m.ConnectionClosed(clean=self._between_messages(),
                                                   during_auth=self._reading is _Reading.AUTH))
            self._finish()

    def next_event(self):
        """The next event (``messages.ManagerEvent``), or ``NEED_DATA``."""
        return self._events.popleft() if self._events else m.NEED_DATA

    def _between_messages(self) -> bool:
        return self._reading in (_Reading.LINES, _Reading.CLOSED, _Reading.AUTH) and len(self._stream) == 0

    def _fail(self, reason: str, refusal: str = "") -> None:
        self._events.append(m.ConnectionFailed(reason, refusal))
        self._finish()

    def _finish(self) -> None:
        self._reading = _Reading.CLOSED
        self.closed = True
        self._stream.skip(len(self._stream))  # a dead connection holds nothing

    # ------------------------------------------------------------------ authentication
    def _read_auth_line(self) -> bool:
        assert self._auth is not None
        line = self._stream.read_line()
        if line is None:
            return False
        if self._auth.state is AuthState.WAIT_AUTH_LINE and line in STATUS_REQUESTS + ("name",):
            # a status client cannot authenticate; CCTools drops it the same way (docs/protocol.md)
            raise ProtocolError(f"{line!r} request on a manager with a password")
        opening = self._auth.state is AuthState.WAIT_AUTH_LINE
        self._outbox += self._auth.receive_line(line)
        if self._auth.state is AuthState.FAILED:
            # only a worker (its handshake, or a wrong digest) counts as a password mismatch, not a port scan
            refused = "password" if not opening or line.startswith("workqueue ") else ""
            raise RefusalError(f"authentication failed: {self._auth.failure_reason}", refused)
        if self._auth.state is AuthState.SUCCEEDED:
            self._reading = _Reading.LINES
            self._events.append(m.AuthSucceeded())
        return True

    # ------------------------------------------------------------------ lines
    def _read_line(self) -> bool:
        line = self._stream.read_line()
        if line is None:
            return False
        keyword, _, rest = line.partition(" ")
        handler = _LINE_HANDLERS.get(keyword)
        if handler is None:
            raise ProtocolError(f"unexpected message {line[:80]!r}")
        handler(self, rest, line)
        return True

    def _get_context(self, what: str) -> object:
        """The context of the ``get`` a reply line answers; ProtocolError when no ``get`` is owed."""
        if not self._owed or not isinstance(self._owed[0].request, m.GetRequest):
            raise ProtocolError(f"unexpected {what} with no get pending")
        return self._owed[0].context

    def _on_workqueue(self, rest: str, line: str) -> None:
        fields = rest.split()
        if len(fields) < 5:
            raise ProtocolError(f"malformed handshake {line[:80]!r}")
        protocol = parse_int(fields[0], line, allow_float=True)
        if protocol != PROTOCOL_VERSION:
            raise ProtocolError(f"worker uses protocol {protocol}, but I use protocol {PROTOCOL_VERSION}")
        self.is_worker = True
        self._events.append(m.Handshake(protocol, fields[1], fields[2], fields[3], fields[4]))

    def _on_info(self, rest: str, line: str) -> None:
        field, _, value = rest.partition(" ")
        if not field or not value:
            raise ProtocolError(f"malformed info line {line[:80]!r}")
        if field == "worker-id":
            self._events.append(m.WorkerIdentified(value.strip()))
        else:
            self._events.append(m.Info(field, value.strip()))

    def _on_resource(self, rest: str, line: str) -> None:
        fields = rest.split()
        if len(fields) == 2 and fields[0] == "tag":
            self._events.append(m.ResourceTag(parse_int(fields[1], line, allow_float=True)))
            return
        if len(fields) < 4:
            raise ProtocolError(f"malformed resource line {line[:80]!r}")
        total, smallest, largest = (parse_number(f, line) for f in fields[1:4])
        self._events.append(m.ResourceReport(fields[0], total, smallest, largest))

    def _on_result(self, rest: str, line: str) -> None:
        fields = rest.split()
        if len(fields) < 5:
            raise ProtocolError(f"malformed result line {line[:80]!r}")
        status, exit_code, length, exec_time, task_id = (parse_int(f, line, allow_float=True) for f in fields[:5])
        if length < 0:
            raise ProtocolError(f"negative output length in {line[:80]!r}")
        self._events.append(m.ResultStart(status, exit_code, length, exec_time, task_id))
        held = self.holds_task is None or self.holds_task(task_id)
        self._result_keep = min(length, self._max_result_output) if held else 0
        self._result_left = length
        self._result_truncated = length > self._result_keep
        self._reading = _Reading.RESULT_OUTPUT

    def _read_result_output(self) -> bool:
        """Hand out what is kept a chunk at a time; skip the rest without copying it."""
        if self._result_keep:
            data = self._stream.read_upto(min(self._result_keep, FILE_CHUNK))
            if not data:
                return False
            self._result_keep -= len(data)
            self._result_left -= len(data)
            if self._result_left:
                self._events.append(m.ResultOutput(data, False))
                return True
        elif self._result_left:
            count = self._stream.skip(self._result_left)
            self._result_left -= count
            return count > 0
        else:
            data = b""
        self._events.append(m.ResultOutput(data, True, self._result_truncated))
        self._reading = _Reading.LINES
        return True

    def _on_file(self, rest: str, line: str) -> None:
        name, _, size_text = rest.rpartition(" ")
        if not name:
            raise ProtocolError(f"malformed file line {line[:80]!r}")
        size = parse_int(size_text, line, allow_float=True)
        if size < 0:
            raise ProtocolError(f"negative file size in {line[:80]!r}")
        self._file_context = self._get_context("FileReply")
        self._events.append(m.FileReply(name, size, self._file_context))
        self._file_left = size
        self._reading = _Reading.FILE_DATA

    def _read_file_data(self) -> bool:
        if self._file_left == 0:
            self._events.append(m.FileData(b"", True, self._file_context))
            self._reading = _Reading.LINES
            return True
        data = self._stream.read_upto(min(self._file_left, FILE_CHUNK))
        if not data:
            return False
        self._file_left -= len(data)
        last = self._file_left == 0
        self._events.append(m.FileData(data, last, self._file_context))
        if last:
            self._reading = _Reading.LINES
        return True

    def _on_dir(self, rest: str, line: str) -> None:
        name, _, zero = rest.rpartition(" ")
        if not name or zero != "0":
            raise ProtocolError(f"malformed dir line {line[:80]!r}")
        self._events.append(m.DirectoryStart(name, self._get_context("DirectoryStart")))

    def _on_missing(self, rest: str, line: str) -> None:
        name, _, errno = rest.rpartition(" ")
        if not name:
            raise ProtocolError(f"malformed missing line {line[:80]!r}")
        errno_value = parse_int(errno, line, allow_float=True)
        self._events.append(m.FileMissing(name, errno_value, self._get_context("FileMissing")))

    def _on_end(self, rest: str, line: str) -> None:
        if not self._owed:
            raise ProtocolError("'end' with no request pending")
        owed = self._owed.popleft()
        self._events.append(m.ReplyEnd(owed.request, owed.context))

    def _on_update(self, rest: str, line: str) -> None:
        fields = rest.split(" ")
        if len(fields) != 4:
            raise ProtocolError(f"malformed update line {line[:80]!r}")
        task_id, offset, length = (parse_int(fields[i], line, allow_float=True) for i in (0, 2, 3))
        if offset < 0 or length < 0:
            raise ProtocolError(f"negative offset or length in {line[:80]!r}")
        self._pending_update = (task_id, url_decode(fields[1]), offset, length)
        self._reading = _Reading.WATCH_DATA

    def _read_watch_data(self) -> bool:
        """One ``WatchUpdate`` per chunk that arrives (offsets advance), none held back."""
        assert self._pending_update is not None
        task_id, path, offset, length = self._pending_update
        if length == 0:
            self._events.append(m.WatchUpdate(task_id, path, offset, b""))
        else:
            data = self._stream.read_upto(min(length, FILE_CHUNK))
            if not data:
                return False
            self._events.append(m.WatchUpdate(task_id, path, offset, data))
            offset, length = offset + len(data), length - len(data)
            if length:
                self._pending_update = (task_id, path, offset, length)
                return True
        self._pending_update = None
        self._reading = _Reading.LINES
        return True

    def _on_status(self, rest: str, line: str) -> None:
        if self.is_worker:
            raise ProtocolError(f"status request {line!r} from a worker")
        self._events.append(m.StatusRequest(line.strip()))
        self._stop_reading()

    def _stop_reading(self) -> None:
        """A status or HTTP client asked its one question: whatever else it sends is dropped."""
        self._reading = _Reading.CLOSED
        self._stream.skip(len(self._stream))

    def _on_get(self, rest: str, line: str) -> None:
        if self.is_worker:
            raise ProtocolError(f"HTTP request from a worker: {line[:80]!r}")
        self._http_path = rest.split(" ")[0] if rest else "/"
        self._reading = _Reading.HTTP_HEADERS

    def _read_http_header(self) -> bool:
        line = self._stream.read_line()
        if line is None:
            return False
        if line.strip() == "":
            self._events.append(m.HttpRequest(self._http_path))
            self._stop_reading()
        return True

    def _on_cache_update(self, rest: str, line: str) -> None:
        fields = rest.split()
        if len(fields) != 2:
            raise ProtocolError(f"malformed cache-update {line[:80]!r}")
        self._events.append(m.CacheUpdate(fields[0], parse_int(fields[1], line)))

    def _on_cache_invalid(self, rest: str, line: str) -> None:
        name, _, reason = rest.partition(" ")
        if not name:
            raise ProtocolError(f"malformed cache-invalid {line[:80]!r}")
        self._events.append(m.CacheInvalid(name, reason.strip() or "no reason given"))

    def _on_simple(self, rest: str, line: str) -> None:
        keyword = line.split(" ")[0]
        if keyword == "alive":
            self._events.append(m.Alive())
        elif keyword == "available_results":
            self._events.append(m.ResultsAvailable())
        elif keyword == "name":
            self._events.append(m.NameRequest())
        elif keyword == "feature":
            self._events.append(m.Feature(url_decode(rest.strip())))
        elif keyword == "tlq":
            pass  # TLQ logging is not supported; CCTools ignores it without a TLQ port too
        elif keyword == "auth":
            raise RefusalError("worker is attempting to use a password, but I do not have one", "password")
        elif keyword == "ready":
            raise ProtocolError("worker speaks a pre-protocol-9 dialect ('ready')")


_STEPS: dict[_Reading, Callable[[WorkerConnection], bool]] = {
    # reading state -> the reader that consumes one line or chunk; False: more bytes needed
    _Reading.AUTH: WorkerConnection._read_auth_line,
    _Reading.LINES: WorkerConnection._read_line,
    _Reading.RESULT_OUTPUT: WorkerConnection._read_result_output,
    _Reading.FILE_DATA: WorkerConnection._read_file_data,
    _Reading.WATCH_DATA: WorkerConnection._read_watch_data,
    _Reading.HTTP_HEADERS: WorkerConnection._read_http_header,
    _Reading.CLOSED: lambda _conn: False,
}

_LINE_HANDLERS = {
    # first word of a line -> its parser (which may move the reading state)
    "workqueue": WorkerConnection._on_workqueue,
    "info": WorkerConnection._on_info,
    "resource": WorkerConnection._on_resource,
    "result": WorkerConnection._on_result,
    "file": WorkerConnection._on_file,
    "dir": WorkerConnection._on_dir,
    "missing": WorkerConnection._on_missing,
    "end": WorkerConnection._on_end,
    "update": WorkerConnection._on_update,
    "GET": WorkerConnection._on_get,
    # our extension (docs/protocol.md, "Our extension: peer transfers"): a coffea-wq worker sends
    # these only in answer to our manager's cache-report and peer-get
    "cache-update": WorkerConnection._on_cache_update,
    "cache-invalid": WorkerConnection._on_cache_invalid,
    **{kind: WorkerConnection._on_status for kind in STATUS_REQUESTS},
    **{kw: WorkerConnection._on_simple for kw in ("alive", "available_results", "name", "feature", "tlq", "auth", "ready")},
}
