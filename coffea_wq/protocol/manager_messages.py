"""What a worker (or a status client) says to the manager, as events, and the task block the
manager sends: plain frozen dataclasses, parsed and built by ``manager_side``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Handshake:
    """``workqueue 9 HOST OS ARCH VERSION``: the peer is a worker."""

    protocol: int
    hostname: str
    os: str
    arch: str
    version: str


@dataclass(frozen=True)
class WorkerIdentified:
    worker_id: str


@dataclass(frozen=True)
class ResourceReport:
    """``resource NAME TOTAL SMALLEST LARGEST`` (cores/memory/disk/gpus/workers)."""

    name: str
    total: float
    smallest: float
    largest: float


@dataclass(frozen=True)
class ResourceTag:
    tag: int


@dataclass(frozen=True)
class Info:
    """``info FIELD VALUE`` (tasks_running, end_of_resource_update, worker-end-time, ...)."""

    field: str
    value: str


@dataclass(frozen=True)
class Alive:
    pass


@dataclass(frozen=True)
class Feature:
    name: str


@dataclass(frozen=True)
class ResultsAvailable:
    pass


@dataclass(frozen=True)
class TaskResult:
    """One ``result STATUS EXIT LEN TIME_US ID`` record with its stdout+stderr.

    ``output_truncated``: the worker sent more than the connection keeps (1 GB by default); the
    manager should mark the task STDOUT_MISSING, as CCTools does.
    """

    status: int
    exit_code: int
    output: bytes
    execution_time_us: int
    task_id: int
    output_truncated: bool = False


@dataclass(frozen=True)
class FileStart:
    """``file NAME LEN``: LEN bytes follow as :class:`FileData` events (at least one, maybe empty)."""

    name: str
    size: int


@dataclass(frozen=True)
class FileData:
    data: bytes
    last: bool


@dataclass(frozen=True)
class DirectoryStart:
    """``dir NAME 0`` in a ``get`` reply: the entries follow with NAME as their prefix."""

    name: str


@dataclass(frozen=True)
class FileMissing:
    name: str
    errno: int


@dataclass(frozen=True)
class ReplyEnd:
    """``end``: the end of a ``send_results`` or ``get`` reply."""


@dataclass(frozen=True)
class WatchUpdate:
    """``update ID PATH OFFSET LEN`` + bytes, inside a ``send_results`` reply: one event per chunk
    received, ``offset`` advancing, so a large update is never held whole."""

    task_id: int
    path: str
    offset: int
    data: bytes


@dataclass(frozen=True)
class StatusRequest:
    kind: str  # one of STATUS_REQUESTS


@dataclass(frozen=True)
class HttpRequest:
    path: str


@dataclass(frozen=True)
class NameRequest:
    pass


@dataclass(frozen=True)
class AuthSucceeded:
    pass


@dataclass(frozen=True)
class ConnectionFailed:
    """The peer broke the protocol, failed authentication or closed; close the connection.

    ``refusal`` is "password" when the two ends' passwords differ (or only one has one), "tls"
    when only one end speaks TLS, else "".
    """

    reason: str
    refusal: str = ""


Event = (
    Handshake | WorkerIdentified | ResourceReport | ResourceTag | Info | Alive | Feature | ResultsAvailable
    | TaskResult | FileStart | FileData | DirectoryStart | FileMissing | ReplyEnd | WatchUpdate
    | StatusRequest | HttpRequest | NameRequest | AuthSucceeded | ConnectionFailed
)


@dataclass(frozen=True)
class InputFile:
    """One ``infile``/``outfile`` line of a task block."""

    cached_name: str
    remote_name: str
    flags: int = 0


@dataclass(frozen=True)
class TaskMessage:
    """Everything a ``task`` block carries (wq-protocol.md §4.5)."""

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
    inputs: tuple[InputFile, ...] = ()
    outputs: tuple[InputFile, ...] = ()
