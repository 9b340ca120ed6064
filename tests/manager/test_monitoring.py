"""Monitoring and categories with real workers: measured resources, exhaustion, category limits."""

from __future__ import annotations

import time

import pytest

import coffea_wq.work_queue as wq
from tests.manager.helpers import start_real_worker
from tests.support import LOOPBACK, requires_cctools

HOLD = "python3 -c 'import time; b = bytearray({mb} * 2**20); time.sleep(1.5)'"


def drain(q, timeout: float) -> dict:
    done = {}
    deadline = time.monotonic() + timeout
    while not q.empty() and time.monotonic() < deadline:
        t = q.wait(0.5)
        if t is not None:
            done[t.tag] = t
    return done


@pytest.mark.slow
@requires_cctools
def test_measured_resources_and_watchdog_exhaustion(processes, tmp_path):
    with wq.WorkQueue(port=0, host=LOOPBACK) as q:
        q.enable_monitoring(str(tmp_path / "summaries"), watchdog=True)
        start_real_worker(processes, q.port, tmp_path / "w")
        for tag, mb, memory, command in (
            ("fits", 60, 500, None),
            ("too-big", 300, 100, None),
            ("exit3", 0, 100, "echo out; exit 3"),
        ):
            t = wq.Task(command or HOLD.format(mb=mb))
            t.specify_tag(tag)
            t.specify_cores(1)
            t.specify_memory(memory)
            t.specify_disk(100)
            q.submit(t)
        done = drain(q, 90)
    fits, big, exit3 = done["fits"], done["too-big"], done["exit3"]
    assert fits.result == wq.WORK_QUEUE_RESULT_SUCCESS and fits.return_status == 0
    assert fits.resources_measured.memory >= 50
    assert fits.resources_measured.wall_time >= 1.0
    assert big.result == wq.WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION
    assert big.limits_exceeded is not None and big.limits_exceeded.memory == 100
    assert exit3.result == wq.WORK_QUEUE_RESULT_SUCCESS and exit3.return_status == 3
    assert exit3.output == "out\n"
    assert len(list((tmp_path / "summaries").glob("*.summary"))) == 3


@requires_cctools
def test_category_max_resources_bound_the_box(processes, tmp_path):
    with wq.WorkQueue(port=0, host=LOOPBACK) as q:
        q.specify_category_max_resources("small", {"cores": 1, "memory": 100, "disk": 100})
        q.specify_category_mode("small", wq.WORK_QUEUE_ALLOCATION_MODE_MAX)
        for i in range(2):
            t = wq.Task('echo "$CORES $MEMORY"')
            t.specify_category("small")
            t.specify_tag(str(i))
            q.submit(t)
        start_real_worker(processes, q.port, tmp_path / "w")
        done = drain(q, 30)
        record = q.snapshot().categories
    assert {t.output for t in done.values()} == {"1 100\n"}
    small = next(r for r in record if r["category"] == "small")
    assert small["max_cores"] == "1.000" and small["max_memory"] == "100"
    with pytest.raises(ValueError, match="unknown resource"):
        wq.WorkQueue.specify_category_max_resources(q, "x", {"ram": 1})
