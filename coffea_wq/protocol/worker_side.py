"""The worker's end of one connection, sans-IO: ``ManagerConnection`` (docs/protocol.md).

Rules of this module:

- bytes from the manager go in through ``receive_data``; parsed messages come out of
  ``next_event`` as the dataclasses of ``messages``; nothing here touches a socket, a file or
  the clock;
- what the worker says goes through ``send(message)``, which returns the bytes and notes what
  the manager now owes: a ``name`` request makes the next line its ``ProjectName``. The password
  exchange answers by itself (``data_to_send``);
- anything the C manager could not have sent ends the connection with one ``ConnectionFailed``
  event naming the offending line, as on the manager's side; a wrong or missing password is a
  ``ConnectionFailed`` with ``refusal="password"``; the manager hanging up is a
  ``ConnectionClosed``. After either, ``next_event`` returns ``NEED_DATA`` forever, and the caller
  closes the socket (CCTools' worker never answers an error, it hangs up);
- names from the manager are checked here, once: a path that is absolute, empty, or leaves its
  directory is a protocol error, so the cache and the sandbox never see one.

Theory of operation
-------------------
The parser is one generator. It yields what it needs next (a line, exactly N bytes, or up to N
bytes of a file payload) and appends events as it recognises messages; ``next_event``
satisfies those requests from a ``ByteStream``. A message is found by its first word in one of
two tables at the end of this module: ``_BLOCKS`` (messages that read more than their line:
``put``, ``dir``, ``url``, ``task``) and ``_ONE_LINE`` (the rest). Nested ``dir`` blocks are plain recursion, and
large ``put`` payloads stream out as ``FileChunk`` events instead of being held in memory. The
generator's position is the connection's state: between messages, inside a ``task`` block,
inside a ``dir`` block, or in a payload (``waiting_for_manager`` tells the I/O layer when a
stall is the manager's fault).

Example::

    conn = ManagerConnection(password=None)
    conn.receive_data(b"task 1\ncmd 4\ntrueend\n")
    conn.next_event()   # TaskReceived(task=TaskAssignment(taskid=1, command='true', ...))
"""

from __future__ import annotations

import posixpath
from collections import deque
from collections.abc import Callable, Generator
from dataclasses import dataclass, field

from coffea_wq.protocol.auth import AuthState, PasswordAuth
from coffea_wq.protocol.codes import FileFlags
from coffea_wq.protocol.encoding import encode
from coffea_wq.protocol.framing import (
    ByteStream,
    ProtocolError,
    parse_int,
    parse_mode,
    parse_number,
    split_fields,
)
from coffea_wq.protocol.messages import (
    NEED_DATA,
    AuthSucceeded,
    Check,
    ConnectionClosed,
    ConnectionFailed,
    DirEnd,
    DirStart,
    Exit,
    FileChunk,
    FileEnd,
    GetRequest,
    InvalidateFile,
    KillTask,
    NameRequest,
    NeedData,
    ProjectName,
    PutFile,
    Release,
    SendResults,
    Symlink,
    TaskAssignment,
    TaskFile,
    TaskReceived,
    ThirdParty,
    UnlinkFile,
    UrlFile,
    WorkerEvent,
)
from coffea_wq.protocol.peer_messages import CacheReport, PeerGet
from coffea_wq.protocol.urlcode import url_decode

PAYLOAD_CHUNK = 1 << 20
# Payloads held in memory (a command, an env setting, a URL, a symlink target) are capped so
# that a broken or hostile manager cannot make the worker buffer gigabytes before it errs;
# file contents (``put``) stream out in chunks and have no cap.
MAX_INLINE_PAYLOAD = 64 << 20
# ``dir`` blocks nest by recursion; a bound keeps a hostile nesting a ProtocolError rather than
# a RecursionError (Linux paths stop at 4096 bytes long before real trees reach this depth).
MAX_DIR_DEPTH = 200


# ---------------------------------------------------------------- names and numbers


def check_relative_path(name: str, what: str) -> str:
    """``name`` if it is a relative path that stays inside its directory, else ProtocolError."""
    if not name or "\x00" in name:
        raise ProtocolError(f"{what}: empty or NUL-containing name {name!r}")
    if name.startswith("/"):
        raise ProtocolError(f"{what}: absolute path {name!r} is not allowed")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ProtocolError(f"{what}: path {name!r} leaves its directory")
    return "/".join(parts)


def _check_basename(name: str, what: str) -> str:
    if "/" in name or name in ("", ".", ".."):
        raise ProtocolError(f"{what}: {name!r} is not a plain file name")
    return check_relative_path(name, what)


# ---------------------------------------------------------------- the connection


class _PasswordRefused(ProtocolError):
    """The two ends' passwords differ (or only the manager has one)."""

    refusal = "password"


