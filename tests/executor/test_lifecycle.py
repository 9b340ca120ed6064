"""Ctrl-C and SIGKILL of a user's process running the executor: partial output, nothing left behind.

Each test runs ``lifecycle_child.py`` (a Runner over the bundled sample, 78 chunks of ~200 events,
local workers) as its own process, signals it once its chunks are ~40-50% done, and checks what it
returned and that no worker process and no staging folder outlive it.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from coffea_wq.executor.tasks.staging import OWNER_FILE, StagingArea, owner_record
from tests import support
from tests.executor import lifecycle_child

pytestmark = pytest.mark.slow

CHILD = Path(lifecycle_child.__file__)
CHUNKSIZE = 200
FILE_EVENTS = 2500  # each of the 6 sample files
TOTAL_EVENTS = 6 * FILE_EVENTS
TOTAL_CHUNKS = 6 * math.ceil(FILE_EVENTS / CHUNKSIZE)


def start_child(tmp_path: Path, **settings) -> tuple[subprocess.Popen, dict]:
    settings = {"workdir": str(tmp_path / "run"), "progress": str(tmp_path / "progress"), "chunksize": CHUNKSIZE,
                "sleep": 0.15, **settings}
    Path(settings["workdir"]).mkdir(exist_ok=True)
    Path(settings["progress"]).write_text("")
    child = subprocess.Popen([sys.executable, str(CHILD), json.dumps(settings)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    return child, settings


def wait_for_progress(child: subprocess.Popen, settings: dict, fraction: float) -> None:
    def far_enough() -> bool:
        if child.poll() is not None:
            pytest.fail(f"the run ended before {fraction:.0%} of its chunks:\n{child.stdout.read()}")
        return len(Path(settings["progress"]).read_text().splitlines()) >= fraction * TOTAL_CHUNKS

    support.wait_until(far_enough, timeout=180, what=f"{fraction:.0%} of the chunks", interval=0.02)


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def processes_mentioning(marker: str) -> list[str]:
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        command = " ".join(proc.info["cmdline"] or ())
        if marker in command and proc.pid != os.getpid():
            found.append(f"{proc.pid}: {command[:160]}")
    return found


def finish(child: subprocess.Popen, timeout: float = 60) -> tuple[str, float]:
    try:
        output, _ = child.communicate(timeout=timeout)
    finally:
        support.stop_process(child)
    return output, time.monotonic()


def result_of(output: str) -> dict:
    lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
    assert lines, f"no RESULT line in the child's output:\n{output}"
    return json.loads(lines[-1][len("RESULT "):])


def assert_nothing_left(settings: dict, workers: list[psutil.Process], exited_at: float, within: float) -> None:
    """``within`` s after the child exited: no worker (nor task) process, no staging folder."""
    time.sleep(max(0.0, exited_at + within - time.monotonic()))
    alive = [p for p in workers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"processes of the run still alive {within} s after it ended: {alive}"
    assert not processes_mentioning(settings["workdir"])
    assert not list(Path(settings["workdir"]).glob("coffea-wq-*"))


@pytest.mark.parametrize("use_result_type", [False, True], ids=["plain", "use_result_type"])
def test_first_ctrl_c_returns_the_partial_output_and_lists_the_rest(tmp_path, use_result_type):
    child, settings = start_child(tmp_path, use_result_type=use_result_type)
    wait_for_progress(child, settings, 0.4)
    workers = descendants(child.pid)
    assert workers, "the run has no worker processes"
    child.send_signal(signal.SIGINT)
    output, exited_at = finish(child)
    result = result_of(output)
    assert 0 < result["events"] < TOTAL_EVENTS, output
    assert result["events"] + result["unprocessed_events"] == TOTAL_EVENTS, output
    # reduction is on: what the workers' slots held was flushed back on the stop, and no chunk counts twice
    assert result["partials_returned"] >= 1 and result["counted_twice"] == 0, output
    assert "interrupted" in output and "returning the partial output" in output  # the warning
    assert result["kind"] == ("err" if use_result_type else "plain"), output
    if use_result_type:
        assert "ERR RunInterrupted" in output
    assert_nothing_left(settings, workers, exited_at, within=5.0)


def test_second_ctrl_c_raises_keyboard_interrupt_and_still_cleans_up(tmp_path):
    child, settings = start_child(tmp_path)
    wait_for_progress(child, settings, 0.4)
    workers = descendants(child.pid)
    child.send_signal(signal.SIGINT)
    time.sleep(0.3)
    child.send_signal(signal.SIGINT)
    output, exited_at = finish(child)
    assert "KEYBOARDINTERRUPT" in output and "RESULT" not in output, output
    assert_nothing_left(settings, workers, exited_at, within=5.0)


def test_sigterm_cleans_up_before_the_process_exits(tmp_path):
    child, settings = start_child(tmp_path)
    wait_for_progress(child, settings, 0.4)
    workers = descendants(child.pid)
    child.send_signal(signal.SIGTERM)
    output, exited_at = finish(child)
    assert child.returncode == 128 + signal.SIGTERM and "RESULT" not in output, output
    assert_nothing_left(settings, workers, exited_at, within=5.0)
    assert time.monotonic() - exited_at < 6.0


def test_sigkill_of_the_user_process_stops_its_workers_and_the_next_run_removes_its_staging(tmp_path):
    child, settings = start_child(tmp_path)
    wait_for_progress(child, settings, 0.5)
    workers = descendants(child.pid)
    assert workers
    stale = list(Path(settings["workdir"]).glob("coffea-wq-*"))
    child.kill()
    child.wait(timeout=10)
    killed_at = time.monotonic()
    child.stdout.close()
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, f"local workers outlived their killed user process by 10 s: {alive}"
    assert time.monotonic() - killed_at < 10.5
    assert len(stale) == 1 and stale[0].is_dir()  # a process killed outright cannot clean up
    area = StagingArea(Path(settings["workdir"]))  # the next run's start
    try:
        assert not stale[0].exists()
    finally:
        area.remove()


def test_only_folders_of_dead_owners_on_this_host_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folders = {name: tmp_path / f"coffea-wq-{name}" for name in ("dead", "alive", "elsewhere", "foreign")}
    for folder in folders.values():
        folder.mkdir()
    (folders["dead"] / OWNER_FILE).write_text(owner_record(dead.pid))
    (folders["alive"] / OWNER_FILE).write_text(owner_record(os.getpid()))
    (folders["elsewhere"] / OWNER_FILE).write_text(f"{dead.pid} 0 some-other-host\n")
    # no owner file: not made by this version (or being made this instant)
    area = StagingArea(tmp_path)
    try:
        assert not folders["dead"].exists()
        assert all(folders[name].is_dir() for name in ("alive", "elsewhere", "foreign"))
        assert (area.root / OWNER_FILE).read_text() == owner_record(os.getpid())
    finally:
        area.remove()
    assert not area.root.exists()
