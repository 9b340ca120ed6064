"""Serving this worker's cache to other workers, and fetching from them (docs/protocol.md,
"Our extension: peer transfers"; docs/worker.md, "Peer transfers").

The serving side, :class:`CacheServer`, listens on its own port (advertised to our manager as
``info coffea-wq-peer-port PORT``) and answers one request per connection, each in a thread:

1. TLS first when this worker uses ``--ssl`` (a self-signed certificate made at start; the password
   proves who is who, as with the manager);
2. the password exchange of the manager's port (``auth.PasswordAuth``) when the worker has one: a peer
   that cannot prove the run's password gets nothing;
3. ``peer-fetch NAME`` -> ``file NAME SIZE`` + SIZE bytes, or ``missing NAME ERRNO``; then close. A file
   still arriving here (from the manager or another peer) is passed on as it grows, so a file spreads
   down a tree of workers in about the time of one transfer per level of fan-out, not per copy.

The fetching side, :func:`fetch_from_peer`, runs the same steps as a client, writes the bytes to a
hidden temporary name, and moves the file into the cache only when its size and SHA-256 are those
the manager announced. Any failure is a reason string that names the peer; the manager then sends
the file itself. :class:`PeerFetches` runs fetches in threads so the session's loop never waits.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import queue
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import BinaryIO

from coffea_wq.protocol.auth import AuthState, PasswordAuth
from coffea_wq.protocol.peer_messages import PeerGet
from coffea_wq.worker.cache import CacheError, FileCache, Growth, IncomingFile

log = logging.getLogger(__name__)

FETCH_LINE = "peer-fetch"
PEER_TIMEOUT = 60.0  # seconds without progress before a peer counts as gone (a host that vanished)
MAX_LINE = 4096
CHUNK = 1 << 20
APPEAR_POLL = 0.02  # seconds between looks for a file the manager said is on its way here
GROW_POLL = 0.002  # seconds between looks at a file that grows while it is passed on


class PeerError(Exception):
    """A peer transfer failed; the message names the peer and says why."""


class _Lines:
    """Lines and exact byte counts from a blocking socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def line(self, who: str) -> str:
        while b"\n" not in self.buffer:
            if len(self.buffer) > MAX_LINE:
                raise PeerError(f"{who} sent a line over {MAX_LINE} bytes")
            data = self.sock.recv(CHUNK)
            if not data:
                raise PeerError(f"{who} closed the connection")
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode("latin-1").replace("\r", "")

    def chunks(self, count: int, who: str):
        if self.buffer:
            head, self.buffer = self.buffer[:count], self.buffer[count:]
            count -= len(head)
            yield head
        while count > 0:
            data = self.sock.recv(min(CHUNK, count))
            if not data:
                raise PeerError(f"{who} closed the connection with {count} bytes still to come")
            count -= len(data)
            yield data


def authenticate(sock: socket.socket, lines: _Lines, password: bytes, who: str) -> None:
    """The manager's password exchange, on a blocking socket; PeerError if either side refuses."""
    auth = PasswordAuth(password)
    sock.sendall(auth.start())
    while not auth.done:
        reply = auth.receive_line(lines.line(who))
        if reply:
            sock.sendall(reply)
    if auth.state is not AuthState.SUCCEEDED:
        raise PeerError(f"{who} failed the password exchange: {auth.failure_reason}")


