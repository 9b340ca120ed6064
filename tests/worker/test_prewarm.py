"""``--warm-preload``: a worker starts its warm zygote before any task (the executor's local workers)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil

from coffea_wq.executor.workers.local_workers import LocalWorkerSpec, worker_command
from tests import support


def _zygotes(worker: psutil.Process) -> list[psutil.Process]:
    try:
        return [p for p in worker.children(recursive=True) if any("zygote.py" in word for word in p.cmdline())]
    except psutil.Error:
        return []


def test_a_worker_with_warm_preload_starts_its_zygote_before_any_manager_answers(tmp_path):
    # no manager listens on this port: whatever starts the zygote, it is not a task
    argv = support.coffea_wq_command("worker", "--workdir", str(tmp_path), "-t", "60",
                                     "--warm-preload", "json,cloudpickle", support.LOOPBACK, str(support.free_port()))
    worker = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        zygote, = support.wait_until(lambda: _zygotes(psutil.Process(worker.pid)), 60, "the worker's zygote")
        assert zygote.cmdline()[-2:] == ["json", "cloudpickle"]  # imported at once
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0
        support.wait_until(lambda: not zygote.is_running() or zygote.status() == psutil.STATUS_ZOMBIE, 30,
                           "the zygote to end with its worker")
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def test_a_worker_without_it_starts_no_zygote_until_a_task_asks(tmp_path):
    argv = support.coffea_wq_command("worker", "--workdir", str(tmp_path), "-t", "60", support.LOOPBACK,
                                     str(support.free_port()))
    worker = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # the worker is up (it has made its workspace) and trying to connect: still no zygote
        support.wait_until(lambda: any(Path(tmp_path).iterdir()), 60, "the worker's workspace")
        assert _zygotes(psutil.Process(worker.pid)) == []
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def test_local_workers_ask_for_the_executors_preload_only_when_tasks_run_warm():
    spec = LocalWorkerSpec(count=1, host=support.LOOPBACK, port=9123, warm_preload=("coffea.processor", "uproot"))
    argv = worker_command(spec, "coffea-wq", 0)
    assert argv[argv.index("--warm-preload") + 1] == "coffea.processor,uproot"
    assert "--warm-preload" not in worker_command(LocalWorkerSpec(count=1, host=support.LOOPBACK, port=9123),
                                                  "coffea-wq", 0)
    # CCTools' worker has no such option
    assert "--warm-preload" not in worker_command(spec, "cctools", 0)


def test_the_executor_gives_its_local_workers_its_preload_when_tasks_run_warm():
    import coffea_wq
    from coffea_wq.executor.tasks.staging import DEFAULT_PRELOAD

    assert coffea_wq.WorkQueueExecutor(local_workers=1).session_config().warm_preload == DEFAULT_PRELOAD
    assert coffea_wq.WorkQueueExecutor(local_workers=1, warm_python=False).session_config().warm_preload == ()
