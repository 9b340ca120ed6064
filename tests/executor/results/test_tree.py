"""The accumulation tree's planner (executor/results/tree.py) and the record peek that routes outputs to it."""

from __future__ import annotations

import io
import os
import pickle

import awkward as ak
import hist
import lz4.frame
import numpy as np
import pytest
from coffea import processor

from coffea_wq.executor.results.outcome import RecordPeek, peek_record
from coffea_wq.executor.results.tree import TreePlanner, WaitingResult
from coffea_wq.executor.tasks import task_script
from coffea_wq.safe_pickle.allow_list import (
    RefusedResultError,
    ResultPolicy,
    first_refused_global,
    loads_result,
)


def _planner(fan_in: int, sizes: list[int]) -> TreePlanner:
    planner = TreePlanner(fan_in)
    for n, size in enumerate(sizes):
        planner.add(WaitingResult(f"r{n}", size=size, keys=(n,)))
    return planner


def _names(job) -> list[str]:
    return [r.name for r in job.inputs]


def test_while_processing_a_group_waits_for_2_fan_in_minus_1_results_and_takes_the_smallest():
    planner = _planner(3, [50, 10, 40, 20])
    assert planner.plan(final=False) == []  # 4 < 2*3-1: too few to choose from
    planner.add(WaitingResult("r4", size=30, keys=(4,)))
    jobs = planner.plan(final=False)
    assert [_names(j) for j in jobs] == [["r1", "r3", "r4"]]
    assert sorted(r.name for r in planner.waiting) == ["r0", "r2"]
    assert jobs[0].keys == (1, 3, 4)
    assert list(planner.running) == [jobs[0].job_id]


def test_no_job_has_more_inputs_than_the_fan_in():
    planner = _planner(4, list(range(100, 0, -1)))
    jobs = planner.plan(final=False) + planner.plan(final=True)
    assert jobs and all(2 <= len(j.inputs) <= 4 for j in jobs)
    taken = sorted(k for j in jobs for k in j.keys) + sorted(k for r in planner.waiting for k in r.keys)
    assert taken == list(range(100))  # every result once, none lost or doubled


def test_a_sum_waits_in_place_of_its_inputs_and_big_sums_are_added_last():
    planner = _planner(2, [1, 2, 3])
    job = planner.plan(final=False)[0]
    assert _names(job) == ["r0", "r1"]
    planner.succeeded(job.job_id, WaitingResult("sum", size=1000, keys=job.keys))
    planner.add(WaitingResult("r3", size=4, keys=(3,)))
    assert [_names(j) for j in planner.plan(final=False)] == [["r2", "r3"]]
    assert [r.name for r in planner.waiting] == ["sum"]


def test_at_the_end_groups_run_side_by_side_until_fewer_than_the_fan_in_remain():
    planner = _planner(4, [5, 1, 7, 3, 2, 6, 4])
    assert not planner.finished(final=True)
    jobs = planner.plan(final=True)
    assert [_names(j) for j in jobs] == [["r1", "r4", "r3", "r6"], ["r0", "r5", "r2"]]
    assert not planner.finished(final=True)  # two are running
    for job in jobs:
        planner.succeeded(job.job_id, WaitingResult(f"sum{job.job_id}", size=10, keys=job.keys))
    assert planner.plan(final=True) == []  # 2 < 4: the user's process merges them
    assert planner.finished(final=True)
    assert sorted(k for r in planner.take_waiting() for k in r.keys) == list(range(7))


def test_at_the_end_a_lone_result_waits_for_the_running_sum_rather_than_making_a_group_of_one():
    planner = _planner(3, [1, 2, 3, 4])
    first = planner.plan(final=True)
    assert [_names(j) for j in first] == [["r0", "r1", "r2"]]
    assert [r.name for r in planner.waiting] == ["r3"]
    assert not planner.finished(final=True)
    planner.succeeded(first[0].job_id, WaitingResult("sum", size=6, keys=first[0].keys))
    assert planner.plan(final=True) == [] and planner.finished(final=True)


def test_fewer_than_the_fan_in_at_the_end_make_no_job():
    planner = _planner(4, [1, 2, 3])
    assert planner.plan(final=True) == [] and planner.finished(final=True)
    assert not planner.finished(final=False)  # more may come while processing goes on


def test_a_failed_job_is_retried_with_the_same_inputs_then_abandoned_or_given_back():
    planner = _planner(2, [1, 2, 3])
    job = planner.plan(final=False)[0]
    assert planner.retry(job.job_id) is job and job.failures == 1
    keep = job.inputs[1:]
    planner.give_back(job.job_id, keep=keep)
    assert sorted(r.name for r in planner.waiting) == ["r1", "r2"] and not planner.running
    again = planner.plan(final=True)[0]
    assert planner.abandon(again.job_id) is again and not planner.running and not planner.waiting


