"""The direct status protocol, against a real CCTools manager (Debian's python3-workqueue)."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from coffea_wq.catalog.query import StatusQueryError, query_manager
from tests.catalog.helpers import RealManager
from tests.support import LOOPBACK, free_port, requires_cctools_python


@requires_cctools_python
def test_query_a_real_cctools_manager(processes, tmp_path):
    tasks = [{"command": "true", "category": "cat-a", "cores": 1, "memory": 100, "disk": 50},
             {"command": "true"}, {"command": "false"}]  # fmt: skip
    manager = RealManager(processes, tmp_path, name="test-query", tasks=tasks)
    (queue,) = query_manager(LOOPBACK, manager.port)
    assert queue["type"] == "wq_master"
    assert queue["project"] == "test-query"
    assert queue["port"] == manager.port
    assert queue["tasks_waiting"] == 3
    task_rows = query_manager(LOOPBACK, manager.port, "task_status")
    assert sorted(t["taskid"] for t in task_rows) == [1, 2, 3]
    assert {t["state"] for t in task_rows} == {"WAITING"}
    assert query_manager(LOOPBACK, manager.port, "worker") == []  # no workers; "_status" is optional
    categories = {c["category"]: c for c in query_manager(LOOPBACK, manager.port, "wable_status")}
    assert set(categories) == {"whole queue", "cat-a", "default"}
    assert categories["default"]["tasks_waiting"] == 2
    (resources,) = query_manager(LOOPBACK, manager.port, "resources_status")
    assert resources["project"] == "test-query"
    manager.stop()


def test_refused_connection_names_the_manager():
    port = free_port()
    with pytest.raises(StatusQueryError, match=f"manager 127.0.0.1:{port}"):
        query_manager(LOOPBACK, port)


def test_unknown_request_is_refused():
    with pytest.raises(ValueError, match="unknown status request 'bogus_status'"):
        query_manager(LOOPBACK, 1, "bogus_status")


def _serve_once(reply: bytes, keep_open: float = 0.0) -> tuple[int, threading.Thread, list[bytes]]:
    server = socket.create_server((LOOPBACK, 0))
    port = server.getsockname()[1]
    received: list[bytes] = []

    def serve():
        with server:
            server.settimeout(5)
            conn, _ = server.accept()
            with conn:
                received.append(conn.recv(100))
                conn.sendall(reply)
                time.sleep(keep_open)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return port, thread, received


def test_reply_is_read_without_waiting_for_eof():
    """A manager that keeps the connection open after its JSON is still answered at once."""
    port, thread, received = _serve_once(b'[{"a":1}]', keep_open=3)
    began = time.monotonic()
    assert query_manager(LOOPBACK, port, timeout=5) == [{"a": 1}]
    assert time.monotonic() - began < 2
    assert received == [b"queue_status\n"]
    thread.join(5)


@pytest.mark.parametrize(
    "reply, message",
    [(b"not json at all", "status reply is not JSON"), (b'{"a":1}', "not a JSON array"), (b"", "without a status reply")],
)
def test_bad_replies_are_clear_errors(reply, message):
    port, thread, _ = _serve_once(reply)
    with pytest.raises(StatusQueryError, match=message):
        query_manager(LOOPBACK, port, timeout=5)
    thread.join(5)
