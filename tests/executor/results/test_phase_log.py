"""The breakdown's listener: each task's phases to the queue's transactions log and to the dashboard."""

import gc
import weakref

from coffea_wq.dashboard.tracker import RunTracker
from coffea_wq.executor.results.breakdown import Breakdown
from coffea_wq.executor.results.phase_log import phase_listener


class Queue:
    def __init__(self):
        self.lines = []

    def log_task_phases(self, task_id, phases):
        self.lines.append((task_id, phases))


class Task:
    id = 7
    submit_time, send_input_start, send_input_finish, cmd_execution_time = 1e6, 2e6, 2.5e6, 1e6


def test_phases_reach_the_log_and_the_tracker_and_the_queue_is_not_kept_alive():
    queue, tracker = Queue(), RunTracker()
    breakdown = Breakdown(listener=phase_listener(queue, tracker))
    breakdown.add_task(Task(), {"process": 0.5}, dataset="ttbar", worker="w1")
    breakdown.add_here("merge", 0.25)
    assert queue.lines == [(7, {"process": 0.5, "queue": 1.0, "send": 0.5, "other": 0.5})]  # zeros left out
    view = tracker.breakdown()
    assert view["tasks"] == 1 and view["seconds"]["merge"] == 0.25 and view["datasets"]["ttbar"]["tasks"] == 1
    gone = weakref.ref(queue)
    del queue
    gc.collect()
    assert gone() is None  # the report outlives the run's queue: the listener must not hold it
    breakdown.add_task(Task(), {"process": 1.0})  # the log is gone: only the tracker hears it
    assert tracker.breakdown()["tasks"] == 2


def test_no_listener_without_a_log_or_a_dashboard():
    assert phase_listener(object()) is None
    assert phase_listener(object(), RunTracker()) is not None
