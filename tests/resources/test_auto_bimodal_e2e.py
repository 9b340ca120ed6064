"""Acceptance: in auto mode a bimodal workload on a 1 GB worker completes every task with several running
at once, while whole-worker mode runs them one at a time.

Driven only through the manager's public API (``enable_monitoring``, ``specify_category_mode``,
``tune("category-steady-n-tasks", n)``); the tasks declare nothing, so every size comes from the category.
Concurrency is counted from the monitor's start/end times of each task's last attempt.
"""

from __future__ import annotations

import time

import pytest

import coffea_wq.work_queue as wq
from tests.manager.helpers import start_worker
from tests.resources.test_packing_e2e import most_at_once
from tests.support import LOOPBACK, requires_cctools, wait_until

pytestmark = pytest.mark.slow

KINDS = ["coffea-wq", pytest.param("cctools", marks=requires_cctools)]
SMALL_MB, LARGE_MB, LARGE_EVERY = 100, 600, 6
HOLD_S = 1.0
STEADY_N = 5


def bimodal(count: int) -> list[int]:
    """Most tasks ~100 MB, every sixth ~600 MB (never among the first STEADY_N, which teach the category)."""
    return [LARGE_MB if i % LARGE_EVERY == LARGE_EVERY - 1 else SMALL_MB for i in range(count)]


def run_workload(q: wq.WorkQueue, sizes: list[int], timeout: float = 150) -> list[wq.Task]:
    for i, mb in enumerate(sizes):
        t = wq.Task(f"python3 -c 'import time; b = bytearray({mb} * 2**20); time.sleep({HOLD_S})'")
        t.specify_category("processing")
        t.specify_tag(f"{i}-{mb}MB")
        q.submit(t)
    done = []
    deadline = time.monotonic() + timeout
    while len(done) < len(sizes) and time.monotonic() < deadline:
        t = q.wait(1)
        if t is not None:
            done.append(t)
    assert len(done) == len(sizes), f"only {len(done)} of {len(sizes)} tasks came back in {timeout} s"
    return done


def intervals(tasks: list[wq.Task]) -> list[tuple[float, float]]:
    return [(t.resources_measured.start, t.resources_measured.end) for t in tasks]


@pytest.mark.parametrize("kind", KINDS)
def test_auto_mode_packs_a_bimodal_workload_and_whole_worker_runs_it_one_at_a_time(kind, tmp_path, processes):
    with wq.WorkQueue(port=0, host=LOOPBACK) as q:
        q.enable_monitoring(watchdog=True)
        q.tune("category-steady-n-tasks", STEADY_N)
        start_worker(kind, processes, q.port, tmp_path / "w", cores=4, memory=1000, disk=1000)
        wait_until(lambda: q.stats.workers_connected >= 1, 60, "the worker to connect")

        q.specify_category_mode("processing", wq.WORK_QUEUE_ALLOCATION_MODE_MAX_THROUGHPUT)
        auto = run_workload(q, bimodal(30))

        q.specify_category_mode("processing", wq.WORK_QUEUE_ALLOCATION_MODE_FIXED)
        whole = run_workload(q, bimodal(8))

    for t in auto + whole:
        assert t.result == wq.WORK_QUEUE_RESULT_SUCCESS and t.return_status == 0, (t.tag, t.result_str, t.output)
    large = [t for t in auto if t.tag.endswith(f"-{LARGE_MB}MB")]
    assert all(t.resources_measured.memory >= LARGE_MB - 10 for t in large)
    # the learned first allocation is one 250 MB bucket: the large tasks exhaust it and finish at the maximum
    assert sum(t.exhausted_attempts for t in large) >= len(large) - 1
    assert all(t.resources_allocated.memory == 1000 for t in large if t.exhausted_attempts)
    small_sizes = {t.resources_allocated.memory for t in auto if t.tag.endswith(f"-{SMALL_MB}MB")}
    assert 250 in small_sizes
    assert most_at_once(intervals(auto)) >= 3
    assert most_at_once(intervals(whole)) == 1
    assert all(t.resources_allocated.memory == 1000 and t.resources_allocated.cores == 4 for t in whole)
