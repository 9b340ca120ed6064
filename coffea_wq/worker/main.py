"""``coffea-wq worker``: connect to a manager (directly or by name), serve it, reconnect, exit.

The outer loop reads top to bottom like ``work_queue_worker``'s: pick a manager, connect (with
back-off from --min-backoff to --max-backoff while none answers), serve it until the
connection ends, wipe the workspace, then decide: exit (``exit`` from the manager, a signal,
--single-shot, the idle timeout with a fixed address, --connect-timeout without any manager)
or go round again (``release``, a lost manager, a different manager found by name).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import secrets
import signal
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field

from coffea_wq.protocol.messages import WorkerIdentity
from coffea_wq.tls import CertificateError, self_signed_certificate, server_context
from coffea_wq.worker.lookup import ManagerChoice, find_manager_choices
from coffea_wq.worker.options import OptionError, WorkerOptions, configure, options_from_args
from coffea_wq.worker.peers import CacheServer
from coffea_wq.worker.resources import WorkerResources, measure_resources
from coffea_wq.worker.sandbox import Workspace
from coffea_wq.worker.session import SessionEnd, SessionResult, SessionSettings, WorkerSession
from coffea_wq.worker.tls import client_context
from coffea_wq.worker.warm import WarmPythonPool
from coffea_wq.worker.warm_contract import worker_feature

log = logging.getLogger("coffea_wq.worker")

CONNECT_ATTEMPT_TIMEOUT = 5.0
STOP_SIGNALS = ("SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2")


def notice(message: str) -> None:
    """A line for the person running the worker (CCTools' worker prints the same events)."""
    print(f"coffea-wq worker: {message}", file=sys.stderr, flush=True)


@dataclass
class StopFlag:
    """Set by a signal handler (or the parent's death); polled by the loops."""

    signal_name: str | None = None
    parent_pid: int | None = None

    def __call__(self) -> str | None:
        if self.signal_name is None and self.parent_pid is not None and os.getppid() != self.parent_pid:
            self.signal_name = "parent-death"
        return self.signal_name

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for name in STOP_SIGNALS:
            signal.signal(getattr(signal, name), self._handle)

    def _handle(self, signum: int, _frame: object) -> None:
        self.signal_name = signal.Signals(signum).name


@dataclass
class WorkerRun:
    """The state of one worker process across manager connections."""

    options: WorkerOptions
    workspace: Workspace
    settings: SessionSettings
    stop: StopFlag = field(default_factory=StopFlag)
    warm_pool: WarmPythonPool | None = None
    last_served: object | None = None
    tls: ssl.SSLContext | None = None  # --ssl: every connection starts with a TLS handshake
    cache_server: CacheServer | None = None  # serves the cache to other workers (worker/peers.py)

    def serve_until_done(self) -> int:
        """The outer loop; returns the process exit code."""
        options = self.options
        backoff = options.min_backoff
        give_up_at = time.monotonic() + options.connect_timeout
        while not self.stop():
            connection = self._connect_to_a_manager()
            if connection is None:
                if time.monotonic() > give_up_at:
                    notice(f"stopping: could not connect to a manager after {options.connect_timeout:g} s")
                    return 0
                self._sleep(backoff)
                backoff = min(backoff * 2, options.max_backoff)
                continue
            sock, peer, choice = connection
            result = self._serve(sock, peer, choice)
            give_up_at = time.monotonic() + options.connect_timeout
            if result.end in (SessionEnd.EXIT, SessionEnd.ABORTED, SessionEnd.WALL_TIME):
                return 0
            if options.single_shot and result.end not in (SessionEnd.AUTH_FAILED, SessionEnd.PASSWORD_REQUIRED):
                notice("stopping: --single-shot")
                return 0
            if result.end is SessionEnd.IDLE and not options.project_regex:
                notice("stopping: idle timeout and no other manager to go to")
                return 0
            if result.end is SessionEnd.RELEASED:
                backoff = options.min_backoff
                continue  # a released worker reconnects at once
            if result.handshake_done:
                backoff = options.min_backoff
            self._sleep(backoff)
            if not result.handshake_done:
                backoff = min(backoff * 2, options.max_backoff)
        notice(f"stopping: received {self.stop.signal_name}")
        return 0

    def _serve(self, sock: socket.socket, peer: str, choice: ManagerChoice | None) -> SessionResult:
        local_host, local_port = sock.getsockname()[:2]
        local = f"{local_host}:{local_port}"
        notice(f"connected to manager {peer} via local address {local}")
        session = WorkerSession(
            sock, peer, self.settings, self.workspace, warm_pool=self.warm_pool, should_stop=self.stop,
            expected_project=choice.project if choice is not None and choice.verify_project else None,
            cache_server=self.cache_server, peer_tls=self.tls,
        )
        result = session.serve()
        self.last_served = choice.key if choice is not None else None
        # the workspace (cache, unpacked environments) was just wiped: warm interpreters loaded
        # from it must not outlive it
        if self.warm_pool is not None:
            self.warm_pool.close()
        if result.end in (SessionEnd.AUTH_FAILED, SessionEnd.PASSWORD_REQUIRED, SessionEnd.ERROR):
            notice(result.reason)
            log.warning("%s", result.reason)
        else:
            log.info("%s", result.reason)
        notice(f"disconnected from manager {peer} ({result.end.value})")
        return result

    def _connect_to_a_manager(self) -> tuple[socket.socket, str, ManagerChoice | None] | None:
        if self.options.project_regex:
            try:
                choices = find_manager_choices(self.options.project_regex, self.options.catalog, self.last_served)
            except ValueError as exc:  # a bad regex or catalog address: nothing will ever match
                raise OptionError(str(exc)) from exc
            if not choices:
                log.info("no manager matching %r in the catalog yet", self.options.project_regex)
            for choice in choices:
                for host, port in choice.candidates:
                    sock = _try_connect(host, port, self.tls)
                    if sock is not None:
                        return sock, f"{host}:{port}", choice
            return None
        for host, port in self.options.managers:
            sock = _try_connect(host, port, self.tls)
            if sock is not None:
                return sock, f"{host}:{port}", None
        return None

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stop() and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


def _try_connect(host: str, port: int, tls: ssl.SSLContext | None = None) -> socket.socket | None:
    try:
        sock = socket.create_connection((host, port), timeout=CONNECT_ATTEMPT_TIMEOUT)
    except OSError as exc:
        log.debug("could not connect to %s:%d: %s", host, port, exc)
        return None
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls is None:
        return sock
    try:
        return tls.wrap_socket(sock)  # the handshake, bounded by the connect timeout
    except (ssl.SSLError, OSError) as exc:
        sock.close()
        notice(f"manager {host}:{port} refused the TLS handshake ({exc}): it does not use TLS, or not this "
               "certificate; start the manager with ssl=... or this worker without --ssl")
        return None


def start_cache_server(options: WorkerOptions, password: bytes | None, workspace: Workspace) -> CacheServer | None:
    """The server of this worker's cache to other workers, or None (--no-peer-transfers, or it cannot start).

    With --ssl it speaks TLS with a certificate made for this process (in the workspace, mode 0600).
    """
    if not options.peer_transfers:
        return None
    try:
        tls = None
        if options.ssl:
            directory = workspace.root / "peer-tls"
            directory.mkdir(mode=0o700)
            tls = server_context(*self_signed_certificate(directory, "coffea-wq worker"))
        server = CacheServer(password, tls, port=options.peer_port, timeout=options.peer_timeout)
    except (OSError, CertificateError, ssl.SSLError) as error:
        notice(f"peer transfers off: cannot serve the cache to other workers ({error})")
        return None
    notice(f"serving the cache to other workers on port {server.port}{' (TLS)' if tls else ''}")
    return server


def make_identity(options: WorkerOptions) -> WorkerIdentity:
    uname = platform.uname()
    return WorkerIdentity(
        hostname=socket.gethostname() or "localhost",
        os_name=options.os_name or uname.system or "Linux",
        arch=options.arch or uname.machine or "x86_64",
        worker_id="worker-" + secrets.token_hex(16),
    )


def load_warm_pool(token: str, zygote_preload: tuple[str, ...] | None = None) -> WarmPythonPool | None:
    """The warm Python slots for the executor's tasks (None: every task runs cold). With
    ``zygote_preload``, the first zygote is forked from this process now (forked_zygote.py)."""
    try:
        if zygote_preload is not None:
            return WarmPythonPool.with_forked_zygote(token, zygote_preload)
        return WarmPythonPool(token)
    except Exception:  # warm slots are an optimisation; never fatal
        log.exception("could not create the warm Python pool; running every task cold")
        return None


def setup_logging(options: WorkerOptions) -> None:
    level = logging.DEBUG if options.debug else logging.WARNING
    target = options.debug_file
    if target in (None, ":stderr"):
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
    elif target == ":stdout":
        handler = logging.StreamHandler(sys.stdout)
    else:
        handler = logging.FileHandler(target)
    handler.setFormatter(logging.Formatter("%(asctime)s coffea-wq-worker[%(process)d] %(levelname)s %(name)s: %(message)s"))
    package = logging.getLogger("coffea_wq")
    package.handlers = [handler]
    package.setLevel(level)
    package.propagate = False


def run_worker(options: WorkerOptions, zygote_preload: tuple[str, ...] | None = None) -> int:
    """Run a worker with ``options`` until it is done; returns the exit code.

    ``zygote_preload`` is for a worker forked from the user's process (``run_forked``): its first
    zygote is a fork of itself, made before any thread starts.

    Example::

        run_worker(WorkerOptions(managers=[("127.0.0.1", 9123)], cores=1, single_shot=True))
    """
    setup_logging(options)
    if not options.keep_path:
        activate_own_interpreter(os.environ)
    password = options.password_file.read_bytes() if options.password_file is not None else None
    workspace = Workspace.create(options.workdir)
    notice(f"creating workspace {workspace.root}")
    resources: WorkerResources = measure_resources(workspace.root, options.cores, options.memory, options.disk,
                                                   options.gpus)
    notice(f"using {resources.cores} cores, {resources.memory} MB memory, {resources.disk} MB disk, "
           f"{resources.gpus} gpus")
    token = secrets.token_hex(8)
    settings = SessionSettings(
        identity=make_identity(options),
        resources=resources,
        password=password,
        idle_timeout=options.idle_timeout,
        end_time=time.time() + options.wall_time if options.wall_time else 0.0,
        # the token names this process's partials; the feature lets a flush task reach it (docs/reduction.md)
        features=(*options.features, worker_feature(token)),
    )
    warm_pool = load_warm_pool(token, zygote_preload)  # before install(): a forked zygote keeps default signals
    stop = StopFlag(parent_pid=os.getppid() if options.parent_death else None)
    stop.install()
    run = WorkerRun(options, workspace, settings, stop, warm_pool=warm_pool,
                    tls=client_context(options.ssl_ca) if options.ssl else None,
                    cache_server=start_cache_server(options, password, workspace))
    try:
        return run.serve_until_done()
    finally:
        if run.cache_server is not None:
            run.cache_server.close()
        if run.warm_pool is not None:
            run.warm_pool.close()
        notice(f"deleting workspace {workspace.root}")
        workspace.remove()


def activate_own_interpreter(environ: dict[str, str] | os._Environ) -> None:
    """Put this interpreter's ``bin/`` first on ``PATH`` (and set ``VIRTUAL_ENV`` in a venv), as
    ``source .venv/bin/activate`` would: ``python3`` in a task is then the worker's own Python, with
    coffea and its dependencies, even when the worker was started as ``.venv/bin/coffea-wq worker``
    without activating anything. Tasks inherit it (``--keep-path`` turns it off; docs/worker.md).

    Example::

        >>> env = {"PATH": "/usr/bin"}
        >>> activate_own_interpreter(env)
        >>> env["PATH"].split(":")[0] == os.path.dirname(sys.executable)
        True
    """
    bindir = os.path.dirname(sys.executable)
    path = environ.get("PATH", os.defpath)
    if path.split(os.pathsep)[0] != bindir:
        environ["PATH"] = os.pathsep.join([bindir, path]) if path else bindir
    if sys.prefix != sys.base_prefix:
        environ["VIRTUAL_ENV"] = sys.prefix
        environ.pop("PYTHONHOME", None)


def main(argv: list[str] | None = None) -> int:
    """``python -m coffea_wq.worker [options] HOST PORT``."""
    parser = argparse.ArgumentParser(prog="coffea-wq worker", description="run a Work Queue worker")
    configure(parser)
    args = parser.parse_args(argv)
    return run_from_args(args)


def run_forked(argv: list[str], zygote_preload: tuple[str, ...] | None) -> int:
    """In a process forked from the user's (``executor/workers/forked.py``): run as
    ``coffea-wq worker ARGV...`` would, with the first zygote forked from this process."""
    parser = argparse.ArgumentParser(prog="coffea-wq worker")
    configure(parser)
    try:
        return run_worker(options_from_args(parser.parse_args(argv)), zygote_preload)
    except OptionError as exc:
        print(f"coffea-wq worker: {exc}", file=sys.stderr)
        return 2


def run_from_args(args: argparse.Namespace) -> int:
    """Validate parsed arguments and run; a bad option is a one-line error and exit code 2."""
    try:
        return run_worker(options_from_args(args))
    except OptionError as exc:
        print(f"coffea-wq worker: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"coffea-wq worker: {exc}", file=sys.stderr)
        return 1
