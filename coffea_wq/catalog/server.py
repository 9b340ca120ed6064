"""A catalog server that CCTools' managers, workers and ``work_queue_status`` can use.

Like CCTools' ``catalog_server`` (docs/catalog.md, "Formats") it listens on one port for UDP updates and
HTTP queries, and on port+1 for updates sent over TCP. Queries: ``/query.json``,
``/query.text``, ``/query/<base64 JX expression>`` (what workers and work_queue_status send),
``/detail/<key>`` and the HTML page at ``/``. Replies use bare ``\\n`` header lines and close the
connection, as the original does.

Threads: one loop accepts connections and reads datagrams; each TCP connection gets a short-lived
thread with a deadline, so a slow client cannot stall updates.
"""

from __future__ import annotations

import base64
import binascii
import getpass
import logging
import os
import selectors
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass

from coffea_wq.catalog.jx import JxError, parse_expression, record_matches
from coffea_wq.catalog.records import RecordTable, UpdateError
from coffea_wq.catalog.render import record_text, records_html, records_json, records_text

log = logging.getLogger(__name__)

VERSION = "8.0.0 coffea-wq"  # what the catalog reports for itself in its own record
CONNECTION_DEADLINE = 10.0
MAX_REQUEST = 64 * 1024
MAX_TCP_UPDATE = 1024 * 1024
MAX_CONNECTIONS = 50  # CCTools' -m default


@dataclass(frozen=True)
class Reply:
    status: int
    content_type: str
    body: str


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}


