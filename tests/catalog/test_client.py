"""Catalog client: addresses, the advertiser (real UDP/TCP sockets), queries against real catalogs."""

from __future__ import annotations

import json
import socket
import time

import pytest

from coffea_wq.catalog.client import (
    DEFAULT_CATALOG_HOSTS,
    CatalogAdvertiser,
    CatalogError,
    catalog_addresses,
    encode_record,
    find_managers,
    match_managers,
    query_catalog,
)
from tests.catalog.helpers import start_real_catalog
from tests.support import LOOPBACK, free_port, requires_cctools, wait_until


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("CATALOG_HOST", "CATALOG_PORT", "CATALOG_UPDATE_PROTOCOL"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_addresses_option_env_and_defaults(clean_env):
    assert catalog_addresses() == [(h, 9097) for h in DEFAULT_CATALOG_HOSTS]
    assert catalog_addresses("a.example:1,b.example") == [("a.example", 1), ("b.example", 9097)]
    assert catalog_addresses("[::1]:9100") == [("::1", 9100)]
    clean_env.setenv("CATALOG_HOST", "c1:5,c2")
    clean_env.setenv("CATALOG_PORT", "7000")
    assert catalog_addresses() == [("c1", 5), ("c2", 7000)]
    assert catalog_addresses("x:1") == [("x", 1)]  # the option wins over the environment
    clean_env.delenv("CATALOG_HOST")
    assert catalog_addresses() == [(h, 7000) for h in DEFAULT_CATALOG_HOSTS]


@pytest.mark.parametrize(
    "option, env, message",
    [
        ("host:99999", {}, "catalog option entry 'host:99999'"),
        ("host:abc", {}, "'abc' is not a TCP/UDP port"),
        (":9097", {}, "has no host"),
        (None, {"CATALOG_PORT": "x"}, "environment variable CATALOG_PORT"),
        (None, {"CATALOG_HOST": "h:0"}, "environment variable CATALOG_HOST"),
    ],
)
def test_bad_addresses_name_the_culprit(clean_env, option, env, message):
    for name, value in env.items():
        clean_env.setenv(name, value)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        catalog_addresses(option)


def _udp_listener() -> tuple[socket.socket, int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOOPBACK, 0))
    sock.settimeout(0.1)
    return sock, sock.getsockname()[1]


def _drain(sock: socket.socket) -> list[dict]:
    got = []
    while True:
        try:
            got.append(json.loads(sock.recv(65536)))
        except TimeoutError:
            return got


def test_advertiser_sends_at_start_on_change_rate_limited_and_periodically(clean_env):
    sock, port = _udp_listener()
    counter = {"n": 0}

    def record():
        counter["n"] += 1
        return {"type": "wq_master", "project": "p", "port": 1, "n": counter["n"]}

    adv = CatalogAdvertiser([(LOOPBACK, port)], record, interval=1.5, min_interval=0.5)
    with sock:
        adv.start()
        first = json.loads(socket_recv(sock, 2))
        assert first["n"] == 1 and first["type"] == "wq_master"
        for _ in range(20):  # a burst of changes ...
            adv.notify_change()
        time.sleep(0.9)
        burst = _drain(sock)
        assert 1 <= len(burst) <= 2  # ... is sent once, not 20 times
        time.sleep(1.8)
        assert _drain(sock), "no periodic update within the interval"
        adv.stop()
        final = _drain(sock)
        assert final, "no last update at stop"