@dataclass(frozen=True)
class _ReadLine:
    pass


@dataclass(frozen=True)
class _ReadExact:
    size: int


@dataclass(frozen=True)
class _ReadSome:
    size: int


_Request = _ReadLine | _ReadExact | _ReadSome
_Parser = Generator[_Request, object, None]
READ_LINE = _ReadLine()


@dataclass
class ManagerConnection:
    """The worker's end of a connection to a manager. Feed bytes; take events; ``send`` messages.

    With a ``password`` the connection first runs the challenge-response: send ``start()``,
    then keep sending ``data_to_send()``; the first event is ``AuthSucceeded`` or a
    ``ConnectionFailed`` with ``refusal="password"``. Only after ``AuthSucceeded`` should the
    worker send its handshake.
    """

    password: bytes | None = None
    auth_challenge: str | None = None  # our challenge; random unless given (tests replay transcripts)
    _stream: ByteStream = field(default_factory=ByteStream, init=False)
    _events: deque = field(default_factory=deque, init=False)
    _outbox: bytearray = field(default_factory=bytearray, init=False)
    _auth: PasswordAuth | None = field(default=None, init=False)
    _names_expected: int = field(default=0, init=False)
    _finished: bool = field(default=False, init=False)
    _between_messages: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if self.password is not None:
            self._auth = PasswordAuth(self.password)
            if self.auth_challenge is not None:
                self._auth.challenge = self.auth_challenge
        self._parser: _Parser = self._parse_connection()
        self._request: _Request = next(self._parser)

    # -- the I/O layer's interface

    def start(self) -> bytes:
        """Bytes to send as soon as the TCP connection is up (the auth opening, if any)."""
        return self._auth.start() if self._auth is not None else b""

    def receive_data(self, data: bytes) -> None:
        """Bytes received from the manager; ``b""`` means it closed the connection."""
        self._stream.feed(data)

    def data_to_send(self) -> bytes:
        """Protocol replies the connection produced by itself (password exchange)."""
        out = bytes(self._outbox)
        self._outbox.clear()
        return out

    def send(self, message: object) -> bytes:
        """The bytes of ``message``; after a ``NameRequest`` the manager's next line is its
        ``ProjectName``."""
        if isinstance(message, NameRequest):
            self._names_expected += 1
        return encode(message)

    @property
    def closed(self) -> bool:
        """The connection has ended (its last event is queued or taken)."""
        return self._finished

    @property
    def authenticating(self) -> bool:
        return self._auth is not None and not self._auth.done

    @property
    def waiting_for_manager(self) -> bool:
        """Whether the manager owes us bytes: the password exchange or a ``name`` reply is not
        over, or a message has begun and is not complete. The I/O layer bounds how long this
        may last (CCTools' ``active_timeout``), so a stalled manager cannot hold a worker."""
        if self._finished:
            return False
        return self.authenticating or self._names_expected > 0 or not self._between_messages or len(self._stream) > 0

    def next_event(self) -> WorkerEvent | NeedData:
        """The next parsed message (``messages.WorkerEvent``) or ``NEED_DATA``."""
        if self._events:
            return self._events.popleft()
        while not self._events and not self._finished:
            try:
                value = self._satisfy(self._request)
                if value is None:
                    if self._stream.closed:
                        self._close()
                    break
                self._request = self._parser.send(value)
            except StopIteration:
                self._finished = True
            except ProtocolError as exc:
                self._events.append(ConnectionFailed(str(exc), getattr(exc, "refusal", "")))
                self._finished = True
                self._stream.skip(len(self._stream))  # a dead connection holds nothing
        return self._events.popleft() if self._events else NEED_DATA

    def _satisfy(self, request: _Request) -> str | bytes | None:
        if isinstance(request, _ReadLine):
            return self._stream.read_line()
        if isinstance(request, _ReadExact):
            return self._stream.read_exact(request.size)
        data = self._stream.read_upto(request.size)
        return data or None

    def _close(self) -> None:
        clean = isinstance(self._request, _ReadLine) and len(self._stream) == 0
        self._events.append(ConnectionClosed(clean=clean, during_auth=self.authenticating))
        self._finished = True

    def _emit(self, event: WorkerEvent) -> None:
        self._events.append(event)

    # -- the parser

    def _parse_connection(self) -> _Parser:
        if self._auth is not None:
            while not self._auth.done:
                line = yield READ_LINE
                self._outbox += self._auth.receive_line(line)
            if self._auth.state is AuthState.FAILED:
                raise _PasswordRefused(f"password authentication failed: {self._auth.failure_reason}")
            self._emit(AuthSucceeded())
        while True:
            self._between_messages = True
            line = yield READ_LINE
            self._between_messages = False
            if self._names_expected:
                self._names_expected -= 1
                self._emit(ProjectName(line))
                continue
            yield from self._parse_message(line)

    def _parse_message(self, line: str) -> _Parser:
        keyword = line.split(" ", 1)[0]
        block = _BLOCKS.get(keyword)
        if block is not None:
            yield from block(self, line)
            return
        parse = _ONE_LINE.get(keyword)
        if parse is None:
            raise ProtocolError(f"unrecognized message from the manager: {line[:200]!r}")
        self._emit(parse(line))

    def _parse_top_dir(self, line: str) -> _Parser:
        name = check_relative_path(url_decode(split_fields(line, 2)[1]), "dir")
        yield from self._parse_dir_block(name, top_level=True, depth=1)

    def _parse_top_put(self, line: str) -> _Parser:
        yield from self._parse_put(line, parent=None)

    def _parse_put(self, line: str, parent: str | None) -> _Parser:
        parts = split_fields(line, 4)
        raw_name = url_decode(parts[1])
        if parent is None:
            path = check_relative_path(raw_name, "put")
        else:
            path = f"{parent}/{_check_basename(raw_name, f'put inside dir {parent!r}')}"
        length = parse_int(parts[2], line)
        if length < 0:
            raise ProtocolError(f"negative length in {line!r}")
        self._emit(PutFile(path, length, parse_mode(parts[3], line)))
        remaining = length
        while remaining:
            chunk = yield _ReadSome(min(remaining, PAYLOAD_CHUNK))
            remaining -= len(chunk)
            self._emit(FileChunk(chunk))
        self._emit(FileEnd(path))

    def _parse_dir_block(self, path: str, top_level: bool, depth: int) -> _Parser:
        if depth > MAX_DIR_DEPTH:
            raise ProtocolError(f"dir {path[:200]!r}: directories nested deeper than {MAX_DIR_DEPTH} levels")
        self._emit(DirStart(path, top_level))
        while True:
            line = yield READ_LINE
            keyword = line.split(" ", 1)[0]
            if line == "end":
                self._emit(DirEnd(path, top_level))
                return
            if keyword == "put":
                yield from self._parse_put(line, parent=path)
            elif keyword == "dir":
                entry = _check_basename(url_decode(split_fields(line, 2)[1]), f"dir inside dir {path!r}")
                yield from self._parse_dir_block(f"{path}/{entry}", top_level=False, depth=depth + 1)
            elif keyword == "symlink":
                parts = split_fields(line, 3)
                entry = _check_basename(url_decode(parts[1]), f"symlink inside dir {path!r}")
                target = yield _ReadExact(self._length(parts[2], line))
                self._emit(Symlink(f"{path}/{entry}", bytes(target).decode("utf-8", "surrogateescape")))
            # CCTools' worker ignores other lines inside a dir block; so do we.

    def _parse_url(self, line: str) -> _Parser:
        parts = split_fields(line, 4)
        name = check_relative_path(url_decode(parts[1]), "url")
        length = self._length(parts[2], line)
        flags = parse_int(parts[4], line) if len(parts) > 4 else 0
        url = yield _ReadExact(length)
        self._emit(UrlFile(name, bytes(url).decode("utf-8", "surrogateescape"), parse_mode(parts[3], line), flags))

    def _parse_task(self, line: str) -> _Parser:
        taskid = parse_int(split_fields(line, 2)[1], line)
        values: dict[str, object] = {}
        env: list[str] = []
        dirs: list[str] = []
        inputs: list[TaskFile] = []
        outputs: list[TaskFile] = []
        while True:
            line = yield READ_LINE
            if line == "end":
                break
            keyword, _, rest = line.partition(" ")
            if keyword == "cmd":
                command = yield _ReadExact(self._length(rest, line))
                values["command"] = bytes(command).decode("utf-8", "surrogateescape")
            elif keyword == "category":
                values["category"] = rest
            elif keyword in ("cores", "memory", "disk", "gpus"):
                values[keyword] = max(0, int(parse_number(rest.strip(), line)))
            elif keyword in ("end_time", "wall_time"):
                values[keyword] = parse_number(rest.strip(), line)
            elif keyword == "env":
                env.append((yield from self._read_env(self._length(rest, line), taskid)))
            elif keyword == "dir":
                dirs.append(check_relative_path(rest, f"task {taskid} dir"))
            elif keyword in ("infile", "outfile"):
                (inputs if keyword == "infile" else outputs).append(self._task_file(line, taskid))
            else:
                raise ProtocolError(f"task {taskid}: unexpected line {line[:200]!r}")
        task = TaskAssignment(
            taskid, env=tuple(env), empty_dirs=tuple(dirs), inputs=tuple(inputs), outputs=tuple(outputs), **values
        )  # type: ignore[arg-type]
        self._emit(TaskReceived(task))

    def _read_env(self, length: int, taskid: int) -> Generator[_Request, object, str]:
        # CCTools quirk: the env payload is followed by one newline that its length leaves out
        data = bytes((yield _ReadExact(length + 1)))  # type: ignore[arg-type]
        if not data.endswith(b"\n"):
            raise ProtocolError(f"task {taskid}: env payload {data[:60]!r} is not followed by a newline")
        return data[:-1].decode("utf-8", "surrogateescape")

    @staticmethod
    def _length(text: str, line: str) -> int:
        """The length of a payload read into memory: not negative, not over MAX_INLINE_PAYLOAD."""
        length = parse_int(text.strip(), line)
        if length < 0:
            raise ProtocolError(f"negative length in {line!r}")
        if length > MAX_INLINE_PAYLOAD:
            raise ProtocolError(f"payload of {length} bytes is over the {MAX_INLINE_PAYLOAD}-byte limit in {line!r}")
        return length

    @staticmethod
    def _task_file(line: str, taskid: int) -> TaskFile:
        parts = split_fields(line, 4)
        what = f"task {taskid} {parts[0]}"
        cached = check_relative_path(parts[1], what)
        if posixpath.basename(cached) != cached:
            raise ProtocolError(f"{what}: cached name {cached!r} must not contain '/'")
        remote = check_relative_path(url_decode(parts[2]), what)
        return TaskFile(cached, remote, FileFlags(parse_int(parts[3], line) & 0x7F))


