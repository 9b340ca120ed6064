"""End to end with coffea-wq's own manager: named manager + coffea-wq catalog + workers found by name."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from coffea_wq.catalog.query import query_manager
from coffea_wq.manager.statslog import read_stats_log
from coffea_wq.manager.txlog import read_transactions_log
from tests.catalog.test_server import start_our_catalog
from tests.support import (
    LOOPBACK,
    REAL_WORKER,
    coffea_wq_command,
    requires_cctools,
    skip_not_installed,
    wait_until,
)

MANAGER = textwrap.dedent(
    """
    import json, sys, time
    from coffea_wq import work_queue as wq
    cfg = json.load(open(sys.argv[1]))
    q = wq.WorkQueue(port=0, name=cfg["name"], host="127.0.0.1", catalog=cfg.get("catalog"),
                     stats_log="stats.log", transactions_log="tr.log")
    for i in range(cfg["tasks"]):
        t = wq.Task(cfg["command"]); t.specify_cores(1); t.specify_memory(50); t.specify_disk(50)
        q.submit(t)
    open("port.tmp", "w").write(str(q.port)); __import__("os").rename("port.tmp", "port")
    began, done = time.time(), []
    while not q.empty() and time.time() - began < cfg["limit"]:
        t = q.wait(1)
        if t:
            done.append([t.id, t.result, t.return_status])
    seconds = time.time() - began
    q.shutdown()  # MANAGER END and the final stats row are written before the test reads the logs
    json.dump({"done": done, "seconds": seconds}, open("result.tmp", "w")); __import__("os").rename("result.tmp", "result.json")
    """
)


def _start_manager(processes, tmp_path, **cfg) -> int:
    (tmp_path / "manager.py").write_text(MANAGER)
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    processes.start([sys.executable, tmp_path / "manager.py", tmp_path / "cfg.json"], cwd=tmp_path,
                    stdout=open(tmp_path / "manager.out", "wb"), stderr=subprocess.STDOUT)  # fmt: skip  # noqa: SIM115
    wait_until(lambda: (tmp_path / "port").exists(), 30, "the coffea-wq manager to listen")
    return int((tmp_path / "port").read_text())


def _result(tmp_path) -> dict:
    path = tmp_path / "result.json"
    return json.loads(path.read_text()) if path.exists() else {}


@requires_cctools
@pytest.mark.slow
def test_workers_started_first_find_our_named_manager_through_our_catalog(processes, tmp_path):
    catalog_port = start_our_catalog(processes, tmp_path)
    catalog = f"{LOOPBACK}:{catalog_port}"
    name = f"test-{os.getpid()}-{time.time_ns() % 10**6}"
    workdir = tmp_path / "workers"
    workdir.mkdir()
    ours = processes.start(coffea_wq_command("worker", "-M", name, "-C", catalog, "--cores", "1", "--memory", "500",
                                             "--disk", "500", "-t", "120", "-s", str(workdir)),
                           cwd=tmp_path, stdout=open(tmp_path / "our-worker.out", "wb"), stderr=subprocess.STDOUT)  # fmt: skip  # noqa: SIM115
    real = processes.start([REAL_WORKER, "-M", name, "-C", catalog, "--cores", "1", "--memory", "500",
                            "--disk", "500", "-t", "120", "-s", workdir],
                           cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    time.sleep(1)  # both workers ask the catalog before the manager exists
    port = _start_manager(processes, tmp_path, name=name, catalog=catalog, tasks=24, command="sleep 4", limit=200)
    wait_until(lambda: query_manager(LOOPBACK, port)[0]["workers_connected"] >= 2, 80, "both workers to connect")
    # a worker dies while running a task: that task must be retried elsewhere
    wait_until(lambda: query_manager(LOOPBACK, port)[0]["tasks_running"] >= 2, 30, "both workers busy")
    real.send_signal(signal.SIGKILL)
    wait_until(lambda: _result(tmp_path), 120, "the run to complete")
    result = _result(tmp_path)
    assert sorted(d[0] for d in result["done"]) == list(range(1, 25))
    assert all(d[1] == 0 and d[2] == 0 for d in result["done"])
    assert ours.poll() is None

    events = read_transactions_log(tmp_path / "tr.log")  # every line parses against the grammar
    assert (events[0].kind, events[0].event) == ("MANAGER", "START")
    assert (events[-1].kind, events[-1].event) == ("MANAGER", "END")
    assert [e.event for e in events if e.kind == "MANAGER"] == ["START", "END"]
    connections = [e for e in events if e.kind == "WORKER" and e.event == "CONNECTION"]
    assert len(connections) >= 2 and all(e.address.startswith("127.0.0.1:") for e in connections)
    per_task: dict[str, list] = {}
    for e in events:
        if e.kind == "TASK":
            per_task.setdefault(e.subject, []).append(e)
    assert sorted(per_task, key=int) == [str(i) for i in range(1, 25)]
    for task_id, task_events in per_task.items():
        assert task_events[0].event == "WAITING", task_id
        assert [e.event for e in task_events].count("DONE") == 1, task_id
        assert (task_events[-1].event, task_events[-1].result, task_events[-1].exit_code) == ("DONE", "SUCCESS", 0)
        assert task_events[-2].event == "RETRIEVED" and task_events[-2].result == "SUCCESS", task_id
    runs = {task_id: [e.event for e in task_events].count("RUNNING") for task_id, task_events in per_task.items()}
    assert max(runs.values()) >= 2, "no task was retried after the worker died"

    rows = read_stats_log(tmp_path / "stats.log")
    assert rows[-1]["tasks_submitted"] == 24 and rows[-1]["tasks_done"] == 24  # the final row counts every task
    assert rows[-1]["tasks_waiting"] == rows[-1]["tasks_running"] == 0
    assert (rows[-1]["timestamp"] - rows[0]["timestamp"]) / 1e6 >= 0.9 * result["seconds"]  # rows span the run
    plot = subprocess.run(coffea_wq_command("graph-log", str(tmp_path / "stats.log"), "-o", str(tmp_path / "g")),
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert plot.returncode == 0, plot.stderr
    assert (tmp_path / "g.tasks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # last, CCTools' own tool on our stats log: the rest above ran whether or not it is here
    if shutil.which("work_queue_graph_log") is None:
        skip_not_installed("work_queue_graph_log", "coop-computing-tools")
    if shutil.which("gnuplot") is None:
        skip_not_installed("gnuplot (for work_queue_graph_log)", "gnuplot-nox")
    real = subprocess.run(["work_queue_graph_log", "-T", "png", "-o", str(tmp_path / "real"),
                           str(tmp_path / "stats.log")], capture_output=True, text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    output = real.stdout + real.stderr
    assert "invalid value" not in output and "Aborting" not in output, output
    assert (tmp_path / "real.tasks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", output


@pytest.mark.slow
def test_a_missing_catalog_does_not_slow_a_run(processes, tmp_path):
    """Advertising to a catalog that is not there (and a name that does not resolve) costs nothing."""
    dead = f"{LOOPBACK}:{start_dead_port()},no-such-catalog.invalid:9097"
    port = _start_manager(processes, tmp_path, name="test-nocatalog", catalog=dead, tasks=4, command="true", limit=60)
    processes.start(coffea_wq_command("worker", LOOPBACK, str(port), "--cores", "2", "--memory", "500",
                                      "--disk", "500", "-t", "60", "-s", str(tmp_path)),
                    cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    wait_until(lambda: _result(tmp_path), 60, "the run to complete")
    result = _result(tmp_path)
    assert len(result["done"]) == 4
    assert result["seconds"] < 20, f"run took {result['seconds']:.1f} s with a missing catalog"


def start_dead_port() -> int:
    from tests.support import free_port

    return free_port()