def socket_recv(sock: socket.socket, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return sock.recv(65536)
        except TimeoutError:
            if time.monotonic() > deadline:
                raise


def test_advertiser_tcp_goes_to_port_plus_one(clean_env):
    clean_env.setenv("CATALOG_UPDATE_PROTOCOL", "tcp")
    base = free_port()
    server = None
    for _ in range(20):  # need port+1 free too
        try:
            server = socket.create_server((LOOPBACK, base + 1))
            break
        except OSError:
            base = free_port()
    assert server is not None
    with server:
        server.settimeout(5)
        adv = CatalogAdvertiser([(LOOPBACK, base)], lambda: {"type": "wq_master", "project": "tcp"})
        adv.start()
        conn, _ = server.accept()
        with conn:
            conn.settimeout(5)
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        adv.stop(final_update=False)
    assert json.loads(data)["project"] == "tcp"


def test_advertiser_never_blocks_or_raises_on_bad_catalogs(clean_env, caplog):
    dead_port = free_port()  # nothing listens; TCP is refused
    clean_env.setenv("CATALOG_UPDATE_PROTOCOL", "tcp")

    def broken_record():
        raise RuntimeError("record builder bug")

    began = time.monotonic()
    adv = CatalogAdvertiser([("no-such-host.invalid", 9097), (LOOPBACK, dead_port)], lambda: {"a": 1})
    adv.start()
    for _ in range(100):
        adv.notify_change()
    assert time.monotonic() - began < 0.5  # the caller never waits on DNS or connects
    wait_until(lambda: adv.updates_sent >= 1, 15, "the advertiser to try once")
    adv.stop(timeout=10)
    warnings = [r.getMessage() for r in caplog.records if "cannot send catalog update" in r.getMessage()]
    assert any("no-such-host.invalid" in w for w in warnings)
    bad = CatalogAdvertiser([(LOOPBACK, dead_port)], broken_record)
    bad.start()
    bad.stop()  # a failing record builder is logged, not raised
    assert any("could not build the catalog record" in r.getMessage() for r in caplog.records)


def test_oversized_record_is_cut_to_the_lean_keys():
    record = {"type": "wq_master", "project": "big", "port": 5, "categories": ["x" * 100] * 1000}
    lean = json.loads(encode_record(record))
    assert lean == {"type": "wq_master", "project": "big", "port": 5}


def test_match_managers_full_match_types_and_candidates():
    records = [
        {"type": "wq_master", "project": "test-abc", "port": 9000, "address": "127.0.0.1",
         "network_interfaces": [{"interface": "lo", "host": "127.0.0.1", "family": "AF_INET"}]},
        {"type": "wq_manager", "project": "test-xyz", "port": 9001, "address": "10.1.1.1",
         "network_interfaces": [{"interface": "eth0", "host": "10.0.0.5", "family": "AF_INET"}]},
        {"type": "makeflow", "project": "test-mf", "port": 9002, "address": "127.0.0.1"},
        {"type": "wq_master", "project": "xtest-abc", "port": 9003, "address": "127.0.0.1"},
        {"type": "wq_master", "project": "test-noport", "address": "127.0.0.1"},
    ]  # fmt: skip
    found = {m.project: m for m in match_managers("test-.*", records)}
    assert set(found) == {"test-abc", "test-xyz"}
    assert found["test-abc"].candidates == [("127.0.0.1", 9000)]
    assert found["test-xyz"].candidates == [("10.0.0.5", 9001), ("10.1.1.1", 9001)]
    assert found["test-xyz"].record is records[1]
    with pytest.raises(ValueError, match="not a valid regular expression"):
        match_managers("test-(", records)


def test_query_unreachable_catalog_is_bounded_and_clear():
    port = free_port()
    began = time.monotonic()
    with pytest.raises(CatalogError, match=f"127.0.0.1:{port}"):
        query_catalog([(LOOPBACK, port)], timeout=2)
    assert find_managers(".*", [(LOOPBACK, port)], timeout=2) == []
    assert time.monotonic() - began < 5


def test_query_a_silent_server_times_out():
    with socket.create_server((LOOPBACK, 0)) as silent:  # accepts (backlog) but never answers
        port = silent.getsockname()[1]
        began = time.monotonic()
        with pytest.raises(CatalogError, match="timed out"):
            query_catalog([(LOOPBACK, port)], timeout=1)
        assert time.monotonic() - began < 3


@requires_cctools
def test_advertise_then_find_through_the_real_catalog_server(processes, tmp_path, clean_env):
    port = start_real_catalog(processes, tmp_path)
    record = {"type": "wq_master", "project": "test-client", "port": 9123, "owner": "me",
              "network_interfaces": [{"interface": "lo", "host": "127.0.0.1", "family": "AF_INET"}]}  # fmt: skip
    adv = CatalogAdvertiser([(LOOPBACK, port)], lambda: record)
    adv.start()
    try:
        found = wait_until(lambda: find_managers("test-cl.*", [(LOOPBACK, port)]), 10, "the record in the catalog")
    finally:
        adv.stop(final_update=False)
    (manager,) = found
    assert manager.project == "test-client"
    assert manager.candidates == [("127.0.0.1", 9123)]
    assert manager.record["address"] == "127.0.0.1"  # added by the catalog
    assert "lastheardfrom" in manager.record
    types = {r.get("type") for r in query_catalog([(LOOPBACK, port)])}
    assert {"wq_master", "catalog"} <= types
