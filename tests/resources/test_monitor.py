"""The process-tree monitor: measurements, limits, the watchdog, summaries, and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from coffea_wq.resources.monitor import (
    MonitorMode,
    ProcessTreeMonitor,
    Summary,
    SummaryError,
    limits_from_resources,
    parse_limits,
)
from coffea_wq.resources.rmon.limits import LimitError
from coffea_wq.resources.types import Resources
from tests.support import SAMPLES as SHARED_SAMPLES
from tests.support import coffea_wq_command, wait_until

SAMPLES = SHARED_SAMPLES / "resource_monitor"
PY = sys.executable


def allocate(mb: int, seconds: float) -> list[str]:
    return [PY, "-c", f"import time; b = bytearray({mb} * 2**20); time.sleep({seconds})"]


def run_watched(argv, tmp_path, **kwargs) -> tuple[Summary, ProcessTreeMonitor]:
    proc = subprocess.Popen(argv, cwd=tmp_path, start_new_session=True)
    monitor = ProcessTreeMonitor(proc.pid, sandbox=tmp_path, **kwargs).start()
    _, status, rusage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return monitor.stop(proc.returncode, rusage, " ".join(argv)), monitor


def test_measures_peak_memory_wall_and_cpu_time(tmp_path):
    summary, monitor = run_watched(allocate(200, 1.5), tmp_path, interval=0.5)
    res = summary.resources
    assert 195 <= res["memory"] <= 240
    assert 1.4 <= res["wall_time"] <= 3.0
    assert 0 < res["cpu_time"] < res["wall_time"]
    assert summary.exit_type == "normal" and summary.exit_status == 0 and not monitor.killed
    assert summary.peak_times["memory"] <= res["wall_time"]


def test_watchdog_kills_a_task_over_its_memory_and_names_peak_and_limit(tmp_path):
    start = time.monotonic()
    summary, monitor = run_watched(allocate(300, 30), tmp_path, limits={"memory": 100}, watchdog=True)
    assert time.monotonic() - start < 10
    assert monitor.killed and monitor.exceeded == {"memory": 100}
    assert summary.exit_type == "limits" and summary.exit_status == 143 and summary.monitor_exit_code == 2
    assert summary.resources["memory"] > 100  # killed as soon as it crossed the limit
    message = summary.exhaustion_message()
    assert "memory exceeded" in message and "limit 100 MB" in message
    assert f"peak {int(summary.resources['memory'])} MB" in message


def test_measure_mode_lets_the_task_finish_and_reports_its_memory(tmp_path):
    summary, monitor = run_watched(allocate(300, 1), tmp_path, limits={"memory": 100}, watchdog=False)
    assert not monitor.killed
    assert summary.exit_status == 0 and summary.monitor_exit_code == 0
    assert 290 <= summary.resources["memory"] <= 360
    assert summary.limits_exceeded == {"memory": 100}  # recorded, not enforced


def test_short_lived_process_is_measured_at_exit(tmp_path):
    # Through the standalone monitor, a small process, so the child's rusage is its own (a child
    # forked from the big test process would report the test's peak RSS as its own).
    argv = [PY, "-c", "b = bytearray(150 * 2**20); b[::4096] = b'x' * len(b[::4096])"]
    done = subprocess.run(
        coffea_wq_command("monitor", "-i", "5", "-O", "short", "--no-pprint", "--", *argv),
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary = Summary.read(tmp_path / "short.summary")
    assert 150 <= summary.resources["memory"] <= 200


def test_short_lived_process_is_measured_at_exit_under_a_monitor_started_by_a_big_process(tmp_path):
    # The monitor inherits its starter's peak RSS in its own ru_maxrss (a worker, or this pytest process
    # with everything it imported); that must not make it distrust the task's exact figure at exit.
    ballast = b"x" * (400 * 2**20)
    try:
        argv = [PY, "-c", "b = bytearray(150 * 2**20); b[::4096] = b'x' * len(b[::4096])"]
        done = subprocess.run(
            coffea_wq_command("monitor", "-i", "30", "-O", "short", "--no-pprint", "--", *argv),
            cwd=tmp_path, capture_output=True, text=True, timeout=120,
        )
    finally:
        del ballast
    assert done.returncode == 0, done.stderr
    assert 150 <= Summary.read(tmp_path / "short.summary").resources["memory"] <= 200


def test_parent_peak_is_not_reported_as_the_childs(tmp_path):
    ballast = b"x" * (450 * 2**20)  # make this (the forking) process's peak RSS large
    try:
        summary, _ = run_watched(allocate(200, 1.5), tmp_path, interval=0.5)
    finally:
        del ballast
    assert 195 <= summary.resources["memory"] <= 240


def test_whole_tree_counts_children_and_grandchildren(tmp_path):
    child = f"{PY} -c 'import time; b = bytearray(80 * 2**20); time.sleep(1.5)'"
    summary, _ = run_watched(["/bin/sh", "-c", f"{child} & {child} & wait"], tmp_path, interval=0.2)
    # upper bounds too: a peak inherited from this (big) pytest process must not pass for the tree's
    assert 160 <= summary.resources["memory"] <= 240
    # the shell and its two children (dash execs a simple background command in the forked child)
    assert summary.resources["max_concurrent_processes"] == 3
    assert summary.resources["total_processes"] == 3


def test_cpu_time_of_busy_children_is_counted(tmp_path):
    # Burn 0.6 s of CPU (however long that takes on a shared machine), in a grandchild.
    busy = f"{PY} -c 'import time; [0 for _ in iter(lambda: time.process_time() < 0.6, False)]'"
    summary, _ = run_watched(["/bin/sh", "-c", busy], tmp_path, interval=0.2)
    assert 0.55 <= summary.resources["cpu_time"] <= 1.5
    assert summary.resources["cores"] >= summary.resources["cpu_time"] / summary.resources["wall_time"] > 0


def test_sandbox_disk_is_measured_and_limited(tmp_path):
    write = [PY, "-c", "import time; open('big', 'wb').write(bytes(20 * 2**20)); time.sleep(30)"]
    summary, monitor = run_watched(write, tmp_path, limits={"disk": 5}, watchdog=True, interval=0.2)
    assert monitor.killed and summary.limits_exceeded == {"disk": 5}
    # killed as soon as a sample sees more than the limit: under load that may be before all 20 MB are written
    assert 5 < summary.resources["disk"] <= 25


def test_wall_time_limit_kills_a_sleeping_task(tmp_path):
    start = time.monotonic()
    summary, monitor = run_watched(
        ["sleep", "30"], tmp_path, limits={"wall_time": 1}, watchdog=True, interval=0.2
    )
    assert time.monotonic() - start < 5
    assert monitor.killed and "wall_time" in summary.limits_exceeded


def test_failed_and_signalled_commands_are_reported(tmp_path):
    summary, _ = run_watched(["/bin/sh", "-c", "exit 3"], tmp_path)
    assert summary.exit_status == 3 and summary.exit_type == "normal" and summary.monitor_exit_code == 1
    summary, _ = run_watched(["/bin/sh", "-c", "kill -9 $$"], tmp_path)
    assert summary.exit_type == "signal" and summary.signal == 9 and summary.exit_status == 137


def test_stop_without_exit_information_does_not_crash(tmp_path):
    proc = subprocess.Popen(["sleep", "0.2"], start_new_session=True)
    monitor = ProcessTreeMonitor(proc.pid).start()
    proc.wait(timeout=10)
    summary = monitor.stop()
    assert summary.exit_status == 0 and summary.resources["wall_time"] > 0


# --- limits, modes and summaries -------------------------------------------------------------------


def test_parse_limits_and_their_errors():
    assert parse_limits(["memory: 2 GB, cores: 2", "wall_time: 1m"]) == {
        "memory": 2048.0,
        "cores": 2.0,
        "wall_time": 60.0,
    }
    with pytest.raises(LimitError, match="'memroy: 5'"):
        parse_limits(["memroy: 5"])
    with pytest.raises(LimitError, match="'memory' is not a number"):
        parse_limits(["memory: lots"])


def test_limits_from_resources():
    assert limits_from_resources(Resources(cores=1, memory=100, disk=0), wall_time_s=5) == {
        "cores": 1.0,
        "memory": 100.0,
        "wall_time": 5.0,
    }


@pytest.mark.parametrize(
    ("value", "mode"),
    [
        (True, MonitorMode.WATCHDOG),
        (False, MonitorMode.OFF),
        (None, MonitorMode.OFF),
        ("measure", MonitorMode.MEASURE),
    ],
)
def test_monitor_mode_parse(value, mode):
    assert MonitorMode.parse(value) is mode


def test_monitor_mode_error_names_the_value():
    with pytest.raises(ValueError, match="'watch'"):
        MonitorMode.parse("watch")


@pytest.mark.parametrize(("name", "memory", "exit_type", "exit_status", "limits_exceeded"), [
    ("mem200.summary", 208, "normal", 0, {}),
    ("mem200-limit.summary", 208, "limits", 143, {"memory": 50}),
    ("pretty.summary", 108, "normal", 0, {}),
])
def test_reads_cctools_summaries(name, memory, exit_type, exit_status, limits_exceeded):
    summary = Summary.read(SAMPLES / name)
    assert summary.resources["memory"] == memory
    assert (summary.exit_type, summary.exit_status) == (exit_type, exit_status)
    assert (summary.limits_exceeded or {}) == limits_exceeded


def test_summary_round_trip_keeps_units_and_decimals():
    s = Summary(command="x", resources={"memory": 208.9, "cores": 0.12345, "wall_time": 1.0000004})
    s.verbatim = {"task_id": "7"}
    data = json.loads(s.to_json())
    assert data["memory"] == [208, "MB"] and data["cores"] == [0.123, "cores"] and data["task_id"] == "7"
    assert list(data)[0] == "task_id"
    back = Summary.from_json(s.to_json())
    assert back.resources["memory"] == 208 and back.verbatim == {"task_id": "7"}


def test_malformed_summaries_name_the_file(tmp_path):
    bad = tmp_path / "task.summary"
    bad.write_text("{not json")
    with pytest.raises(SummaryError, match="task.summary"):
        Summary.read(bad)
    bad.write_text('{"memory": ["lots", "MB"]}')
    with pytest.raises(SummaryError, match="task.summary: memory"):
        Summary.read(bad)
    with pytest.raises(SummaryError, match="missing.summary"):
        Summary.read(tmp_path / "missing.summary")


# --- the CLI ----------------------------------------------------------------------------------------


def test_cli_writes_summary_and_exits_like_resource_monitor(tmp_path):
    prefix = tmp_path / "out"
    rc = subprocess.run(
        coffea_wq_command(
            "monitor", "-L", "memory: 50", "-O", str(prefix), "--no-pprint", "--", *allocate(120, 5)
        ),
        cwd=tmp_path,
        timeout=60,
    ).returncode
    assert rc == 2
    text = (tmp_path / "out.summary").read_text()
    assert text.count("\n") == 1
    data = json.loads(text)
    assert data["exit_type"] == "limits" and data["limits_exceeded"] == {"memory": [50, "MB"]}
    assert data["exit_status"] == 143


def test_cli_rejects_bad_limits_and_missing_commands(tmp_path):
    out = subprocess.run(
        coffea_wq_command("monitor", "-L", "memroy: 5", "--", "true"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 4 and "memroy" in out.stderr
    out = subprocess.run(
        coffea_wq_command("monitor"), cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 4 and "no command" in out.stderr


def test_cli_pretty_summary_time_series_and_verbatim(tmp_path):
    rc = subprocess.run(
        coffea_wq_command(
            "monitor", "-O", "p", "--with-time-series", "-V", "task_id: 3", "-i", "0.2", "--", "sleep", "0.5"
        ),
        cwd=tmp_path,
        timeout=60,
    ).returncode
    assert rc == 0
    text = (tmp_path / "p.summary").read_text()
    assert text.count("\n") > 10
    assert json.loads(text)["task_id"] == "3"
    rows = [line for line in (tmp_path / "p.series").read_text().splitlines() if not line.startswith("#")]
    assert len(rows) >= 2 and len(rows[0].split()) == 15


def test_monitor_stops_its_command_when_terminated(tmp_path, processes):
    proc = processes.start(
        coffea_wq_command("monitor", "-O", "t", "--no-pprint", "--", "sleep", "60"), cwd=tmp_path
    )
    wait_until(
        lambda: (tmp_path / "t.summary").exists() or _has_child_sleep(proc.pid), 20, "the command to start"
    )
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=20) == 1
    data = json.loads((tmp_path / "t.summary").read_text())
    assert data["exit_type"] == "signal" and data["signal"] == signal.SIGTERM


def _has_child_sleep(pid: int) -> bool:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if "(sleep)" in stat and int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                return True
    return False


def test_a_limit_is_broken_only_by_a_peak_that_the_summary_shows_above_it():
    from coffea_wq.resources.rmon.sampler import exceeded_limits

    # memory is reported in whole MB: 100.5 MB reads "100 MB", which does not break a 100 MB limit
    assert exceeded_limits({"memory": 100.5}, {"memory": 100}) == {}
    assert exceeded_limits({"memory": 101.2}, {"memory": 100}) == {"memory": 100}
    assert exceeded_limits({"wall_time": 1.0000004}, {"wall_time": 1}) == {}  # seconds to 6 decimals
    assert exceeded_limits({"cores": 1.3}, {"cores": 1}) == {"cores": 1}  # beyond the quarter-core forgiveness
