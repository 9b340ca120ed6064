"""The worker's warm Python pool (zygote) driven directly, as the worker drives it, with real processes."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from coffea_wq.worker.pending import PendingStart
from coffea_wq.worker.warm import ZYGOTE_SCRIPT, WarmProcess, WarmPythonPool, _Zygote


@pytest.fixture
def pool():
    warm = WarmPythonPool()
    yield warm
    warm.close()


def test_warm_tasks_report_their_exit_codes(tmp_path, pool):
    env = {"PATH": os.environ["PATH"], "COFFEA_WQ_WARM": "1"}
    request = pool.parse_warm_command("python3 coffea_wq_task.py fn item out", env)
    assert request is not None
    codes = []
    for i in range(40):
        sandbox = tmp_path / f"t.{i}"
        sandbox.mkdir()
        (sandbox / "coffea_wq_task.py").write_text(f"import sys\nsys.exit({i % 5})\n")
        process = pool.start(request, sandbox, env, tmp_path / f"t.{i}.out")
        assert isinstance(process, WarmProcess), "the task ran cold: the zygote is not under test"
        codes.append(process.wait(timeout=10))
    assert codes == [i % 5 for i in range(40)]


def test_an_exit_read_before_run_wakes_up_is_not_lost():
    # Replays the zygote's answers in the order that once lost exit codes: a task that exits at
    # once has its "exit" line right behind "started", and the reader thread may handle both
    # before run() wakes up. Exits are keyed by request id (a slot runs many tasks under one
    # pid), so neither that early exit nor an earlier task's exit under the same pid is confused.
    sink = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)  # takes the request
    try:
        zygote = _Zygote.__new__(_Zygote)
        zygote.proc, zygote.cond, zygote.started, zygote.exits = sink, threading.Condition(), {}, {}
        zygote.queued, zygote.on_news = set(), (lambda: None)
        zygote.dead, zygote.next_id, zygote.write_lock = False, 1, threading.Lock()
        pid = 2**22 + 12345  # above the default pid_max: no live process can have it
        zygote._read_answers(io.BytesIO(
            b'{"op": "started", "id": 1, "pid": %d}\n'
            b'{"op": "exit", "id": 1, "pid": %d, "returncode": 9}\n'  # the slot's previous task
            b'{"op": "started", "id": 2, "pid": %d}\n'
            b'{"op": "exit", "id": 2, "pid": %d, "returncode": 3}\n' % (pid, pid, pid, pid)
        ))
        assert zygote.run(["coffea_wq_task.py"], Path("."), {}, Path("out"), ()) == (2, pid)
        assert zygote.returncode(2, pid) == 3
    finally:
        sink.stdin.close()
        sink.wait(timeout=10)


def _slow_import_env(tmp_path, seconds: float) -> dict[str, str]:
    """A task environment whose zygote preloads a module that takes ``seconds`` to import."""
    modules = tmp_path / "modules"
    modules.mkdir(exist_ok=True)
    (modules / "slow_to_import.py").write_text(f"import time\ntime.sleep({seconds})\n")
    return {"PATH": os.environ["PATH"], "COFFEA_WQ_WARM": "1", "COFFEA_WQ_PRELOAD": "slow_to_import",
            "PYTHONPATH": str(modules)}


def _sandbox_with(tmp_path, name: str, script: str) -> Path:
    sandbox = tmp_path / name
    sandbox.mkdir()
    (sandbox / "coffea_wq_task.py").write_text(script)
    return sandbox


def test_a_slow_warm_start_does_not_hold_up_the_worker(tmp_path, pool):
    env = _slow_import_env(tmp_path, 2.0)
    request = pool.parse_warm_command("python3 coffea_wq_task.py fn item out", env)
    sandbox = _sandbox_with(tmp_path, "t.1", "import sys\nsys.exit(4)\n")
    before = time.monotonic()
    pending = pool.start_async(request, sandbox, env, tmp_path / "t.1.out")
    assert time.monotonic() - before < 1.0  # the zygote's 2 s import happens in the start thread
    assert pending.poll() is None and pending.pid == 0
    assert pending.wait(timeout=60) == 4
    assert isinstance(pending.process, WarmProcess) and pending.pid == pending.process.pid > 0


def test_a_kill_during_a_warm_start_stops_the_task_once_it_exists(tmp_path, pool):
    env = _slow_import_env(tmp_path, 1.0)
    request = pool.parse_warm_command("python3 coffea_wq_task.py fn item out", env)
    sandbox = _sandbox_with(tmp_path, "t.1", "import time\ntime.sleep(2)\nopen('ran', 'w').close()\n")
    pending = pool.start_async(request, sandbox, env, tmp_path / "t.1.out")
    pending.kill()  # before the zygote has even imported its modules
    assert pending.wait(timeout=60) == -signal.SIGKILL
    time.sleep(2.5)
    assert not (sandbox / "ran").exists(), "the cancelled task ran on"


def test_closing_the_pool_during_a_start_starts_nothing(tmp_path):
    pool = WarmPythonPool()
    env = _slow_import_env(tmp_path, 2.0)
    request = pool.parse_warm_command("python3 coffea_wq_task.py fn item out", env)
    sandbox = _sandbox_with(tmp_path, "t.1", "open('ran', 'w').close()\n")
    pending = pool.start_async(request, sandbox, env, tmp_path / "t.1.out")
    time.sleep(0.3)  # the start thread is waiting for the zygote
    pool.close()  # the session ended: neither warm nor cold may the task start now
    assert pending.wait(timeout=60) == 1
    assert "session ended" in (tmp_path / "t.1.out").read_text()
    assert not (sandbox / "ran").exists()
    pool.close()


def test_a_start_that_raises_fails_the_task_with_the_reason_in_its_output(tmp_path):
    def impossible():
        raise OSError("fork: resource temporarily unavailable")

    pending = PendingStart(impossible, "python3 coffea_wq_task.py a b c", tmp_path / "out")
    assert pending.wait(timeout=10) == 1 and pending.poll() == 1
    assert "fork: resource temporarily unavailable" in (tmp_path / "out").read_text()
    pending.kill()  # nothing to kill: no error


def test_a_kill_during_a_cold_start_reaches_the_started_process_group(tmp_path):
    release = threading.Event()

    def gated_start():
        release.wait(10)
        return subprocess.Popen(["sh", "-c", "sleep 60 & sleep 60; wait"], start_new_session=True)

    pending = PendingStart(gated_start, "sh", tmp_path / "out")
    pending.kill()
    release.set()
    assert pending.wait(timeout=30) == -signal.SIGKILL


def test_slots_that_die_before_taking_a_task_end_in_a_cold_run_not_a_loop(tmp_path, pool):
    modules = tmp_path / "modules"
    modules.mkdir()
    # every process the zygote forks dies at once: no slot ever takes the task
    (modules / "fork_killer.py").write_text("import os\nos.register_at_fork(after_in_child=lambda: os._exit(3))\n")
    env = {"PATH": os.environ["PATH"], "COFFEA_WQ_WARM": "1", "COFFEA_WQ_PRELOAD": "fork_killer",
           "PYTHONPATH": str(modules)}
    request = pool.parse_warm_command("python3 coffea_wq_task.py fn item out", env)
    sandbox = _sandbox_with(tmp_path, "t.1", "import os, sys\nopen('ppid', 'w').write(str(os.getppid()))\n"
                                              "sys.exit(5)\n")
    process = pool.start(request, sandbox, env, tmp_path / "t.1.out")
    assert not isinstance(process, WarmProcess)  # given up on warm after a few slots, run cold
    assert process.wait(timeout=60) == 5
    zygote_pid = next(iter(pool.zygotes.values())).proc.pid
    assert int((sandbox / "ppid").read_text()) != zygote_pid


def test_the_zygote_ends_without_the_teardown_of_what_it_imported(tmp_path):
    # A library's exit handlers (and non-daemon threads) would hold up the end of every run,
    # which waits for its local workers and so for their zygotes: the zygote skips them.
    (tmp_path / "heavy_library.py").write_text(
        "import atexit, pathlib, threading, time\n"
        f"atexit.register(lambda: pathlib.Path({str(tmp_path / 'atexit-ran')!r}).write_text('x'))\n"
        "threading.Thread(target=time.sleep, args=(600,)).start()  # not a daemon\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    zygote = subprocess.Popen([sys.executable, str(ZYGOTE_SCRIPT), "heavy_library"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=tmp_path)
    try:
        assert b'"heavy_library"' in zygote.stdout.readline()  # ready, with it imported
        zygote.stdin.close()  # end of requests
        assert zygote.wait(timeout=30) == 0
        assert not (tmp_path / "atexit-ran").exists()
    finally:
        zygote.kill()
        zygote.wait()
