"""One connected peer as the manager keeps it: a worker, or a status/HTTP client until it says so."""

from __future__ import annotations

import enum
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from coffea_wq.manager.stdout import StdoutSpool
from coffea_wq.manager.task import TaskSpec
from coffea_wq.manager.transfers import Outbox, Piece
from coffea_wq.protocol.codes import TaskState
from coffea_wq.protocol.manager_side import WorkerConnection
from coffea_wq.protocol.messages import ResultStart, TaskMessage
from coffea_wq.resources.types import Resources

RESOURCE_KEYS = ("workers", "cores", "memory", "disk", "gpus")


class PeerKind(enum.Enum):
    UNKNOWN = "unknown"  # connected, first line not read yet (docs/protocol.md, "Who is calling")
    WORKER = "worker"
    STATUS = "status"


@dataclass
class ResourceRow:
    total: float = 0.0
    smallest: float = 0.0
    largest: float = 0.0


def now_us() -> int:
    return int(time.time() * 1_000_000)


@dataclass
class HeldTask:
    """A task block that waits on its worker for the cached ``names`` on their way there (manager/peers.py)."""

    message: TaskMessage
    names: set[str]


@dataclass(eq=False)
class Peer:
    """A connection and everything known about the worker behind it."""

    key: int
    sock: socket.socket
    conn: WorkerConnection
    address: str  # "ip:port" as seen by the manager
    kind: PeerKind = PeerKind.UNKNOWN
    hostname: str = "unknown"
    os: str = ""
    arch: str = ""
    version: str = ""
    worker_id: str | None = None
    resources: dict[str, ResourceRow] = field(default_factory=lambda: {k: ResourceRow() for k in RESOURCE_KEYS})
    tag: int = -1
    end_time: float = -1.0  # s since epoch; 0 = none; -1 = not reported yet (no dispatch)
    features: set[str] = field(default_factory=set)
    inuse: Resources = field(default_factory=lambda: Resources(0.0, 0.0, 0.0, 0.0))
    tasks: dict[int, TaskSpec] = field(default_factory=dict)  # dispatched and not yet retrieved
    cache: dict[str, tuple] = field(default_factory=dict)  # cached name -> signature sent
    outbox: Outbox = field(default_factory=Outbox)
    result: ResultStart | None = None  # the result whose output is arriving
    result_spool: StdoutSpool | None = None  # where that output goes
    results_available: bool = False
    closing: bool = False  # flush the outbox, then close
    start_time: int = field(default_factory=now_us)
    last_received: float = field(default_factory=time.monotonic)
    check_sent_at: float | None = None
    handshake_deadline: float = 0.0
    tasks_completed: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    transfer_time_us: int = 0
    disconnect_reason: str = "UNKNOWN"
    draining: bool = False  # finish what it runs, take nothing new (specify_draining_by_hostname)
    tls_handshaking: bool = False  # TLS manager: the handshake is not finished, nothing else is read
    tls_want_write: bool = False  # the handshake waits until the socket can be written
    conn_password: bytes | None = None  # the password this connection was (or is being) checked against
    peer_port: int = 0  # where a coffea-wq worker serves its cache to other workers (0: it does not)
    held_tasks: dict[int, HeldTask] = field(default_factory=dict)  # by task id: inputs still on their way
    # the loop's set of peers to flush at the end of its turn (so a turn never walks every peer)
    flush_set: set | None = field(default=None, repr=False)
    interest: int = 1  # the selector events registered for the socket (EVENT_READ)

    def __post_init__(self) -> None:
        # the connection reads and drops a result for any task not running here (docs/manager.md)
        self.conn.holds_task = self.runs_task

    def runs_task(self, task_id: int) -> bool:
        """Whether task ``task_id`` was dispatched to this peer and its result is still awaited."""
        task = self.tasks.get(task_id)
        return task is not None and task.state is TaskState.RUNNING

    @property
    def ready_for_tasks(self) -> bool:
        """CCTools dispatches only after ``resource tag``, workers >= 1 and ``worker-end-time``."""
        return (
            self.kind is PeerKind.WORKER
            and not self.closing
            and not self.draining
            and self.tag >= 0
            and self.resources["workers"].total >= 1
            and self.end_time >= 0
        )

    @property
    def total(self) -> Resources:
        r = self.resources
        return Resources(r["cores"].total, r["memory"].total, r["disk"].total, r["gpus"].total)

    @property
    def largest(self) -> Resources:
        r = self.resources
        return Resources(r["cores"].largest, r["memory"].largest, r["disk"].largest, r["gpus"].largest)

    def send(self, data: Piece) -> None:
        """Queue bytes (or a file to stream) for the loop to write at the end of its turn (always through
        here, not ``outbox.add``: the loop writes only to the peers this marks)."""
        self.outbox.add(data)
        if self.flush_set is not None:
            self.flush_set.add(self)


def oldest_first(peers: Iterable[Peer]) -> list[Peer]:
    """``peers``, longest-connected first: where a task that asks for it is offered first
    (``Task.specify_prefer_oldest_worker``, docs/manager.md, section 3)."""
    return sorted(peers, key=lambda peer: peer.start_time)
