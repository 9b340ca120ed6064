"""`coffea-wq dashboard HOST PORT` on Debian's C manager with real ``work_queue_worker``s."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path

import pytest

from coffea_wq.catalog.query import query_manager
from tests.manager.helpers import start_real_worker
from tests.support import (
    LOOPBACK,
    SYSTEM_PYTHON,
    coffea_wq_command,
    requires_cctools,
    requires_cctools_python,
    wait_until,
)

pytestmark = [pytest.mark.slow, requires_cctools, requires_cctools_python]

SCRIPT = Path(__file__).with_name("cctools_manager.py")
TASKS = 8


def snapshot(url: str) -> dict:
    return json.loads(urllib.request.urlopen(url + "api/snapshot", timeout=10).read())


def test_dashboard_shows_a_cctools_managers_tasks_and_workers(processes, tmp_path):
    manager = processes.start([SYSTEM_PYTHON, SCRIPT, "--tasks", str(TASKS), "--seconds", "1.5"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    port = int(manager.stdout.readline().split()[1])
    dashboard = processes.start(coffea_wq_command("dashboard", LOOPBACK, str(port)), stdout=subprocess.PIPE,
                                text=True)
    line = dashboard.stdout.readline()
    url = re.search(r"(http://127\.0\.0\.1:\d+/)", line).group(1)
    for n in range(2):
        start_real_worker(processes, port, tmp_path / f"worker{n}", cores=1)

    # while tasks run: the page's tasks and workers are the manager's, within one poll
    running = wait_until(lambda: (s := snapshot(url))["tasks"]["running"] > 0 and s["workers_connected"] == 2 and s,
                         60, "the dashboard to show running tasks on 2 workers")
    queue = query_manager(LOOPBACK, port, "queue_status")[0]
    workers = query_manager(LOOPBACK, port, "worker_status")
    assert running["source"] == {"kind": "status", "manager": f"{LOOPBACK}:{port}", "project": "",
                                 "version": queue["version"], "password": False}
    assert running["tasks"]["submitted"] == queue["tasks_submitted"] == TASKS
    assert queue["tasks_done"] - 2 <= running["tasks"]["done"] <= queue["tasks_done"]  # 2 workers, 1.5 s tasks
    assert sorted(w["address"] for w in running["workers"]) == sorted(w["address_port"] for w in workers)
    assert all(w["cores"] == 1 and w["memory"] == 1000 and w["disk"] == 2000 for w in running["workers"])
    shown = running["running_tasks"]  # from task_status (work_queue_status -T)
    assert len(shown) == running["tasks"]["running"] and len({t["task_id"] for t in shown}) == len(shown)
    assert all(t["command"].startswith("sleep 1.5; echo task") and t["category"] == "sleepers" for t in shown)
    assert all(t["host"] in {w["host"] for w in running["workers"]} and t["started"] for t in shown)
    (category,) = running["categories"]
    assert category["name"] == "sleepers" and category["running"] == running["tasks"]["running"]
    assert running["progress"]["unit"] == "task" and running["progress"]["chunks_total"] == TASKS

    # every task done: the page counts them all, and the workers became warm
    assert manager.stdout.readline().strip() == f"DONE {TASKS}"
    final = wait_until(lambda: (s := snapshot(url))["progress"]["chunks_done"] == TASKS and s, 30,
                       "the dashboard to count every task")
    assert sum(w["done"] for w in final["workers"]) == TASKS and all(w["warm"] for w in final["workers"])
    assert final["throughput"] and max(p["chunks_s"] for p in final["throughput"]) > 0
    metrics = urllib.request.urlopen(url + "metrics", timeout=10).read().decode()
    assert f"coffea_wq_tasks_done_total {TASKS}.0" in metrics
    assert 'coffea_wq_workers{state="connected"} 2.0' in metrics

    # the manager goes away: the page says so and keeps the last numbers
    manager.stdin.close()
    manager.wait(timeout=30)
    gone = wait_until(lambda: (s := snapshot(url))["state"] == "unreachable" and s, 30, "the page to notice")
    assert gone["progress"]["chunks_done"] == TASKS and gone["error"]


def test_executor_dashboard_on_the_cctools_manager(monkeypatch, tmp_path, capsys):
    """``COFFEA_WQ_MANAGER=cctools``: the page reads the C manager by status queries, the run by its tracker."""
    from coffea import processor
    from coffea.nanoevents import NanoAODSchema

    import coffea_wq
    from tests.dashboard.runs import dashboard_url, sample_fileset

    monkeypatch.setenv("COFFEA_WQ_MANAGER", "cctools")
    # an explicit port: the run makes no password of its own, so status queries are answered
    executor = coffea_wq.WorkQueueExecutor(local_workers=2, port=0, status=False, dashboard=True,
                                           filepath=str(tmp_path))
    runner = processor.Runner(executor=executor, chunksize=2500, schema=NanoAODSchema, metadata_cache={})
    try:
        output = runner(sample_fileset(), processor_instance(), treename="Events")
        url = dashboard_url(capsys.readouterr().out)
        final = snapshot(url)
    finally:
        coffea_wq.executor.shutdown()
    assert sum(output["nevents"].values()) == 15000
    assert final["state"] == "finished" and final["source"]["kind"] == "executor" and not final["error"]
    assert final["source"]["version"].startswith(("7.", "8.", "9."))  # CCTools' own version string
    assert (final["progress"]["chunks_done"], final["progress"]["events_done"]) == (6, 15000)
    assert final["tasks"]["done"] == 6 + 6  # files preprocessed, then chunks, all by the C manager
    # the C manager may give every task to one of the two workers: warm is "has finished a task here"
    assert final["workers_connected"] == 2 and any(w["warm"] for w in final["workers"])
    assert all(w["warm"] == (w["done"] > 0) for w in final["workers"]), final["workers"]
    assert {c["name"] for c in final["categories"]} >= {"preprocessing", "processing"}


def processor_instance():
    from analysis_examples.topeft.processor import TopEFTLikeProcessor

    return TopEFTLikeProcessor()
