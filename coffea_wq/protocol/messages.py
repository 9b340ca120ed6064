"""Every message of the Work Queue control channel, for both roles (docs/protocol.md).

Rules of this module:

- one small frozen dataclass per message, whichever end sends it; ``encoding.encode`` turns any
  message that crosses the wire into bytes, and the receiving end's connection
  (``manager_side.WorkerConnection`` or ``worker_side.ManagerConnection``) turns those bytes
  back into the same message;
- fields are checked when a message is built (a size is not negative; a field written raw in
  a line has no newline), so a message that exists is one the wire can carry; a bad value
  raises ``ValueError``. Names that travel URL-encoded may hold any character; the connections
  check paths where they matter (``worker_side.check_relative_path``);
- payload chunks (``ResultOutput``, ``FileData``, ``FileChunk``) encode to their raw bytes; a
  few events only come out of a connection and never go in: ``FileEnd``, ``ReplyEnd``'s request, and the two ends of a connection,
  ``ConnectionClosed`` and ``ConnectionFailed``;
- no I/O, no state.

The sections follow the direction of travel: what a worker (or a status client) sends the
manager, then what the manager sends a worker, then what either end reports about the
connection itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from coffea_wq.protocol import CCTOOLS_VERSION, PROTOCOL_VERSION
from coffea_wq.protocol.codes import FileFlags
from coffea_wq.protocol.peer_messages import CacheInvalid, CacheReport, CacheUpdate, PeerGet  # noqa: F401 (re-exported)


def _line_safe(value: str, what: str) -> None:
    if "\n" in value:
        raise ValueError(f"{what} cannot contain a newline: {value[:80]!r}")


def _not_negative(value: int, what: str) -> None:
    if value < 0:
        raise ValueError(f"{what} cannot be negative: {value}")


# ================================================================ worker (or status client) -> manager


@dataclass(frozen=True)
class Handshake:
    """``workqueue 9 HOST OS ARCH VERSION``: the peer is a worker."""

    protocol: int
    hostname: str
    os: str
    arch: str
    version: str = CCTOOLS_VERSION

    def __post_init__(self) -> None:
        for name in ("hostname", "os", "arch", "version"):
            _line_safe(getattr(self, name), name)


@dataclass(frozen=True)
class WorkerIdentified:
    """``info worker-id ID``."""

    worker_id: str

    def __post_init__(self) -> None:
        _line_safe(self.worker_id, "worker id")


@dataclass(frozen=True)
class ResourceReport:
    """``resource NAME TOTAL SMALLEST LARGEST`` (workers/disk/memory/gpus/cores)."""

    name: str
    total: float
    smallest: float
    largest: float

    def __post_init__(self) -> None:
        _line_safe(self.name, "resource name")


@dataclass(frozen=True)
class ResourceTag:
    """``resource tag N``: the last task id the worker received."""

    tag: int


@dataclass(frozen=True)
class Info:
    """``info FIELD VALUE`` (tasks_running, end_of_resource_update, worker-end-time, ...)."""

    field: str
    value: str

    def __post_init__(self) -> None:
        _line_safe(self.field, "info field")
        _line_safe(self.value, "info value")


@dataclass(frozen=True)
class Alive:
    pass


@dataclass(frozen=True)
class Feature:
    name: str


@dataclass(frozen=True)
class ResultsAvailable:
    """``available_results``: the manager should ask with ``send_results``."""


@dataclass(frozen=True)
class ResultStart:
    """``result STATUS EXIT LEN TIME_US ID``: ``output_length`` bytes of the task's output follow."""

    status: int
    exit_code: int
    output_length: int
    execution_time_us: int
    task_id: int

    def __post_init__(self) -> None:
        _not_negative(self.output_length, "output length")


@dataclass(frozen=True)
class ResultOutput:
    """A chunk of a ``ResultStart``'s output; ``last`` on the final one (at least one, maybe empty).

    The manager's connection hands out at most ``max_result_output`` bytes of one result (1 GB by
    default) and only for a task the peer holds; ``truncated`` (on the last chunk): the worker
    sent more than that, so the manager marks the task STDOUT_MISSING, as CCTools does.
    """

    data: bytes
    last: bool
    truncated: bool = False


