"""The worker-side clock: uproot reads, coffea's NanoEvents and the rest of a call split into phases."""

from __future__ import annotations

import time

import uproot
from coffea.nanoevents import NanoAODSchema, NanoEventsFactory

from coffea_wq.executor.tasks import task_clock
from coffea_wq.executor.tasks.task_clock import TaskClock, UnusedClock, new_clock
from tests.dashboard.runs import SAMPLE

FILE = str(sorted(SAMPLE.glob("*.root"))[0])


def read_then_sleep(_item):
    with uproot.open(FILE) as file:
        tree = file["Events"]
        began = time.perf_counter()
        tree.arrays(["Muon_pt", "Jet_pt"])  # arrays() calls array() per branch: counted once
        tree["Electron_pt"].array()
        read = time.perf_counter() - began
    time.sleep(0.2)
    return read


def test_reads_are_timed_once_and_the_rest_is_process():
    clock = TaskClock(entered=time.time())
    read = clock.call(read_then_sleep, None)
    assert abs(clock.seconds["read"] - read) <= 0.1 * read + 0.002
    assert 0.2 <= clock.seconds["process"] < 0.2 + read + 0.1
    assert "open" not in clock.seconds  # no NanoEvents made: nothing is known to be opening
    # the hooks are gone after the call
    assert uproot.behaviors.TBranch.TBranch.array.__name__ == "array"
    assert uproot.behaviors.TBranch.HasBranches.arrays.__name__ == "arrays"


def test_time_before_nanoevents_exist_is_opening():
    def coffea_like(_item):
        with uproot.open({FILE: None}) as file:
            events = NanoEventsFactory.from_root(file=file, treepath="Events", schemaclass=NanoAODSchema,
                                                 mode="virtual", entry_stop=500).events()
            time.sleep(0.1)
            return len(events.Muon.pt)

    clock = TaskClock(entered=time.time())
    assert clock.call(coffea_like, None) == 500
    assert clock.seconds["open"] > 0 and clock.seconds["read"] > 0
    assert 0.1 <= clock.seconds["process"] < 0.5


def test_start_and_inputs_come_from_the_workers_environment(monkeypatch):
    entered = time.time()
    monkeypatch.setenv(task_clock.LAUNCHED_ENV, repr(entered - 0.5))
    monkeypatch.setenv(task_clock.INPUTS_ENV, "0.25")
    clock = TaskClock(entered)
    clock.started(warm=True)
    assert 0.5 <= clock.seconds["start_warm"] < 1.0 and clock.seconds["inputs"] == 0.25
    clock = TaskClock(entered)
    monkeypatch.setenv(task_clock.LAUNCHED_ENV, "garbage")
    clock.started(warm=False)
    assert 0 <= clock.seconds["start_cold"] < 0.5


def test_phases_can_be_switched_off(monkeypatch):
    assert isinstance(new_clock(time.time()), TaskClock)
    monkeypatch.setenv(task_clock.PHASES_ENV, "0")
    clock = new_clock(time.time())
    assert isinstance(clock, UnusedClock) and clock.call(read_then_sleep, None) > 0 and clock.seconds == {}
