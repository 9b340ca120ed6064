"""Categories: first/max allocations, learning from measured peaks, exhaustion labels, status strings."""

from __future__ import annotations

import pytest

from coffea_wq.resources.allocation import AllocationMode, task_box
from coffea_wq.resources.categories import Category, RequestLabel
from coffea_wq.resources.histogram import (
    Histogram,
    first_allocation_max_seen,
    first_allocation_max_throughput,
    first_allocation_min_waste,
)
from coffea_wq.resources.split import split_work_item_range
from coffea_wq.resources.types import Resources

WORKER_1GB = Resources(cores=4, memory=1000, disk=1000, gpus=0)


def bimodal(category: Category, tasks: int = 30, every_large: int = 6) -> None:
    """Tasks of ~110 MB with one of ~610 MB every ``every_large`` (the first large one is task 6)."""
    for i in range(1, tasks + 1):
        memory = 610 if every_large and i % every_large == 0 else 110
        category.accumulate({"cores": 0.9, "memory": memory, "disk": 2}, "normal", 2.0, max_worker=WORKER_1GB)


# --- histogram formulas, checked against values computed by hand ----------------------------------


def test_histogram_buckets_by_upper_end_and_keeps_time():
    h = Histogram(250)
    h.insert(100, 2.0)
    h.insert(250, 1.0)
    h.insert(251, 4.0)
    h.insert(-1, 1.0)  # unmeasured: ignored
    assert h.keys() == [250, 500]
    assert h.buckets[250].count == 2 and h.buckets[250].wall_time_s == 3.0
    assert h.max_value == 251 and h.total_count == 3


def test_max_throughput_prefers_the_small_bucket_for_a_bimodal_workload():
    # 20 tasks of ~100 MB and 4 of ~600 MB, 2 s each; a retry gets top = 610 MB.
    # a=250: (20*610/250 + 4) / (2 + 4*2/24) = 52.8/2.333 = 22.6; a=750: (24*610/750)/2 = 9.76.
    h = Histogram(250)
    for _ in range(20):
        h.insert(110, 2.0)
    for _ in range(4):
        h.insert(610, 2.0)
    assert first_allocation_max_throughput(h, 610) == 250


def test_max_throughput_takes_the_top_bucket_when_large_tasks_dominate():
    h = Histogram(250)
    h.insert(110, 1.0)
    for _ in range(10):
        h.insert(610, 10.0)
    # a=250: (1*610/250 + 10)/(tau + 100/11); a=750: (11*610/750)/tau, tau=101/11: 12.44/18.27 < 8.95/9.18
    assert first_allocation_max_throughput(h, 610) == 750


def test_min_waste_matches_the_formula():
    h = Histogram(250)
    for _ in range(3):
        h.insert(100, 1.0)
    h.insert(900, 1.0)
    # tau_mean = 1; a=250: 250*1 + 1000*(1/4) = 500; a=1000: 1000*1 + 0 = 1000 -> 250
    assert first_allocation_min_waste(h, 1000) == 250
    # With most tasks large, wasting the retry costs more than allocating big at first.
    h2 = Histogram(250)
    h2.insert(100, 1.0)
    for _ in range(3):
        h2.insert(900, 1.0)
    # a=250: 250 + 1000*0.75 = 1000; a=1000: 1000 -> tie keeps the first (250)... make times differ
    h2.insert(900, 10.0)
    assert first_allocation_min_waste(h2, 1000) == 1000


def test_max_seen_adds_half_a_bucket_and_respects_caps():
    h = Histogram(250)
    h.insert(610, 1.0)
    assert first_allocation_max_seen(h, 610, max_worker=-1, max_explicit=-1) == 750
    h.insert(700, 1.0)  # 700 + 125 -> 1000
    assert first_allocation_max_seen(h, 700, max_worker=-1, max_explicit=-1) == 1000
    assert first_allocation_max_seen(h, 700, max_worker=900, max_explicit=-1) == 900
    assert first_allocation_max_seen(h, 700, max_worker=900, max_explicit=800) == 800


def test_formulas_give_nothing_without_data():
    h = Histogram(250)
    assert first_allocation_max_throughput(h, 1000) is None
    assert first_allocation_min_waste(h, 1000) is None
    assert first_allocation_max_seen(h, 1000, -1, -1) is None


