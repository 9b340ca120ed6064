"""Real ``work_queue_status HOST PORT`` (and -W, -T, -A, -l) against the coffea-wq manager, and HTTP."""

from __future__ import annotations

import json
import subprocess
import urllib.request

import pytest

import coffea_wq.work_queue as wq
from tests.manager.helpers import start_real_worker, start_worker
from tests.support import LOOPBACK, REAL_STATUS, Processes, requires_cctools, skip_not_installed, wait_until


def status(*args: str, port: int) -> str:
    result = subprocess.run([REAL_STATUS, *args, LOOPBACK, str(port)], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def busy_queue(tmp_path_factory):
    """A named queue with one 2-core real worker running two tasks and one task waiting."""
    if REAL_STATUS is None:
        skip_not_installed("work_queue_status", "coop-computing-tools")
    processes = Processes()
    q = wq.WorkQueue(port=0, host=LOOPBACK, name="status-test", catalog=f"{LOOPBACK}:1")
    start_real_worker(processes, q.port, tmp_path_factory.mktemp("status") / "w")
    assert q.wait_for_workers(1, 20)
    for i in range(3):
        t = wq.Task(f"sleep 30; echo {i}")
        t.specify_cores(1)
        t.specify_memory(100)
        t.specify_disk(100)
        t.specify_tag(f"tag-{i}")
        q.submit(t)
    wait_until(lambda: q.stats.tasks_running == 2, 20, "two running tasks")
    yield q
    for task_id in (1, 2, 3):
        q.cancel_by_taskid(task_id)
    q.shutdown_workers(0)  # the worker exits at once instead of reconnecting
    q.shutdown()
    processes.stop_all()


@requires_cctools
def test_default_view_shows_project_and_counts(busy_queue):
    lines = status(port=busy_queue.port).splitlines()
    assert lines[0].split() == ["PROJECT", "HOST", "PORT", "WAITING", "RUNNING", "COMPLETE", "WORKERS"]
    fields = lines[1].split()
    assert fields[0] == "status-test"
    assert fields[2:] == [str(busy_queue.port), "1", "2", "0", "1"]


@requires_cctools
def test_workers_view(busy_queue):
    lines = status("-W", port=busy_queue.port).splitlines()
    assert lines[0].split()[:4] == ["HOST", "ADDRESS", "COMPLETED", "RUNNING"]
    fields = lines[1].split()
    assert fields[1].startswith("127.0.0.1:")
    assert fields[2:] == ["0", "2", "2", "2", "200", "1000", "200", "2000"]


@requires_cctools
def test_tasks_view(busy_queue):
    rows = [line.split() for line in status("-T", port=busy_queue.port).splitlines()[1:] if line.strip()]
    states = sorted((row[0], row[1]) for row in rows)
    assert states == [("1", "running"), ("2", "running"), ("3", "WAITING")]
    waiting = next(row for row in rows if row[0] == "3")
    assert waiting[3] == "???" and waiting[-3:] == ["1", "100", "100"]


@requires_cctools
def test_categories_view(busy_queue):
    rows = [line.split() for line in status("-A", port=busy_queue.port).splitlines()[1:] if line.strip()]
    assert rows[0][:2] == ["whole", "queue"] and rows[0][2:5] == ["2", "1", "1"]
    assert rows[1][0] == "default"


@requires_cctools
def test_long_views_are_the_json_records(busy_queue):
    record = json.loads(status("-l", port=busy_queue.port))[0]
    assert record["type"] == "wq_master" and record["project"] == "status-test"
    assert record["port"] == busy_queue.port
    assert record["tasks_running"] == 2 and record["tasks_waiting"] == 1 and record["workers_connected"] == 1
    assert record["network_interfaces"] == [{"interface": "lo", "host": "127.0.0.1", "family": "AF_INET"}]
    assert record["categories"][0]["category"] == "whole queue"
    workers = json.loads(status("-W", "-l", port=busy_queue.port))
    assert workers[0]["cores_inuse"] == 2 and workers[0]["total_tasks_running"] == 2
    assert {workers[0]["current_task_000_id"], workers[0]["current_task_001_id"]} == {1, 2}
    tasks = json.loads(status("-T", "-l", port=busy_queue.port))
    assert {t["tag"] for t in tasks} == {"tag-0", "tag-1", "tag-2"}


def test_http_get_answers_the_same_json(tmp_path):
    with wq.WorkQueue(port=0, host=LOOPBACK) as q:
        q.submit(wq.Task("true"))
        with urllib.request.urlopen(f"http://{LOOPBACK}:{q.port}/queue_status", timeout=10) as reply:
            assert reply.headers["Access-Control-Allow-Origin"] == "*"
            record = json.loads(reply.read())[0]
        assert record["tasks_waiting"] == 1 and record["port"] == q.port
        with urllib.request.urlopen(f"http://{LOOPBACK}:{q.port}/", timeout=10) as reply:
            assert b"/task_status" in reply.read()
        assert q.stats.workers_connected == 0  # status clients are not workers


@requires_cctools
def test_whole_queue_maxima_keep_every_request_ever_made_and_category_maxima(processes, tmp_path):
    """As CCTools (samples/py-manager/full/status-A.txt): the only task that declared resources is
    gone, yet "whole queue" still shows its 1.000/100/50; an explicit category max joins them."""
    with wq.WorkQueue(port=0, host=LOOPBACK) as q:
        start_worker("coffea-wq", processes, q.port, tmp_path / "w", cores=2, memory=500, disk=500)
        declared = wq.Task("true")
        declared.specify_category("cat-a")
        declared.specify_cores(1)
        declared.specify_memory(100)
        declared.specify_disk(50)
        q.submit(declared)
        assert wait_until(lambda: q.wait(1), 60, "the declared task to come back").id == declared.id
        q.submit(wq.Task("sleep 30"))  # declares nothing
        wait_until(lambda: q.stats.tasks_running == 1, 30, "the undeclared task to run")

        def categories() -> dict[str, dict]:
            return {c["category"]: c for c in json.loads(status("-A", "-l", port=q.port))}

        shown = categories()
        assert [shown["whole queue"][f"max_{r}"] for r in ("cores", "memory", "disk")] == ["1.000", "100", "50"]
        assert shown["cat-a"]["tasks_done"] == 1
        assert not {"max_cores", "max_memory", "max_disk"} & set(shown["default"])
        q.specify_category_max_resources("big", {"memory": 700})
        assert categories()["whole queue"]["max_memory"] == "700"
