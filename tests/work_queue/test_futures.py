"""work_queue_futures: tasks as futures, callbacks, errors, cancel, join, and the local worker."""

from __future__ import annotations

import concurrent.futures
import socket
import threading

import pytest

from coffea_wq.work_queue.futures import FutureTask, FutureTaskError, WorkQueueFutures
from tests.support import LOOPBACK, requires_cctools, wait_until

LOCAL_WORKERS = ["coffea-wq", pytest.param("work_queue_worker", marks=requires_cctools)]


@pytest.fixture(params=LOCAL_WORKERS)
def futures_queue(request):
    q = WorkQueueFutures(port=0, host=LOOPBACK,
                         local_worker={"cores": 2, "memory": 500, "disk": 1000, "executable": request.param})
    yield q
    q.shutdown()


@pytest.mark.slow
def test_results_callbacks_and_errors(futures_queue, tmp_path):
    q = futures_queue
    first = FutureTask("echo one")
    q.submit(first)
    assert first.result(timeout=60) is True and first.done() and not first.running()
    assert first.output == "one\n" and first.result_code == 0

    # a callback gets the task; it may submit more work (it runs outside the queue's lock)
    seen: list[str] = []
    follow_up = FutureTask("echo two")
    both_done = threading.Event()

    def chain(task):
        seen.append(task.output.strip())
        if task is not follow_up:
            follow_up.add_done_callback(lambda t: (seen.append(t.output.strip()), both_done.set()))
            task.queue.submit(follow_up)

    starter = FutureTask("echo start")
    starter.add_done_callback(chain)
    q.submit(starter)
    assert both_done.wait(60) and seen == ["start", "two"]
    assert q.join(timeout=60) and q.empty()

    # a callback added to a finished task runs at once
    late = []
    first.add_done_callback(late.append)
    assert late == [first]

    failing = {
        "missing executable": FutureTask("/bin/no-such-executable"),
        "missing input": FutureTask("/bin/date"),
        "missing output": FutureTask("/bin/date"),
    }
    failing["missing input"].specify_input_file(str(tmp_path / "not-there"))
    failing["missing output"].specify_output_file(str(tmp_path / "never-made"))
    for task in failing.values():
        q.submit(task)
    messages = {}
    for what, task in failing.items():
        with pytest.raises(FutureTaskError) as raised:
            task.result(timeout=60)
        assert raised.value.task is task
        messages[what] = str(raised.value)
    assert messages == {"missing executable": "Execution completed with exit status 127",
                        "missing input": "Input file is missing",
                        "missing output": "Output file is missing"}


@pytest.mark.slow
def test_cancel_timeout_and_wait(futures_queue):
    q = futures_queue
    slow = FutureTask("sleep 30")
    cancelled = []
    slow.add_done_callback(cancelled.append)
    q.submit(slow)
    with pytest.raises(concurrent.futures.TimeoutError):
        slow.result(timeout=0.2)
    assert slow.cancel() and slow.cancelled() and cancelled == [slow]
    with pytest.raises(concurrent.futures.CancelledError):
        slow.result()
    assert q.join(timeout=30)
    with pytest.raises(AttributeError, match="futures"):
        q.wait(1)
    # WorkQueue's other methods are reached through the futures queue: its stats count the local worker,
    # and its port is the one the manager listens on
    wait_until(lambda: q.stats.workers_connected == 1, 30, "the local worker in the queue's stats")
    socket.create_connection((LOOPBACK, q.port), timeout=5).close()


def test_submit_takes_only_future_tasks():
    with WorkQueueFutures(port=0, host=LOOPBACK) as q, pytest.raises(TypeError, match="FutureTask"):
        q.submit("echo")


@pytest.mark.slow
def test_conda_runtime_environment_is_unpacked_and_activated(futures_queue, tmp_path):
    import tarfile

    activate = tmp_path / "activate"
    activate.write_text("FROM_THE_ENV=activated\n")
    with tarfile.open(tmp_path / "env.tar.gz", "w:gz") as tar:
        tar.add(activate, "bin/activate")
    task = FutureTask('echo "$FROM_THE_ENV"')
    task.specify_runtime_env("conda", str(tmp_path / "env.tar.gz"))
    futures_queue.submit(task)
    assert task.result(timeout=60) is True and task.output == "activated\n"
    with pytest.raises(FutureTaskError, match="not one of"):
        FutureTask("true").specify_runtime_env("docker", "image")
