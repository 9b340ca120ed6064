"""Acceptance: a task allocating 300 MB with memory: 100 under watchdog is killed and reported as memory
exhaustion; under measure it completes and reports ~300 MB. Run through the coffea-wq manager with the
shipped monitor wrapping the task (as enable_monitoring does), on our worker and on the real one.
"""

from __future__ import annotations

import pytest

import coffea_wq.work_queue as work_queue
from coffea_wq.resources.monitor import RM_OVERFLOW, Summary
from coffea_wq.resources.types import Resources
from coffea_wq.resources.wrapper import (
    MONITOR_REMOTE_NAME,
    MONITOR_SUMMARY_NAME,
    wrap_command,
    wrapper_script_path,
)
from tests.resources.test_packing_e2e import start_worker
from tests.support import LOOPBACK, requires_cctools, wait_until

ALLOCATE_300MB = "python3 -c 'import time; b = bytearray(300 * 2**20); time.sleep(3)'"


def run_monitored(q, tmp_path, watchdog: bool) -> tuple[object, Summary]:
    box = Resources(cores=1, memory=100, disk=500)
    t = work_queue.Task(
        wrap_command(ALLOCATE_300MB, box, task_id=1, category="processing", watchdog=watchdog)
    )
    t.specify_cores(1)
    t.specify_memory(100)
    t.specify_disk(500)
    t.specify_input_file(str(wrapper_script_path(tmp_path)), MONITOR_REMOTE_NAME, cache=True)
    local_summary = tmp_path / f"task-{'watchdog' if watchdog else 'measure'}.summary"
    t.specify_output_file(str(local_summary), MONITOR_SUMMARY_NAME, cache=False)
    q.submit(t)
    done = None
    for _ in range(20):
        done = q.wait(5)
        if done is not None:
            break
    assert done is not None, "the task did not come back"
    return done, Summary.read(local_summary)


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind", ["coffea-wq", pytest.param("cctools", marks=[requires_cctools, pytest.mark.cctools])]
)
def test_watchdog_kills_and_measure_reports_a_300mb_task(kind, tmp_path, processes):
    with work_queue.WorkQueue(port=0, host=LOOPBACK) as q:
        start_worker(kind, q.port, tmp_path, processes)
        wait_until(lambda: q.stats.workers_connected >= 1, 60, "the worker to connect")

        task, summary = run_monitored(q, tmp_path, watchdog=True)
        assert task.return_status == RM_OVERFLOW  # the monitor's exit code: resource exhaustion
        assert summary.exit_type == "limits" and summary.limits_exceeded == {"memory": 100}
        message = summary.exhaustion_message()
        assert "memory exceeded" in message and "limit 100 MB" in message
        assert summary.verbatim["task_id"] == "1" and summary.verbatim["category"] == "processing"

        task, summary = run_monitored(q, tmp_path, watchdog=False)
        assert task.return_status == 0
        assert 290 <= summary.resources["memory"] <= 360
