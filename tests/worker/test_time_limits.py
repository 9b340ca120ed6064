"""A task that exited before its time limit is never flagged as over it, however late the worker looks."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import coffea_wq.work_queue as wq
from coffea_wq.protocol.codes import ResultCode
from coffea_wq.protocol.messages import TaskAssignment
from coffea_wq.worker.execution import RunningTask, start_cold
from tests.support import LOOPBACK, coffea_wq_command, wait_until


def _exited_unreaped(pid: int) -> bool:
    """The process ended but nobody has waited for it yet (a zombie): ``poll`` has not been called."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return False


def test_a_task_that_exited_before_the_check_is_not_over_its_wall_time(tmp_path):
    task = TaskAssignment(1, command="exit 0", wall_time=0.01)
    handle = start_cold(task.command, tmp_path, dict(os.environ), tmp_path / "out")
    run = RunningTask(task, tmp_path, tmp_path / "out", handle)
    wait_until(lambda: _exited_unreaped(handle.pid), 10, "the task's shell to exit")
    run.enforce_limits(run.started_wall + 5)  # the loop looks long after the tiny limit passed
    outcome = run.finished()
    assert run.limit_status is None
    assert outcome is not None and outcome.status == ResultCode.SUCCESS and outcome.exit_code == 0


def test_a_task_still_running_past_its_wall_time_is_killed(tmp_path):
    task = TaskAssignment(1, command="sleep 30", wall_time=0.01)
    handle = start_cold(task.command, tmp_path, dict(os.environ), tmp_path / "out")
    run = RunningTask(task, tmp_path, tmp_path / "out", handle)
    try:
        run.enforce_limits(run.started_wall + 5)
        assert run.limit_status is ResultCode.TASK_MAX_RUN_TIME
        handle.wait(timeout=10)
        outcome = run.finished()
        assert outcome is not None and outcome.status == ResultCode.TASK_MAX_RUN_TIME
    finally:
        if handle.poll() is None:
            handle.kill()
            handle.wait(timeout=10)


def test_worker_paused_past_the_limit_reports_success(processes, tmp_path):
    """A real ``coffea-wq worker`` stopped (SIGSTOP) while its task exits, resumed after the task's
    ``running_time_max``: it judges the task after the limit, yet the task finished in time."""
    marker = tmp_path / "started"
    with wq.WorkQueue(port=0, host=LOOPBACK) as q:
        worker = processes.start(coffea_wq_command("worker", "--cores", "1", "--memory", "500", "--disk", "500",
                                                   "-s", str(tmp_path / "w"), "-t", "60", LOOPBACK, str(q.port)),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        task = wq.Task(f"touch {marker} && sleep 1")
        task.specify_cores(1), task.specify_memory(50), task.specify_disk(50)
        task.specify_running_time_max(2)
        q.submit(task)
        wait_until(marker.exists, 60, "the task to start")
        os.kill(worker.pid, signal.SIGSTOP)  # before the task's sleep ends: the worker cannot have seen it exit
        try:
            time.sleep(3.5)  # the task exits at +1 s, its limit passes at +2 s
        finally:
            os.kill(worker.pid, signal.SIGCONT)
        done = q.wait(60)
    assert done is not None, "the task did not come back within 60 s"
    assert done.result == wq.WORK_QUEUE_RESULT_SUCCESS, done.result_str
    assert done.return_status == 0
