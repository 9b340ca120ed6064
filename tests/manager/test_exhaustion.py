"""Enforcement end to end on our manager: watchdog kill, measure, fixed-mode failure, retry at the maximum.

Every case runs with coffea-wq's worker and with the real ``work_queue_worker``; the tasks run under the
shipped monitor that ``enable_monitoring`` wraps them in.
"""

from __future__ import annotations

import json
import re
import time

import pytest

import coffea_wq.work_queue as wq
from tests.manager.helpers import start_worker
from tests.support import LOOPBACK, requires_cctools, wait_until

pytestmark = pytest.mark.slow

KINDS = ["coffea-wq", pytest.param("cctools", marks=requires_cctools)]
HOLD = "python3 -c 'import time; b = bytearray({mb} * 2**20); time.sleep({seconds})'"


def hold_task(mb: int, seconds: float = 2, memory: int | None = None, category: str | None = None) -> wq.Task:
    t = wq.Task(HOLD.format(mb=mb, seconds=seconds))
    t.specify_tag(f"{mb}MB")
    if memory is not None:
        t.specify_cores(1)
        t.specify_memory(memory)
        t.specify_disk(100)
    if category:
        t.specify_category(category)
    return t


def run_one(q: wq.WorkQueue, task: wq.Task, timeout: float = 60) -> wq.Task:
    q.submit(task)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = q.wait(1)
        if done is not None:
            return done
    pytest.fail(f"task {task.tag} did not come back in {timeout} s")


def task_lines(log_path, task_id: int) -> list[str]:
    pattern = re.compile(rf"^\d+ \d+ TASK {task_id} (.*)$")
    return [m[1] for line in log_path.read_text().splitlines() if (m := pattern.match(line))]


def json_tail(line: str) -> tuple[dict, dict]:
    """The two JSON objects (limits exceeded, measured) that end a RETRIEVED/DONE line."""
    decoder = json.JSONDecoder()
    start = line.index("{")
    limits, end = decoder.raw_decode(line, start)
    measured, _ = decoder.raw_decode(line, line.index("{", end))
    return limits, measured


@pytest.mark.parametrize("kind", KINDS)
def test_watchdog_kills_a_300mb_task_with_memory_100_and_measure_lets_it_finish(kind, tmp_path, processes):
    txlog = tmp_path / "tx.log"
    with wq.WorkQueue(port=0, host=LOOPBACK, transactions_log=str(txlog)) as q:
        q.enable_monitoring(watchdog=True)
        start_worker(kind, processes, q.port, tmp_path / "w")
        killed = run_one(q, hold_task(300, memory=100))

        q.enable_monitoring(watchdog=False)
        measured = run_one(q, hold_task(300, memory=100))

    # fixed mode: a permanent failure at once, named resource, limit and peak
    assert killed.result == wq.WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION, killed.result_str
    assert killed.result_str == "RESOURCE_EXHAUSTION"
    assert killed.total_submissions == 1 and killed.exhausted_attempts == 1
    assert killed.limits_exceeded.memory == 100
    assert killed.resources_measured.memory > 100
    assert re.fullmatch(r"memory exceeded: peak \d+ MB > limit 100 MB", killed.exhaustion_message)
    assert killed.resources_allocated.memory == 100

    assert measured.result == wq.WORK_QUEUE_RESULT_SUCCESS and measured.return_status == 0
    assert 290 <= measured.resources_measured.memory <= 380
    assert measured.exhaustion_message == ""  # the broken limit may be recorded, but nothing was stopped

    lines = task_lines(txlog, killed.id)
    retrieved = [line for line in lines if line.startswith("RETRIEVED ")]
    assert len(retrieved) == 1 and retrieved[0].startswith("RETRIEVED RESOURCE_EXHAUSTION  ")
    limits, peaks = json_tail(retrieved[0])
    assert limits == {"memory": [100, "MB"]}
    assert peaks["memory"][0] == killed.resources_measured.memory and peaks["memory"][1] == "MB"
    assert lines[-1].startswith("DONE RESOURCE_EXHAUSTION  ")
    assert task_lines(txlog, measured.id)[-1].startswith("DONE SUCCESS  0 ")
    assert json_tail(task_lines(txlog, measured.id)[-1])[1]["memory"][0] >= 290