# ---------------------------------------------------------------- one-line messages


def _send_results(line: str) -> SendResults:
    parts = line.split()
    return SendResults(parse_int(parts[1], line) if len(parts) > 1 else -1)


def _get(line: str) -> GetRequest:
    parts = split_fields(line, 2)
    return GetRequest(check_relative_path(url_decode(parts[1]), "get"), len(parts) < 3 or parts[2] != "0")


def _third_party(line: str) -> ThirdParty:
    parts = split_fields(line, 4)
    mode, name = parse_int(parts[1], line), check_relative_path(url_decode(parts[2]), parts[0])
    return ThirdParty(parts[0] == "thirdput", mode, name, line.split(" ", 3)[3])


def _bare(message: object) -> Callable[[str], object]:
    """A message that is one word and nothing else (``release``, ``exit``, ``check``)."""

    def parse(line: str) -> object:
        if line != line.split(" ", 1)[0]:
            raise ProtocolError(f"unrecognized message from the manager: {line[:200]!r}")
        return message

    return parse


def _cached_name(text: str, what: str) -> str:
    name = check_relative_path(url_decode(text), what)
    if "/" in name:
        raise ProtocolError(f"{what}: cached name {name!r} must not contain '/'")
    return name


def _cache_report(line: str) -> CacheReport:
    return CacheReport(_cached_name(split_fields(line, 2)[1], "cache-report"))


