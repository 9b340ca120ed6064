"""Catalog advertisement, clean shutdown, and the logs a manager writes."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.request
import uuid

import psutil
import pytest

import coffea_wq.work_queue as wq
from tests.manager.helpers import start_real_worker
from tests.support import (
    LOOPBACK,
    REAL_CATALOG,
    REAL_WORKER,
    free_port,
    needs_system,
    requires_cctools,
    wait_until,
)


def catalog_records(port: int) -> list[dict]:
    with urllib.request.urlopen(f"http://{LOOPBACK}:{port}/query.json", timeout=5) as reply:
        return json.loads(reply.read())


@pytest.mark.slow
@requires_cctools
@needs_system(REAL_CATALOG is None, "catalog_server", "coop-computing-tools")
def test_named_manager_appears_in_the_real_catalog(processes, tmp_path):
    port = free_port()
    processes.start([REAL_CATALOG, "-p", str(port), "-I", LOOPBACK, "-u", f"{LOOPBACK}:1"], cwd=tmp_path,
                    stdout=open(tmp_path / "catalog.out", "w"), stderr=open(tmp_path / "catalog.err", "w"))
    wait_until(lambda: _connectable(port), 10, "the catalog server")
    project = f"adv-test-{uuid.uuid4().hex[:8]}"
    with wq.WorkQueue(port=0, host=LOOPBACK, name=project, catalog=f"{LOOPBACK}:{port}") as q:
        def ours():
            return [r for r in catalog_records(port) if r.get("project") == project and r.get("port") == q.port]
        records = wait_until(ours, 15, "the manager's record in the catalog")
        record = records[0]
        assert record["type"] == "wq_master" and record["port"] == q.port
        assert record["network_interfaces"] == [{"interface": "lo", "host": "127.0.0.1", "family": "AF_INET"}]
        # a real worker finds the manager by its project name through the catalog
        (tmp_path / "byname").mkdir()
        processes.start([REAL_WORKER, "-t", "20", "--cores", "1", "-M", project, "-C", f"{LOOPBACK}:{port}",
                         "-s", tmp_path / "byname"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert q.wait_for_workers(1, 30), "a worker looking the project up by name did not connect"
        q.submit(wq.Task("echo by name"))
        assert q.wait(20).output == "by name\n"


def _connectable(port: int) -> bool:
    try:
        socket.create_connection((LOOPBACK, port), timeout=1).close()
        return True
    except OSError:
        return False


def _manager_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(("coffea-wq-manager", "catalog-advertiser"))]


@requires_cctools
def test_shutdown_leaves_no_threads_sockets_or_processes(processes, tmp_path):
    me = psutil.Process()
    children_before = {c.pid for c in me.children(recursive=True)}
    before_fds = me.num_fds()
    before_threads = len(_manager_threads())
    q = wq.WorkQueue(port=0, host=LOOPBACK, name="leak-test", catalog=f"{LOOPBACK}:1")
    worker = start_real_worker(processes, q.port, tmp_path / "w")
    assert q.wait_for_workers(1, 20)
    q.submit(wq.Task("echo x"))
    assert q.wait(20).output == "x\n"
    port = q.port
    q.shutdown()
    assert len(_manager_threads()) == before_threads
    assert me.num_fds() == before_fds
    started = [c.pid for c in me.children(recursive=True) if c.pid not in children_before]
    assert started == [worker.pid]  # only the worker the test started
    with socket.socket() as s:  # the port is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((LOOPBACK, port))
    assert worker.poll() is None, "release lets a worker go back to looking for a manager, alive"
    q.shutdown()  # idempotent


def test_context_manager_and_wait_on_empty_queue():
    with wq.WorkQueue(port=0, host=LOOPBACK) as q:
        start = time.monotonic()
        assert q.wait(5) is None
        assert time.monotonic() - start < 1, "wait on an empty queue returns at once"
    assert not any(t.is_alive() for t in _manager_threads() if str(q.port) in t.name)


@requires_cctools
def test_transactions_stats_and_debug_logs(processes, tmp_path):
    tx, stats, debug = tmp_path / "tx.log", tmp_path / "stats.log", tmp_path / "debug.log"
    with wq.WorkQueue(port=0, host=LOOPBACK, transactions_log=str(tx), stats_log=str(stats),
                      debug_log=str(debug)) as q:
        start_real_worker(processes, q.port, tmp_path / "w")
        t = wq.Task("exit 2")
        t.specify_cores(1)
        task_id = q.submit(t)
        assert q.wait(20).return_status == 2
    events = [line.split(" ", 2)[2] for line in tx.read_text().splitlines() if line and not line.startswith("#")]
    assert events[0] == "MANAGER START" and events[-1] == "MANAGER END"
    assert any(e.startswith(f"TASK {task_id} WAITING default") for e in events)
    assert any(e.startswith(f"TASK {task_id} RUNNING 127.0.0.1:") for e in events)
    assert any(e.startswith(f"TASK {task_id} RETRIEVED SUCCESS  2 ") for e in events)
    assert any(e.startswith("WORKER worker-") and e.endswith("CONNECTION") for e in events)
    lines = stats.read_text().splitlines()
    header = lines[0].lstrip("# ").split()
    rows = [line.split() for line in lines if not line.startswith("#")]
    assert rows and all(len(row) == len(header) for row in rows)
    last = dict(zip(header, rows[-1], strict=True))
    assert last["tasks_done"] == "1" and last["workers_joined"] == "1" and last["total_cores"] == "2"
    assert "worker" in debug.read_text()
