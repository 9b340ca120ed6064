"""The direct status protocol: ask a manager on its own port (``work_queue_status HOST PORT``).

A client connects to the manager's worker port, sends one line ``<what>_status``, and reads one
JSON array; the manager closes the connection after it (docs/catalog.md, "Formats"). Managers with a
password cannot be asked this way (the status protocol has no authentication).
"""

from __future__ import annotations

import json
import socket
import time

REQUESTS = ("queue_status", "task_status", "worker_status", "wable_status", "resources_status")
MAX_REPLY = 256 * 1024 * 1024


class StatusQueryError(ConnectionError):
    """The manager could not be reached or gave no valid answer."""


def _request_line(request: str) -> str:
    request = request.strip()
    if request in ("queue", "task", "worker", "wable", "resources"):
        request += "_status"
    if request not in REQUESTS:
        raise ValueError(f"unknown status request {request!r}; expected one of {', '.join(REQUESTS)}")
    return request


def query_manager(host: str, port: int, request: str = "queue_status", timeout: float = 5.0) -> list[dict]:
    """Ask the manager at ``host:port`` for its status and return the JSON array it sends.

    Args:
        host: the manager's host name or address.
        port: the manager's port (the one workers connect to).
        request: ``queue_status`` (the manager's record), ``task_status``, ``worker_status``,
            ``wable_status`` (categories) or ``resources_status``; the ``_status`` may be left out.
        timeout: seconds for the whole exchange.

    Raises:
        StatusQueryError: naming ``host:port`` (unreachable, closed early, not JSON, timed out).
        ValueError: an unknown ``request``.

    Example:
        >>> query_manager("127.0.0.1", 9123)[0]["tasks_waiting"]  # doctest: +SKIP
        3
    """
    line = _request_line(request)
    where = f"manager {host}:{port}"
    deadline = time.monotonic() + timeout
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(f"{line}\n".encode())
            reply = _read_json_value(sock, deadline, where)
    except OSError as exc:
        if isinstance(exc, StatusQueryError):
            raise
        raise StatusQueryError(f"{where}: {exc.strerror or exc}") from exc
    if not isinstance(reply, list):
        raise StatusQueryError(f"{where}: answered {type(reply).__name__}, not a JSON array, to {line}")
    return reply


def _read_json_value(sock: socket.socket, deadline: float, where: str) -> object:
    """Read until one whole JSON value has arrived (or EOF), like CCTools' ``jx_parse_link``."""
    decoder = json.JSONDecoder()
    buffer = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise StatusQueryError(f"{where}: timed out waiting for the status reply")
        sock.settimeout(left)
        chunk = sock.recv(65536)
        if chunk:
            buffer += chunk
            if len(buffer) > MAX_REPLY:
                raise StatusQueryError(f"{where}: status reply larger than {MAX_REPLY} bytes")
        text = buffer.decode("utf-8", "replace").lstrip()
        if text:
            try:
                value, _ = decoder.raw_decode(text)
                return value
            except ValueError as exc:
                if not chunk:
                    raise StatusQueryError(f"{where}: status reply is not JSON ({exc}): {text[:80]!r}") from exc
        if not chunk:
            raise StatusQueryError(f"{where}: closed the connection without a status reply")