# --- category state ---------------------------------------------------------------------------------


def test_fixed_mode_uses_what_the_user_declared_and_never_learns():
    c = Category("processing", mode="fixed", steady_n_tasks=2)
    bimodal(c)
    assert c.first_allocation is None
    user = Resources(cores=1, memory=300)
    assert c.task_max_resources(user, RequestLabel.FIRST, WORKER_1GB) == Resources(cores=1, memory=300)


def test_category_max_is_used_where_the_task_declares_nothing():
    c = Category("processing", max_allocation=Resources(cores=2, memory=500, disk=100))
    got = c.task_max_resources(Resources(memory=200), RequestLabel.FIRST, WORKER_1GB)
    assert got == Resources(cores=2, memory=200, disk=100)


def test_auto_mode_learns_a_small_first_allocation_from_a_bimodal_workload():
    c = Category("processing", mode=AllocationMode.parse("auto"), steady_n_tasks=24)
    bimodal(c, tasks=28)
    assert not c.steady_state and c.first_allocation is None  # the large task 6 restarted the count
    bimodal(c, tasks=1, every_large=0)
    assert c.steady_state
    assert c.first_allocation is not None
    assert (
        c.first_allocation.memory == 250 and c.first_allocation.cores == 1 and c.first_allocation.disk == 250
    )
    first = c.task_max_resources(Resources(), RequestLabel.FIRST, WORKER_1GB)
    assert first.memory == 250
    box = task_box(
        first,
        WORKER_1GB,
        mode=c.mode,
        minimum=c.task_min_resources(Resources(), RequestLabel.FIRST, WORKER_1GB),
    )
    assert box == Resources(cores=1, memory=250, disk=250, gpus=0)
    # The retry at MAX gets the whole worker for what is not declared.
    retry = c.task_max_resources(Resources(), RequestLabel.MAX, WORKER_1GB)
    assert task_box(retry, WORKER_1GB, mode=c.mode).memory == 1000


def test_before_steady_state_an_undeclared_task_still_takes_the_whole_worker():
    c = Category("processing", mode=AllocationMode.MAX_THROUGHPUT, steady_n_tasks=25)
    bimodal(c, tasks=5, every_large=0)
    assert not c.steady_state and c.first_allocation is None
    first = c.task_max_resources(Resources(), RequestLabel.FIRST, WORKER_1GB)
    assert task_box(first, WORKER_1GB, mode=c.mode) == WORKER_1GB


def test_a_new_peak_before_steady_state_restarts_the_statistics():
    c = Category("processing", mode=AllocationMode.MAX, steady_n_tasks=3)
    for _ in range(2):
        c.accumulate({"cores": 1, "memory": 100, "disk": 1}, "normal", 1.0)
    assert c.completions_since_last_reset == 2
    assert c.accumulate({"cores": 1, "memory": 600, "disk": 1}, "normal", 1.0)
    assert c.completions_since_last_reset == 1
    assert c.max_resources_seen.memory == 600


def test_exhausted_tasks_raise_the_peak_seen_but_stay_out_of_the_histograms():
    c = Category("processing", mode=AllocationMode.MAX, steady_n_tasks=3)
    c.accumulate({"memory": 260, "cores": 1}, "limits", 1.0, limits_exceeded={"memory": 250})
    assert c.max_resources_seen.memory == 260
    assert c.histograms["memory"].total_count == 0 and c.total_tasks == 0
    assert c.limits_exceeded_seen == {"memory": 250}


def test_missing_or_malformed_measurements_are_ignored_without_crashing():
    c = Category("processing", mode=AllocationMode.MAX, steady_n_tasks=1)
    assert c.accumulate(None, "normal", 1.0) is False
    assert c.accumulate({}, None, 1.0) is False
    c.accumulate({"memory": "lots", "cores": None, "disk": [5, "MB"]}, "normal", 1.0)
    assert c.max_resources_seen.disk == 5 and c.max_resources_seen.memory is None
    assert c.next_label(RequestLabel.FIRST, Resources(), None) is RequestLabel.MAX


