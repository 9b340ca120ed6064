"""Serving this worker's cache to other workers, and fetching from them (docs/protocol.md,
"Our extension: peer transfers"; docs/worker.md, "Peer transfers").

The serving side, :class:`CacheServer`, listens on its own port (advertised to our manager as
``info coffea-wq-peer-port PORT``) and answers one request per connection, each in a thread:

1. TLS first when this worker uses ``--ssl`` (a self-signed certificate made at start; the password
   proves who is who, as with the manager);
2. the password exchange of the manager's port (``auth.PasswordAuth``) when the worker has one: a peer
   that cannot prove the run's password gets nothing;
3. ``peer-fetch NAME`` -> ``file NAME SIZE`` + SIZE bytes, or ``missing NAME ERRNO``; then close.

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
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

from coffea_wq.protocol.auth import AuthState, PasswordAuth
from coffea_wq.protocol.peer_messages import PeerGet
from coffea_wq.worker.cache import CacheError, FileCache

log = logging.getLogger(__name__)

FETCH_LINE = "peer-fetch"
PEER_TIMEOUT = 60.0  # seconds without progress before a peer counts as gone (a host that vanished)
MAX_LINE = 4096
CHUNK = 1 << 20


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
        self._listener = socket.create_server((host, port), backlog=64)
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
        cache = self.cache
        try:
            if cache is None or "/" in name:
                raise CacheError(f"no cached file {name!r}")
            path = cache.path_of(name)
            handle = open(path, "rb")  # noqa: SIM115 (closed below)
        except (CacheError, OSError) as error:
            code = error.errno if isinstance(error, OSError) and error.errno else errno.ENOENT
            sock.sendall(f"missing {name} {code}\n".encode())
            return
        with handle:
            size = os.fstat(handle.fileno()).st_size
            sock.sendall(f"file {name} {size}\n".encode())
            if isinstance(sock, ssl.SSLSocket):
                while data := handle.read(CHUNK):
                    sock.sendall(data)
            else:
                sock.sendfile(handle)
        self.served += 1
        log.info("cache server: sent %s (%d bytes)", name, size)


# ---------------------------------------------------------------------------- fetching


def fetch_from_peer(cache: FileCache, request: PeerGet, password: bytes | None,
                    tls: ssl.SSLContext | None = None, timeout: float = PEER_TIMEOUT) -> None:
    """Put ``request.name`` into ``cache`` from the peer it names; PeerError (naming the peer) if not."""
    who = f"peer {request.host}:{request.port}"
    target = cache.path_of(request.name)
    try:
        sock = socket.create_connection((request.host, request.port), timeout=timeout)
    except OSError as error:
        raise PeerError(f"cannot connect to {who}: {error}") from None
    temp: Path | None = None
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
        fd, temp_name = tempfile.mkstemp(prefix=".incoming-peer-", dir=target.parent)
        temp = Path(temp_name)
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            for data in lines.chunks(request.size, who):
                digest.update(data)
                out.write(data)
        if digest.hexdigest() != request.digest:
            raise PeerError(f"{who} sent corrupt bytes for {request.name} (SHA-256 {digest.hexdigest()[:16]}..., "
                            f"expected {request.digest[:16]}...)")
        os.chmod(temp, (request.mode | 0o600) & 0o777)
        os.replace(temp, target)
        temp = None
    except (OSError, ssl.SSLError) as error:
        raise PeerError(f"transfer of {request.name} from {who} failed: {error}") from None
    finally:
        sock.close()
        if temp is not None:
            temp.unlink(missing_ok=True)


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
