"""The box a task gets on a worker, whether it fits, and the allocation-mode names."""

from __future__ import annotations

import pytest

from coffea_wq.resources.allocation import (
    AllocationMode,
    add_resources,
    fits,
    subtract_resources,
    task_box,
)
from coffea_wq.resources.types import Resources

WORKER = Resources(cores=4, memory=8000, disk=4000, gpus=0)


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("fixed", AllocationMode.FIXED),
        ("max", AllocationMode.MAX),
        ("max-seen", AllocationMode.MAX),
        ("MAX_SEEN", AllocationMode.MAX),
        ("auto", AllocationMode.MAX_THROUGHPUT),
        ("max-throughput", AllocationMode.MAX_THROUGHPUT),
        ("min-waste", AllocationMode.MIN_WASTE),
        (" Min_Waste ", AllocationMode.MIN_WASTE),
    ],
)
def test_parse_accepts_every_documented_name(text, mode):
    assert AllocationMode.parse(text) is mode


def test_parse_names_the_bad_value_and_the_choices():
    with pytest.raises(ValueError, match=r"'maximal'.*fixed.*max-throughput"):
        AllocationMode.parse("maximal")


def test_mode_numbers_match_cctools():
    assert [m.value for m in AllocationMode] == [0, 1, 2, 3]


def test_fully_declared_task_gets_exactly_what_it_declared():
    box = task_box(Resources(cores=1, memory=1000, disk=500), WORKER)
    assert box == Resources(cores=1, memory=1000, disk=500, gpus=0)


def test_undeclared_task_takes_the_whole_worker():
    assert task_box(Resources(), WORKER) == Resources(cores=4, memory=8000, disk=4000, gpus=0)


def test_undeclared_disk_takes_the_whole_disk():
    box = task_box(Resources(cores=1, memory=1000), WORKER)
    assert box == Resources(cores=1, memory=1000, disk=4000, gpus=0)


def test_proportional_share_in_fixed_mode_when_asked():
    box = task_box(Resources(cores=1), WORKER, proportional=True)
    assert box == Resources(cores=1, memory=2000, disk=1000, gpus=0)
    # The share follows the largest declared fraction: 4000 MB of 8000 is half the worker.
    box = task_box(Resources(cores=1, memory=4000), WORKER, proportional=True)
    assert box == Resources(cores=1, memory=4000, disk=2000, gpus=0)


def test_no_proportional_share_outside_fixed_mode():
    box = task_box(Resources(cores=1), WORKER, mode=AllocationMode.MAX, proportional=True)
    assert box == Resources(cores=1, memory=8000, disk=4000, gpus=0)


def test_a_request_of_the_whole_worker_fills_the_rest_with_the_whole_worker():
    box = task_box(Resources(cores=4), WORKER, proportional=True)
    assert box == Resources(cores=4, memory=8000, disk=4000, gpus=0)


def test_gpu_task_without_cores_gets_no_cores():
    worker = Resources(cores=4, memory=8000, disk=4000, gpus=2)
    assert task_box(Resources(gpus=1), worker).cores == 0
    assert task_box(Resources(gpus=1), worker, proportional=True).cores == 0
    assert task_box(Resources(cores=1, memory=10, disk=10), worker).gpus == 0


def test_box_never_below_the_minimum():
    box = task_box(Resources(cores=1, memory=100, disk=100), WORKER, minimum=Resources(memory=600))
    assert box.memory == 600 and box.cores == 1


def test_four_one_core_boxes_fit_a_four_core_worker_and_a_fifth_does_not():
    total = Resources(cores=4, memory=1000, disk=1000, gpus=0)
    box = task_box(Resources(cores=1, memory=250, disk=250), total)
    inuse = Resources(cores=0, memory=0, disk=0, gpus=0)
    placed = 0
    while fits(box, inuse, total):
        inuse = add_resources(inuse, box)
        placed += 1
        assert placed <= 10
    assert placed == 4
    inuse = subtract_resources(inuse, box)
    assert fits(box, inuse, total)


def test_whole_disk_boxes_run_one_at_a_time():
    total = Resources(cores=4, memory=1000, disk=1000, gpus=0)
    box = task_box(Resources(cores=1, memory=250), total)
    assert fits(box, Resources(), total)
    assert not fits(box, box, total)


def test_disk_is_never_overcommitted_but_cores_and_memory_may_be():
    total = Resources(cores=2, memory=1000, disk=1000, gpus=0)
    inuse = Resources(cores=2, memory=1000, disk=500, gpus=0)
    assert fits(Resources(cores=2, memory=1000, disk=500, gpus=0), inuse, total, overcommit=2.0)
    assert not fits(Resources(cores=1, memory=1, disk=501, gpus=0), inuse, total, overcommit=2.0)


def test_a_worker_without_a_resource_fits_only_tasks_that_need_none():
    total = Resources(cores=4, memory=1000, disk=1000, gpus=0)
    assert not fits(Resources(cores=1, memory=1, disk=1, gpus=1), Resources(), total)
    assert fits(Resources(cores=1, memory=1, disk=1, gpus=0), Resources(), total)
