"""The cache server alone (worker/peers.py): it passes a file on while the file still arrives, stops a
transfer whose source failed, and serves only peers that prove the run's password."""

from __future__ import annotations

import hashlib
import os
import socket
import threading

import pytest

from coffea_wq.protocol.auth import PasswordAuth
from coffea_wq.protocol.peer_messages import PeerGet
from coffea_wq.worker.cache import FileCache
from coffea_wq.worker.peers import CacheServer, PeerError, fetch_from_peer
from tests.support import LOOPBACK, wait_until


@pytest.fixture
def server():
    made = CacheServer(None, host=LOOPBACK, timeout=10)
    yield made
    made.close()


def fetch_in_thread(cache: FileCache, request: PeerGet) -> tuple[threading.Thread, list]:
    outcome: list = []

    def run() -> None:
        try:
            fetch_from_peer(cache, request, None, timeout=10)
            outcome.append("ok")
        except PeerError as error:
            outcome.append(str(error))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_a_file_is_passed_on_while_it_arrives(server, tmp_path):
    data = os.urandom(3 << 20)
    upstream = FileCache(tmp_path / "upstream")
    server.cache = upstream
    incoming = upstream.begin_file("file-1-env", len(data), 0o644)
    incoming.write(data[: 1 << 20])
    downstream = FileCache(tmp_path / "downstream")
    request = PeerGet("file-1-env", len(data), 0o644, hashlib.sha256(data).hexdigest(), LOOPBACK, server.port)
    thread, outcome = fetch_in_thread(downstream, request)
    # the first megabyte has gone on before the rest arrived upstream
    wait_until(lambda: downstream.growing.get("file-1-env") and downstream.growing["file-1-env"].written == 1 << 20,
               10, "the first part to be passed on")
    assert not (downstream.root / "file-1-env").exists()
    incoming.write(data[1 << 20:])
    incoming.finish()
    thread.join(10)
    assert outcome == ["ok"]
    assert (downstream.root / "file-1-env").read_bytes() == data
    assert downstream.growing == {} and upstream.growing == {}


def test_a_transfer_stops_when_the_file_fails_to_arrive_upstream(server, tmp_path):
    data = os.urandom(2 << 20)
    upstream = FileCache(tmp_path / "upstream")
    server.cache = upstream
    incoming = upstream.begin_file("file-1-env", len(data), 0o644)
    incoming.write(data[:1000])
    downstream = FileCache(tmp_path / "downstream")
    request = PeerGet("file-1-env", len(data), 0o644, hashlib.sha256(data).hexdigest(), LOOPBACK, server.port)
    thread, outcome = fetch_in_thread(downstream, request)
    wait_until(lambda: "file-1-env" in downstream.growing, 10, "the transfer to start")
    incoming.abort()
    thread.join(10)
    assert len(outcome) == 1 and "closed the connection" in outcome[0] and f":{server.port}" in outcome[0], outcome
    assert os.listdir(downstream.root) == []  # nothing half-written stays


def test_a_peer_offering_another_size_is_refused(server, tmp_path):
    upstream = FileCache(tmp_path / "upstream")
    (upstream.root / "file-1-env").write_bytes(b"12345")
    server.cache = upstream
    request = PeerGet("file-1-env", 6, 0o644, "00" * 32, LOOPBACK, server.port)
    with pytest.raises(PeerError, match=r"offers 5 bytes of file-1-env, not the 6 expected"):
        fetch_from_peer(FileCache(tmp_path / "downstream"), request, None, timeout=10)


def authenticated(port: int, password: bytes) -> tuple[socket.socket, object]:
    sock = socket.create_connection((LOOPBACK, port), timeout=10)
    reader = sock.makefile("rb")
    auth = PasswordAuth(password)
    sock.sendall(auth.start())
    while not auth.done:
        sock.sendall(auth.receive_line(reader.readline().decode().strip()))
    return sock, reader


def test_a_cache_server_serves_only_peers_that_prove_the_password(tmp_path):
    cache = FileCache(tmp_path / "cache")
    (cache.root / "file-1-x").write_bytes(b"secret bytes")
    server = CacheServer(b"run password\n", host=LOOPBACK)
    server.cache = cache
    try:
        with socket.create_connection((LOOPBACK, server.port), timeout=10) as sock:  # asks without a password
            sock.sendall(b"peer-fetch file-1-x\n")
            received = sock.makefile("rb").read()
        assert b"secret bytes" not in received and b"file file-1-x" not in received
        sock, reader = authenticated(server.port, b"a guess\n")  # a wrong password
        with sock:
            sock.sendall(b"peer-fetch file-1-x\n")
            received = reader.read()
        assert b"secret bytes" not in received and b"file file-1-x" not in received
        sock, reader = authenticated(server.port, b"run password\n")
        with sock:
            sock.sendall(b"peer-fetch file-1-x\n")
            assert reader.read() == b"file file-1-x 12\nsecret bytes"
        assert server.served == 1
    finally:
        server.close()
