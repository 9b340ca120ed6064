"""One connection to one manager: moves bytes between the socket and the protocol, and acts.

The loop is single-threaded: a selector waits on the manager's socket with a short timeout,
so finished tasks, time limits and signals are noticed within a fraction of a second. Every
way the connection can end is a ``SessionEnd``; whatever the end, all tasks are killed and the
workspace is wiped (the manager forgets this worker's files too).
"""

from __future__ import annotations

import enum
import logging
import os
import selectors
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from coffea_wq.protocol.messages import (
    NEED_DATA,
    Alive,
    AuthSucceeded,
    Check,
    ConnectionClosed,
    ConnectionFailed,
    DirectoryStart,
    DirStart,
    Exit,
    FileChunk,
    FileEnd,
    FileMissing,
    FileReply,
    GetRequest,
    Info,
    KillTask,
    NameRequest,
    ProjectName,
    PutFile,
    Release,
    ReplyEnd,
    ResourceTotals,
    ResultsAvailable,
    ResultStart,
    SendResults,
    Symlink,
    TaskReceived,
    ThirdParty,
    ThirdPutComplete,
    UnlinkFile,
    UrlFile,
    WorkerIdentity,
    handshake_messages,
    resource_messages,
)
from coffea_wq.protocol.peer_messages import PEER_PORT_INFO, CacheInvalid, CacheReport, CacheUpdate, PeerGet
from coffea_wq.protocol.worker_side import ManagerConnection
from coffea_wq.worker.cache import CacheError, FileCache, IncomingFile
from coffea_wq.worker.execution import ProcessOutcome, TaskObserver
from coffea_wq.worker.peers import CacheServer, PeerFetches
from coffea_wq.worker.resources import WorkerResources
from coffea_wq.worker.sandbox import Workspace
from coffea_wq.worker.tasks import TaskTable
from coffea_wq.worker.warm import WarmPythonPool

log = logging.getLogger(__name__)

ACTIVE_TIMEOUT = 3600.0  # seconds a send, or a stall inside a message, may take (CCTools' active_timeout)
# While tasks run, finished ones are noticed by polling: 5 ms keeps a short task's result from
# waiting for the loop (50 ms cost ~10% of throughput at 10k-event chunks in bench_e2e).
BUSY_POLL = 0.005  # a cold task runs: its end is noticed by polling
WARM_POLL = 0.1  # only warm tasks run: they wake the loop (wakeup.py); time limits are checked this often
IDLE_POLL = 0.5
FETCH_POLL = 0.02  # a peer transfer runs: its end is noticed by polling
SEND_CHUNK = 1 << 20


class SessionEnd(enum.Enum):
    RELEASED = "released by the manager"
    EXIT = "told to exit by the manager"
    CLOSED = "the manager closed the connection"
    IDLE = "idle timeout"
    WALL_TIME = "worker wall time used up"
    ABORTED = "stopped by a signal"
    AUTH_FAILED = "password authentication failed"
    PASSWORD_REQUIRED = "the manager requires a password"
    ERROR = "protocol or local error"


@dataclass(frozen=True)
class SessionSettings:
    """What does not change from one manager connection to the next."""

    identity: WorkerIdentity
    resources: WorkerResources
    password: bytes | None = None
    idle_timeout: float = 900.0
    end_time: float = 0.0  # worker's own deadline (seconds since the epoch), 0 = none
    features: tuple[str, ...] = ()
    active_timeout: float = ACTIVE_TIMEOUT


@dataclass
class SessionResult:
    end: SessionEnd
    reason: str
    handshake_done: bool = False


class _Stop(Exception):
    """Raised inside the loop to end the session."""

    def __init__(self, end: SessionEnd, reason: str) -> None:
        super().__init__(reason)
        self.end = end
        self.reason = reason