def _peer_get(line: str) -> PeerGet:
    parts = split_fields(line, 7)
    try:
        return PeerGet(_cached_name(parts[1], "peer-get"), parse_int(parts[2], line), parse_mode(parts[3], line),
                       parts[4], parts[5], parse_int(parts[6], line))
    except ValueError as error:
        raise ProtocolError(f"malformed peer-get {line[:200]!r}: {error}") from None


def _auth(line: str) -> object:
    raise _PasswordRefused("this manager requires a password (use the -P option)")


_BLOCKS: dict[str, Callable[[ManagerConnection, str], _Parser]] = {
    # first word -> the parser of a message that reads more than its line
    "put": ManagerConnection._parse_top_put,
    "dir": ManagerConnection._parse_top_dir,
    "url": ManagerConnection._parse_url,
    "task": ManagerConnection._parse_task,
}

_ONE_LINE: dict[str, Callable[[str], object]] = {
    # first word -> the parser of a message that is its line alone
    "send_results": _send_results,
    "get": _get,
    "kill": lambda line: KillTask(parse_int(split_fields(line, 2)[1], line)),
    "unlink": lambda line: UnlinkFile(check_relative_path(url_decode(split_fields(line, 2)[1]), "unlink")),
    "invalidate-file": lambda line: InvalidateFile(url_decode(split_fields(line, 2)[1])),
    "thirdget": _third_party,
    "thirdput": _third_party,
    "release": _bare(Release()),
    "exit": _bare(Exit()),
    "check": _bare(Check()),
    "auth": _auth,
    # our extension, sent only by our manager to a worker that advertised it (peer_messages.py)
    "cache-report": _cache_report,
    "peer-get": _peer_get,
}
