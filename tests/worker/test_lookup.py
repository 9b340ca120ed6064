"""``coffea-wq worker -M REGEX``: finding managers through the REAL CCTools catalog_server."""

from __future__ import annotations

import re
import socket
import subprocess

import pytest

from tests.support import (
    REAL_CATALOG,
    coffea_wq_command,
    free_port,
    needs_system,
    requires_cctools_python,
    wait_until,
)
from tests.worker.test_cctools_interop import CCToolsManager

pytestmark = [
    pytest.mark.cctools,
    pytest.mark.slow,
    needs_system(REAL_CATALOG is None, "catalog_server", "coop-computing-tools"),
]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


@pytest.fixture
def catalog_port(processes, tmp_path):
    port = free_port()
    processes.start([REAL_CATALOG, "-p", str(port), "-I", "127.0.0.1"], cwd=tmp_path, stdout=open(tmp_path / "catalog.log", "wb"),
                    stderr=open(tmp_path / "catalog.err", "wb"))
    wait_until(lambda: _listening(port), 10, "catalog_server to listen")
    return port


def _catalog_lists(port: int, project: str) -> bool:
    from coffea_wq.catalog.client import query_catalog

    try:
        return any(r.get("project") == project for r in query_catalog([("127.0.0.1", port)], timeout=2))
    except ConnectionError:
        return False


@requires_cctools_python
def test_worker_serves_matching_managers_one_after_the_other(processes, tmp_path, catalog_port):
    managers = [
        CCToolsManager(processes, tmp_path / name, "single", "--name", name, "--catalog", str(catalog_port),
                       "--seconds", "60", "--exit-workers", "no")
        for name in ("cwq-lookup-a", "cwq-lookup-b")
    ]
    unrelated = CCToolsManager(processes, tmp_path / "other", "single", "--name", "unrelated-project", "--catalog",
                               str(catalog_port), "--seconds", "8", "--exit-workers", "no")
    for name in ("cwq-lookup-a", "cwq-lookup-b"):
        wait_until(lambda name=name: _catalog_lists(catalog_port, name), 15, f"{name} in the catalog")
    log = tmp_path / "worker.log"
    worker = processes.start(
        coffea_wq_command("worker", "-M", "cwq-lookup-.*", "--catalog", f"127.0.0.1:{catalog_port}", "-t", "20",
                          "-i", "0.3", "-b", "1", "--cores", "1", "--memory", "100", "--disk", "100",
                          "--workdir", str(tmp_path / "w")),
        stdout=open(log, "wb"), stderr=subprocess.STDOUT,
    )
    for manager in managers:  # each manager exits once its task is done; the worker moves on
        assert manager.results(timeout=60)["single"]["output"] == "single-task\n"
    text = log.read_text()
    # the catalog gives the managers' host address, so they are recognised by port
    connected_ports = {int(port) for port in re.findall(r"connected to manager \S+:(\d+) via", text)}
    assert connected_ports >= {m.port for m in managers}, text
    assert unrelated.port not in connected_ports, text
    assert worker.poll() is None, "the worker keeps looking for managers until its timeout"


def test_no_matching_manager_gives_up_after_the_connect_timeout(processes, tmp_path, catalog_port):
    log = tmp_path / "worker.log"
    worker = processes.start(
        coffea_wq_command("worker", "-M", "nobody-.*", "--catalog", f"127.0.0.1:{catalog_port}", "-t", "2",
                          "-i", "0.3", "--workdir", str(tmp_path / "w")),
        stdout=open(log, "wb"), stderr=subprocess.STDOUT,
    )
    assert worker.wait(timeout=20) == 0
    assert "could not connect to a manager after 2 s" in log.read_text()


def test_a_bad_regex_is_a_clear_error(processes, tmp_path):
    result = processes.start(coffea_wq_command("worker", "-M", "(unclosed", "--catalog", "127.0.0.1:1",
                                               "--workdir", str(tmp_path / "w")),
                             stderr=open(tmp_path / "err", "wb"))
    assert result.wait(timeout=20) == 2
    text = (tmp_path / "err").read_text()
    assert "not a valid regular expression" in text and "Traceback" not in text