def _bind_ports(host: str, port: int) -> tuple[socket.socket, socket.socket, socket.socket]:
    """TCP+UDP on one port and TCP on port+1; with port 0, a free pair is searched for."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    last_error: OSError | None = None
    for _ in range(50 if port == 0 else 1):
        sockets: list[socket.socket] = []
        try:
            http_sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(http_sock)
            http_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            http_sock.bind((host, port))
            chosen = http_sock.getsockname()[1]
            udp_sock = socket.socket(family, socket.SOCK_DGRAM)
            sockets.append(udp_sock)
            udp_sock.bind((host, chosen))
            update_sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(update_sock)
            update_sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            update_sock.bind((host, chosen + 1))
            http_sock.listen(64)
            update_sock.listen(64)
            return http_sock, udp_sock, update_sock
        except OSError as exc:
            last_error = exc
            for s in sockets:
                s.close()
    raise OSError(f"catalog cannot listen on {host}:{port} (UDP+TCP) and {host}:{port + 1 if port else 'N+1'} (TCP): "
                  f"{last_error}")  # fmt: skip


class CatalogServer:
    """A running catalog. ``port`` 0 picks a free port (and port+1); see :attr:`port`.

    Args:
        host: address to listen on (``-I``); ``127.0.0.1`` keeps it on loopback.
        port: UDP+HTTP port (``-p``, default 9097); TCP updates go to port+1.
        lifetime: seconds a record lives without updates (``-l``, default 1800).
        history_dir: where every update is appended (``-H``), or None.
        update_log: a file getting each new record as a JSON line (``-L``), or None.

    Example:
        >>> with CatalogServer("127.0.0.1", 0) as catalog:  # doctest: +SKIP
        ...     print(catalog.port)
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 9097,
        lifetime: float = 1800.0,
        history_dir: str | None = None,
        update_log: str | None = None,
    ) -> None:
        self.host = host
        self.table = RecordTable(lifetime, update_log=update_log, history_dir=history_dir)
        self._http, self._udp, self._updates = _bind_ports(host, port)
        self.port: int = self._http.getsockname()[1]
        self.started = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._server_name = socket.gethostname()

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> CatalogServer:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(target=self.serve_forever, name="catalog-server", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve until :meth:`stop` (or until the process ends)."""
        log.info("catalog listening on %s: UDP+HTTP %d, TCP updates %d", self.host, self.port, self.port + 1)
        with selectors.DefaultSelector() as selector:
            selector.register(self._udp, selectors.EVENT_READ, self._read_datagram)
            selector.register(self._http, selectors.EVENT_READ, self._accept_query)
            selector.register(self._updates, selectors.EVENT_READ, self._accept_update)
            last_expiry = time.monotonic()
            while not self._stop.is_set():
                for key, _ in selector.select(timeout=0.2):
                    try:
                        key.data()
                    except OSError as exc:
                        if not self._stop.is_set():
                            log.warning("catalog socket error: %s", exc)
                if time.monotonic() - last_expiry > 5:
                    self.table.expire()
                    last_expiry = time.monotonic()
        for sock in (self._udp, self._http, self._updates):
            sock.close()

    def stop(self) -> None:
        """Stop serving and close the sockets (within about 0.2 s)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> CatalogServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- updates ------------------------------------------------------------------------------

    def _read_datagram(self) -> None:
        payload, sender = self._udp.recvfrom(65536)
        self._store(payload, sender[0], "udp")

    def _store(self, payload: bytes, sender_ip: str, via: str) -> None:
        try:
            record = self.table.accept_update(payload, sender_ip)
        except UpdateError as exc:
            log.warning("ignoring %s update from %s: %s", via, sender_ip, exc)
            return
        log.debug("received %s update from %s:%s:%s", via, sender_ip, record.get("port", 0), record.get("name"))

    def _accept_update(self) -> None:
        conn, sender = self._updates.accept()
        self._spawn(self._handle_tcp_update, conn, sender[0])

    def _handle_tcp_update(self, conn: socket.socket, sender_ip: str) -> None:
        data = _read_until(conn, lambda buf: False, MAX_TCP_UPDATE)
        if data:
            self._store(data, sender_ip, "tcp")

    # -- queries ------------------------------------------------------------------------------

    def _accept_query(self) -> None:
        conn, sender = self._http.accept()
        self._spawn(self._handle_query, conn, sender[0])

    def _spawn(self, handler, conn: socket.socket, sender_ip: str) -> None:
        if not self._slots.acquire(blocking=False):
            log.warning("too many catalog connections; dropping one from %s", sender_ip)
            conn.close()
            return

        def run() -> None:
            try:
                with conn:
                    handler(conn, sender_ip)
            except OSError as exc:
                log.debug("catalog connection from %s: %s", sender_ip, exc)
            finally:
                self._slots.release()

        threading.Thread(target=run, name="catalog-connection", daemon=True).start()

    def _handle_query(self, conn: socket.socket, sender_ip: str) -> None:
        request = _read_until(conn, lambda buf: b"\n\n" in buf or b"\r\n\r\n" in buf, MAX_REQUEST)
        words = request.split(b"\n", 1)[0].decode("latin-1").split()
        if len(words) < 2 or words[0] not in ("GET", "HEAD"):
            reply = Reply(405, "text/plain", "only GET is supported\n")
        else:
            reply = self.answer(words[1])
        log.debug("www query from %s: %s -> %d", sender_ip, words[1] if len(words) > 1 else "?", reply.status)
        head = (
            f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Error')}\n"
            f"Date: {time.ctime()}\nServer: catalog_server\nConnection: close\n"
            f"Access-Control-Allow-Origin: *\nContent-type: {reply.content_type}\n\n"
        )
        body = b"" if words[:1] == ["HEAD"] else reply.body.encode("utf-8")
        conn.settimeout(CONNECTION_DEADLINE)
        conn.sendall(head.encode("latin-1") + body)

    def answer(self, path: str) -> Reply:
        """The reply to ``GET path`` (a pure function of the table, handy for tests)."""
        path = urllib.parse.unquote(path.split("?", 1)[0])
        records = self.records()
        if path in ("/", "/query.html", "/index.html"):
            return Reply(200, "text/html", records_html(records, self._server_name))
        if path == "/query.json":
            return Reply(200, "text/plain", records_json(records))
        if path == "/query.text":
            return Reply(200, "text/plain", records_text(records))
        if path.startswith("/query/"):
            return self._filtered(path[len("/query/") :], records)
        if path.startswith("/detail/"):
            record = self.table.get(path[len("/detail/") :])
            if record is None:
                return Reply(404, "text/plain", f"no record {path[len('/detail/'):]!r}\n")
            return Reply(200, "text/plain", record_text(record))
        return Reply(404, "text/plain", f"unknown path {path!r}; try /query.json\n")

    def _filtered(self, encoded: str, records: list[dict]) -> Reply:
        try:
            padded = encoded + "=" * (-len(encoded) % 4)
            expression = base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True).decode()
            node = parse_expression(expression)
        except (binascii.Error, UnicodeDecodeError) as exc:
            return Reply(400, "text/plain", f"query is not base64: {exc}\n")
        except JxError as exc:
            return Reply(400, "text/plain", f"{exc}\n")
        return Reply(200, "text/plain", records_json([r for r in records if record_matches(node, r)]))

    def records(self) -> list[dict]:
        """Live records, the catalog's own record included."""
        self.table.put(self._own_record(), logged=False)
        return self.table.records()

    def _own_record(self) -> dict:
        return {
            "type": "catalog", "version": VERSION, "owner": _owner(), "starttime": int(self.started),
            "port": self.port, "url": f"http://{self._server_name}:{self.port}",
            "name": self._server_name, "address": self.host, "lastheardfrom": int(time.time()),
        }  # fmt: skip


def _owner() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def _read_until(conn: socket.socket, complete, limit: int) -> bytes:
    """Read until ``complete(buffer)``, EOF, ``limit`` bytes or the connection deadline."""
    deadline = time.monotonic() + CONNECTION_DEADLINE
    buffer = b""
    while not complete(buffer) and len(buffer) < limit:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        conn.settimeout(left)
        try:
            chunk = conn.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        buffer += chunk
    return buffer
