"""The state that must outlive ``WorkQueueExecutor.copy()``: the manager, staging area, local workers.

coffea's Runner copies its executor for every phase (``executor.copy(**overrides)``), so an
executor instance holds only options. A ``ManagerSession`` lives in a module-level registry keyed
by the options that define it (``SessionConfig``): the preprocessing call opens it and leaves it
open, the processing call reuses it (connected workers keep their caches) and closes it at the
end. Anything left open is closed when the interpreter exits.

Trust boundary (docs/executor.md, "Security"): a run whose workers are all its own (no
``manager_name``, ``port`` nor ``password_file``) listens on 127.0.0.1 when only local workers
serve it, and gives its own workers a fresh password; a run reachable without a password from
other hosts says so once.
"""

from __future__ import annotations

import atexit
import ipaddress
import logging
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coffea_wq.executor.backend import load_work_queue_module
from coffea_wq.executor.tasks.staging import StagingArea
from coffea_wq.executor.workers.factory_pool import FrozenOptions, start_factory, stop_factory
from coffea_wq.executor.workers.forked import ForkedWorker, discard_forked, fork_refusal, fork_workers
from coffea_wq.executor.workers.local_workers import LocalWorkerPool, LocalWorkerSpec, worker_kind
from coffea_wq.executor.workers.run_secrets import write_run_password

log = logging.getLogger(__name__)

DEFAULT_PORT = 9123
LOCAL_HOST = "127.0.0.1"


@dataclass(frozen=True)
class SessionConfig:
    """The executor options that identify one manager (hashable: the registry key)."""

    manager_name: str | None
    port: int | tuple[int, int] | None
    password_file: str | None
    filepath: str
    local_workers: int
    local_worker_kind: str
    stats_log: str | None
    transactions_log: str | None
    debug_log: str | None
    resource_monitor: str  # off, measure or watchdog
    manager_impl: str | None = None  # None: backend's default choice
    factory: FrozenOptions | None = None  # the ``factory={...}`` option, frozen
    manager_host: str | None = None  # address to listen on; None: see listen_host()
    ssl: bool | tuple[str, str] = False  # True: a self-signed certificate for the run; or (key, cert)
    fork_local_workers: bool = True  # see workers/forked.py
    # what the zygote a forked local worker makes of itself imports (None: it makes none: the tasks
    # run another interpreter, or cold)
    local_zygote_preload: tuple[str, ...] | None = None

    def listen_host(self) -> str:
        """``manager_host``, else 127.0.0.1 when only local workers serve the run (no name, port or
        factory), else every interface ("")."""
        if self.manager_host is not None:
            return self.manager_host
        if not self.manager_name and self.port is None and self.factory is None:
            return LOCAL_HOST
        return ""

    def makes_password(self) -> bool:
        """Whether the run's own workers get a fresh password: no ``password_file``, and no name or
        port through which other workers are expected (they could not know it); a factory whose
        options name their own password keeps it."""
        own_workers = self.local_workers > 0 or (
            self.factory is not None and not {"password", "password_file"} & {k for k, _ in self.factory})
        return own_workers and self.password_file is None and not self.manager_name and self.port is None

    def listen_port(self) -> int | tuple[int, int]:
        """The port (or range) to listen on: explicit, else 0 (any free port) when a name, local
        workers or a factory find the manager, else CCTools' default 9123."""
        if self.port is not None:
            return self.port
        if self.manager_name or self.local_workers > 0 or self.factory is not None:
            return 0
        return DEFAULT_PORT