def test_at_the_end_big_results_get_one_last_task_so_that_this_process_reads_one():
    planner = TreePlanner(20, big_bytes=100)
    for n, size in enumerate((300, 60, 50)):
        planner.add(WaitingResult(f"r{n}", size=size, keys=(n,)))
    assert planner.plan(final=False) == [] and not planner.finished(final=False)
    jobs = planner.plan(final=True)  # 60 + 50 >= 100 besides the largest
    assert [_names(j) for j in jobs] == [["r2", "r1", "r0"]] and not planner.waiting
    assert not planner.finished(final=True)  # it runs
    planner.succeeded(jobs[0].job_id, WaitingResult("sum", size=310, keys=jobs[0].keys))
    assert planner.plan(final=True) == [] and planner.finished(final=True)  # one left: read here


def test_at_the_end_small_results_are_merged_here_without_a_task():
    planner = TreePlanner(20, big_bytes=100)
    for n, size in enumerate((500, 60, 30)):  # one big result and 90 bytes besides it
        planner.add(WaitingResult(f"r{n}", size=size, keys=(n,)))
    assert planner.plan(final=True) == [] and planner.finished(final=True)
    assert _planner(20, [500, 400]).plan(final=True) == []  # no threshold: fewer than the fan-in stay here


def test_a_last_task_waits_for_the_running_ones():
    planner = TreePlanner(3, big_bytes=10)
    for n in range(4):
        planner.add(WaitingResult(f"r{n}", size=100, keys=(n,)))
    first = planner.plan(final=True)
    assert [len(j.inputs) for j in first] == [3] and len(planner.waiting) == 1
    assert planner.plan(final=True) == [] and not planner.finished(final=True)
    planner.succeeded(first[0].job_id, WaitingResult("sum", size=300, keys=first[0].keys))
    assert [_names(j) for j in planner.plan(final=True)] == [["r3", "sum"]]  # 2 < fan-in, but big


def test_a_fan_in_below_two_is_refused():
    with pytest.raises(ValueError, match="fan_in=1"):
        TreePlanner(1)


# ------------------------------------------------------------------------------ the peek
def _written(tmp_path, record: dict, name: str = "out.lz4"):
    path = tmp_path / name
    task_script._write_record(str(path), record, 1)
    return path


def test_the_peek_reads_status_and_none_from_the_task_runners_own_records(tmp_path):
    h = hist.Hist.new.Reg(100, 0, 1).Weight()
    ok = {"version": task_script.RECORD_VERSION, "status": "ok", "value": {"h": h}, "wall_time": 0.1}
    none = dict(ok, value=None)
    error = task_script._error_record(ValueError("boom"), 0.0)
    assert peek_record(_written(tmp_path, ok, "a")) == RecordPeek("ok", False)
    assert peek_record(_written(tmp_path, none, "b")) == RecordPeek("ok", True)
    assert peek_record(_written(tmp_path, error, "c")) == RecordPeek("error", False)
    assert peek_record(tmp_path / "missing") == RecordPeek(None)
    (tmp_path / "junk").write_bytes(b"not lz4")
    assert peek_record(tmp_path / "junk") == RecordPeek(None)


class _Hostile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_the_peek_of_a_hostile_pickle_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "rogue.lz4"
    path.write_bytes(lz4.frame.compress(pickle.dumps({"status": "ok", "value": _Hostile(marker)})))
    assert peek_record(path) == RecordPeek("ok", False)  # routed to the tree, where the allow-list reads it
    assert not marker.exists()


# ------------------------------------------------------------------------------ the screen
def test_the_screen_flags_what_the_allow_list_refuses_and_passes_real_outputs(tmp_path):
    h = hist.Hist.new.Reg(10, 0, 1, name="x").StrCat([], growth=True, name="d").Weight()
    h.fill(x=[0.1], d=["a"])
    honest = {"h": h, "a": ak.Array([[1, 2], []]), "n": np.arange(3), "acc": processor.value_accumulator(int, 2)}
    assert first_refused_global(io.BytesIO(pickle.dumps(honest)), ResultPolicy()) is None
    for hostile, refused in ((_Hostile(tmp_path / "x"), "posix.system"), (print, "builtins.print"),
                             ({"p": io.BytesIO}, "_io.BytesIO")):
        data = pickle.dumps({"status": "ok", "value": hostile})
        assert first_refused_global(io.BytesIO(data), ResultPolicy()) == refused
        with pytest.raises(RefusedResultError):  # what the screen flags, the unpickler refuses
            loads_result(data, ResultPolicy())
    assert not (tmp_path / "x").exists()
