"""The manager's I/O loop: one background thread, a ``selectors`` loop over non-blocking sockets.

The loop owns every connection. The user's thread talks to it only through :class:`ManagerServer`'s
methods, which take the manager lock briefly (``submit`` not even that) and wake the loop through a
socket pair, so results keep arriving and workers stay busy while the user's code is busy elsewhere.

The loop only moves bytes and events: it accepts, wraps TLS, reads, writes and runs the timers
(handshake deadlines, keepalives). What each decoded protocol event means for the manager is decided
by the table of event type to handler in ``handlers.py`` and by ``core.py``.

One loop iteration: wait for sockets (at most a second) -> take in submitted tasks -> in batches
of ready sockets: accept / read / write, hand each protocol event to its handler, dispatch ready
tasks, flush the outboxes of the peers given something to send -> once a second, keepalives. A
turn costs what happens in it, not the number of workers (docs/manager.md, "Scale").
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable

from coffea_wq.manager.core import ManagerCore
from coffea_wq.manager.handlers import EventHandlers
from coffea_wq.manager.listener import bind_listener, raise_open_files_limit
from coffea_wq.manager.logs import ManagerLogs
from coffea_wq.manager.queue import TaskQueue
from coffea_wq.manager.task import TaskSpec
from coffea_wq.manager.tls import HandshakeStep, advance_handshake, explain_server_handshake_failure
from coffea_wq.manager.workers import Peer, PeerKind, now_us
from coffea_wq.protocol import messages as msg
from coffea_wq.protocol.codes import TaskState
from coffea_wq.protocol.manager_side import (
    MAX_TASK_STDOUT_STORAGE,
    TLS_HANDSHAKE_RECORD,
    WorkerConnection,
)

log = logging.getLogger("coffea_wq.manager")

RECV_SIZE = 1 << 20
TICK = 1.0
ACCEPTS_PER_TURN = 256
EVENTS_PER_BATCH = 256  # ready sockets handled between two dispatch-and-flush steps
TAKE_IN_DELAY = 0.05  # s: how long the loop leaves submitted tasks while more keep coming
TAKE_IN_POLL = 0.005  # s: how often it looks meanwhile


class ManagerLock:
    """The manager lock (re-entrant). Whoever takes it first takes in the tasks ``submit`` handed
    over without it, so every holder sees every submitted task."""

    def __init__(self, lock: threading.RLock, take_in: Callable[[], None]) -> None:
        self._lock = lock
        self._take_in = take_in

    def __enter__(self) -> ManagerLock:
        self._lock.acquire()
        try:
            self._take_in()
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._lock.release()


class ManagerServer:
    """Listens for workers and runs the task queue in a background thread.

    Args:
        port: an int, ``[low, high]``, ``"low-high"`` (first free port), or 0 (any).
        host: the address to listen on ("" for all interfaces).
        logs: the transactions/stats logs adapter.
        ssl_context: a TLS server context; every connection must then start with a TLS handshake.
    """

    def __init__(self, port=0, host: str = "", logs: ManagerLogs | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        raw_lock = threading.RLock()
        # submit() never waits for the lock: tasks wait here until its next holder takes them in
        self._submitted: deque[TaskSpec] = deque()
        self.lock = ManagerLock(raw_lock, self._take_in_submitted)
        self._raw_lock = raw_lock  # the loop's own turns: it takes submitted tasks in when it chooses
        self.retrieved_cond = threading.Condition(raw_lock)
        self._submits = 0  # how many submit() calls so far
        self._submits_seen = 0  # ... when the loop last looked
        self._last_take_in = 0.0
        self.logs = logs or ManagerLogs()
        self.queue = TaskQueue()
        self._id_lock = threading.Lock()  # task ids are given out by submit(), on the caller's thread
        self.core = ManagerCore(self.queue, self.logs, self._notify_retrieved)
        self.core.planner.run_in_loop = self.call  # a file's digest is computed in a thread (manager/peers.py)
        raise_open_files_limit()
        self.listener = bind_listener(port, host)
        self.port: int = self.listener.getsockname()[1]
        self.host = host
        self.ssl_context = ssl_context
        self.password: bytes | None = None
        self.keepalive_interval = 120.0
        self.keepalive_timeout = 30.0
        self.max_task_output = MAX_TASK_STDOUT_STORAGE  # bytes of one task's output kept
        self.on_tick: Callable[[], None] | None = None
        self.on_workers_changed: Callable[[], None] | None = None
        # what to do with each event: handshakes, the block list, status pages, results (handlers.py)
        self.handlers = EventHandlers(self.core, self.logs, self.port, self._close_peer, self._workers_changed)
        self.time_when_started = now_us()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._wake_pending = False
        self._next_key = 1
        self._to_flush: set[Peer] = set()  # peers given something to send (or to close) this turn
        self._stopping = False
        self._warned_open_files = False
        self._selector.register(self.listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._run, name=f"coffea-wq-manager-{self.port}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ user-thread API
    def submit(self, task: TaskSpec) -> int:
        """Queue ``task``; returns its id at once. The task is handed over without the manager lock
        (the loop may hold it for a whole turn): the lock's next holder takes it in first."""
        with self._id_lock:
            task_id = self.queue.next_task_id()
        task.task_id = task_id
        task.time_when_submitted = now_us()
        self._submitted.append(task)
        self._submits += 1
        self.wake()
        return task_id

    def _take_in_submitted(self) -> None:
        """Move submitted tasks into the queue, in submission order (with the manager lock held)."""
        submitted = self._submitted
        while submitted:
            task = submitted.popleft()
            self.queue.add(task)
            self.logs.task_waiting(task)

    def _loop_takes_in(self) -> None:
        """The loop's turn: while the user's thread is still submitting, leave its tasks for a while
        (at most TAKE_IN_DELAY) so that dispatching them does not slow the submitting down (CCTools'
        manager dispatches nothing before ``wait``); then take them all in."""
        if not self._submitted:
            return
        now = time.monotonic()
        streaming = self._submits != self._submits_seen
        self._submits_seen = self._submits
        if streaming and now - self._last_take_in < TAKE_IN_DELAY:
            return
        self._last_take_in = now
        self._take_in_submitted()

    def ensure_min_task_id(self, minimum: int) -> None:
        with self._id_lock:
            self.queue.ensure_min_task_id(minimum)

    def wait(self, timeout: float | None, tag: str | None = None) -> TaskSpec | None:
        """A retrieved task (with ``tag``, if given), or None after ``timeout`` s (None or < 0: wait
        while tasks remain)."""
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
        with self.retrieved_cond:
            while True:
                self._take_in_submitted()
                task = self.queue.pop_retrieved(tag)
                if task is not None:
                    self.logs.task_done(task, "DONE")
                    return task
                if self.queue.outstanding == 0 or self._stopping:
                    return None
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self.retrieved_cond.wait(remaining if remaining is not None else TICK)

    def set_password(self, password: bytes | None) -> None:
        """Require ``password`` from peers; those connected before, which did not prove it, are dropped
        (the queue listens from its creation, before the caller can set a password)."""
        with self.lock:
            self.password = password
            for peer in list(self.core.peers.values()):
                if peer.conn_password != password:
                    log.info("dropping %s (%s): it connected before the password was set", peer.hostname,
                             peer.address)
                    self._close_peer(peer, "EXPLICIT")
        self.wake()

    def call(self, function: Callable[[], object]) -> object:
        """Run ``function`` with the manager lock held, then wake the loop to act on it."""
        with self.lock:
            result = function()
            self.core.rescan_workers()  # it may have changed what a worker can take (draining, ...)
        self.wake()
        return result

    def wake(self) -> None:
        if self._wake_pending:
            return
        self._wake_pending = True
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass

    def stop(self, release_workers: bool = True, timeout: float = 5.0) -> None:
        """Release workers (like CCTools' ``work_queue_delete``), flush, close everything."""
        if self._stopping:
            return
        with self.lock:
            if release_workers:
                released = self.core.release_workers(lambda peer: peer.kind is PeerKind.WORKER)
                self.queue.counters.workers_released += released
        self.wake()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if not any(p.outbox for p in self.core.peers.values()):
                    break
            time.sleep(0.01)
        self._stopping = True
        self.wake()
        self._thread.join(timeout)
        with self.lock:
            for peer in list(self.core.peers.values()):
                self._close_peer(peer, peer.disconnect_reason if peer.closing else "EXPLICIT")
            self.retrieved_cond.notify_all()
        for sock in (self.listener, self._wake_r, self._wake_w):
            sock.close()
        self._selector.close()
        self.logs.close()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # ------------------------------------------------------------------ loop
    def _notify_retrieved(self) -> None:
        self.retrieved_cond.notify_all()

    def _run(self) -> None:
        next_tick = time.monotonic() + TICK
        while not self._stopping:
            timeout = max(0.0, next_tick - time.monotonic())
            if self._submitted:
                timeout = min(timeout, TAKE_IN_POLL)  # look again soon: the submitting may have stopped
            try:
                ready = self._selector.select(timeout)
            except OSError:
                ready = []
            # a busy turn (thousands of workers ready at once) goes in batches: after each, tasks are
            # dispatched, replies written, new connections (status queries) answered, and the lock let go
            for first in range(0, max(1, len(ready)), EVENTS_PER_BATCH):
                if first:
                    time.sleep(0)  # let a thread waiting for the lock (wait(), the API) have it
                with self._raw_lock:
                    try:
                        self._loop_takes_in()
                        self._handle_ready(ready[first:first + EVENTS_PER_BATCH])
                        if first + EVENTS_PER_BATCH < len(ready):
                            self._accept()
                        self._dispatch()
                        if first + EVENTS_PER_BATCH >= len(ready) and time.monotonic() >= next_tick:
                            next_tick = time.monotonic() + TICK
                            self._periodic()
                        self._flush_all()
                    except Exception:  # the loop must survive anything one peer does
                        log.exception("manager loop error")

    def _handle_ready(self, ready) -> None:
        for key, mask in ready:
            if key.data == "wake":
                self._drain_wake()
            elif key.data is None:
                self._accept()
            else:
                peer = self.core.peers.get(key.data)
                if peer is None:
                    continue
                if peer.tls_handshaking:
                    self._advance_tls(peer)
                    continue
                try:
                    if mask & selectors.EVENT_READ:
                        self._read(peer)
                    if mask & selectors.EVENT_WRITE and peer.key in self.core.peers:
                        self._write(peer)
                        self._to_flush.add(peer)  # its write interest may change
                except Exception:  # a bug triggered by one peer: drop that peer, keep serving the others
                    log.exception("worker %s (%s): internal error while serving it; disconnecting it",
                                  peer.hostname, peer.address)
                    self._close_peer(peer, "FAILURE")

    def _drain_wake(self) -> None:
        self._wake_pending = False
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def _accept(self) -> None:
        for _ in range(ACCEPTS_PER_TURN):
            try:
                sock, address = self.listener.accept()
            except BlockingIOError:
                return
            except OSError as error:
                if error.errno in (errno.EMFILE, errno.ENFILE) and not self._warned_open_files:
                    self._warned_open_files = True
                    log.warning("cannot accept more connections: %s (%d peers connected); raise the open-files "
                                "limit (ulimit -n)", error, len(self.core.peers))
                return
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            key = self._next_key
            self._next_key += 1
            conn = WorkerConnection(self.password, max_result_output=self.max_task_output)
            peer = Peer(key, sock, conn, f"{address[0]}:{address[1]}", flush_set=self._to_flush)
            peer.conn_password = self.password
            peer.handshake_deadline = time.monotonic() + self.keepalive_timeout
            self.core.peers[key] = peer
            self._selector.register(sock, selectors.EVENT_READ, key)
            log.debug("connection from %s", peer.address)
            if self.ssl_context is not None:
                peer.tls_handshaking = True  # wrapped once its first bytes show a TLS client
            else:
                peer.send(peer.conn.start())
                self._read(peer)  # a status client's request is often here already: answer it this turn

    def _advance_tls(self, peer: Peer) -> None:
        """One step of a peer's TLS handshake (never blocks); the protocol starts once it is done."""
        if not isinstance(peer.sock, ssl.SSLSocket) and not self._start_tls(peer):
            return
        try:
            step = advance_handshake(peer.sock)
        except (ssl.SSLError, OSError) as error:
            log.warning("connection from %s failed: %s", peer.address, explain_server_handshake_failure(error))
            self._close_peer(peer, "FAILURE")
            return
        peer.tls_want_write = step is HandshakeStep.WANT_WRITE
        if step is HandshakeStep.DONE:
            peer.tls_handshaking = False
            log.debug("TLS connection from %s (%s)", peer.address, peer.sock.version())
            peer.send(peer.conn.start())
        self._update_interest(peer)

    def _start_tls(self, peer: Peer) -> bool:
        """Wrap a new connection in TLS once its first bytes arrive, if they open a TLS handshake.

        A plaintext worker (its handshake or password opening) is refused and recorded as a TLS
        mismatch; anything else that is not TLS (a status query, a port scan) is only closed.
        """
        try:
            first = peer.sock.recv(16, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            first = b""
        if first[:1] == bytes([TLS_HANDSHAKE_RECORD]):
            self._selector.unregister(peer.sock)
            peer.sock = self.ssl_context.wrap_socket(peer.sock, server_side=True, do_handshake_on_connect=False)
            self._selector.register(peer.sock, selectors.EVENT_READ, peer.key)
            peer.interest = selectors.EVENT_READ
            return True
        if first.startswith((b"workqueue ", b"auth ")):
            why = "it does not speak TLS (a worker started without --ssl?) but this manager requires TLS; " \
                  "start workers with --ssl"
            log.warning("refused connection from %s: %s", peer.address, why)
            self.handlers.refusals.record(peer.address, "tls", why)
        elif first:
            log.info("connection from %s is not TLS (it sent %r); closed", peer.address, first)
        self._close_peer(peer, "FAILURE")
        return False

    def _read(self, peer: Peer) -> None:
        data = self._receive(peer)
        if data is None:
            return
        peer.last_received = time.monotonic()
        peer.check_sent_at = None
        peer.conn.receive_data(data)
        reply = peer.conn.data_to_send()
        if reply:
            peer.send(reply)
        self._process_events(peer)
        self.core.consider_worker(peer)  # what it said may have freed room for a task

    def _receive(self, peer: Peer) -> bytes | None:
        """What the peer sent (b"" at its end), or None when nothing is there yet."""
        try:
            data = peer.sock.recv(RECV_SIZE)
            # TLS hands records out one by one: what is decrypted already never wakes the selector
            while isinstance(peer.sock, ssl.SSLSocket) and data and peer.sock.pending() and len(data) < RECV_SIZE:
                data += peer.sock.recv(RECV_SIZE - len(data))
        except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return None
        except OSError as error:
            data = b""
            log.info("worker %s: %s", peer.address, error)
        return data

    def _process_events(self, peer: Peer) -> None:
        core = self.core
        while True:
            event = peer.conn.next_event()
            if event is msg.NEED_DATA or peer.key not in core.peers:
                return
            try:
                self.handlers.handle(peer, event)
            except (ValueError, OSError) as error:
                log.warning("worker %s (%s): %s; disconnecting it", peer.hostname, peer.address, error)
                self._close_peer(peer, "FAILURE")
                return

    # ------------------------------------------------------------------ periodic work
    def _dispatch(self) -> None:
        self.core.dispatch_ready_tasks()

    def _periodic(self) -> None:
        now = time.monotonic()
        self.core.rescan_workers()  # a safety net: no worker waits more than a second to be looked at
        for peer in list(self.core.peers.values()):
            if peer.outbox:
                self._to_flush.add(peer)  # a safety net for bytes queued without Peer.send
            if peer.kind is not PeerKind.WORKER:
                if now > peer.handshake_deadline and not peer.closing:
                    self._close_peer(peer, "UNKNOWN")
                continue
            if peer.check_sent_at is not None:
                if now - peer.check_sent_at > self.keepalive_timeout:
                    log.warning("worker %s (%s) did not answer a keepalive; removing it", peer.hostname, peer.address)
                    self._close_peer(peer, "FAILURE")
            elif now - peer.last_received > self.keepalive_interval and not peer.closing:
                peer.send(peer.conn.send(msg.Check()))
                peer.check_sent_at = now
        if self.on_tick is not None:
            try:
                self.on_tick()
            except Exception:
                log.exception("periodic hook failed")

    # ------------------------------------------------------------------ writing and closing
    def _flush_all(self) -> None:
        """Write what this turn gave peers to send; only those peers, never every connection."""
        while self._to_flush:
            peers = list(self._to_flush)
            self._to_flush.clear()
            for peer in peers:
                if peer.key not in self.core.peers:
                    continue
                if peer.outbox:
                    self._write(peer)
                elif peer.closing:
                    self._close_peer(peer, peer.disconnect_reason)
                self._update_interest(peer)

    def _write(self, peer: Peer) -> None:
        while peer.outbox:
            data = peer.outbox.next_bytes()
            if not data:
                break
            try:
                sent = peer.sock.send(data)
            except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return
            except OSError as error:
                log.info("worker %s (%s): send failed: %s", peer.hostname, peer.address, error)
                self._close_peer(peer, "FAILURE")
                return
            peer.outbox.consumed(sent)
            if sent < len(data):
                return
        if peer.closing and not peer.outbox:
            self._close_peer(peer, peer.disconnect_reason)

    def _update_interest(self, peer: Peer) -> None:
        if peer.key not in self.core.peers:
            return
        wants_write = peer.tls_want_write if peer.tls_handshaking else bool(peer.outbox)
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if wants_write else 0)
        if events == peer.interest:
            return
        try:
            self._selector.modify(peer.sock, events, peer.key)
            peer.interest = events
        except (KeyError, ValueError, OSError):
            pass

    def _close_peer(self, peer: Peer, reason: str) -> None:
        if peer.key not in self.core.peers:
            return
        try:
            self._selector.unregister(peer.sock)
        except (KeyError, ValueError, OSError):
            pass
        try:
            peer.sock.close()
        except OSError:
            pass
        self.core.remove_worker(peer, reason)
        if peer.kind is PeerKind.WORKER:
            self._workers_changed()

    def _workers_changed(self) -> None:
        if self.on_workers_changed is not None:
            try:
                self.on_workers_changed()
            except Exception:
                log.exception("workers-changed hook failed")

    # ------------------------------------------------------------------ counts for stats
    def running_tasks(self) -> int:
        return sum(1 for p in self.core.peers.values() for t in p.tasks.values() if t.state is TaskState.RUNNING)

