"""Warm Python slots: the command contract, results identical to a cold run, signals, crash fallback."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time

import cloudpickle
import psutil
import pytest

from coffea_wq.executor.results.outcome import OutcomeKind, read_outcome
from coffea_wq.executor.tasks import task_script
from coffea_wq.worker.warm import WarmProcess, WarmPythonPool

cloudpickle.register_pickle_by_value(sys.modules[__name__])

COMMAND = "python3 coffea_wq_task.py fn.pkl item.pkl out.lz4"


def _env(**extra):
    env = dict(os.environ, COFFEA_WQ_WARM="1", COFFEA_WQ_PRELOAD="cloudpickle,lz4.frame,numpy")
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env["PATH"]])
    env.update(extra)
    return env


@pytest.mark.parametrize("command, env, expected", [
    (COMMAND, {"COFFEA_WQ_WARM": "1"}, ("coffea_wq_task.py", "fn.pkl", "item.pkl", "out.lz4")),
    ("./coffea_wq_env_run env.tar.gz python3 coffea_wq_task.py f i o", {"COFFEA_WQ_WARM": "1"},
     ("coffea_wq_task.py", "f", "i", "o")),
    (COMMAND, {}, None),  # no marker: cold
    (COMMAND + " > log", {"COFFEA_WQ_WARM": "1"}, None),  # another shape
    ("python3 other.py fn.pkl item.pkl out.lz4", {"COFFEA_WQ_WARM": "1"}, None),
    ("python3 coffea_wq_task.py fn.pkl item.pkl out.lz4; rm -rf /", {"COFFEA_WQ_WARM": "1"}, None),
    ("./coffea_wq_env_run env.tar.gz sh -c x y z w", {"COFFEA_WQ_WARM": "1"}, None),
])
def test_parse_warm_command_accepts_exactly_the_two_shapes(command, env, expected):
    request = WarmPythonPool.parse_warm_command(command, env)
    assert (request.argv if request else None) == expected
    if request and "env_run" in command:
        assert request.env_tarball == "env.tar.gz"


def _sandbox(tmp_path, name, function, item):
    sandbox = tmp_path / name
    sandbox.mkdir()
    (sandbox / "coffea_wq_task.py").write_bytes(open(task_script.__file__, "rb").read())
    (sandbox / "fn.pkl").write_bytes(cloudpickle.dumps({"function": function, "compression": 1}))
    (sandbox / "item.pkl").write_bytes(pickle.dumps(item))
    return sandbox


def _describe_process(item):
    print(f"running item {item}")
    return {"item": item, "pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(),
            "tmp": os.environ.get("TMPDIR"), "argv": list(sys.argv)}


@pytest.fixture
def pool():
    pool = WarmPythonPool()
    yield pool
    pool.close()


def test_warm_result_equals_cold_result(tmp_path, pool):
    cold = _sandbox(tmp_path, "t.1", _describe_process, 5)
    subprocess.run(COMMAND, shell=True, cwd=cold, env=_env(), check=True, timeout=60)
    cold_value = read_outcome(cold / "out.lz4").value

    warm_values = []
    for n in (2, 3):
        sandbox = _sandbox(tmp_path, f"t.{n}", _describe_process, 5)
        env = _env(TMPDIR=str(sandbox))
        process = pool.start(pool.parse_warm_command(COMMAND, env), sandbox, env, tmp_path / f"t.{n}.out")
        assert isinstance(process, WarmProcess) and process.wait(timeout=60) == 0
        outcome = read_outcome(sandbox / "out.lz4")
        assert outcome.kind is OutcomeKind.OK
        warm_values.append(outcome.value)
        assert (tmp_path / f"t.{n}.out").read_text() == "running item 5\n"  # stdout goes to the output file
    zygote_pid = pool.zygotes[next(iter(pool.zygotes))].proc.pid
    for n, value in zip((2, 3), warm_values, strict=True):
        # forked from the zygote or from its warmed template (which the zygote adopted), never cold
        assert zygote_pid in (value["ppid"], _parent_of(value["ppid"]))
        assert value["cwd"] == str(tmp_path / f"t.{n}") and value["tmp"] == str(tmp_path / f"t.{n}")
        assert {k: v for k, v in value.items() if k not in ("pid", "ppid", "cwd", "tmp")} == \
            {k: v for k, v in cold_value.items() if k not in ("pid", "ppid", "cwd", "tmp")}


def _sleep_long(item):
    import time

    time.sleep(item)


def _fail(item):
    raise RuntimeError(f"remote failure {item}")


def test_warm_task_can_be_killed_and_reports_failures(tmp_path, pool):
    sandbox = _sandbox(tmp_path, "t.1", _sleep_long, 60)
    env = _env()
    process = pool.start(pool.parse_warm_command(COMMAND, env), sandbox, env, tmp_path / "t.1.out")
    assert process.poll() is None
    process.kill()
    assert process.wait(timeout=10) == -signal.SIGKILL

    sandbox = _sandbox(tmp_path, "t.2", _fail, "x")
    process = pool.start(pool.parse_warm_command(COMMAND, env), sandbox, env, tmp_path / "t.2.out")
    assert process.wait(timeout=60) == 1
    assert "remote failure x" in read_outcome(sandbox / "out.lz4").remote.message
    assert "remote failure x" in (tmp_path / "t.2.out").read_text()


def _parent_of(pid):
    try:
        return psutil.Process(pid).ppid()
    except psutil.NoSuchProcess:
        return None


_calls = 0  # a module-level counter: per process state, as a library's first-use caches are


def _count_calls(item):
    global _calls
    _calls += 1
    if item == "fail":
        raise RuntimeError("failed after counting")
    if item == "hang":
        import time

        time.sleep(60)
    return {"calls": _calls, "pid": os.getpid(), "ppid": os.getppid()}


def _run_count(tmp_path, pool, name, item, expected_code=0):
    sandbox = _sandbox(tmp_path, name, _count_calls, item)
    env = _env()
    process = pool.start(pool.parse_warm_command(COMMAND, env), sandbox, env, tmp_path / f"{name}.out")
    assert isinstance(process, WarmProcess)
    if item == "hang":
        process.kill()
        assert process.wait(timeout=10) == -signal.SIGKILL
        return None
    assert process.wait(timeout=60) == expected_code
    return read_outcome(sandbox / "out.lz4").value if expected_code == 0 else None


def _slot_pids(pool):
    zygote = next(iter(pool.zygotes.values()))
    return {child.pid for child in psutil.Process(zygote.proc.pid).children()}


def test_a_slot_runs_successive_tasks_in_one_interpreter(tmp_path, pool):
    values = [_run_count(tmp_path, pool, f"t.{n}", 0) for n in range(3)]
    zygote_pid = next(iter(pool.zygotes.values())).proc.pid
    # one process, forked once from the zygote, kept its state (counter, unpickled function)
    assert [v["calls"] for v in values] == [1, 2, 3]
    assert {v["pid"] for v in values} == {values[0]["pid"]} and values[0]["ppid"] == zygote_pid


@pytest.mark.parametrize("bad_item, code", [("fail", 1), ("hang", None)])
def test_a_failed_or_killed_task_retires_its_slot(tmp_path, pool, bad_item, code):
    first = _run_count(tmp_path, pool, "t.1", 0)
    _run_count(tmp_path, pool, "t.2", bad_item, code)
    after = _run_count(tmp_path, pool, "t.3", 0)
    # the failed task's process is not reused: a fresh slot, forked from the zygote, with fresh state
    assert after["calls"] == 1 and after["pid"] != first["pid"] and after["ppid"] == first["ppid"]
    assert first["pid"] not in _slot_pids(pool)


def test_a_dead_idle_slot_is_replaced(tmp_path, pool):
    slot_pid = _run_count(tmp_path, pool, "t.1", 0)["pid"]
    os.kill(slot_pid, signal.SIGKILL)
    values = [_run_count(tmp_path, pool, f"t.{n}", 0) for n in range(2, 5)]  # never lost, never hung
    assert all(value["pid"] != slot_pid for value in values)
    assert [value["calls"] for value in values] == [1, 2, 3]


def test_a_late_kill_of_a_finished_task_spares_the_next_task_of_its_slot(tmp_path, pool):
    first = pool.start(pool.parse_warm_command(COMMAND, _env()), _sandbox(tmp_path, "t.1", _count_calls, 0),
                       _env(), tmp_path / "t.1.out")
    assert first.wait(timeout=60) == 0
    sandbox = _sandbox(tmp_path, "t.2", _sleep_then_count, 1.0)
    second = pool.start(pool.parse_warm_command(COMMAND, _env()), sandbox, _env(), tmp_path / "t.2.out")
    assert second.pid == first.pid  # the same slot runs it
    first.zygote.signal(first.request_id, signal.SIGKILL)  # what a stale kill of the first task sends
    assert second.wait(timeout=60) == 0
    assert read_outcome(sandbox / "out.lz4").value["pid"] == first.pid


def _sleep_then_count(item):
    import time

    time.sleep(item)
    return _count_calls(0)


def test_slots_retire_after_their_task_count_and_when_idle(tmp_path, pool):
    env = _env(COFFEA_WQ_SLOT_TASKS="2", COFFEA_WQ_SLOT_IDLE="0.5")
    pids = []
    for n in range(3):
        sandbox = _sandbox(tmp_path, f"t.{n}", _count_calls, 0)
        assert pool.start(pool.parse_warm_command(COMMAND, env), sandbox, env, tmp_path / f"t.{n}.out").wait(60) == 0
        pids.append(read_outcome(sandbox / "out.lz4").value["pid"])
    assert pids[0] == pids[1] != pids[2]  # two tasks, then a fresh slot
    deadline = time.monotonic() + 30
    while pids[2] in _slot_pids(pool) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _slot_pids(pool) == set(), "an idle slot outlived COFFEA_WQ_SLOT_IDLE"


def _leak_state(item):
    os.environ["LEAKED_BY_TASK"] = "1"
    print("from the first task")
    return {"path": list(sys.path), "cwd": os.getcwd()}


def _observe_state(item):
    return {"path": list(sys.path), "leaked": os.environ.get("LEAKED_BY_TASK"), "cwd": os.getcwd(),
            "argv": list(sys.argv)}


def test_a_reused_slot_gives_each_task_its_own_cwd_environment_path_and_output(tmp_path, pool):
    env = _env()
    first = _sandbox(tmp_path, "t.1", _leak_state, 0)
    assert pool.start(pool.parse_warm_command(COMMAND, env), first, env, tmp_path / "o1").wait(60) == 0
    second = _sandbox(tmp_path, "t.2", _observe_state, 0)
    assert pool.start(pool.parse_warm_command(COMMAND, env), second, env, tmp_path / "o2").wait(60) == 0
    seen = read_outcome(second / "out.lz4").value
    assert seen["leaked"] is None and seen["cwd"] == str(second)
    assert seen["path"][0] == str(second) and str(first) not in seen["path"]
    assert seen["argv"] == ["coffea_wq_task.py", "fn.pkl", "item.pkl", "out.lz4"]
    assert (tmp_path / "o1").read_text() == "from the first task\n" and (tmp_path / "o2").read_text() == ""


def test_closing_the_pool_stops_every_slot(tmp_path):
    pool = WarmPythonPool()
    try:
        slot_pid = _run_count(tmp_path, pool, "t.1", 0)["pid"]
    finally:
        pool.close()
    assert not psutil.pid_exists(slot_pid) or psutil.Process(slot_pid).status() == psutil.STATUS_ZOMBIE


def test_crashed_zygote_falls_back_and_recovers(tmp_path, pool):
    env = _env()
    first = _sandbox(tmp_path, "t.1", _describe_process, 1)
    assert pool.start(pool.parse_warm_command(COMMAND, env), first, env, tmp_path / "o1").wait(60) == 0
    zygote = next(iter(pool.zygotes.values()))
    os.killpg(zygote.proc.pid, signal.SIGKILL)
    zygote.proc.wait(timeout=10)
    second = _sandbox(tmp_path, "t.2", _describe_process, 2)
    process = pool.start(pool.parse_warm_command(COMMAND, env), second, env, tmp_path / "o2")
    assert process.wait(timeout=60) == 0
    assert read_outcome(second / "out.lz4").value["item"] == 2
