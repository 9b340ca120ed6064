"""Our catalog server over real sockets, and the real CCTools tools using it."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time
import zlib

import pytest

from coffea_wq.catalog.client import find_managers, query_catalog
from coffea_wq.catalog.http import http_get
from coffea_wq.catalog.query import StatusQueryError, query_manager
from coffea_wq.catalog.server import CatalogServer
from tests.catalog.helpers import RealManager
from tests.support import (
    LOOPBACK,
    REAL_STATUS,
    REAL_WORKER,
    coffea_wq_command,
    requires_cctools,
    requires_cctools_python,
    wait_until,
)

WORKER_FILTER = 'true and type=="wq_manager" or type=="wq_master"'  # what work_queue_worker -M sends


def _udp(port: int, payload: bytes) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(payload, (LOOPBACK, port))


def _projects(port: int) -> set[str]:
    return {r.get("project") for r in query_catalog([(LOOPBACK, port)], timeout=5) if r.get("project")}


@pytest.fixture
def catalog(tmp_path):
    with CatalogServer(LOOPBACK, 0, lifetime=60, history_dir=str(tmp_path / "hist"),
                       update_log=str(tmp_path / "new.log")) as server:  # fmt: skip
        yield server


def test_updates_by_udp_tcp_compressed_and_nvpairs(catalog, tmp_path):
    _udp(catalog.port, b'{"type":"wq_master","project":"udp-json","port":9001}')
    _udp(catalog.port, b"\x1a" + zlib.compress(b'{"type":"wq_master","project":"udp-zlib","port":9002}'))
    _udp(catalog.port, b"type wq_master\nproject nvpair\nport 9003\n")
    _udp(catalog.port, b"\xff\x00garbage")  # ignored, and the server keeps going
    with socket.create_connection((LOOPBACK, catalog.port + 1)) as s:
        s.sendall(b'{"type":"wq_master","project":"tcp-json","port":9004}')
    wait_until(lambda: _projects(catalog.port) >= {"udp-json", "udp-zlib", "nvpair", "tcp-json"}, 10, "4 records")
    record = next(r for r in query_catalog([(LOOPBACK, catalog.port)]) if r.get("project") == "nvpair")
    assert record["port"] == 9003 and record["address"] == "127.0.0.1"
    assert record["name"] == socket.gethostbyaddr("127.0.0.1")[0]  # reverse DNS of the sender
    assert abs(record["lastheardfrom"] - time.time()) < 10
    _udp(catalog.port, b'{"type":"wq_master","project":"udp-json","port":9001,"tasks_waiting":5}')  # same key
    wait_until(lambda: any(r.get("tasks_waiting") == 5 for r in query_catalog([(LOOPBACK, catalog.port)])), 10, "update")
    assert sum(1 for r in query_catalog([(LOOPBACK, catalog.port)]) if r.get("project") == "udp-json") == 1
    new_records = [json.loads(line) for line in (tmp_path / "new.log").read_text().splitlines()]
    assert [r.get("project") for r in new_records].count("udp-json") == 1  # only new records are logged
    history = "".join(p.read_text() for p in (tmp_path / "hist").glob("*.jsonl"))
    assert history.count('"udp-json"') == 2  # every update is kept in the history


def test_query_endpoints(catalog):
    _udp(catalog.port, b'{"type":"wq_master","project":"q1","port":9001,"owner":"me"}')
    _udp(catalog.port, b'{"type":"makeflow","project":"mf","port":0}')
    wait_until(lambda: _projects(catalog.port) >= {"q1", "mf"}, 10, "records")
    reply = http_get(LOOPBACK, catalog.port, "/query.json")
    assert reply.headers["content-type"] == "text/plain"
    assert reply.headers["access-control-allow-origin"] == "*"
    assert reply.body.startswith(b"[\n{") and reply.body.endswith(b"}\n]\n")
    encoded = base64.b64encode(WORKER_FILTER.encode()).decode()
    filtered = json.loads(http_get(LOOPBACK, catalog.port, f"/query/{encoded}").body)
    assert {r["type"] for r in filtered} == {"wq_master"}
    text = http_get(LOOPBACK, catalog.port, "/query.text").body.decode()
    assert "project q1\n" in text and "owner me\n" in text
    page = http_get(LOOPBACK, catalog.port, "/").body.decode()
    assert "<td align=left>wq_master" in page and "q1" in page
    for bad, status in (("/query/!!!notbase64", "400"), ("/query/" + base64.b64encode(b"type ==").decode(), "400"),
                        ("/nowhere", "404"), ("/detail/none:0:x", "404")):  # fmt: skip
        with pytest.raises(OSError, match=f"HTTP {status}"):
            http_get(LOOPBACK, catalog.port, bad)


def test_records_expire_after_their_lifetime():
    with CatalogServer(LOOPBACK, 0, lifetime=1.0) as server:
        _udp(server.port, b'{"type":"wq_master","project":"short","port":1}')
        wait_until(lambda: "short" in _projects(server.port), 5, "the record")
        wait_until(lambda: "short" not in _projects(server.port), 5, "the record to expire")
    with CatalogServer(LOOPBACK, 0, lifetime=60) as server:
        _udp(server.port, b'{"type":"wq_master","project":"own-life","port":1,"lifetime":1}')
        wait_until(lambda: "own-life" in _projects(server.port), 5, "the record")
        wait_until(lambda: "own-life" not in _projects(server.port), 5, "the record's own lifetime")


def test_port_in_use_is_a_clear_error(catalog):
    with pytest.raises(OSError, match=f"catalog cannot listen on 127.0.0.1:{catalog.port}"):
        CatalogServer(LOOPBACK, catalog.port)


def test_unwritable_port_file_is_a_clear_error(tmp_path):
    port_file = tmp_path / "no-such-dir" / "catalog.port"
    done = subprocess.run(coffea_wq_command("catalog", "-p", "0", "-I", LOOPBACK, "-Z", str(port_file)),
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 1
    assert f"cannot write the port file {port_file}" in done.stderr
    assert "Traceback" not in done.stderr


def start_our_catalog(processes, tmp_path) -> int:
    port_file = tmp_path / "catalog.port"
    processes.start(coffea_wq_command("catalog", "-p", "0", "-Z", str(port_file)), cwd=tmp_path)
    wait_until(port_file.exists, 20, "coffea-wq catalog to start")
    return int(port_file.read_text())


@requires_cctools
@requires_cctools_python
@pytest.mark.slow
def test_real_manager_worker_and_status_use_our_catalog(processes, tmp_path):
    """A real CCTools manager advertises to `coffea-wq catalog`; the real worker finds it by name
    through it, and the real work_queue_status -C lists it with the manager's own counts.
    (Workers started before the manager: test_e2e_ours.)"""
    port = start_our_catalog(processes, tmp_path)
    name = f"test-{time.time_ns() % 10**8}"
    tasks = [{"command": "sleep 30"}, {"command": "sleep 30"}]
    manager = RealManager(processes, tmp_path, name=name, catalog_port=port, tasks=tasks)
    found = wait_until(lambda: find_managers(name, [(LOOPBACK, port)]), 20, "the manager in our catalog")
    assert found[0].record["port"] == manager.port
    # started once the record is there: a real worker caches an empty answer for 60 s
    worker = processes.start([REAL_WORKER, "-M", name, "-C", f"{LOOPBACK}:{port}", "--single-shot", "-t", "60",
                              "--cores", "1", "--memory", "500", "--disk", "500"], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    # the worker found it by name through our catalog: one task runs
    wait_until(lambda: _running(manager.port) == 1, 30, "the real worker to connect")
    assert worker.poll() is None
    # work_queue_status -C shows what the catalog holds, which is what the manager last sent
    wait_until(lambda: _status_matches_record(port, name, manager.port), 30, "status to match the record")
    manager.stop()


def _running(port: int) -> int | None:
    """Tasks running, or None when the manager reset this status connection (it sometimes does)."""
    try:
        return query_manager(LOOPBACK, port)[0]["tasks_running"]
    except StatusQueryError:
        return None


def _status_matches_record(catalog_port: int, name: str, manager_port: int) -> bool:
    (record,) = [r for r in query_catalog([(LOOPBACK, catalog_port)]) if r.get("project") == name]
    expected = [name, record["name"], str(manager_port), str(record["tasks_waiting"]), str(record["tasks_running"]),
                str(record["tasks_complete"]), str(record["workers"])]  # fmt: skip
    return _status_line(catalog_port, name, manager_port).split() == expected


def _status_line(catalog_port: int, name: str, manager_port: int) -> str:
    out = subprocess.run([REAL_STATUS, "-C", f"{LOOPBACK}:{catalog_port}", "-M", name], capture_output=True,
                         text=True, timeout=30).stdout  # fmt: skip
    lines = [line for line in out.splitlines() if line.startswith(name)]
    return lines[0] if lines and f" {manager_port} " in lines[0] else ""