@dataclass
class WorkerSession:
    """Serves one connected manager until the connection ends.

    Example::

        sock = socket.create_connection(("127.0.0.1", 9123))
        result = WorkerSession(sock, "127.0.0.1:9123", settings, workspace).serve()
    """

    sock: socket.socket
    peer: str
    settings: SessionSettings
    workspace: Workspace
    warm_pool: WarmPythonPool | None = None
    observer: TaskObserver | None = None
    should_stop: Callable[[], str | None] = lambda: None
    expected_project: str | None = None
    cache_server: CacheServer | None = None  # serves the cache to other workers (worker/peers.py)
    peer_tls: ssl.SSLContext | None = None  # the context fetches from other workers use (--ssl)
    conn: ManagerConnection = field(init=False)
    handshake_done: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.conn = ManagerConnection(self.settings.password)
        self.cache = FileCache(self.workspace.cache_dir)
        self.tasks = TaskTable(self.workspace, self.cache, self.settings.resources, self.warm_pool, self.observer)
        self._incoming: IncomingFile | None = None
        self._results_announced = False
        self._last_tag = 0
        self._last_work = time.monotonic()
        self._last_received = time.monotonic()
        self.fetches: PeerFetches | None = None
        if self.cache_server is not None:
            self.cache_server.cache = self.cache
            self.fetches = PeerFetches(self.cache, self.settings.password, self.peer_tls, self.cache_server.timeout)

    # -- the loop

    def serve(self) -> SessionResult:
        """Run until the connection ends; always kills the tasks and wipes the workspace."""
        selector = selectors.DefaultSelector()
        try:
            self.sock.settimeout(self.settings.active_timeout)
            selector.register(self.sock, selectors.EVENT_READ)
            wakeup = self.warm_pool.wakeup if self.warm_pool is not None else None
            if wakeup is not None:
                selector.register(wakeup, selectors.EVENT_READ)
            self._send(self.conn.start())
            if self.settings.password is None:
                self._after_authentication()
            while True:
                self._check_stop_conditions()
                ready = {key.fileobj for key, _ in selector.select(self._poll_interval())}
                if wakeup is not None and wakeup in ready:
                    wakeup.drain()
                if self._tls_pending() or self.sock in ready:
                    self._receive()
                self._handle_events()
                self._report_fetches()
                self._advance_tasks()
        except _Stop as stop:
            return SessionResult(stop.end, stop.reason, self.handshake_done)
        finally:
            selector.close()
            self._close()

    def _poll_interval(self) -> float:
        if self._tls_pending():
            return 0.0
        if self.tasks.needs_polling():
            return BUSY_POLL
        if self.fetches is not None and self.fetches.running:
            return FETCH_POLL
        return WARM_POLL if self.tasks.active > 0 else IDLE_POLL

    def _tls_pending(self) -> bool:
        # TLS decrypts whole records: bytes already decrypted never wake the selector
        pending = getattr(self.sock, "pending", None)
        return callable(pending) and pending() > 0

    def _receive(self) -> None:
        try:
            data = self.sock.recv(1 << 16)
        except (ConnectionError, TimeoutError, OSError):
            data = b""
        self._last_received = time.monotonic()
        self.conn.receive_data(data)

    def _handle_events(self) -> None:
        while True:
            event = self.conn.next_event()
            self._send(self.conn.data_to_send())
            if event is NEED_DATA:
                return
            try:
                self._dispatch(event)
            except (CacheError, OSError) as exc:
                raise _Stop(SessionEnd.ERROR, f"cannot do what manager {self.peer} asked: {exc}") from None
            except _Stop:
                raise
            except Exception as exc:  # a bug here must cost one connection, not the worker
                log.exception("internal error while handling %r from manager %s", event, self.peer)
                raise _Stop(SessionEnd.ERROR, f"internal error while handling a message from {self.peer}: {exc}") from None

    def _advance_tasks(self) -> None:
        if self.tasks.poll() and not self._results_announced:
            self._say(ResultsAvailable())
            self._results_announced = True
        if self.tasks.start_ready():
            self._say(Info("tasks_running", str(self.tasks.running)))
        if self.tasks.has_unreported() and not self._results_announced:
            self._say(ResultsAvailable())
            self._results_announced = True

    def _report_fetches(self) -> None:
        if self.fetches is None:
            return
        for outcome in self.fetches.done():
            request = outcome.request
            if outcome.error:
                log.warning("could not fetch %s from a peer: %s", request.name, outcome.error)
                self._say(CacheInvalid(request.name, outcome.error.replace("\n", " ")[:2000]))
            else:
                log.info("fetched %s (%d bytes) from peer %s:%d", request.name, request.size, request.host,
                         request.port)
                self._say(CacheUpdate(request.name, request.size))

    def _check_stop_conditions(self) -> None:
        signal_name = self.should_stop()
        if signal_name:
            self._send_quietly(self.conn.send(Info("vacating", signal_name)))
            raise _Stop(SessionEnd.ABORTED, f"received {signal_name}")
        now = time.monotonic()
        if self.conn.waiting_for_manager and now - self._last_received > self.settings.active_timeout:
            # the idle timeout does not cover this: it is off before the handshake and while tasks run
            raise _Stop(SessionEnd.ERROR, f"manager {self.peer} sent nothing for {self.settings.active_timeout:g} s "
                                          "in the middle of a message (or of the password exchange)")
        if self.settings.end_time and time.time() >= self.settings.end_time:
            self._send_quietly(self.conn.send(Info("wall_time_exhausted", str(int(self.settings.end_time)))))
            raise _Stop(SessionEnd.WALL_TIME, "the worker's --wall-time is used up")
        if self.handshake_done and self.tasks.active == 0 and not self.tasks.has_unreported():
            if now - self._last_work > self.settings.idle_timeout:
                self._send_quietly(self.conn.send(Info("idle-disconnecting", str(int(self.settings.idle_timeout)))))
                raise _Stop(SessionEnd.IDLE, f"no work from manager {self.peer} for {self.settings.idle_timeout:g} s")
        else:
            self._last_work = now

    # -- events

    def _dispatch(self, event: object) -> None:
        handler = _HANDLERS.get(type(event))
        if handler is None:
            log.debug("ignoring %r from manager %s", event, self.peer)
            return
        handler(self, event)

    def _on_auth_succeeded(self, _event: AuthSucceeded) -> None:
        log.debug("password accepted by manager %s", self.peer)
        self._after_authentication()

    def _on_failed(self, event: ConnectionFailed) -> None:
        if event.refusal != "password":
            raise _Stop(SessionEnd.ERROR, f"bad message from manager {self.peer}: {event.reason}")
        if self.settings.password is None:
            raise _Stop(SessionEnd.PASSWORD_REQUIRED, f"manager {self.peer}: {event.reason}")
        raise _Stop(SessionEnd.AUTH_FAILED, f"wrong password for manager {self.peer} ({event.reason})")

    def _on_closed(self, event: ConnectionClosed) -> None:
        if event.during_auth:
            raise _Stop(
                SessionEnd.AUTH_FAILED,
                f"manager {self.peer} closed the connection during password authentication: "
                "it probably has no password (a worker started with -P serves only managers with the same password)",
            )
        reason = "closed the connection" if event.clean else "closed the connection in the middle of a message"
        raise _Stop(SessionEnd.CLOSED, f"manager {self.peer} {reason}")

    def _on_project_name(self, event: ProjectName) -> None:
        if self.expected_project is not None and event.name != self.expected_project:
            raise _Stop(SessionEnd.ERROR, f"manager {self.peer} serves project {event.name!r}, not {self.expected_project!r}")
        self._send_handshake()

    def _on_file_start(self, event: PutFile) -> None:
        self._incoming = self.cache.begin_file(event.path, event.length, event.mode)

    def _on_file_chunk(self, event: FileChunk) -> None:
        if self._incoming is not None:
            self._incoming.write(event.data)

    def _on_file_end(self, _event: FileEnd) -> None:
        if self._incoming is not None:
            self._incoming.finish()
            self._incoming = None

    def _on_dir_start(self, event: DirStart) -> None:
        self.cache.make_dir(event.path, event.top_level)

    def _on_symlink(self, event: Symlink) -> None:
        self.cache.make_symlink(event.path, event.target)

    def _on_url(self, event: UrlFile) -> None:
        self.cache.fetch_url(event.name, event.url, event.mode)

    def _on_task(self, event: TaskReceived) -> None:
        task = event.task
        log.debug("task %d received: %s", task.taskid, task.command[:200])
        self._last_tag = task.taskid
        self._last_work = time.monotonic()
        if not self.tasks.admit(task):
            # tell the manager again what we have, as CCTools does after forsaking
            self._say(*resource_messages(self._resource_report()))

    def _on_cache_report(self, event: CacheReport) -> None:
        path = self.cache.path_of(event.name)
        if path.is_file() and not path.is_symlink():
            self._say(CacheUpdate(event.name, path.stat().st_size))
        else:
            self._say(CacheInvalid(event.name, "not in the cache"))

    def _on_peer_get(self, event: PeerGet) -> None:
        if self.fetches is None:
            self._say(CacheInvalid(event.name, "this worker has peer transfers off"))
            return
        # an older version must not be served to other peers meanwhile (sandboxes keep their own links)
        self.cache.remove(event.name)
        self.fetches.start(event)

    def _on_send_results(self, _event: SendResults) -> None:
        self._results_announced = False
        for taskid, outcome in self.tasks.take_unreported():
            self._send_result(taskid, outcome)
            self._say(Info("tasks_running", str(self.tasks.running)))
        self._say(ReplyEnd())

    def _on_get(self, event: GetRequest) -> None:
        for entry in self.cache.describe_for_get(event.name, event.recursive):
            if entry.kind == "dir":
                self._say(DirectoryStart(entry.name))
            elif entry.kind == "file" and entry.path is not None:
                self._send_file_entry(entry.name, entry.path)
            else:
                self._say(FileMissing(entry.name, entry.error))
        self._say(ReplyEnd())

    def _on_kill(self, event: KillTask) -> None:
        self.tasks.kill(event.taskid)

    def _on_unlink(self, event: UnlinkFile) -> None:
        self.cache.remove(event.name)

    def _on_check(self, _event: Check) -> None:
        self._say(Alive(), Info("tasks_running", str(self.tasks.running)))

    def _on_release(self, _event: Release) -> None:
        raise _Stop(SessionEnd.RELEASED, f"released by manager {self.peer}")

    def _on_exit(self, _event: Exit) -> None:
        raise _Stop(SessionEnd.EXIT, f"manager {self.peer} told this worker to exit")

    def _on_third_party(self, event: ThirdParty) -> None:
        ok = run_third_party_transfer(self.cache, event)
        if event.put:
            self._say(ThirdPutComplete(ok))

    # -- sending

    def _after_authentication(self) -> None:
        if self.expected_project is not None:
            self._say(NameRequest())
        else:
            self._send_handshake()

    def _send_handshake(self) -> None:
        end_time = int(self.settings.end_time) if self.settings.end_time else 0
        # our manager answers the peer port with peer transfers; CCTools' ignores an unknown info field
        advert = (Info(PEER_PORT_INFO, str(self.cache_server.port)),) if self.cache_server is not None else ()
        hello = handshake_messages(self.settings.identity, self._resource_report(), self.tasks.running, end_time,
                                   tuple(self.settings.features))
        after_features = next(i for i, message in enumerate(hello) if isinstance(message, Alive))
        self._say(*hello[:after_features], *advert, *hello[after_features:])
        self.handshake_done = True
        self._last_work = time.monotonic()

    def _resource_report(self) -> ResourceTotals:
        r = self.settings.resources
        return ResourceTotals(cores=r.cores, memory=r.memory, disk=r.disk, gpus=r.gpus, tag=self._last_tag)

    def _send_result(self, taskid: int, outcome: ProcessOutcome) -> None:
        handle = None
        if outcome.output_path is not None:
            try:
                handle = open(outcome.output_path, "rb")  # noqa: SIM115
            except OSError:
                handle = None
        note = disk_full_note(outcome.output_path)  # the task's own output could not say it: no room
        try:
            length = os.fstat(handle.fileno()).st_size if handle is not None else 0
            self._say(ResultStart(outcome.status, outcome.exit_code, length + len(note), outcome.execution_time_us,
                                  taskid))
            if handle is not None:
                self._stream(handle, length)
            if note:
                self._send(note)
        finally:
            if handle is not None:
                handle.close()

    def _send_file_entry(self, name: str, path: Path) -> None:
        try:
            handle = open(path, "rb")  # noqa: SIM115
        except OSError as exc:
            self._say(FileMissing(name, exc.errno or 2))
            return
        with handle:
            length = os.fstat(handle.fileno()).st_size
            self._say(FileReply(name, length))
            self._stream(handle, length)

    def _stream(self, handle, length: int) -> None:
        """Send exactly ``length`` bytes of ``handle`` (zero-padded if the file shrank meanwhile)."""
        remaining = length
        while remaining > 0:
            data = handle.read(min(SEND_CHUNK, remaining)) or b"\0" * min(SEND_CHUNK, remaining)
            self._send(data)
            remaining -= len(data)

    def _say(self, *messages: object) -> None:
        """Send protocol messages (through the connection, which notes what the manager owes)."""
        self._send(b"".join(self.conn.send(message) for message in messages))

    def _send(self, data: bytes) -> None:
        if not data:
            return
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise _Stop(SessionEnd.CLOSED, f"lost the connection to manager {self.peer}: {exc}") from None

    def _send_quietly(self, data: bytes) -> None:
        try:
            self.sock.sendall(data)
        except OSError:
            pass

    def _close(self) -> None:
        if self.cache_server is not None:
            self.cache_server.cache = None
        if self.fetches is not None:
            self.fetches.close()
        if self._incoming is not None:
            self._incoming.abort()
            self._incoming = None
        self.tasks.kill_all()
        try:
            self.sock.close()
        except OSError:
            pass
        self.workspace.wipe()


