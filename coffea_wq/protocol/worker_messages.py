"""Messages between a Work Queue manager and a worker, seen from the worker (CCTools protocol 9).

Manager -> worker messages are frozen dataclasses (the events ``worker_side.WorkerConnection``
produces); worker -> manager messages are built by the ``encode_*`` functions as plain bytes.
Formats follow wq-protocol.md §3-5. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from coffea_wq.protocol import CCTOOLS_VERSION, PROTOCOL_VERSION
from coffea_wq.protocol.codes import FileFlags
from coffea_wq.protocol.framing import ProtocolError, encode_line
from coffea_wq.protocol.urlcode import url_encode


class PasswordRequired(ProtocolError):
    """The manager asked for password authentication, and this worker has no password."""


# ---------------------------------------------------------------- manager -> worker events


@dataclass(frozen=True)
class FileStart:
    """A file for the cache begins: ``path`` is relative to ``cache/`` (``dir/sub/a.txt`` inside
    a ``dir`` block); ``length`` bytes follow as ``FileChunk`` events, then ``FileEnd``."""

    path: str
    length: int
    mode: int


@dataclass(frozen=True)
class FileChunk:
    data: bytes


@dataclass(frozen=True)
class FileEnd:
    path: str


@dataclass(frozen=True)
class DirStart:
    """A directory for the cache (``top_level``: the cached name itself, else an entry)."""

    path: str
    top_level: bool


@dataclass(frozen=True)
class DirEnd:
    path: str
    top_level: bool


@dataclass(frozen=True)
class SymlinkReceived:
    path: str
    target: str


@dataclass(frozen=True)
class UrlReceived:
    """Fetch ``url`` into ``cache/<name>``."""

    name: str
    url: str
    mode: int
    flags: int


@dataclass(frozen=True)
class TaskFile:
    """One ``infile``/``outfile`` line: ``cache/<cached_name>`` <-> ``t.<id>/<remote_name>``."""

    cached_name: str
    remote_name: str
    flags: FileFlags = FileFlags.NOCACHE


@dataclass(frozen=True)
class TaskSpec:
    """A task as the manager describes it (wq-protocol.md §4.5).

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
    task: TaskSpec


@dataclass(frozen=True)
class SendResults:
    count: int


@dataclass(frozen=True)
class GetRequest:
    name: str
    recursive: bool = True


@dataclass(frozen=True)
class KillTask:
    """``taskid == -1`` means every task."""

    taskid: int


@dataclass(frozen=True)
class UnlinkFile:
    name: str


@dataclass(frozen=True)
class InvalidateFile:
    name: str


@dataclass(frozen=True)
class ThirdParty:
    """``thirdget`` (``put=False``: fill the cache from ``path``) or ``thirdput`` (copy it out)."""

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
    pass


@dataclass(frozen=True)
class ProjectName:
    """The manager's reply to our ``name`` request ('' if it has no project name)."""

    name: str


@dataclass(frozen=True)
class AuthSucceeded:
    pass


@dataclass(frozen=True)
class AuthFailed:
    reason: str


@dataclass(frozen=True)
class ConnectionClosed:
    """The manager closed the connection. ``clean``: not in the middle of a message."""

    clean: bool
    during_auth: bool = False


class NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = NeedData()
"""``next_event`` returns this when more bytes must arrive first."""

Event = (
    FileStart | FileChunk | FileEnd | DirStart | DirEnd | SymlinkReceived | UrlReceived | TaskReceived
    | SendResults | GetRequest | KillTask | UnlinkFile | InvalidateFile | ThirdParty | Release
    | Exit | Check | ProjectName | AuthSucceeded | AuthFailed | ConnectionClosed
)


# ---------------------------------------------------------------- worker -> manager bytes


@dataclass(frozen=True)
class WorkerIdentity:
    """What the ``workqueue`` line and ``info worker-id`` say about us."""

    hostname: str
    os_name: str
    arch: str
    worker_id: str
    version: str = CCTOOLS_VERSION


@dataclass(frozen=True)
class ResourceReport:
    """Totals in whole units (memory and disk in MB); ``tag`` is the last task id received."""

    cores: int
    memory: int
    disk: int
    gpus: int
    workers: int = 1
    tag: int = 0


def encode_handshake(
    identity: WorkerIdentity,
    resources: ResourceReport,
    tasks_running: int = 0,
    end_time: int = 0,
    features: Iterable[str] = (),
) -> bytes:
    """The lines a worker sends right after connecting (and authenticating), in CCTools order.

    Example::

        encode_handshake(WorkerIdentity("vm", "Linux", "x86_64", "worker-" + "0" * 32),
                         ResourceReport(cores=2, memory=1000, disk=2000, gpus=0))
    """
    lines = [
        f"workqueue {PROTOCOL_VERSION} {_token(identity.hostname)} {_token(identity.os_name)} "
        f"{_token(identity.arch)} {identity.version}",
        f"info worker-id {identity.worker_id}",
    ]
    lines += [f"feature {url_encode(feature)}" for feature in features]
    out = b"".join(encode_line(line) for line in lines) + encode_alive()
    return out + encode_resources(resources) + encode_info("tasks_running", tasks_running) + encode_info(
        "worker-end-time", int(end_time)
    )


def encode_resources(resources: ResourceReport) -> bytes:
    """``resource`` lines (workers, disk, memory, gpus, cores), the tag, and the end marker."""
    lines = [
        f"resource {name} {value} {value} {value}"
        for name, value in (
            ("workers", resources.workers),
            ("disk", resources.disk),
            ("memory", resources.memory),
            ("gpus", resources.gpus),
            ("cores", resources.cores),
        )
    ]
    lines += [f"resource tag {resources.tag}", "info end_of_resource_update 0"]
    return b"".join(encode_line(line) for line in lines)


def encode_alive() -> bytes:
    return b"alive\n"


def encode_info(name: str, value: object) -> bytes:
    """``info NAME VALUE``; the C manager requires a value."""
    return encode_line(f"info {name} {value}")


def encode_available_results() -> bytes:
    return b"available_results\n"


def encode_result_header(status: int, exit_code: int, output_length: int, execution_time_us: int, taskid: int) -> bytes:
    """``result`` line; ``output_length`` bytes of task output must follow."""
    return encode_line(f"result {int(status)} {int(exit_code)} {int(output_length)} {int(execution_time_us)} {int(taskid)}")


def encode_file_header(name: str, length: int) -> bytes:
    """Reply to ``get`` for a file: ``length`` bytes must follow. ``name`` is sent unencoded."""
    return encode_line(f"file {name} {int(length)}")


def encode_dir_header(name: str) -> bytes:
    return encode_line(f"dir {name} 0")


def encode_missing(name: str, errno: int) -> bytes:
    return encode_line(f"missing {name} {int(errno)}")


def encode_end() -> bytes:
    return b"end\n"


def encode_thirdput_complete(ok: bool) -> bytes:
    return encode_line(f"thirdput-complete {1 if ok else 0}")


def _token(text: str) -> str:
    """A whitespace-free token (the manager reads these fields with ``%s``)."""
    return "".join(c if c.isprintable() and not c.isspace() else "_" for c in text) or "unknown"
