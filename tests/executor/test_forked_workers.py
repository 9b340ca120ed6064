"""Local workers forked from the user's process (coffea_wq/executor/workers/forked.py).

What a run shows of it: the zygote that forks a chunk's slot is itself a fork (its command line is
this test process's, not ``python zygote.py``), the workers are this process's children, their
chatter goes to their log files, and nothing is left behind when the manager cannot start.
"""

from __future__ import annotations

import os
import socket
import sys
import threading

import cloudpickle
import psutil
import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

import coffea_wq
from coffea_wq.executor.workers import forked
from coffea_wq.worker.warm import _is_venv_python, same_interpreter
from tests import support
from tests.executor import helpers, nano

ZYGOTE_SCRIPT = "zygote.py"


class WhereRunProcessor(nano.LeptonJetProcessor):
    """The lepton/jet histograms, plus who ran each chunk: the command line of the slot's parent
    (its zygote) and the parent of that zygote's parent (the user's process, for a local worker)."""

    def process(self, events):
        out = super().process(events)
        slot = psutil.Process()
        zygote = slot.parent()
        worker = zygote.parent()
        out["zygote_commands"] = {" ".join(zygote.cmdline())}
        out["worker_parents"] = {worker.ppid()}
        return out


cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _run(tmp_path, fileset, **options) -> dict:
    executor = coffea_wq.WorkQueueExecutor(local_workers=2, status=False, filepath=str(tmp_path), **options)
    runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema)
    return runner(fileset, WhereRunProcessor(), treename="Events")


def _histograms(out: dict) -> dict:
    return {k: v for k, v in out.items() if k not in ("zygote_commands", "worker_parents")}


def test_forked_local_workers_run_chunks_in_a_zygote_forked_from_this_process(fileset, reference, tmp_path, capfd):
    out = _run(tmp_path, fileset)
    nano.assert_same_histograms(reference, _histograms(out))
    me = psutil.Process()
    assert out["zygote_commands"] == {" ".join(me.cmdline())}, "a zygote was started fresh, not forked"
    assert out["worker_parents"] == {os.getpid()}
    chatter = capfd.readouterr()
    # the forks write to their log files, never to the terminal of the user's process
    assert "coffea-wq worker:" not in chatter.err + chatter.out


def test_fresh_local_workers_start_their_own_zygote(fileset, reference, tmp_path):
    out = _run(tmp_path, fileset, fork_local_workers=False)
    nano.assert_same_histograms(reference, _histograms(out))
    commands = out["zygote_commands"]
    assert commands and all(ZYGOTE_SCRIPT in command for command in commands), commands
    assert out["worker_parents"] == {os.getpid()}


def test_an_environment_file_keeps_the_workers_forked_but_makes_no_forked_zygote(tmp_path):
    tarball = tmp_path / "env.tar.gz"
    tarball.write_bytes(b"")  # only its name matters here: nothing runs
    executor = coffea_wq.WorkQueueExecutor(local_workers=2, status=False, environment_file=str(tarball))
    assert executor.session_config().fork_local_workers is True
    assert executor.session_config().local_zygote_preload is None  # its tasks run the tarball's python
    assert coffea_wq.WorkQueueExecutor(local_workers=2, status=False).session_config().local_zygote_preload


def test_a_manager_that_cannot_start_leaves_no_forked_worker_behind(tmp_path):
    holder = socket.socket()
    holder.bind((support.LOOPBACK, 0))
    holder.listen()
    port = holder.getsockname()[1]
    before = {p.pid for p in psutil.Process().children()}
    try:
        executor = coffea_wq.WorkQueueExecutor(local_workers=2, port=port, manager_host=support.LOOPBACK,
                                               status=False, filepath=str(tmp_path))
        runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema)
        with pytest.raises(RuntimeError, match="cannot start a Work Queue manager"):
            runner({"d": [str(tmp_path / "none.root")]}, nano.LeptonJetProcessor(), treename="Events")
    finally:
        holder.close()
    left = [p for p in psutil.Process().children() if p.pid not in before]
    _, alive = psutil.wait_procs(left, timeout=10)
    assert not alive, f"forked workers outlived a manager that never started: {alive}"


def test_no_fork_off_the_main_thread_nor_from_a_big_process(monkeypatch):
    assert forked.fork_refusal(True, "coffea-wq") is None
    assert forked.fork_refusal(True, "cctools") == "the local workers are cctools's"
    seen = []
    thread = threading.Thread(target=lambda: seen.append(forked.fork_refusal(True, "coffea-wq")))
    thread.start()
    thread.join(10)
    assert seen == ["the executor runs outside the main thread"]
    monkeypatch.setattr(forked, "FORK_RSS_LIMIT", 1 << 20)
    assert "MiB (more than 1 MiB)" in forked.fork_refusal(True, "coffea-wq")


def test_a_forked_worker_that_gets_no_command_exits():
    workers = forked.fork_workers(1)
    forked.discard_forked(workers, grace=10)
    assert workers[0].returncode == 0


@pytest.mark.skipif(not _is_venv_python(sys.executable), reason="the suite runs outside a virtual environment")
def test_interpreters_are_the_same_within_a_venv_and_differ_from_its_base():
    venv_bin = os.path.dirname(sys.executable)
    assert same_interpreter(os.path.join(venv_bin, "python"), os.path.join(venv_bin, "python3"))
    # the venv's python is a link to the base interpreter, which lacks the venv's packages
    assert not same_interpreter(sys.executable, os.path.realpath(sys.executable))