class ManagerSession:
    """A Work Queue manager with its staging area and local workers."""

    def __init__(self, config: SessionConfig):
        self.config = config
        self.wq = load_work_queue_module(config.manager_impl)
        self.staging = StagingArea(Path(config.filepath))
        self.queue: Any = None
        self.workers: LocalWorkerPool | None = None
        self.factory: Any = None
        self.calls = 0
        self.password_file: str | None = config.password_file
        self.bound_everywhere = False  # the manager could not take the address it was given

    def open(self) -> None:
        forked: list[ForkedWorker] = []
        try:
            forked = self._fork_local_workers()  # before the manager's thread exists (workers/forked.py)
            self.queue = self._create_queue()
            keep_whole_worker_rule(self.queue)
            if self.config.makes_password():
                self.password_file = str(write_run_password(self.staging.root))
            if self.password_file:
                self.queue.specify_password_file(self.password_file)
            self._warn_if_open()
            if self.config.resource_monitor != "off":
                queue_feature(self.queue, "enable_monitoring", "resource_monitor")(
                    watchdog=self.config.resource_monitor == "watchdog")
            self.workers = LocalWorkerPool(LocalWorkerSpec(
                count=self.config.local_workers, host=self.worker_host, port=self.port,
                password_file=self.password_file, kind=self.config.local_worker_kind,
                workdir=self.staging.root / "workers", ssl=bool(self.config.ssl),
                zygote_preload=self.config.local_zygote_preload), forked)
            forked = []  # the pool's now
            self.workers.start()
            if self.config.factory is not None:
                self.factory = start_factory(self.config.factory, self.queue, self.password_file,
                                             ssl=bool(self.config.ssl))
        except BaseException:
            discard_forked(forked)
            self.close()
            raise

    def _fork_local_workers(self) -> list[ForkedWorker]:
        """This process's forks that become the local workers, or none (then they start fresh)."""
        if self.config.local_workers <= 0:
            return []
        refusal = fork_refusal(self.config.fork_local_workers, worker_kind(self.config.local_worker_kind))
        if refusal is not None:
            log.info("local workers start as new processes: %s", refusal)
            return []
        return fork_workers(self.config.local_workers)

    def _create_queue(self) -> Any:
        port = self.config.listen_port()
        extra: dict[str, Any] = {}
        if self.config.listen_host():
            extra["host"] = self.config.listen_host()
        if self.config.ssl:
            extra["ssl"] = self.config.ssl
        try:
            return self._new_queue(port, extra)
        except Exception as exc:
            raise RuntimeError(f"cannot start a Work Queue manager on port {port!r} "
                               f"(manager_name={self.config.manager_name!r}): {exc}; "
                               "is another manager using it? pass port=0 for any free port") from exc

    def _new_queue(self, port: int | tuple[int, int], extra: dict[str, Any]) -> Any:
        def create(**options: Any) -> Any:
            return self.wq.WorkQueue(port=list(port) if isinstance(port, tuple) else port,
                                     name=self.config.manager_name, stats_log=self.config.stats_log,
                                     transactions_log=self.config.transactions_log,
                                     debug_log=self.config.debug_log, **options)

        try:
            return create(**extra)
        except TypeError as exc:
            if not extra or "unexpected keyword" not in str(exc):
                raise
            if "ssl" in extra or self.config.manager_host is not None:
                raise NotImplementedError(
                    f"the Work Queue manager in use ({self.wq.__name__}) cannot take {sorted(extra)} (executor "
                    "options manager_host, ssl); use coffea-wq's manager (COFFEA_WQ_MANAGER=coffea-wq)") from exc
        # CCTools' Python API has no listening address: the run's own password keeps strangers out
        log.warning("the Work Queue manager in use (%s) cannot listen on 127.0.0.1 only; it listens on every "
                    "interface", self.wq.__name__)
        self.bound_everywhere = True
        return create()

    @property
    def port(self) -> int:
        return int(self.queue.port)

    @property
    def listening_address(self) -> str:
        """``host:port`` the manager listens on ("0.0.0.0" for every interface)."""
        host = getattr(self.queue, "listening_host", None) or self.config.listen_host() or "0.0.0.0"
        host = "0.0.0.0" if self.bound_everywhere else host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    def describe_access(self) -> str:
        """Who can join, in one sentence: address, TLS, password."""
        host = self.listening_address.rpartition(":")[0]
        where = "every interface" if host in ("0.0.0.0", "[::]") else host
        return (f"Address {where}{', TLS' if self.config.ssl else ''}, "
                f"{'password required' if self.password_file else 'no password'}.")

    @property
    def worker_host(self) -> str:
        """Where local workers reach the manager: its address when it listens on one, else loopback."""
        host = self.config.listen_host()
        return host if host and host not in ("0.0.0.0", "::") else LOCAL_HOST

    def _warn_if_open(self) -> None:
        host = "" if self.bound_everywhere else self.config.listen_host()
        warning = open_port_warning(host, self.password_file, self.listening_address)
        if warning:
            warnings.warn(warning, UserWarning, stacklevel=2)

    def close(self) -> None:
        if self.factory is not None:
            # first, so that no cycle submits workers while the others are told to leave
            stop_factory(self.factory)
            self.factory = None
        if self.queue is not None:
            try:
                self.queue.shutdown_workers(0)
            except Exception as exc:  # the queue may be half-built; closing must go on
                log.debug("shutdown_workers failed: %r", exc)
        if self.workers is not None:
            self.workers.stop()
            self.workers = None
        if self.queue is not None:
            _free_queue(self.queue)
            self.queue = None
        self.staging.remove()


