"""The breakdown's arithmetic: sums per dataset and worker, shares, ``other``, timestamps, advice."""

from types import SimpleNamespace

import pytest

from coffea_wq.executor.results.breakdown import BUSY_PHASES, Breakdown, manager_phases


def test_sums_per_run_dataset_and_worker():
    b = Breakdown()
    b.add({"process": 2.0, "read": 1.0}, dataset="ttbar", worker="w1")
    b.add({"process": 4.0, "open": 0.5}, dataset="ttbar", worker="w2")
    b.add({"process": 1.0}, dataset="data", worker="w1")
    assert b.total.tasks == 3 and b.total.seconds == {"process": 7.0, "read": 1.0, "open": 0.5}
    assert b.by_dataset["ttbar"].seconds == {"process": 6.0, "read": 1.0, "open": 0.5}
    assert b.by_dataset["data"].tasks == 1
    assert b.by_worker["w1"].seconds == {"process": 3.0, "read": 1.0} and b.by_worker["w2"].tasks == 1


def test_shares_leave_the_queue_out_and_add_up_to_one():
    b = Breakdown()
    b.add({"process": 3.0, "read": 1.0, "queue": 100.0})
    shares = b.shares()
    assert shares == pytest.approx({"process": 0.75, "read": 0.25})
    assert b.total.seconds["queue"] == 100.0 and "queue" not in BUSY_PHASES


def test_unknown_and_negative_phases_are_dropped():
    b = Breakdown()
    added = b.add({"process": 1.0, "bogus": 5.0, "read": -1.0})
    assert added == {"process": 1.0} and b.total.seconds == {"process": 1.0}


def test_other_is_the_run_time_no_worker_phase_explains():
    b = Breakdown()
    added = b.add({"inputs": 0.3, "start_warm": 0.1, "process": 1.0, "write": 0.2}, execute=2.0)
    assert added["other"] == pytest.approx(0.7)  # inputs come before the launch: not in the run time
    assert b.add({"process": 3.0}, execute=2.0)["other"] == 0.0  # clocks that disagree never go negative


def test_manager_phases_from_timestamps_of_either_api():
    ours = SimpleNamespace(submit_time=1_000_000, send_input_start=3_000_000, send_input_finish=3_500_000,
                           cmd_execution_time=2_000_000, receive_output_start=5_500_000,
                           receive_output_finish=5_750_000)
    assert manager_phases(ours) == pytest.approx({"queue": 2.0, "send": 0.5, "receive": 0.25, "execute": 2.0})
    assert manager_phases(SimpleNamespace()) == {}  # a task object without timestamps
    b = Breakdown()
    added = b.add_task(ours, {"process": 1.5}, dataset="d", worker="w", decode=0.01)
    assert added["other"] == pytest.approx(0.5) and added["decode"] == 0.01 and added["queue"] == 2.0


def test_merging_here_counts_in_the_total_only():
    b = Breakdown()
    b.add({"process": 1.0}, dataset="d", worker="w")
    b.add_here("merge", 0.5)
    assert b.total.seconds["merge"] == 0.5 and "merge" not in b.by_dataset["d"].seconds


@pytest.mark.parametrize(("phases", "advice"), [
    ({"process": 8.6, "read": 0.9, "write": 0.5}, "86% of worker time in your processor, 9% reading: add workers"),
    ({"process": 3.9, "send": 2.0, "receive": 2.0, "decode": 2.0, "start_warm": 0.1},
     "61% waiting for the manager, 39% in your processor: larger chunks"),
    ({"read": 6.0, "open": 1.0, "process": 3.0}, "70% reading, 30% in your processor: "
     "move the data closer to the workers or read fewer branches"),
    ({"start_cold": 9.0, "process": 0.2}, "98% starting Python: use coffea-wq workers (warm slots) or larger chunks"),
])
def test_advice_names_the_leading_group_and_what_to_do(phases, advice):
    b = Breakdown()
    b.add(phases)
    assert b.advice() == advice


def test_as_dict_is_plain_data():
    import json

    b = Breakdown()
    b.add({"process": 1.0}, dataset="d", worker="w")
    data = json.loads(json.dumps(b.as_dict()))
    assert data["tasks"] == 1 and data["datasets"]["d"]["shares"] == {"process": 1.0}
    assert data["workers"]["w"]["seconds"] == {"process": 1.0} and data["advice"].endswith("add workers")
