"""coffea-wq monitor against CCTools' resource_monitor on the same commands, and the shipped wrapper."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from coffea_wq.resources.monitor import Summary
from coffea_wq.resources.types import Resources
from coffea_wq.resources.wrapper import (
    MONITOR_REMOTE_NAME,
    MONITOR_SUMMARY_NAME,
    wrap_command,
    wrapper_script_path,
)
from tests.support import REAL_MONITOR, SYSTEM_PYTHON, coffea_wq_command, needs_system

requires_resource_monitor = needs_system(REAL_MONITOR is None, "resource_monitor", "coop-computing-tools")
PY = sys.executable


def run_both(tmp_path: Path, *options: str, command: list[str]) -> tuple[tuple[int, dict], tuple[int, dict]]:
    """Run the command under both monitors at the same time (same machine load), each in its own dir."""
    procs = []
    for name, monitor in (("ours", coffea_wq_command("monitor")), ("theirs", [REAL_MONITOR])):
        workdir = tmp_path / name
        workdir.mkdir()
        argv = [*monitor, "-i", "1", "--no-pprint", "-O", "out", *options, "--", *command]
        procs.append(
            (
                workdir,
                subprocess.Popen(argv, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
            )
        )
    results = []
    for workdir, proc in procs:
        rc = proc.wait(timeout=120)
        results.append((rc, json.loads((workdir / "out.summary").read_text())))
    return results[0], results[1]


WALL_SLACK_S = 1.0  # what separate runs of one Python command may differ by on a busy machine


def close(ours: float, theirs: float, tolerance: float) -> bool:
    return abs(ours - theirs) <= tolerance * theirs


@pytest.mark.cctools
@requires_resource_monitor
def test_memory_and_wall_time_agree_with_resource_monitor(tmp_path):
    command = [PY, "-c", "import time; b = bytearray(200 * 2**20); time.sleep(2)"]
    (rc_ours, ours), (rc_theirs, theirs) = run_both(tmp_path, command=command)
    assert rc_ours == rc_theirs == 0
    assert close(ours["memory"][0], theirs["memory"][0], 0.15), (ours["memory"], theirs["memory"])
    # two separate runs of a Python command: on a loaded machine its start-up alone varies by a second
    assert close(ours["wall_time"][0], theirs["wall_time"][0], 0.10) or \
        abs(ours["wall_time"][0] - theirs["wall_time"][0]) <= WALL_SLACK_S, (ours["wall_time"], theirs["wall_time"])
    assert ours["exit_status"] == theirs["exit_status"] == 0
    assert set(theirs) - set(ours) <= {"peak_times"} | set(theirs.get("peak_times", {}))


@pytest.mark.cctools
@requires_resource_monitor
def test_plain_sleep_agrees_on_wall_time(tmp_path):
    (rc_ours, ours), (rc_theirs, theirs) = run_both(tmp_path, command=["sleep", "1.5"])
    assert rc_ours == rc_theirs == 0
    assert close(ours["wall_time"][0], theirs["wall_time"][0], 0.10)


@pytest.mark.cctools
@requires_resource_monitor
def test_same_exceeded_limit_and_exit_status(tmp_path):
    command = [PY, "-c", "import time; b = bytearray(200 * 2**20); time.sleep(5)"]
    (rc_ours, ours), (rc_theirs, theirs) = run_both(tmp_path, "-L", "memory: 50", command=command)
    assert rc_ours == rc_theirs == 2
    assert ours["exit_type"] == theirs["exit_type"] == "limits"
    assert ours["limits_exceeded"] == theirs["limits_exceeded"] == {"memory": [50, "MB"]}
    assert ours["exit_status"] == theirs["exit_status"] == 143


@pytest.mark.cctools
@requires_resource_monitor
def test_same_exit_code_for_a_failing_command(tmp_path):
    (rc_ours, ours), (rc_theirs, theirs) = run_both(tmp_path, command=["/bin/sh", "-c", "exit 3"])
    assert rc_ours == rc_theirs == 1
    assert ours["exit_status"] == theirs["exit_status"] == 3


@pytest.mark.cctools
@requires_resource_monitor
def test_same_result_under_measure_only(tmp_path):
    command = [PY, "-c", "import time; b = bytearray(120 * 2**20); time.sleep(1.5)"]
    (rc_ours, ours), (rc_theirs, theirs) = run_both(
        tmp_path, "-L", "memory: 50", "--measure-only", command=command
    )
    assert rc_ours == rc_theirs == 0
    assert ours["exit_status"] == theirs["exit_status"] == 0
    assert ours["exit_type"] == theirs["exit_type"]


# --- the wrapper shipped to a real work_queue_worker ---------------------------------------------------


@needs_system(not Path(SYSTEM_PYTHON).exists(), f"{SYSTEM_PYTHON} (to run the wrapper as the C manager does)", "python3")
@pytest.mark.parametrize("watchdog", [True, False])
def test_shipped_wrapper_runs_with_a_plain_python_as_the_c_manager_calls_it(tmp_path, watchdog):
    sandbox = tmp_path / "t.7"
    sandbox.mkdir()
    shutil.copy(wrapper_script_path(tmp_path), sandbox / MONITOR_REMOTE_NAME)
    task = "python3 -c 'import time; b = bytearray(300 * 2**20); time.sleep(3)' && echo done > out.txt"
    wrapped = wrap_command(
        task, Resources(cores=1, memory=100, disk=1000), task_id=7, category="processing", watchdog=watchdog
    )
    # The worker runs the command with /bin/sh in the sandbox, with its own environment (no venv).
    env = {"PATH": f"{Path(SYSTEM_PYTHON).parent}:/bin:/usr/bin", "HOME": str(tmp_path)}
    rc = subprocess.run(["/bin/sh", "-c", wrapped], cwd=sandbox, env=env, timeout=120).returncode
    summary = Summary.read(sandbox / MONITOR_SUMMARY_NAME)
    assert summary.verbatim == {"task_id": "7", "category": "processing"}
    assert summary.limits_exceeded == {"memory": 100}
    if watchdog:
        assert rc == 2 and summary.exit_status == 143 and not (sandbox / "out.txt").exists()
    else:
        assert rc == 0 and summary.exit_status == 0 and (sandbox / "out.txt").read_text() == "done\n"
        assert summary.resources["memory"] >= 290


def test_wrap_command_quotes_like_the_c_manager():
    wrapped = wrap_command(
        "echo 'a b' > x", Resources(cores=2, memory=1000, disk=50, gpus=None), 3, watchdog=True
    )
    argv = shlex.split(wrapped)
    assert argv[:3] == ["./cctools-monitor", "--no-pprint", "--with-output-files=cctools-monitor"]
    assert argv[argv.index("--sh") + 1] == "echo 'a b' > x"
    assert ["-L", "cores: 2.000"] == argv[3:5] and "--measure-only" not in argv
    assert "memory: 1000" in argv and "disk: 50" in argv and "-V" in argv


def test_wrapper_file_is_built_once_and_is_executable(tmp_path):
    first = wrapper_script_path(tmp_path)
    assert os.access(first, os.X_OK)
    mtime = first.stat().st_mtime_ns
    assert wrapper_script_path(tmp_path) == first and first.stat().st_mtime_ns == mtime