def open_port_warning(host: str, password_file: str | None, address: str) -> str | None:
    """The warning for a manager any host can join (no password, not on loopback), else None.

    Example:
        >>> open_port_warning("127.0.0.1", None, "127.0.0.1:9123") is None
        True
        >>> "without a password" in open_port_warning("", None, "0.0.0.0:9123")
        True
    """
    if password_file or _is_loopback(host):
        return None
    return (f"the Work Queue manager listens on {address} without a password: any host that can reach this port "
            "can join as a worker and receive your tasks. Set password_file='FILE' (a secret shared with workers: "
            "`coffea-wq worker --password FILE`, `work_queue_worker -P FILE`), and ssl=True to encrypt; see the "
            "README's Security section")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "" (every interface) or a host name
        return False


def keep_whole_worker_rule(queue: Any) -> None:
    """The executor's tasks follow coffea's rule: a resource left undeclared means the whole worker.

    CCTools' API defaults to proportional shares (``tune("proportional-resources", 1)``); the
    executor turns that off on coffea-wq's manager. (The C manager Debian ships has no such tune.)
    """
    if type(queue).__module__.startswith("coffea_wq."):
        queue.tune("proportional-resources", 0)


def queue_feature(queue: Any, method: str, option: str) -> Any:
    """``queue.method``, or an error naming the executor option the manager cannot honour."""
    bound = getattr(queue, method, None)
    if not callable(bound):
        raise NotImplementedError(
            f"the Work Queue manager in use ({type(queue).__module__}) has no {method}(), needed by the "
            f"executor option {option}; leave {option} at its default or set COFFEA_WQ_MANAGER=cctools")
    return bound


def _free_queue(queue: Any) -> None:
    # coffea_wq.work_queue closes its port in shutdown(); CCTools frees the C queue in _free_queue()
    for name in ("shutdown", "close", "_free_queue"):
        method = getattr(queue, name, None)
        if callable(method):
            try:
                method()
            except Exception as exc:
                log.debug("%s failed: %r", name, exc)
            return


_SESSIONS: dict[SessionConfig, ManagerSession] = {}
_LOCK = threading.Lock()


def acquire_session(config: SessionConfig) -> ManagerSession:
    """The open session for ``config``, opening a new one if needed."""
    with _LOCK:
        session = _SESSIONS.get(config)
        if session is None:
            session = ManagerSession(config)
            session.open()
            _SESSIONS[config] = session
        session.calls += 1
        return session


def close_session(config: SessionConfig) -> None:
    """Close and forget the session of ``config`` (no-op when none is open)."""
    with _LOCK:
        session = _SESSIONS.pop(config, None)
    if session is not None:
        session.close()


def close_all_sessions() -> None:
    """Close every open session: their managers, local workers and staging directories."""
    with _LOCK:
        sessions = list(_SESSIONS.values())
        _SESSIONS.clear()
    for session in sessions:
        session.close()


def open_sessions() -> list[SessionConfig]:
    with _LOCK:
        return list(_SESSIONS)


atexit.register(close_all_sessions)
