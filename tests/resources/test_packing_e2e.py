"""Acceptance: resource packing through the coffea-wq manager, with our worker and the real one.

A 4-core worker runs four fully declared 1-core tasks at once. A task that leaves disk undeclared
gets the same share of the disk as of the cores by default (CCTools' proportional-resources), so
four still run at once; with ``tune("proportional-resources", 0)`` (what the executor sets) it takes
the whole disk (the whole-worker rule), so the same four run one at a time.
"""

from __future__ import annotations

import time

import pytest

import coffea_wq.work_queue as work_queue
from tests.support import LOOPBACK, requires_cctools, wait_until, worker_argv

TASK_SECONDS = 1.5
# Each task prints when it started and ended, so overlaps can be counted from the outputs.
COMMAND = f"date +%s.%N; sleep {TASK_SECONDS}; date +%s.%N"


def start_worker(kind: str, port: int, tmp_path, processes) -> None:
    processes.start(worker_argv(kind, port, tmp_path, cores=4, memory=1000, disk=1000))


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def run_four(q, declare_disk: bool) -> list[tuple[float, float]]:
    for _ in range(4):
        t = work_queue.Task(COMMAND)
        t.specify_cores(1)
        t.specify_memory(200)
        if declare_disk:
            t.specify_disk(200)
        q.submit(t)
    intervals = []
    deadline = time.monotonic() + 90
    while len(intervals) < 4 and time.monotonic() < deadline:
        t = q.wait(5)
        if t is None:
            continue
        assert t.result == 0 and t.return_status == 0, (t.result, t.output)
        start, end = (float(x) for x in t.output.split())
        intervals.append((start, end))
    assert len(intervals) == 4, "the four tasks did not all finish in time"
    return intervals


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind", ["coffea-wq", pytest.param("cctools", marks=[requires_cctools, pytest.mark.cctools])]
)
def test_four_tasks_share_a_four_core_worker_and_undeclared_disk_runs_alone_without_proportional(
    kind, tmp_path, processes
):
    with work_queue.WorkQueue(port=0, host=LOOPBACK) as q:
        start_worker(kind, q.port, tmp_path, processes)
        wait_until(lambda: q.stats.workers_connected >= 1, 60, "the worker to connect")
        packed = run_four(q, declare_disk=True)
        assert most_at_once(packed) == 4
        proportional = run_four(q, declare_disk=False)
        assert most_at_once(proportional) == 4
        q.tune("proportional-resources", 0)
        alone = run_four(q, declare_disk=False)
        assert most_at_once(alone) == 1
