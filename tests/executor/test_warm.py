"""Warm Python slots: the command contract, results identical to a cold run, signals, crash fallback."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys

import cloudpickle
import pytest

from coffea_wq.coffea_tasks import task_script
from coffea_wq.coffea_tasks.outcome import OutcomeKind, read_outcome
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
        assert value["ppid"] == zygote_pid  # forked from the zygote, not a fresh interpreter
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
