"""Factories and managers across implementations: CCTools' factory for our manager, ours for CCTools'."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.factory.helpers import CCToolsManager
from tests.support import (
    REAL_FACTORY,
    LineReader,
    coffea_wq_command,
    needs_system,
    requires_cctools,
    requires_cctools_python,
)

pytestmark = [requires_cctools, pytest.mark.slow]


@needs_system(REAL_FACTORY is None, "work_queue_factory", "coop-computing-tools")
def test_real_work_queue_factory_keeps_workers_for_a_coffea_wq_manager(processes, tmp_path):
    import coffea_wq.work_queue as wq

    q = wq.WorkQueue(port=0, name="fac-interop-ours")
    try:
        for i in range(4):
            task = wq.Task(f"sleep 1; echo task {i}")
            task.specify_cores(1)
            q.submit(task)
        factory = processes.start(
            [REAL_FACTORY, "-T", "local", "127.0.0.1", str(q.port), "-w", "1", "-W", "2", "-t", "20",
             "--cores", "1", "-S", str(tmp_path / "scratch")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        output = LineReader(factory.stdout)
        results = []
        deadline = time.monotonic() + 90
        while len(results) < 4 and time.monotonic() < deadline:
            task = q.wait(1)
            if task:
                results.append((task.result, task.return_status, task.output.strip()))
        assert sorted(results) == [(0, 0, f"task {i}") for i in range(4)], "\n".join(output.snapshot())
        # The real factory read our queue_status (its status table shows our counters) ...
        assert any("|submitted:" in line for line in output.snapshot())
        # ... and keeps its minimum of workers connected to us while the queue is idle.
        until = time.monotonic() + 30
        while q.stats.workers_connected < 1 and time.monotonic() < until:
            q.wait(1)
        assert q.stats.workers_connected >= 1
        factory.terminate()
        assert factory.wait(timeout=30) == 0
        output.wait_for(lambda s: s == "all workers removed.", 10, "CCTools' factory to remove its workers")
    finally:
        q.shutdown_workers(0)


@requires_cctools_python
def test_coffea_wq_factory_by_name_through_the_catalog_for_a_real_cctools_manager(processes, tmp_path):
    """-M NAME with --catalog: the factory finds the CCTools manager in our catalog server."""
    from tests.support import free_port

    catalog_port = free_port()
    processes.start(coffea_wq_command("catalog", "-p", str(catalog_port), "-I", "127.0.0.1"),
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    catalog = f"127.0.0.1:{catalog_port}"
    # Catalog records lag (a CCTools manager reports every 60 s): the tasks must be in the first one.
    manager = CCToolsManager(processes, "fac-by-name", catalog=catalog, initial_tasks=(3, 1))
    factory = processes.start(
        coffea_wq_command("factory", "-T", "local", "-M", "fac-by-name", "--catalog", catalog,
                          "-S", str(tmp_path / "scratch"), "--min-workers", "0", "--max-workers", "2",
                          "--cores", "1", "--timeout", "20", "--cycle-interval", "1"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = LineReader(factory.stdout)
    output.wait_for(lambda s: manager.done_count() == 3, 90, "the CCTools manager's tasks to finish")
    assert any("submitting" in line for line in output.snapshot())
    factory.send_signal(2)
    assert factory.wait(timeout=30) == 0
    assert "all workers removed." in output.snapshot()