_HANDLERS: dict[type, Callable[[WorkerSession, object], None]] = {
    AuthSucceeded: WorkerSession._on_auth_succeeded,
    ConnectionFailed: WorkerSession._on_failed,
    ConnectionClosed: WorkerSession._on_closed,
    ProjectName: WorkerSession._on_project_name,
    PutFile: WorkerSession._on_file_start,
    FileChunk: WorkerSession._on_file_chunk,
    FileEnd: WorkerSession._on_file_end,
    DirStart: WorkerSession._on_dir_start,
    Symlink: WorkerSession._on_symlink,
    UrlFile: WorkerSession._on_url,
    TaskReceived: WorkerSession._on_task,
    SendResults: WorkerSession._on_send_results,
    GetRequest: WorkerSession._on_get,
    KillTask: WorkerSession._on_kill,
    UnlinkFile: WorkerSession._on_unlink,
    Check: WorkerSession._on_check,
    Release: WorkerSession._on_release,
    Exit: WorkerSession._on_exit,
    ThirdParty: WorkerSession._on_third_party,
    CacheReport: WorkerSession._on_cache_report,
    PeerGet: WorkerSession._on_peer_get,
}  # type: ignore[dict-item]


def run_third_party_transfer(cache: FileCache, event: ThirdParty, timeout: float = 600.0) -> bool:
    """``thirdget``/``thirdput`` on a shared filesystem: 1 = run a command (``%%`` = the cache
    path), 2 = copy, 3 = symlink (get) or rename (put). Returns whether it worked."""
    cached = cache.path_of(event.name)
    try:
        if event.mode == 1:
            command = event.path.replace("%%", str(cached))
            return subprocess.run(["/bin/sh", "-c", command], timeout=timeout, check=False).returncode == 0
        if event.mode == 2:
            source, target = (cached, Path(event.path)) if event.put else (Path(event.path), cached)
            if source.is_dir():
                shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
            else:
                shutil.copy2(source, target)
            return True
        if event.mode == 3:
            if event.put:
                os.replace(cached, event.path)
            else:
                os.symlink(event.path, cached)
            return True
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("third-party transfer of %s (%s) failed: %s", event.name, event.path, exc)
        return False
    log.warning("unknown third-party transfer mode %d for %s", event.mode, event.name)
    return False


DISK_FULL_BELOW = 1 << 20  # free bytes in the workspace under which a finished task is said to have filled it


def disk_full_note(output_path: Path | None) -> bytes:
    """A line for the task's output when the workspace's disk is (nearly) full as the task ends: the
    executor then retries the task on another worker (docs/worker.md); empty otherwise."""
    if output_path is None:
        return b""
    try:
        stat = os.statvfs(Path(output_path).parent)
    except OSError:
        return b""
    free = stat.f_bavail * stat.f_frsize
    if free >= DISK_FULL_BELOW:
        return b""
    return (f"\ncoffea-wq worker: disk full on worker ({free} bytes free in its workspace when the task "
            "ended)\n").encode()