@pytest.mark.parametrize("kind", KINDS)
def test_auto_mode_retries_an_exhausted_task_at_the_category_maximum(kind, tmp_path, processes):
    txlog = tmp_path / "tx.log"
    with wq.WorkQueue(port=0, host=LOOPBACK, transactions_log=str(txlog)) as q:
        q.enable_monitoring(watchdog=True)
        q.tune("category-steady-n-tasks", 1)
        q.specify_category_mode("analysis", wq.WORK_QUEUE_ALLOCATION_MODE_MAX)
        q.specify_category_max_resources("analysis", {"memory": 700})
        start_worker(kind, processes, q.port, tmp_path / "w")
        wait_until(lambda: q.stats.workers_connected >= 1, 60, "the worker to connect")
        # one small task measured: the category's first allocation becomes one 250 MB bucket
        small = run_one(q, hold_task(40, seconds=0.5, category="analysis"))
        big = run_one(q, hold_task(400, category="analysis"))

    assert small.result == wq.WORK_QUEUE_RESULT_SUCCESS and small.resources_allocated.memory == 700
    assert big.result == wq.WORK_QUEUE_RESULT_SUCCESS and big.return_status == 0, big.result_str
    assert big.exhausted_attempts == 1 and big.total_submissions == 2
    assert big.resources_allocated.memory == 700  # the category maximum, on the retry
    assert big.resources_measured.memory >= 390
    lines = task_lines(txlog, big.id)
    kinds = [line.split()[0] + " " + line.split()[1] for line in lines]
    assert kinds == ["WAITING analysis", f"RUNNING {lines[1].split()[1]}", "WAITING_RETRIEVAL " + lines[2].split()[1],
                     "RETRIEVED RESOURCE_EXHAUSTION", "WAITING analysis", f"RUNNING {lines[5].split()[1]}",
                     "WAITING_RETRIEVAL " + lines[6].split()[1], "RETRIEVED SUCCESS", "DONE SUCCESS"]
    assert "FIRST_RESOURCES" in lines[1] and '"memory":[250,"MB"]' in lines[1]
    assert json_tail(lines[3])[0] == {"memory": [250, "MB"]}
    assert "MAX_RESOURCES" in lines[4] and "MAX_RESOURCES" in lines[5] and '"memory":[700,"MB"]' in lines[5]


@pytest.mark.parametrize("kind", KINDS[:1])
def test_exhausting_the_maximum_too_is_a_permanent_failure(kind, tmp_path, processes):
    with wq.WorkQueue(port=0, host=LOOPBACK) as q:
        q.enable_monitoring(watchdog=True)
        q.specify_category_mode("analysis", wq.WORK_QUEUE_ALLOCATION_MODE_MAX_THROUGHPUT)
        q.specify_category_max_resources("analysis", {"memory": 150})
        start_worker(kind, processes, q.port, tmp_path / "w")
        big = run_one(q, hold_task(400, category="analysis"))
    assert big.result == wq.WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION
    assert big.total_submissions == 1  # the first allocation already was the maximum: no retry can help
    assert "limit 150 MB" in big.exhaustion_message


@pytest.mark.parametrize("kind", KINDS)
def test_a_task_that_loses_its_measurement_is_a_monitor_error_and_the_queue_goes_on(kind, tmp_path, processes):
    with wq.WorkQueue(port=0, host=LOOPBACK) as q:
        q.enable_monitoring(watchdog=True)
        q.tune("category-steady-n-tasks", 1)
        q.specify_category_mode("analysis", wq.WORK_QUEUE_ALLOCATION_MODE_MAX)
        start_worker(kind, processes, q.port, tmp_path / "w")
        # the command kills the monitor that wraps it, so no summary comes back
        lost = wq.Task("kill -9 $PPID; sleep 1")
        lost.specify_category("analysis")
        lost = run_one(q, lost)
        after = run_one(q, hold_task(40, seconds=0.2, category="analysis"))
    assert lost.result == wq.WORK_QUEUE_RESULT_RMONITOR_ERROR, lost.result_str
    assert lost.resources_measured is None and lost.exhaustion_message == ""
    assert after.result == wq.WORK_QUEUE_RESULT_SUCCESS and after.resources_measured.memory > 0
