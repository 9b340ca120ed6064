"""The worker's warm Python pool (zygote) driven directly, as the worker drives it, with real processes."""

from __future__ import annotations

import io
import os
import subprocess
import threading
from pathlib import Path

import pytest

from coffea_wq.worker.warm import WarmProcess, WarmPythonPool, _Zygote


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
