"""What the manager does with each event a peer's connection hands out: a table of event type to handler.

The I/O loop (``server.py``) reads bytes, feeds them to the peer's ``WorkerConnection`` and hands
each event it decodes to :meth:`EventHandlers.handle`, which looks the event's type up in
``EVENT_HANDLERS`` (at the end of this module). Handshakes, the block list, resource rows, status
pages and refusals are decided here; tasks and results are ``ManagerCore``'s (``core.py``). A handler
that must drop its peer calls the loop's ``close_peer``, which unregisters and closes the socket and
requeues the peer's tasks. A handler raising ``ValueError`` or ``OSError`` gets its peer dropped by
the loop.

Everything here runs on the manager's loop thread, with the manager lock held.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from coffea_wq.manager.core import ManagerCore
from coffea_wq.manager.logs import ManagerLogs
from coffea_wq.manager.refusals import RefusalLog
from coffea_wq.manager.workers import Peer, PeerKind, now_us
from coffea_wq.protocol import messages as msg
from coffea_wq.protocol.manager_side import STATUS_REQUESTS
from coffea_wq.protocol.peer_messages import PEER_PORT_INFO

log = logging.getLogger("coffea_wq.manager")


class EventHandlers:
    """The manager's answers to peer events, and the state they decide with.

    Args:
        core: the tasks, workers and the rules between them.
        logs: the transactions/stats logs adapter.
        port: the manager's port (named on the status page).
        close_peer: the loop's way to drop a peer now, with a disconnect reason.
        workers_changed: called when a worker joins.
    """

    def __init__(self, core: ManagerCore, logs: ManagerLogs, port: int,
                 close_peer: Callable[[Peer, str], None], workers_changed: Callable[[], None]) -> None:
        self.core = core
        self.logs = logs
        self.port = port
        self.close_peer = close_peer
        self.workers_changed = workers_changed
        self.refusals = RefusalLog()
        self.project: str | None = None
        self.status_provider: Callable[[str], object] | None = None
        self.blocked_hosts: dict[str, float] = {}  # hostname -> unblock time (monotonic; inf = never)

    def handle(self, peer: Peer, event: msg.ManagerEvent) -> None:
        """Hand one event to its handler (``EVENT_HANDLERS``, at the end of this module)."""
        EVENT_HANDLERS[type(event)](self, peer, event)

    # ------------------------------------------------------------------ workers joining and leaving
    def on_handshake(self, peer: Peer, event: msg.Handshake) -> None:
        if self.is_blocked(event.hostname):
            log.info("worker %s (%s) is on the block list; disconnecting it", event.hostname, peer.address)
            self.close_peer(peer, "UNKNOWN")
            return
        peer.kind = PeerKind.WORKER
        peer.hostname, peer.os, peer.arch, peer.version = event.hostname, event.os, event.arch, event.version
        self.core.queue.counters.workers_joined += 1
        log.info("worker %s (%s) connected", event.hostname, peer.address)
        self.workers_changed()

    def on_worker_id(self, peer: Peer, event: msg.WorkerIdentified) -> None:
        peer.worker_id = event.worker_id
        self.logs.worker_connection(peer)

    def on_resource(self, peer: Peer, event: msg.ResourceReport) -> None:
        row = peer.resources.get(event.name)
        if row is not None:
            row.total, row.smallest, row.largest = event.total, event.smallest, event.largest
            self.core.forget_largest_worker()

    def on_results_available(self, peer: Peer, _event: msg.ResultsAvailable) -> None:
        peer.results_available = True
        self.core.request_results(peer)

    def on_failed(self, peer: Peer, event: msg.ConnectionFailed) -> None:
        if event.refusal:
            self.refusals.record(peer.address, event.refusal, event.reason)
            log.warning("refused connection from %s: %s", peer.address, event.reason)
        self.on_connection_failed(peer, event.reason)

    def is_blocked(self, hostname: str) -> bool:
        until = self.blocked_hosts.get(hostname)
        if until is None:
            return False
        if until < time.monotonic():
            del self.blocked_hosts[hostname]
            return False
        return True

    def on_info(self, peer: Peer, event: msg.Info) -> None:
        if event.field == "worker-end-time":
            try:
                peer.end_time = max(0.0, float(event.value))
            except ValueError:
                peer.end_time = 0.0
            self.core.forget_largest_worker()
        elif event.field == "end_of_resource_update":
            self.logs.worker_resources(peer)
        elif event.field == PEER_PORT_INFO:
            # a coffea-wq worker serves its cache to others there (manager/peers.py)
            port = event.value.strip()
            peer.peer_port = int(port) if port.isdigit() and 0 < int(port) < 65536 else 0
        elif event.field == "idle-disconnecting":
            log.info("worker %s (%s) idled out", peer.hostname, peer.address)
            self.close_peer(peer, "IDLE_OUT")

    def on_connection_failed(self, peer: Peer, reason: str) -> None:
        if peer.closing or reason == "peer closed the connection":
            level = logging.INFO
        else:
            level = logging.WARNING
        log.log(level, "worker %s (%s) disconnected: %s", peer.hostname, peer.address, reason)
        self.close_peer(peer, peer.disconnect_reason if peer.closing else "FAILURE")

    # ------------------------------------------------------------------ status clients
    def answer_status(self, peer: Peer, kind: str) -> None:
        peer.kind = PeerKind.STATUS
        body = self.status_json(kind)
        if body is None:
            self.close_peer(peer, "STATUS_WORKER")
            return
        peer.send(body.encode())
        peer.closing = True
        peer.disconnect_reason = "STATUS_WORKER"

    def answer_http(self, peer: Peer, path: str) -> None:
        peer.kind = PeerKind.STATUS
        head = "HTTP/1.1 200 OK\nConnection: close\n"
        if path in ("/", ""):
            links = "".join(f'<li><a href="/{k}">/{k}</a>\n' for k in STATUS_REQUESTS if k != "wable_status")
            page = f"<html><body><h1>coffea-wq manager on port {self.port}</h1><ul>\n{links}</ul></body></html>\n"
            peer.send((head + "Content-type: text/html\n\n" + page).encode())
        else:
            body = self.status_json(path.strip("/"))
            if body is None:
                peer.send(b"HTTP/1.1 404 Not Found\nConnection: close\nContent-type: text/plain\n\nnot found\n")
            else:
                peer.send((head + "Access-Control-Allow-Origin: *\nContent-type: text/plain\n\n" + body).encode())
        peer.closing = True
        peer.disconnect_reason = "STATUS_WORKER"

    def status_json(self, kind: str) -> str | None:
        if self.status_provider is None or kind not in STATUS_REQUESTS:
            return None
        started = now_us()
        body = self.status_provider(kind)
        self.core.queue.counters.time_status_msgs += now_us() - started
        return body if isinstance(body, str) else None


def _ignore(_handlers: EventHandlers, _peer: Peer, _event: object) -> None:
    """``alive`` only proves the peer lives (any bytes do); watched-file updates are not kept."""


EVENT_HANDLERS: dict[type, Callable[[EventHandlers, Peer, object], None]] = {
    # what the worker's connection hands out -> what the manager does with it
    msg.ResultStart: lambda handlers, peer, event: handlers.core.handle_result_start(peer, event),
    msg.ResultOutput: lambda handlers, peer, event: handlers.core.handle_result_output(peer, event),
    msg.FileReply: lambda handlers, peer, event: handlers.core.handle_get_event(peer, event),
    msg.FileData: lambda handlers, peer, event: handlers.core.handle_get_event(peer, event),
    msg.DirectoryStart: lambda handlers, peer, event: handlers.core.handle_get_event(peer, event),
    msg.FileMissing: lambda handlers, peer, event: handlers.core.handle_get_event(peer, event),
    msg.ReplyEnd: lambda handlers, peer, event: handlers.core.handle_reply_end(peer, event),
    msg.ResultsAvailable: EventHandlers.on_results_available,
    msg.Alive: _ignore,
    msg.WatchUpdate: _ignore,
    msg.Info: EventHandlers.on_info,
    msg.ResourceReport: EventHandlers.on_resource,
    msg.ResourceTag: lambda handlers, peer, event: setattr(peer, "tag", event.tag),
    msg.Handshake: EventHandlers.on_handshake,
    msg.WorkerIdentified: EventHandlers.on_worker_id,
    msg.Feature: lambda handlers, peer, event: peer.features.add(event.name),
    msg.StatusRequest: lambda handlers, peer, event: handlers.answer_status(peer, event.kind),
    msg.HttpRequest: lambda handlers, peer, event: handlers.answer_http(peer, event.path),
    msg.NameRequest: lambda handlers, peer, event: peer.send(peer.conn.send(msg.ProjectName(handlers.project or ""))),
    msg.AuthSucceeded: lambda handlers, peer, event: log.debug("peer %s authenticated", peer.address),
    msg.ConnectionClosed: lambda handlers, peer, event: handlers.on_connection_failed(peer, "peer closed the connection"),
    msg.ConnectionFailed: EventHandlers.on_failed,
    msg.CacheUpdate: lambda handlers, peer, event: handlers.core.planner.on_cache_update(peer, event),
    msg.CacheInvalid: lambda handlers, peer, event: handlers.core.planner.on_cache_invalid(peer, event),
}