# ---------------------------------------------------------------------------- serving


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host`` ("" = every address, IPv6 too where the host has it)."""
    if not host and socket.has_dualstack_ipv6():  # the manager may see this worker by either family
        try:
            return socket.create_server(("", port), family=socket.AF_INET6, backlog=64, dualstack_ipv6=True)
        except OSError:
            pass  # IPv6 switched off here
    return socket.create_server((host, port), backlog=64)


class CacheServer:
    """Serves files of the current session's cache to peers that prove the password.

    ``cache`` is set by each manager session and cleared at its end (nothing is served between two).
    """

    def __init__(self, password: bytes | None, tls: ssl.SSLContext | None = None, host: str = "",
                 port: int = 0, timeout: float = PEER_TIMEOUT) -> None:
        self.password = password
        self.tls = tls
        self.timeout = timeout
        self.cache: FileCache | None = None
        self.served = 0
        self._listener = _listen(host, port)
        self.port: int = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept_loop, name=f"cache-server-{self.port}", daemon=True).start()

    def close(self) -> None:
        self._closed = True
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                sock, address = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve_one, args=(sock, f"{address[0]}:{address[1]}"),
                             name="cache-server-peer", daemon=True).start()

    def _serve_one(self, sock: socket.socket, who: str) -> None:
        who = f"peer {who}"
        try:
            sock.settimeout(self.timeout)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_side=True)
            lines = _Lines(sock)
            if self.password is not None:
                authenticate(sock, lines, self.password, who)
            keyword, _, name = lines.line(who).partition(" ")
            if keyword != FETCH_LINE or not name:
                raise PeerError(f"{who} sent {keyword[:40]!r}, not a {FETCH_LINE} request")
            self._send_file(sock, name)
        except (PeerError, OSError, ssl.SSLError) as error:
            log.warning("cache server: refused or lost %s: %s", who, error)
        finally:
            sock.close()

    def _send_file(self, sock: socket.socket, name: str) -> None:
        """``file NAME SIZE`` + the bytes: of the cached file, or of one still arriving, passed on as it
        grows; a name not there yet is waited for (the manager names a source as soon as it sent the file)."""
        deadline = time.monotonic() + self.timeout
        while True:
            opened = self._open(name)
            if opened is not None:
                break
            if time.monotonic() > deadline:
                sock.sendall(f"missing {name} {errno.ENOENT}\n".encode())
                return
            time.sleep(APPEAR_POLL)
        handle, size, incoming = opened
        with handle:
            sock.sendall(f"file {name} {size}\n".encode())
            if incoming is None and not isinstance(sock, ssl.SSLSocket):
                sock.sendfile(handle)
            else:
                self._stream(sock, handle, size, incoming, name)
        self.served += 1
        log.info("cache server: sent %s (%d bytes)%s", name, size, " while it arrived" if incoming else "")

    def _open(self, name: str) -> tuple[BinaryIO, int, IncomingFile | None] | None:
        cache = self.cache
        if cache is None or "/" in name:
            return None
        incoming = cache.growing.get(name)
        try:
            if incoming is not None:
                return open(incoming.temp_path, "rb"), incoming.size, incoming  # noqa: SIM115
            path = cache.path_of(name)
            if path.is_file() and not path.is_symlink():
                handle = open(path, "rb")  # noqa: SIM115
                return handle, os.fstat(handle.fileno()).st_size, None
        except (OSError, CacheError):
            return None  # renamed into place (or gone) just now: look again
        return None

    def _stream(self, sock: socket.socket, handle: BinaryIO, size: int, incoming: IncomingFile | None,
                name: str) -> None:
        sent = 0
        idle_since = time.monotonic()
        while sent < size:
            ready = size if incoming is None or incoming.state is Growth.DONE else incoming.written
            if incoming is not None and incoming.state is Growth.FAILED:
                raise PeerError(f"{name} failed to arrive here while being passed on")
            if ready <= sent:
                if time.monotonic() - idle_since > self.timeout:
                    raise PeerError(f"{name} stopped arriving here while being passed on")
                time.sleep(GROW_POLL)
                continue
            data = handle.read(min(CHUNK, ready - sent))
            if not data:
                raise PeerError(f"{name} is shorter than announced")
            sock.sendall(data)
            sent += len(data)
            idle_since = time.monotonic()


# ---------------------------------------------------------------------------- fetching


def fetch_from_peer(cache: FileCache, request: PeerGet, password: bytes | None,
                    tls: ssl.SSLContext | None = None, timeout: float = PEER_TIMEOUT) -> None:
    """Put ``request.name`` into ``cache`` from the peer it names; PeerError (naming the peer) if not.

    The file arrives like a ``put`` (``FileCache.begin_file``), so this worker's own cache server can pass
    it on to others before it is complete; it is moved into place only if its SHA-256 is the manager's.
    """
    who = f"peer {request.host}:{request.port}"
    try:
        sock = socket.create_connection((request.host, request.port), timeout=timeout)
    except OSError as error:
        raise PeerError(f"cannot connect to {who}: {error}") from None
    incoming: IncomingFile | None = None
    try:
        if tls is not None:
            sock = tls.wrap_socket(sock)
        lines = _Lines(sock)
        if password is not None:
            authenticate(sock, lines, password, who)
        sock.sendall(f"{FETCH_LINE} {request.name}\n".encode())
        reply = lines.line(who).split()
        if len(reply) != 3 or reply[0] != "file" or reply[1] != request.name:
            raise PeerError(f"{who} does not have {request.name} (it answered {' '.join(reply)[:80]!r})")
        if reply[2] != str(request.size):
            raise PeerError(f"{who} offers {reply[2]} bytes of {request.name}, not the {request.size} expected")
        incoming = cache.begin_file(request.name, request.size, request.mode)
        digest = hashlib.sha256()
        for data in lines.chunks(request.size, who):
            digest.update(data)
            incoming.write(data)
        if digest.hexdigest() != request.digest:
            raise PeerError(f"{who} sent corrupt bytes for {request.name} (SHA-256 {digest.hexdigest()[:16]}..., "
                            f"expected {request.digest[:16]}...)")
        incoming.finish()
        incoming = None
    except (OSError, ssl.SSLError) as error:
        raise PeerError(f"transfer of {request.name} from {who} failed: {error}") from None
    finally:
        sock.close()
        if incoming is not None:
            incoming.abort()


@dataclass(frozen=True)
class FetchOutcome:
    """How one ``peer-get`` ended: ``error`` is empty on success."""

    request: PeerGet
    error: str = ""


class PeerFetches:
    """``peer-get`` requests running in threads; the session collects their outcomes with ``done``."""

    def __init__(self, cache: FileCache, password: bytes | None, tls: ssl.SSLContext | None,
                 timeout: float = PEER_TIMEOUT) -> None:
        self.cache = cache
        self.password = password
        self.tls = tls
        self.timeout = timeout
        self.running = 0
        self.closed = False  # the session ended: a fetch finishing later must not fill the next one's cache
        self._outcomes: queue.SimpleQueue[FetchOutcome] = queue.SimpleQueue()

    def start(self, request: PeerGet) -> None:
        self.running += 1
        threading.Thread(target=self._run, args=(request,), name=f"peer-get-{request.name[:40]}",
                         daemon=True).start()

    def _run(self, request: PeerGet) -> None:
        try:
            fetch_from_peer(self.cache, request, self.password, self.tls, self.timeout)
            if self.closed:
                self.cache.remove(request.name)
                return
            self._outcomes.put(FetchOutcome(request))
        except (PeerError, CacheError) as error:
            self._outcomes.put(FetchOutcome(request, str(error)))
        except Exception as error:  # a bug must become a failed fetch, which the manager recovers from
            log.exception("peer-get of %s failed", request.name)
            self._outcomes.put(FetchOutcome(request, f"internal error: {error}"))

    def close(self) -> None:
        self.closed = True

    def done(self) -> list[FetchOutcome]:
        outcomes = []
        while True:
            try:
                outcomes.append(self._outcomes.get_nowait())
            except queue.Empty:
                break
        self.running -= len(outcomes)
        return outcomes