@dataclass(frozen=True)
class FileReply:
    """``file NAME LEN`` in a ``get`` reply: LEN bytes follow (as ``FileData`` events).

    Coming out of the manager's connection, the lines and chunks of a ``get`` reply carry the
    ``context`` the caller gave when it sent that ``get`` (not on the wire): events are handed
    out after the connection has read further, so they say themselves which request they answer.
    """

    name: str
    size: int
    context: object = field(default=None, compare=False, repr=False)  # the get it answers (manager side)

    def __post_init__(self) -> None:
        _line_safe(self.name, "file name")
        _not_negative(self.size, "file size")


@dataclass(frozen=True)
class FileData:
    """A chunk of a ``FileReply``'s bytes; ``last`` on the final one (at least one, maybe empty)."""

    data: bytes
    last: bool
    context: object = field(default=None, compare=False, repr=False)  # the get it answers (manager side)


@dataclass(frozen=True)
class DirectoryStart:
    """``dir NAME 0`` in a ``get`` reply: the entries follow with NAME as their prefix."""

    name: str
    context: object = field(default=None, compare=False, repr=False)  # the get it answers (manager side)

    def __post_init__(self) -> None:
        _line_safe(self.name, "directory name")


@dataclass(frozen=True)
class FileMissing:
    """``missing NAME ERRNO`` in a ``get`` reply."""

    name: str
    errno: int
    context: object = field(default=None, compare=False, repr=False)  # the get it answers (manager side)

    def __post_init__(self) -> None:
        _line_safe(self.name, "file name")


@dataclass(frozen=True)
class ReplyEnd:
    """``end``: the end of a ``send_results`` or ``get`` reply.

    Coming out of the manager's connection, ``request`` is the request it closes and ``context``
    what the caller attached when it sent that request (neither is on the wire).
    """

    request: SendResults | GetRequest | None = field(default=None, compare=False)
    context: object = field(default=None, compare=False)


@dataclass(frozen=True)
class WatchUpdate:
    """``update ID PATH OFFSET LEN`` + bytes, inside a ``send_results`` reply: one event per chunk
    received, ``offset`` advancing, so a large update is never held whole."""

    task_id: int
    path: str
    offset: int
    data: bytes


@dataclass(frozen=True)
class ThirdPutComplete:
    """``thirdput-complete OK``: the answer to a ``thirdput``."""

    ok: bool


@dataclass(frozen=True)
class StatusRequest:
    """A status client's one line (``queue_status``, ``task_status``, ...)."""

    kind: str


@dataclass(frozen=True)
class HttpRequest:
    """``GET PATH ...`` and its headers: a browser asks for a status page."""

    path: str


@dataclass(frozen=True)
class NameRequest:
    """``name``: the peer asks for the project name (answered with ``ProjectName``)."""


# ================================================================ manager -> worker


@dataclass(frozen=True)
class PutFile:
    """``put NAME LEN MODE``: LEN bytes for the worker's cache follow.

    ``path`` is relative to the cache; coming out of the worker's connection, an entry of a
    ``dir`` block carries its directory as a prefix (``dir/sub/a.txt``), and the bytes come as
    ``FileChunk`` events, then ``FileEnd``.
    """

    path: str
    length: int
    mode: int = 0o644

    def __post_init__(self) -> None:
        _not_negative(self.length, "put length")


@dataclass(frozen=True)
class PutBuffer:
    """A whole in-memory buffer as ``put NAME LEN 777`` + its bytes (CCTools' mode for buffers).

    The worker's connection reads it back as ``PutFile`` + chunks, like any ``put``."""

    path: str
    data: bytes


@dataclass(frozen=True)
class FileChunk:
    data: bytes


@dataclass(frozen=True)
class FileEnd:
    path: str


