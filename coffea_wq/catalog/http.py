"""A tiny HTTP/1.x GET client with an overall deadline, as CCTools' catalog clients speak it.

CCTools' servers answer with bare ``\\n`` header lines and no Content-Length, closing the
connection at the end of the body; ``http.client`` copes with that but its timeouts are per
operation, not per request. Here a whole request, redirects included, finishes within
``timeout`` seconds or fails.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

MAX_REDIRECTS = 3
MAX_BODY = 64 * 1024 * 1024  # a catalog of 64 MB is broken, not big


class HttpError(OSError):
    """The server could not be reached or did not answer with 200."""


@dataclass(frozen=True)
class HttpReply:
    status: int
    headers: dict[str, str]
    body: bytes


def http_get(host: str, port: int, path: str, timeout: float = 5.0) -> HttpReply:
    """GET ``path`` from ``host:port`` and return the 200 reply, following redirects.

    Args:
        host: name or address of the server.
        port: TCP port.
        path: the request path, starting with ``/``.
        timeout: seconds for the whole exchange.

    Raises:
        HttpError: naming ``host:port`` and what went wrong.

    Example:
        >>> http_get("127.0.0.1", 9097, "/query.json").body  # doctest: +SKIP
    """
    deadline = time.monotonic() + timeout
    for _ in range(MAX_REDIRECTS + 1):
        reply = _get_once(host, port, path, deadline)
        if reply.status in (301, 302, 303, 307, 308) and "location" in reply.headers:
            host, port, path = _parse_location(reply.headers["location"], host, port)
            continue
        if reply.status != 200:
            raise HttpError(f"http://{host}:{port}{path} answered HTTP {reply.status}")
        return reply
    raise HttpError(f"http://{host}:{port}{path}: more than {MAX_REDIRECTS} redirects")


def _remaining(deadline: float, where: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise HttpError(f"{where}: timed out")
    return left


def _get_once(host: str, port: int, path: str, deadline: float) -> HttpReply:
    where = f"http://{host}:{port}{path}"
    try:
        with socket.create_connection((host, port), timeout=_remaining(deadline, where)) as sock:
            request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nUser-Agent: coffea-wq\r\n\r\n"
            sock.sendall(request.encode("latin-1"))
            data = _read_until_eof(sock, deadline, where)
    except OSError as exc:
        if isinstance(exc, HttpError):
            raise
        raise HttpError(f"{where}: {exc.strerror or exc}") from exc
    return _parse_reply(data, where)


def _read_until_eof(sock: socket.socket, deadline: float, where: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        sock.settimeout(_remaining(deadline, where))
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY:
            raise HttpError(f"{where}: reply larger than {MAX_BODY} bytes")


def _parse_reply(data: bytes, where: str) -> HttpReply:
    head, sep, body = _split_head(data)
    if not sep:
        raise HttpError(f"{where}: reply has no end of headers")
    lines = head.decode("latin-1").replace("\r", "").split("\n")
    status_words = lines[0].split()
    if len(status_words) < 2 or not status_words[0].startswith("HTTP/") or not status_words[1].isdigit():
        raise HttpError(f"{where}: not an HTTP reply: {lines[0][:80]!r}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return HttpReply(int(status_words[1]), headers, body)


def _split_head(data: bytes) -> tuple[bytes, bytes, bytes]:
    """Split at the first blank line, which CCTools writes as a bare ``\\n\\n``."""
    crlf = data.find(b"\r\n\r\n")
    lf = data.find(b"\n\n")
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return data[:crlf], b"\r\n\r\n", data[crlf + 4 :]
    if lf >= 0:
        return data[:lf], b"\n\n", data[lf + 2 :]
    return data, b"", b""


def _parse_location(location: str, host: str, port: int) -> tuple[str, int, str]:
    if location.startswith("/"):
        return host, port, location
    rest = location.split("://", 1)[-1]
    hostport, _, path = rest.partition("/")
    new_host, _, new_port = hostport.rpartition(":")
    if not new_host:
        return hostport, 80, "/" + path
    return new_host, int(new_port), "/" + path
