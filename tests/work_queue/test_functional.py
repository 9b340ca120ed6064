"""CCTools 8's map, pair and tree_reduce (PythonTasks over chunks), cancel_by_category, status and
a category's max_concurrent, on both workers."""

from __future__ import annotations

import sys
import time

import pytest

import coffea_wq.work_queue as wq
from tests.work_queue.helpers import WORKER_KINDS, queue_with_worker, wait_for


@pytest.fixture(params=WORKER_KINDS)
def queue(request, processes, tmp_path, monkeypatch):
    # the worker's python3 must have the pickler: this interpreter (coffea-wq's worker puts it first)
    monkeypatch.setenv("PATH", f"{sys.executable.rsplit('/', 1)[0]}:/usr/bin:/bin")
    q = queue_with_worker(request.param, processes, tmp_path / "worker", cores=4)
    yield q
    q.shutdown()


@pytest.mark.slow
def test_map_pair_and_tree_reduce(queue):
    other = wq.Task("echo not part of the map")
    other.specify_tag("mine")
    queue.submit(other)
    assert queue.map(lambda x: x * x, list(range(10)), chunksize=3) == [x * x for x in range(10)]
    assert queue.pair(lambda p: f"{p[0]}{p[1]}", "ab", "xyz", chunksize=4) == \
        ["ax", "ay", "az", "bx", "by", "bz"]
    assert queue.tree_reduce(sum, list(range(1, 11)), chunksize=3) == 55
    # the task that was not the map's is still there for wait
    assert wait_for(queue, 30).tag == "mine"

    def fails_on_three(x):
        if x == 3:
            raise ArithmeticError("three is not allowed")
        return x

    with pytest.raises(ArithmeticError, match="three"):
        queue.map(fails_on_three, [1, 2, 3, 4, 5, 6], chunksize=1)
    deadline = time.monotonic() + 30
    while not queue.empty() and time.monotonic() < deadline:  # the map's other tasks were cancelled
        queue.wait(1)
    assert queue.empty()


@pytest.mark.slow
def test_max_concurrent_cancel_by_category_and_status(queue):
    queue.specify_category_max_concurrent("one-at-a-time", 1)
    for _ in range(3):
        t = wq.Task("date +%s.%N; sleep 1; date +%s.%N")
        t.specify_category("one-at-a-time")
        t.specify_cores(1)
        queue.submit(t)
    records = queue.status("task_status")
    assert {r["category"] for r in records} == {"one-at-a-time"} and len(records) == 3
    assert queue.status("queue_status")[0]["tasks_waiting"] >= 2
    intervals = []
    for _ in range(3):
        done = wait_for(queue, 60)
        start, end = (float(x) for x in done.output.split())
        intervals.append((start, end))
    intervals.sort()
    overlaps = [(a, b) for a, b in zip(intervals, intervals[1:], strict=False) if b[0] < a[1] - 0.05]
    assert not overlaps, intervals

    for _ in range(2):
        t = wq.Task("sleep 30")
        t.specify_category("doomed")
        t.specify_cores(1)
        queue.submit(t)
    keep = wq.Task("true")
    keep.specify_cores(1)
    queue.submit(keep)
    cancelled = queue.cancel_by_category("doomed")
    assert sorted(t.category for t in cancelled) == ["doomed", "doomed"]
    assert wait_for(queue, 30).id == keep.id and queue.empty()
    assert queue.using_ssl() is False and queue.application_info() is None


def test_coprocess_features_say_they_are_not_supported():
    with wq.WorkQueue(port=0, host="127.0.0.1") as q:
        with pytest.raises(NotImplementedError, match="coprocesses"):
            q.remote_map(abs, [1])
        with pytest.raises(NotImplementedError, match="coprocesses"):
            wq.Task("true").specify_coprocess("my-coprocess")
        with pytest.raises(NotImplementedError, match="coprocesses"):
            wq.RemoteTask("fn", "coprocess")