@dataclass(frozen=True)
class DirStart:
    """``dir NAME``: a directory for the cache; its entries follow until ``end`` (``DirEnd``).

    ``top_level``: the cached name itself, else an entry of an enclosing ``dir`` block."""

    path: str
    top_level: bool = True


@dataclass(frozen=True)
class DirEnd:
    """``end`` of a ``dir`` block."""

    path: str = ""
    top_level: bool = True


@dataclass(frozen=True)
class Symlink:
    """``symlink NAME LEN`` + the target, inside a ``dir`` block."""

    path: str
    target: str


@dataclass(frozen=True)
class UrlFile:
    """``url NAME LEN MODE FLAGS`` + the URL: fetch ``url`` into ``cache/<name>``."""

    name: str
    url: str
    mode: int = 0o777
    flags: int = 0


@dataclass(frozen=True)
class TaskFile:
    """One ``infile``/``outfile`` line: ``cache/<cached_name>`` <-> ``t.<id>/<remote_name>``."""

    cached_name: str
    remote_name: str
    flags: FileFlags = FileFlags.NOCACHE


@dataclass(frozen=True)
class TaskMessage:
    """Everything a ``task`` block carries, as the manager sends it (docs/protocol.md, "The task block")."""

    task_id: int
    command: str
    category: str = "default"
    cores: float = 1.0
    gpus: float = 0
    memory: float = 0
    disk: float = 0
    end_time: float = 0  # s since the epoch; 0 = none
    wall_time: float = 0  # s; 0 = none
    env: tuple[tuple[str, str], ...] = ()
    empty_dirs: tuple[str, ...] = ()
    inputs: tuple[TaskFile, ...] = ()
    outputs: tuple[TaskFile, ...] = ()

    def __post_init__(self) -> None:
        _line_safe(self.category, "category")
        for name in self.empty_dirs:
            _line_safe(name, "empty dir")


@dataclass(frozen=True)
class TaskAssignment:
    """A task as the worker reads a ``task`` block (the manager keeps its own record of the task,
    ``coffea_wq.manager.task.TaskSpec``; this is what one worker is told about it).

    Resources are whole numbers (the C worker truncates the manager's ``cores 1.000``);
    ``None`` means the manager did not say. ``end_time`` is seconds since the epoch and
    ``wall_time`` seconds; ``env`` keeps the raw ``NAME=VALUE`` strings in order.
    """

    taskid: int
    command: str = ""
    category: str = "default"
    cores: int | None = None
    memory: int | None = None
    disk: int | None = None
    gpus: int | None = None
    end_time: float | None = None
    wall_time: float | None = None
    env: tuple[str, ...] = ()
    empty_dirs: tuple[str, ...] = ()
    inputs: tuple[TaskFile, ...] = ()
    outputs: tuple[TaskFile, ...] = ()


@dataclass(frozen=True)
class TaskReceived:
    """A whole ``task`` block, as the worker's connection hands it out."""

    task: TaskAssignment


@dataclass(frozen=True)
class SendResults:
    """``send_results N``: report up to N finished tasks (-1: all), then ``end``."""

    count: int = -1


@dataclass(frozen=True)
class GetRequest:
    """``get NAME RECURSIVE``: send back ``cache/<name>`` (``file``/``dir``/``missing``), then ``end``."""

    name: str
    recursive: bool = True


@dataclass(frozen=True)
class KillTask:
    """``kill ID``; ``taskid == -1`` means every task."""

    taskid: int


@dataclass(frozen=True)
class UnlinkFile:
    name: str


@dataclass(frozen=True)
class InvalidateFile:
    name: str


@dataclass(frozen=True)
class ThirdParty:
    """``thirdget`` (``put=False``: fill the cache from ``path``) or ``thirdput`` (copy it out).

    ``mode`` 1 runs ``path`` as a command, ``%%`` standing for the cache file."""

    put: bool
    mode: int
    name: str
    path: str


@dataclass(frozen=True)
class Release:
    pass


@dataclass(frozen=True)
class Exit:
    pass


@dataclass(frozen=True)
class Check:
    """``check``: a keepalive probe, answered with ``alive``."""


