"""A manager that stops talking in the middle of a message must not hold a worker forever.

The session runs in this process (with a short ``active_timeout``) against a real loopback
socket; the scripted manager sends half a message and then nothing.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from coffea_wq.protocol.messages import NEED_DATA, NameRequest, WorkerIdentity
from coffea_wq.protocol.worker_side import ManagerConnection
from coffea_wq.worker.resources import WorkerResources
from coffea_wq.worker.sandbox import Workspace
from coffea_wq.worker.session import SessionEnd, SessionResult, SessionSettings, WorkerSession
from tests.worker.fake_manager import FakeManager

ACTIVE_TIMEOUT = 0.6


def settings(password: bytes | None = None) -> SessionSettings:
    return SessionSettings(
        identity=WorkerIdentity("host", "Linux", "x86_64", "worker-" + "0" * 32),
        resources=WorkerResources(cores=1, memory=100, disk=100, gpus=0),
        password=password,
        idle_timeout=60.0,  # far longer than the test: only the stall may end the session
        active_timeout=ACTIVE_TIMEOUT,
    )


def serve_in_thread(tmp_path, password: bytes | None = None, expected_project: str | None = None):
    """Start a session on a real connection; returns (manager peer, thread, result holder)."""
    manager = FakeManager()
    sock = socket.create_connection(("127.0.0.1", manager.port), timeout=5)
    peer = manager.accept()
    manager.close()
    session = WorkerSession(sock, f"127.0.0.1:{manager.port}", settings(password), Workspace.create(tmp_path),
                             expected_project=expected_project)
    holder: list[SessionResult] = []
    thread = threading.Thread(target=lambda: holder.append(session.serve()), daemon=True)
    thread.start()
    return peer, thread, holder


def finish(peer, thread: threading.Thread, holder: list, within: float) -> SessionResult:
    thread.join(within)
    if thread.is_alive():
        peer.close()  # ends the session (the manager "closes"), so the test never leaves it running
        thread.join(10)
        pytest.fail(f"the worker session was still waiting {within} s later")
    peer.close()
    return holder[0]


@pytest.mark.parametrize(
    "half_message",
    [b"task 1\ncmd 4\ntr", b"put file-0-x 10 0644\nabc", b"sen", b"dir d\nput a 1 0644\nx"],
    ids=["inside-a-task-command", "inside-a-file", "inside-a-line", "inside-a-dir-block"],
)
def test_a_manager_stalled_in_a_message_is_dropped_after_the_active_timeout(tmp_path, half_message):
    peer, thread, holder = serve_in_thread(tmp_path)
    peer.handshake()
    started = time.monotonic()
    peer.send(half_message)
    result = finish(peer, thread, holder, within=10)
    assert result.end is SessionEnd.ERROR
    assert "in the middle of a message" in result.reason and "0.6 s" in result.reason
    assert time.monotonic() - started >= ACTIVE_TIMEOUT


def test_a_silent_peer_during_the_password_exchange_is_dropped(tmp_path):
    peer, thread, holder = serve_in_thread(tmp_path, password=b"secret")
    assert peer.read_line().startswith("auth")  # the worker opened the exchange; we never answer
    result = finish(peer, thread, holder, within=10)
    assert result.end is SessionEnd.ERROR and "password exchange" in result.reason


def test_a_quiet_manager_between_messages_is_not_dropped(tmp_path):
    peer, thread, holder = serve_in_thread(tmp_path)
    peer.handshake()
    thread.join(3 * ACTIVE_TIMEOUT)
    assert thread.is_alive(), holder
    peer.send(b"check\n")
    assert peer.read_line() == "alive"
    peer.send(b"exit\n")
    assert finish(peer, thread, holder, within=10).end is SessionEnd.EXIT


def test_waiting_for_manager_follows_the_message_boundaries():
    conn = ManagerConnection()
    assert not conn.waiting_for_manager
    conn.receive_data(b"task 1\ncmd 4\n")
    assert conn.next_event() is NEED_DATA and conn.waiting_for_manager
    conn.receive_data(b"true")
    assert conn.next_event() is NEED_DATA and conn.waiting_for_manager
    conn.receive_data(b"end\n")
    conn.next_event()
    assert not conn.waiting_for_manager
    conn.receive_data(b"che")
    assert conn.next_event() is NEED_DATA and conn.waiting_for_manager
    conn.receive_data(b"ck\n")
    conn.next_event()
    assert not conn.waiting_for_manager
    conn.send(NameRequest())
    assert conn.next_event() is NEED_DATA and conn.waiting_for_manager  # the name reply is owed
    conn.receive_data(b"myproject\n")
    conn.next_event()
    assert not conn.waiting_for_manager
