"""The manager's view of one worker connection, sans-IO (wq-protocol.md §1-5, §8).

Theory of operation
-------------------
The I/O layer feeds every received byte string to :meth:`WorkerConnection.receive_data` and then
drains :meth:`WorkerConnection.next_event` until it returns ``None``. What the manager wants to
say is built by the ``send_*`` methods, which only return bytes; writing them is the caller's job.

Rules of this module:

- it never touches sockets, threads or the clock;
- every peer line is demultiplexed by its keyword, because asynchronous lines (``info``, ``alive``,
  ``resource``, ``available_results``, ``feature``) may arrive in the middle of a synchronous reply
  to ``send_results`` or ``get`` (pitfall 2); the caller knows which request is pending;
- the first line decides what the peer is: a worker (``workqueue ...``), a status client
  (``queue_status`` ...), an HTTP client (``GET ...``) or a ``name`` query (pitfall 20);
- payloads are read by length, a chunk at a time, so what a peer *announces* never decides what
  is held: the output of a task this peer holds is kept up to ``max_result_output`` (CCTools keeps
  it in memory too) and the rest dropped; the output of a task it does not hold (``holds_task``
  says) is read and dropped whole; output file contents and watched-file updates are handed out
  in chunks as they arrive (docs/manager.md, "Bounded memory");
- anything malformed raises :class:`ProtocolError` internally, which becomes one final
  :class:`ConnectionFailed` event; after it the connection produces nothing more.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable

from coffea_wq.protocol import PROTOCOL_VERSION
from coffea_wq.protocol.auth import AuthState, PasswordAuth
from coffea_wq.protocol.framing import ByteStream, ProtocolError, encode_line
from coffea_wq.protocol.manager_messages import (  # noqa: F401  (re-exported: the events are this module's API)
    Alive,
    AuthSucceeded,
    ConnectionFailed,
    DirectoryStart,
    Event,
    Feature,
    FileData,
    FileMissing,
    FileStart,
    Handshake,
    HttpRequest,
    Info,
    InputFile,
    NameRequest,
    ReplyEnd,
    ResourceReport,
    ResourceTag,
    ResultsAvailable,
    StatusRequest,
    TaskMessage,
    TaskResult,
    WatchUpdate,
    WorkerIdentified,
)
from coffea_wq.protocol.urlcode import url_decode, url_encode

STATUS_REQUESTS = ("queue_status", "task_status", "worker_status", "wable_status", "resources_status")
RESOURCE_NAMES = ("workers", "disk", "memory", "gpus", "cores")
FILE_CHUNK = 1 << 20
# CCTools' MAX_TASK_STDOUT_STORAGE: a task's output beyond this is read and dropped, and the
# result says so (``output_truncated``), so one chatty task cannot exhaust the manager's memory
MAX_TASK_STDOUT_STORAGE = 1 << 30


TLS_HANDSHAKE_RECORD = 0x16  # the first byte a TLS client sends (a ClientHello record)


class RefusedPeer(ProtocolError):
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



# ------------------------------------------------------------------------------ the state machine
class WorkerConnection:
    """Manager side of one connection: bytes in, events out; ``send_*`` build bytes out.

    Args:
        password: the password file's raw bytes, or None for no authentication.
        challenge: our 63-character challenge (random by default; fixed only to replay transcripts).
        max_result_output: bytes of a task's output kept in memory; the rest is read and dropped.
        holds_task: whether this peer runs task ``id`` now; a ``result`` for any other task is read
            and dropped without being kept (None: every task counts as held).

    Example::

        conn = WorkerConnection()
        conn.receive_data(b"workqueue 9 host Linux x86_64 8.0.0\\n")
        conn.next_event()  # Handshake(protocol=9, hostname='host', ...)
        sock.sendall(conn.send_kill(7))
    """

    def __init__(self, password: bytes | None = None, challenge: str | None = None,
                 max_result_output: int = MAX_TASK_STDOUT_STORAGE,
                 holds_task: Callable[[int], bool] | None = None) -> None:
        self._stream = ByteStream()
        self._max_result_output = max_result_output
        self.holds_task = holds_task
        self._result_output = bytearray()  # what is kept of the result being read
        self._result_keep = 0  # how much of it may be kept
        self._result_left = 0  # bytes of it still to read
        self._events: deque[Event] = deque()
        self._auth: PasswordAuth | None = None
        if password is not None:
            self._auth = PasswordAuth(password) if challenge is None else PasswordAuth(password, challenge)
        self._reading = _Reading.AUTH if self._auth else _Reading.LINES
        self._pending_result: tuple[int, int, int, int, int] | None = None
        self._pending_update: tuple[int, str, int, int] | None = None
        self._file_left = 0
        self._http_path = ""
        self._auth_reply = b""
        self.is_worker = False
        self.closed = False
        self._received_any = False

    # -- input
    def initial_bytes(self) -> bytes:
        """What to send as soon as the connection is accepted (the auth opening, if any)."""
        return self._auth.start() if self._auth else b""

    def take_auth_reply(self) -> bytes:
        """Bytes the authentication exchange wants sent (call after each ``receive_data``)."""
        reply, self._auth_reply = self._auth_reply, b""
        return reply

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
            while self._step():
                pass
        except ProtocolError as error:
            self._fail(str(error), getattr(error, "refusal", ""))
            return
        if self._stream.closed and not self.closed:
            self._fail("peer closed the connection")

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    def _fail(self, reason: str, refusal: str = "") -> None:
        self._events.append(ConnectionFailed(reason, refusal))
        self._reading = _Reading.CLOSED
        self.closed = True
        self._stream.skip(len(self._stream))  # a dead connection holds nothing

    def _step(self) -> bool:
        """Consume one unit of input; False when more bytes are needed."""
        reading = self._reading
        if reading is _Reading.LINES:
            line = self._stream.read_line()
            if line is None:
                return False
            self._parse_line(line)
            return True
        if reading is _Reading.RESULT_OUTPUT:
            return self._read_result_output()
        if reading is _Reading.FILE_DATA:
            return self._read_file_data()
        if reading is _Reading.WATCH_DATA:
            return self._read_watch_data()
        if reading is _Reading.AUTH:
            return self._read_auth_line()
        if reading is _Reading.HTTP_HEADERS:
            return self._read_http_header()
        return False

    # -- authentication
    def _read_auth_line(self) -> bool:
        assert self._auth is not None
        line = self._stream.read_line()
        if line is None:
            return False
        if self._auth.state is AuthState.WAIT_AUTH_LINE and line in STATUS_REQUESTS + ("name",):
            # a status client cannot authenticate (pitfall 19); CCTools drops it the same way
            raise ProtocolError(f"{line!r} request on a manager with a password")
        opening = self._auth.state is AuthState.WAIT_AUTH_LINE
        self._auth_reply += self._auth.receive_line(line)
        if self._auth.state is AuthState.FAILED:
            # only a worker (its handshake, or a wrong digest) counts as a password mismatch, not a port scan
            refused = "password" if not opening or line.startswith("workqueue ") else ""
            raise RefusedPeer(f"authentication failed: {self._auth.failure_reason}", refused)
        if self._auth.state is AuthState.SUCCEEDED:
            self._reading = _Reading.LINES
            self._events.append(AuthSucceeded())
        return True

    # -- lines
    def _parse_line(self, line: str) -> None:
        keyword, _, rest = line.partition(" ")
        handler = _LINE_HANDLERS.get(keyword)
        if handler is None:
            raise ProtocolError(f"unexpected message {line[:80]!r}")
        handler(self, rest, line)

    def _on_workqueue(self, rest: str, line: str) -> None:
        fields = rest.split()
        if len(fields) < 5:
            raise ProtocolError(f"malformed handshake {line[:80]!r}")
        protocol = _int(fields[0], line)
        if protocol != PROTOCOL_VERSION:
            raise ProtocolError(f"worker uses protocol {protocol}, but I use protocol {PROTOCOL_VERSION}")
        self.is_worker = True
        self._events.append(Handshake(protocol, fields[1], fields[2], fields[3], fields[4]))

    def _on_info(self, rest: str, line: str) -> None:
        field, _, value = rest.partition(" ")
        if not field or not value:
            raise ProtocolError(f"malformed info line {line[:80]!r}")
        if field == "worker-id":
            self._events.append(WorkerIdentified(value.strip()))
        else:
            self._events.append(Info(field, value.strip()))

    def _on_resource(self, rest: str, line: str) -> None:
        fields = rest.split()
        if len(fields) == 2 and fields[0] == "tag":
            self._events.append(ResourceTag(_int(fields[1], line)))
            return
        if len(fields) < 4:
            raise ProtocolError(f"malformed resource line {line[:80]!r}")
        total, smallest, largest = (_float(f, line) for f in fields[1:4])
        self._events.append(ResourceReport(fields[0], total, smallest, largest))

    def _on_result(self, rest: str, line: str) -> None:
        fields = rest.split()
        if len(fields) < 5:
            raise ProtocolError(f"malformed result line {line[:80]!r}")
        status, exit_code, length, exec_time, task_id = (_int(f, line) for f in fields[:5])
        if length < 0:
            raise ProtocolError(f"negative output length in {line[:80]!r}")
        self._pending_result = (status, exit_code, length, exec_time, task_id)
        held = self.holds_task is None or self.holds_task(task_id)
        self._result_keep = min(length, self._max_result_output) if held else 0
        self._result_left = length
        self._result_output = bytearray()
        self._reading = _Reading.RESULT_OUTPUT

    def _read_result_output(self) -> bool:
        assert self._pending_result is not None
        if self._result_left:
            room = self._result_keep - len(self._result_output)
            if room <= 0:  # dropped bytes are never copied
                count = self._stream.skip(self._result_left)
                self._result_left -= count
                return count > 0
            data = self._stream.read_upto(min(self._result_left, room, FILE_CHUNK))
            if not data:
                return False
            self._result_left -= len(data)
            self._result_output += data
            return True
        status, exit_code, length, exec_time, task_id = self._pending_result
        output = bytes(self._result_output)
        self._events.append(TaskResult(status, exit_code, output, exec_time, task_id, length > len(output)))
        self._pending_result, self._result_output = None, bytearray()
        self._reading = _Reading.LINES
        return True

    def _on_file(self, rest: str, line: str) -> None:
        name, _, size_text = rest.rpartition(" ")
        if not name:
            raise ProtocolError(f"malformed file line {line[:80]!r}")
        size = _int(size_text, line)
        if size < 0:
            raise ProtocolError(f"negative file size in {line[:80]!r}")
        self._events.append(FileStart(name, size))
        self._file_left = size
        self._reading = _Reading.FILE_DATA

    def _read_file_data(self) -> bool:
        if self._file_left == 0:
            self._events.append(FileData(b"", True))
            self._reading = _Reading.LINES
            return True
        data = self._stream.read_upto(min(self._file_left, FILE_CHUNK))
        if not data:
            return False
        self._file_left -= len(data)
        last = self._file_left == 0
        self._events.append(FileData(data, last))
        if last:
            self._reading = _Reading.LINES
        return True

    def _on_dir(self, rest: str, line: str) -> None:
        name, _, zero = rest.rpartition(" ")
        if not name or zero != "0":
            raise ProtocolError(f"malformed dir line {line[:80]!r}")
        self._events.append(DirectoryStart(name))

    def _on_missing(self, rest: str, line: str) -> None:
        name, _, errno = rest.rpartition(" ")
        if not name:
            raise ProtocolError(f"malformed missing line {line[:80]!r}")
        self._events.append(FileMissing(name, _int(errno, line)))

    def _on_update(self, rest: str, line: str) -> None:
        fields = rest.split(" ")
        if len(fields) != 4:
            raise ProtocolError(f"malformed update line {line[:80]!r}")
        task_id, offset, length = _int(fields[0], line), _int(fields[2], line), _int(fields[3], line)
        if offset < 0 or length < 0:
            raise ProtocolError(f"negative offset or length in {line[:80]!r}")
        self._pending_update = (task_id, url_decode(fields[1]), offset, length)
        self._reading = _Reading.WATCH_DATA

    def _read_watch_data(self) -> bool:
        """One :class:`WatchUpdate` per chunk that arrives (offsets advance), none held back."""
        assert self._pending_update is not None
        task_id, path, offset, length = self._pending_update
        if length == 0:
            self._events.append(WatchUpdate(task_id, path, offset, b""))
        else:
            data = self._stream.read_upto(min(length, FILE_CHUNK))
            if not data:
                return False
            self._events.append(WatchUpdate(task_id, path, offset, data))
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
        self._events.append(StatusRequest(line.strip()))
        self._stop_reading()

    def _stop_reading(self) -> None:
        """A status or HTTP client asked its one question: whatever else it sends is dropped."""
        self._reading = _Reading.CLOSED
        self._stream.skip(len(self._stream))

    def _on_get(self, rest: str, line: str) -> None:
        if self.is_worker:
            raise ProtocolError(f"HTTP request from a worker: {line[:80]!r}")
        path = rest.split(" ")[0] if rest else "/"
        self._http_path = path
        self._reading = _Reading.HTTP_HEADERS

    def _read_http_header(self) -> bool:
        line = self._stream.read_line()
        if line is None:
            return False
        if line.strip() == "":
            self._events.append(HttpRequest(self._http_path))
            self._stop_reading()
        return True

    def _on_simple(self, rest: str, line: str) -> None:
        keyword = line.split(" ")[0]
        if keyword == "alive":
            self._events.append(Alive())
        elif keyword == "available_results":
            self._events.append(ResultsAvailable())
        elif keyword == "end":
            self._events.append(ReplyEnd())
        elif keyword == "name":
            self._events.append(NameRequest())
        elif keyword == "feature":
            self._events.append(Feature(url_decode(rest.strip())))
        elif keyword == "tlq":
            pass  # TLQ logging is not supported; CCTools ignores it without a TLQ port too
        elif keyword == "auth":
            raise RefusedPeer("worker is attempting to use a password, but I do not have one", "password")
        elif keyword == "ready":
            raise ProtocolError("worker speaks a pre-protocol-9 dialect ('ready')")

    # -- output: manager -> worker
    @staticmethod
    def send_put_header(cached_name: str, size: int, mode: int = 0o644) -> bytes:
        """``put NAME SIZE MODE`` for a file whose ``size`` bytes the caller sends next."""
        return encode_line(f"put {url_encode(cached_name)} {size} 0{mode & 0o777:o}")

    @staticmethod
    def send_buffer(cached_name: str, data: bytes) -> bytes:
        """A whole buffer as ``put NAME LEN 777`` + bytes (CCTools writes buffers with mode 777)."""
        return encode_line(f"put {url_encode(cached_name)} {len(data)} 777") + data

    @staticmethod
    def send_url(cached_name: str, url: str, flags: int) -> bytes:
        """``url NAME LEN 0777 FLAGS`` + the URL: the worker downloads it into its cache."""
        data = url.encode("utf-8")
        return encode_line(f"url {cached_name} {len(data)} 0777 {flags}") + data

    @staticmethod
    def send_command_input(cached_name: str, command: str) -> bytes:
        """``thirdget 1 NAME COMMAND``: the worker runs COMMAND, ``%%`` being the file to make."""
        return encode_line(f"thirdget 1 {cached_name} {command}")

    @staticmethod
    def send_dir_start(name: str) -> bytes:
        return encode_line(f"dir {url_encode(name)}")

    @staticmethod
    def send_symlink(name: str, target: str) -> bytes:
        data = target.encode("utf-8")
        return encode_line(f"symlink {url_encode(name)} {len(data)}") + data

    @staticmethod
    def send_end() -> bytes:
        return b"end\n"

    @staticmethod
    def send_task(task: TaskMessage) -> bytes:
        """The ``task`` block, fields in CCTools' order (env has its trailing-newline quirk)."""
        command = task.command.encode("utf-8")
        parts = [
            encode_line(f"task {task.task_id}"),
            encode_line(f"cmd {len(command)}"),
            command,
            encode_line(f"category {task.category}"),
            encode_line(f"cores {task.cores:.3f}"),
            encode_line(f"gpus {task.gpus:.0f}"),
            encode_line(f"memory {task.memory:.0f}"),
            encode_line(f"disk {task.disk:.0f}"),
        ]
        if task.end_time > 0:
            parts.append(encode_line(f"end_time {task.end_time:.6f}"))
        if task.wall_time > 0:
            parts.append(encode_line(f"wall_time {task.wall_time:.6f}"))
        for name, value in task.env:
            setting = f"{name}={value}".encode()
            parts += [encode_line(f"env {len(setting)}"), setting, b"\n"]
        parts += [encode_line(f"dir {name}") for name in task.empty_dirs]
        parts += [encode_line(f"infile {f.cached_name} {url_encode(f.remote_name)} {f.flags}") for f in task.inputs]
        parts += [encode_line(f"outfile {f.cached_name} {url_encode(f.remote_name)} {f.flags}") for f in task.outputs]
        parts.append(b"end\n")
        return b"".join(parts)

    @staticmethod
    def send_get(cached_name: str) -> bytes:
        return encode_line(f"get {cached_name} 1")

    @staticmethod
    def send_kill(task_id: int) -> bytes:
        return encode_line(f"kill {task_id}")

    @staticmethod
    def send_unlink(cached_name: str) -> bytes:
        return encode_line(f"unlink {cached_name}")

    @staticmethod
    def send_results_request() -> bytes:
        return b"send_results -1\n"

    @staticmethod
    def send_check() -> bytes:
        return b"check\n"

    @staticmethod
    def send_release() -> bytes:
        return b"release\n"

    @staticmethod
    def send_exit() -> bytes:
        return b"exit\n"

    @staticmethod
    def send_name_reply(project: str | None) -> bytes:
        return encode_line(project or "")


def _int(text: str, line: str) -> int:
    try:
        return int(text)
    except ValueError:
        # the C worker prints some counts with %lf; "inf"/"nan" must not escape as OverflowError
        return int(_float(text, line))


def _float(text: str, line: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ProtocolError(f"expected a number, got {text[:20]!r} in {line[:80]!r}") from None
    if not math.isfinite(value):
        # a NaN resource would compare false with everything and silently starve matching
        raise ProtocolError(f"expected a finite number, got {text[:20]!r} in {line[:80]!r}")
    return value


_LINE_HANDLERS = {
    "workqueue": WorkerConnection._on_workqueue,
    "info": WorkerConnection._on_info,
    "resource": WorkerConnection._on_resource,
    "result": WorkerConnection._on_result,
    "file": WorkerConnection._on_file,
    "dir": WorkerConnection._on_dir,
    "missing": WorkerConnection._on_missing,
    "update": WorkerConnection._on_update,
    "GET": WorkerConnection._on_get,
    **{kind: WorkerConnection._on_status for kind in STATUS_REQUESTS},
    **{kw: WorkerConnection._on_simple for kw in ("alive", "available_results", "end", "name", "feature", "tlq", "auth", "ready")},
}