@dataclass(frozen=True)
class ProjectName:
    """The manager's reply to ``name``: one line, its project name ('' if it has none)."""

    name: str

    def __post_init__(self) -> None:
        _line_safe(self.name, "project name")


# ================================================================ either end, about the connection


@dataclass(frozen=True)
class AuthSucceeded:
    """Both ends proved the same password; the protocol proper starts."""


@dataclass(frozen=True)
class ConnectionClosed:
    """The peer closed the connection. ``clean``: not in the middle of a message;
    ``during_auth``: before the password exchange was over."""

    clean: bool
    during_auth: bool = False


@dataclass(frozen=True)
class ConnectionFailed:
    """The peer broke the protocol or failed authentication: close the connection.

    ``refusal`` is "password" when the two ends' passwords differ (or only one has one), "tls"
    when only one end speaks TLS, else "". Both connections report every protocol error this
    way, as their last event.
    """

    reason: str
    refusal: str = ""


class NeedData:
    """What ``next_event`` returns on both sides when more bytes must arrive first."""

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = NeedData()


ManagerEvent = (
    Handshake | WorkerIdentified | ResourceReport | ResourceTag | Info | Alive | Feature | ResultsAvailable
    | ResultStart | ResultOutput | FileReply | FileData | DirectoryStart | FileMissing | ReplyEnd | WatchUpdate
    | StatusRequest | HttpRequest | NameRequest | AuthSucceeded | ConnectionClosed | ConnectionFailed
    | CacheUpdate | CacheInvalid
)
"""What ``manager_side.WorkerConnection.next_event`` hands out (besides ``NEED_DATA``)."""

WorkerEvent = (
    PutFile | FileChunk | FileEnd | DirStart | DirEnd | Symlink | UrlFile | TaskReceived
    | SendResults | GetRequest | KillTask | UnlinkFile | InvalidateFile | ThirdParty | Release
    | Exit | Check | ProjectName | AuthSucceeded | ConnectionClosed | ConnectionFailed
    | CacheReport | PeerGet
)
"""What ``worker_side.ManagerConnection.next_event`` hands out (besides ``NEED_DATA``)."""


# ================================================================ what a worker says about itself


@dataclass(frozen=True)
class WorkerIdentity:
    """What the ``workqueue`` line and ``info worker-id`` say about a worker."""

    hostname: str
    os_name: str
    arch: str
    worker_id: str
    version: str = CCTOOLS_VERSION


@dataclass(frozen=True)
class ResourceTotals:
    """A worker's totals in whole units (memory and disk in MB); ``tag`` is the last task id received."""

    cores: int
    memory: int
    disk: int
    gpus: int
    workers: int = 1
    tag: int = 0


def resource_messages(totals: ResourceTotals) -> tuple:
    """The ``resource`` lines (workers, disk, memory, gpus, cores), the tag and the end marker."""
    rows = (("workers", totals.workers), ("disk", totals.disk), ("memory", totals.memory),
            ("gpus", totals.gpus), ("cores", totals.cores))
    return (*(ResourceReport(name, value, value, value) for name, value in rows), ResourceTag(totals.tag),
            Info("end_of_resource_update", "0"))


def handshake_messages(identity: WorkerIdentity, totals: ResourceTotals, tasks_running: int = 0,
                       end_time: int = 0, features: tuple[str, ...] = ()) -> tuple:
    """What a worker sends right after connecting (and authenticating), in CCTools' order."""
    hello = Handshake(PROTOCOL_VERSION, _token(identity.hostname), _token(identity.os_name), _token(identity.arch),
                      identity.version)
    return (hello, WorkerIdentified(identity.worker_id), *(Feature(name) for name in features), Alive(),
            *resource_messages(totals), Info("tasks_running", str(tasks_running)),
            Info("worker-end-time", str(int(end_time))))


def _token(text: str) -> str:
    """A whitespace-free token (the manager reads these fields with ``%s``)."""
    return "".join(c if c.isprintable() and not c.isspace() else "_" for c in text) or "unknown"