def test_summary_pairs_are_accepted_as_measurements():
    c = Category("processing", mode=AllocationMode.MAX, steady_n_tasks=1)
    c.accumulate({"memory": [208, "MB"], "cores": [0.5, "cores"], "disk": [1, "MB"]}, "normal", 1.0)
    assert c.first_allocation is not None and c.first_allocation.memory == 500  # 208+125 -> 500


def test_min_allocation_is_a_floor_for_the_first_allocation_and_the_minimum():
    c = Category(
        "processing", mode=AllocationMode.MAX, steady_n_tasks=1, min_allocation=Resources(memory=600)
    )
    c.accumulate({"cores": 1, "memory": 100, "disk": 1}, "normal", 1.0)
    assert c.first_allocation.memory == 600
    assert c.task_min_resources(Resources(memory=100), RequestLabel.FIRST, WORKER_1GB).memory == 600


def test_min_resources_capped_by_the_largest_worker_for_first_attempts():
    c = Category("processing", mode=AllocationMode.MAX, steady_n_tasks=1)
    c.accumulate({"cores": 1, "memory": 5000, "disk": 1}, "normal", 1.0)
    minimum = c.task_min_resources(Resources(cores=1), RequestLabel.FIRST, WORKER_1GB)
    assert minimum.memory <= WORKER_1GB.memory


# --- labels after exhaustion ------------------------------------------------------------------------


def test_fixed_mode_exhaustion_is_final():
    c = Category("p", mode=AllocationMode.FIXED)
    assert c.next_label(RequestLabel.FIRST, Resources(memory=100), {"memory": 300}) is RequestLabel.ERROR


def test_automatic_mode_retries_at_max_once():
    c = Category("p", mode=AllocationMode.MAX_THROUGHPUT)
    assert c.next_label(RequestLabel.FIRST, Resources(), {"memory": 300}) is RequestLabel.MAX
    assert c.next_label(RequestLabel.MAX, Resources(), {"memory": 900}) is RequestLabel.ERROR


def test_exceeding_what_the_user_declared_is_final_even_in_automatic_mode():
    c = Category("p", mode=AllocationMode.MAX)
    assert c.next_label(RequestLabel.FIRST, Resources(memory=100), {"memory": 300}) is RequestLabel.ERROR
    c2 = Category("p", mode=AllocationMode.MAX, max_allocation=Resources(memory=200))
    assert c2.next_label(RequestLabel.FIRST, Resources(), {"memory": 300}) is RequestLabel.ERROR
    assert c2.next_label(RequestLabel.FIRST, Resources(), {"memory": 150}) is RequestLabel.MAX


def test_label_log_names():
    assert RequestLabel.FIRST.log_name == "FIRST_RESOURCES"
    assert RequestLabel.MAX.log_name == "MAX_RESOURCES"


# --- status strings ------------------------------------------------------------------------------------


def test_max_strings_declared_seen_and_exceeded():
    c = Category("p", mode=AllocationMode.MAX, steady_n_tasks=2)
    assert c.max_strings() == {}
    assert c.max_strings(Resources(cores=1, memory=100, disk=50)) == {
        "max_cores": "1.000",
        "max_memory": "100",
        "max_disk": "50",
    }
    c.accumulate({"cores": 1, "memory": 300, "disk": 3}, "normal", 1.0)
    assert c.max_strings()["max_memory"] == "~300"
    c.accumulate({"cores": 1, "memory": 260, "disk": 3}, "limits", 1.0, limits_exceeded={"memory": 250})
    assert c.max_strings()["max_memory"] == ">299"
    c.accumulate({"cores": 1, "memory": 200, "disk": 3}, "normal", 1.0)
    strings = c.max_strings()
    assert strings["first_memory"] == 500 and strings["first_cores"] == 1
    assert "first_disk" in strings


def test_split_ranges_cover_the_range_exactly():
    for start, stop, parts in [(0, 10, 2), (3, 4, 2), (0, 7, 3), (100, 200, 7), (0, 2, 5)]:
        pieces = split_work_item_range(start, stop, parts)
        assert pieces[0][0] == start and pieces[-1][1] == stop
        assert all(a < b for a, b in pieces)
        assert all(pieces[i][1] == pieces[i + 1][0] for i in range(len(pieces) - 1))
        assert len(pieces) == min(parts, stop - start)
    with pytest.raises(ValueError, match="empty event range"):
        split_work_item_range(5, 5)
