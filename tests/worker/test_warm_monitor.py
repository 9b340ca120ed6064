"""Monitored tasks in warm slots: the worker measures a slot's task as ./cctools-monitor would."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from coffea_wq.resources.rmon.summary import Summary
from coffea_wq.resources.types import Resources
from coffea_wq.resources.wrapper import MONITOR_SUMMARY_NAME, wrap_command
from coffea_wq.worker.warm import WarmProcess, WarmPythonPool
from coffea_wq.worker.warm_monitor import MonitoredWarmProcess

INNER = "python3 coffea_wq_task.py fn item out"
ENV = {"PATH": os.environ["PATH"], "COFFEA_WQ_WARM": "1"}


@pytest.fixture
def pool():
    warm = WarmPythonPool()
    yield warm
    warm.close()


def _wrapped(memory: int = 1000, watchdog: bool = False, task_id: int = 7) -> str:
    return wrap_command(INNER, Resources(cores=1, memory=memory), task_id, watchdog=watchdog, interval_s=0.1)


def _start(pool, tmp_path, name: str, body: str, command: str):
    sandbox = tmp_path / name
    sandbox.mkdir()
    # the script records the pid that ran it, so a test can tell which slot that was
    (sandbox / "coffea_wq_task.py").write_text(f"import os\nopen('pid', 'w').write(str(os.getpid()))\n{body}\n")
    request = pool.parse_warm_command(command, ENV)
    assert request is not None
    return pool.start(request, sandbox, ENV, tmp_path / f"{name}.out"), sandbox


def _pid(sandbox) -> int:
    return int((sandbox / "pid").read_text())


def test_only_a_wrapped_warm_command_is_taken_with_its_monitor():
    taken = WarmPythonPool.parse_warm_command(_wrapped(), ENV)
    assert taken is not None and taken.argv == ("coffea_wq_task.py", "fn", "item", "out")
    assert taken.monitor is not None and taken.monitor.limits == ["cores: 1.000", "memory: 1000"]
    assert taken.command == _wrapped()  # the cold fallback runs the wrapper as sent
    assert WarmPythonPool.parse_warm_command(_wrapped(), {"PATH": ENV["PATH"]}) is None  # no marker
    not_warm = wrap_command("python3 other.py a b c", Resources(cores=1), 1)
    assert WarmPythonPool.parse_warm_command(not_warm, ENV) is None
    for odd in ("--pid 1", "--bogus-option", "-d all"):
        assert WarmPythonPool.parse_warm_command(_wrapped().replace("--no-pprint", odd), ENV) is None


def test_a_monitored_task_runs_warm_and_is_measured_from_its_own_start(tmp_path, pool):
    burner, burner_box = _start(pool, tmp_path, "t.1", "import time\nt = time.process_time()\n"
                                "while time.process_time() - t < 0.5: pass", _wrapped(task_id=1))
    assert isinstance(burner, MonitoredWarmProcess) and burner.wait(timeout=60) == 0
    sleeper, sleeper_box = _start(pool, tmp_path, "t.2", "import time\ntime.sleep(0.3)", _wrapped(task_id=2))
    assert sleeper.wait(timeout=60) == 0
    assert _pid(sleeper_box) == _pid(burner_box)  # one slot ran both: warm, not a fresh process

    burned = Summary.read(str(burner_box / MONITOR_SUMMARY_NAME))
    slept = Summary.read(str(sleeper_box / MONITOR_SUMMARY_NAME))
    assert burned.resources["cpu_time"] >= 0.45
    # the slot's earlier half second of CPU is not the sleeping task's
    assert slept.resources["cpu_time"] < 0.15 and slept.resources["wall_time"] >= 0.3
    assert slept.command == INNER and slept.exit_status == 0 and not slept.limits_exceeded
    assert json.loads((sleeper_box / MONITOR_SUMMARY_NAME).read_text())["task_id"] == "2"


def test_the_watchdog_stops_a_warm_task_over_its_memory_and_the_next_task_runs(tmp_path, pool):
    hog, hog_box = _start(pool, tmp_path, "t.1", "import time\nb = bytearray(400 * 2**20)\nb[::4096] = b'x' * "
                          "len(b[::4096])\ntime.sleep(60)", _wrapped(memory=200, watchdog=True))
    started = time.monotonic()
    assert hog.wait(timeout=60) == 2  # resource_monitor's code for a broken limit
    assert time.monotonic() - started < 30
    summary = Summary.read(str(hog_box / MONITOR_SUMMARY_NAME))
    assert summary.limits_exceeded == {"memory": 200} and summary.exit_type == "limits"

    after, after_box = _start(pool, tmp_path, "t.2", "pass", _wrapped(memory=200, watchdog=True))
    assert after.wait(timeout=60) == 0 and _pid(after_box) != _pid(hog_box)


def test_measure_only_records_a_broken_limit_without_stopping_the_task(tmp_path, pool):
    task, box = _start(pool, tmp_path, "t.1", "import time\nb = bytearray(400 * 2**20)\nb[::4096] = b'x' * "
                       "len(b[::4096])\ntime.sleep(0.5)", _wrapped(memory=200, watchdog=False))
    assert task.wait(timeout=60) == 0
    summary = Summary.read(str(box / MONITOR_SUMMARY_NAME))
    assert summary.limits_exceeded == {"memory": 200} and summary.resources["memory"] >= 400


def test_failed_and_killed_monitored_tasks_exit_as_the_wrapper_would(tmp_path, pool):
    failed, box = _start(pool, tmp_path, "t.1", "import sys\nsys.exit(3)", _wrapped())
    assert failed.wait(timeout=60) == 1  # the monitor's "command failed"
    assert Summary.read(str(box / MONITOR_SUMMARY_NAME)).exit_status == 3

    hung, _ = _start(pool, tmp_path, "t.2", "import time\ntime.sleep(60)", _wrapped())
    assert hung.poll() is None
    hung.kill()  # what the worker does on a timeout or a cancellation: the wrapper dies with its task
    assert hung.wait(timeout=30) == -signal.SIGKILL


def test_an_unmonitored_warm_task_is_not_wrapped(tmp_path, pool):
    process, _ = _start(pool, tmp_path, "t.1", "pass", INNER)
    assert isinstance(process, WarmProcess) and process.wait(timeout=60) == 0
