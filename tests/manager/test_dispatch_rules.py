"""What the manager sends, checked byte by byte with a scripted worker on a real socket.

Cached inputs go once per worker connection, uncached ones every time and are unlinked after;
``kill`` follows retrieval; an unspecified task takes the whole worker; FORSAKEN requeues; a
worker's cache is forgotten when it reconnects; bad peers are dropped without hurting the manager.
"""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

import coffea_wq.work_queue as wq
from coffea_wq.protocol.framing import MAX_LINE
from tests.manager.scripted_worker import ScriptedWorker
from tests.support import LOOPBACK, free_port, wait_until


@pytest.fixture
def queue():
    q = wq.WorkQueue(port=0, host=LOOPBACK)
    yield q
    q.shutdown()


def small_task(command: str) -> wq.Task:
    t = wq.Task(command)
    t.specify_cores(1)
    t.specify_memory(10)
    t.specify_disk(10)
    return t


def test_cached_input_sent_once_uncached_every_time(queue, tmp_path):
    shared = tmp_path / "shared.txt"
    shared.write_text("shared\n")
    own = tmp_path / "own.txt"
    own.write_text("own\n")
    for i in range(2):
        t = small_task(f"cat shared.txt own.txt; echo {i}")
        t.specify_input_file(str(shared), "shared.txt", cache=True)
        t.specify_input_file(str(own), "own.txt", cache=False)
        t.specify_output_file(str(tmp_path / f"out{i}.txt"), "out.txt")
        queue.submit(t)
    worker = ScriptedWorker(queue.port)
    first, second = worker.next_task(), worker.next_task()
    names = [name for name, _ in worker.puts]
    cached = [n for n in names if n.startswith("file-0-")]
    assert len(cached) == 1 and dict(worker.puts)[cached[0]] == b"shared\n"
    assert len([n for n in names if not n.startswith("file-0-")]) == 2  # own.txt for each task
    assert first.infiles[0][2] == 1 and first.infiles[1][2] == 0
    assert first.infiles[0][0] == second.infiles[0][0]  # same cached name
    assert first.infiles[1][0] != second.infiles[1][0]  # uncached files get fresh names
    for name, _, _ in first.infiles + first.outfiles:
        assert all(c.isalnum() or c in "._-" for c in name), name

    # retrieval: get the output, then kill, then unlink the uncached input and output
    worker.finish(first.task_id, b"hello\n")
    out_name = first.outfiles[0][0]
    assert worker.read_line() == f"get {out_name} 1"
    worker.send(f"file {out_name} 3\nabcend\n")
    expected_after = {f"kill {first.task_id}", f"unlink {first.infiles[1][0]}", f"unlink {out_name}"}
    assert {worker.read_line() for _ in range(3)} == expected_after
    done = queue.wait(10)
    assert done.id == first.task_id and done.output == "hello\n"
    assert (tmp_path / "out0.txt").read_text() == "abc"
    worker.close()


def test_cache_is_forgotten_when_the_worker_reconnects(queue, tmp_path):
    shared = tmp_path / "shared.txt"
    shared.write_text("x")
    for _ in range(2):
        t = small_task("true")
        t.specify_input_file(str(shared), cache=True)
        queue.submit(t)
    worker = ScriptedWorker(queue.port)
    task = worker.next_task()
    assert len(worker.puts) == 1
    worker.close()  # disconnects with both tasks on it
    wait_until(lambda: queue.stats.workers_connected == 0, 10, "the disconnect")
    again = ScriptedWorker(queue.port, hostname="again")
    again.next_task()
    assert len(again.puts) == 1, "a reconnected worker has an empty cache and needs the file again"
    assert task.task_id in {1, 2}
    again.close()


def test_unspecified_task_takes_the_whole_worker(queue):
    queue.submit(wq.Task("true"))
    queue.submit(wq.Task("true"))
    worker = ScriptedWorker(queue.port, cores=4, memory=8000, disk=4000)
    task = worker.next_task()
    assert task.fields["cores"] == "4.000" and task.fields["memory"] == "8000" and task.fields["disk"] == "4000"
    time.sleep(0.3)
    assert queue.stats.tasks_running == 1, "a second whole-worker task must not be sent"
    worker.finish(task.task_id)
    assert worker.next_task().task_id != task.task_id
    worker.close()


def test_task_that_does_not_fit_waits(queue):
    t = small_task("true")
    t.specify_cores(8)
    queue.submit(t)
    worker = ScriptedWorker(queue.port, cores=2)
    time.sleep(0.5)
    assert queue.stats.tasks_waiting == 1 and queue.stats.tasks_running == 0
    worker.close()


def test_task_block_carries_env_limits_category(queue):
    t = small_task("echo $A")
    t.specify_environment_variable("A", "one two")
    t.specify_category("analysis")
    t.specify_running_time_max(30)
    queue.submit(t)
    worker = ScriptedWorker(queue.port)
    task = worker.next_task()
    assert task.command == "echo $A"
    assert task.env == ["A=one two"]
    assert task.fields["category"] == "analysis"
    assert task.fields["wall_time"] == "30.000000"
    worker.close()


def test_forsaken_task_is_requeued_without_counting_a_failure(queue):
    t = small_task("true")
    t.specify_max_retries(1)
    queue.submit(t)
    worker = ScriptedWorker(queue.port)
    first = worker.next_task()
    worker.finish(first.task_id, status=40)
    again = worker.next_task()
    assert again.task_id == first.task_id
    worker.finish(again.task_id, b"ok\n")
    assert worker.read_line() == f"kill {again.task_id}"
    done = queue.wait(10)
    assert done.result == wq.WORK_QUEUE_RESULT_SUCCESS and done.output == "ok\n"
    worker.close()


def test_missing_output_marks_output_missing(queue, tmp_path):
    t = small_task("true")
    t.specify_output_file(str(tmp_path / "never.txt"), "never.txt")
    queue.submit(t)
    worker = ScriptedWorker(queue.port)
    task = worker.next_task()
    worker.finish(task.task_id, exit_code=0)
    name = task.outfiles[0][0]
    assert worker.read_line() == f"get {name} 1"
    worker.send(f"missing {name} 2\nend\n")
    done = queue.wait(10)
    assert done.result == wq.WORK_QUEUE_RESULT_OUTPUT_MISSING and done.result_str == "OUTPUT_MISS"
    worker.close()


def test_missing_local_input_fails_the_task_with_input_missing(queue, tmp_path):
    t = small_task("cat gone.txt")
    t.specify_input_file(str(tmp_path / "gone.txt"))
    queue.submit(t)
    worker = ScriptedWorker(queue.port)
    done = queue.wait(10)
    assert done.result == wq.WORK_QUEUE_RESULT_INPUT_MISSING
    worker.close()


def test_cancel_running_task_sends_kill(queue):
    task_id = queue.submit(small_task("sleep 100"))
    worker = ScriptedWorker(queue.port)
    worker.next_task()
    cancelled = queue.cancel_by_taskid(task_id)
    assert cancelled is not None and cancelled.id == task_id
    assert worker.read_line() == f"kill {task_id}"
    assert queue.empty()
    assert queue.wait(0.2) is None
    assert queue.cancel_by_taskid(9999) is None
    worker.close()


@pytest.mark.parametrize(
    "garbage",
    [b"hello there\n", b"x" * (MAX_LINE + 10), b"workqueue 3 old\n", b"result nonsense\n", b"\xff\xfe\n"],
)
def test_bad_peers_are_dropped_and_the_manager_keeps_working(queue, garbage, caplog):
    caplog.set_level(logging.INFO, logger="coffea_wq")
    bad = socket.create_connection((LOOPBACK, queue.port), timeout=5)
    bad.sendall(garbage)
    bad.settimeout(5)
    assert bad.recv(100) == b"", "the manager should close a connection that breaks the protocol"
    bad.close()
    assert any("disconnect" in r.getMessage() for r in caplog.records)
    queue.submit(small_task("echo fine"))
    worker = ScriptedWorker(queue.port)
    task = worker.next_task()
    worker.finish(task.task_id, b"fine\n")
    assert queue.wait(10).output == "fine\n"
    worker.close()


def test_worker_dying_mid_result_requeues(queue):
    queue.submit(small_task("true"))
    worker = ScriptedWorker(queue.port)
    task = worker.next_task()
    worker.send("available_results\n")
    assert worker.read_line() == "send_results -1"
    worker.send(f"result 0 0 100 10 {task.task_id}\nonly part")
    worker.close()
    wait_until(lambda: queue.stats.tasks_waiting == 1, 10, "the task to be requeued")


def test_port_range_takes_the_first_free_port():
    busy = socket.socket()
    port = free_port()
    busy.bind((LOOPBACK, port))
    busy.listen(1)
    try:
        with wq.WorkQueue(port=f"{port}-{port + 20}", host=LOOPBACK) as q:
            assert port < q.port <= port + 20
        with pytest.raises(OSError, match=str(port)):
            wq.WorkQueue(port=port, host=LOOPBACK)
        with pytest.raises(ValueError, match="port"):
            wq.WorkQueue(port="nine", host=LOOPBACK)
    finally:
        busy.close()


def test_hungry_and_empty(queue):
    assert queue.empty() and queue.hungry() >= 10
    for _ in range(10):
        queue.submit(small_task("true"))
    assert not queue.empty() and queue.hungry() == 0


def test_keepalive_check_and_removal_of_a_silent_worker(queue):
    queue.specify_keepalive_interval(0.5)
    queue.specify_keepalive_timeout(1)
    answering = ScriptedWorker(queue.port, hostname="answers")
    silent = ScriptedWorker(queue.port, hostname="silent")
    wait_until(lambda: queue.stats.workers_connected == 2, 10, "both workers")
    stop = threading.Event()

    def answer_checks() -> None:
        while not stop.is_set():
            try:
                if answering.read_line(timeout=0.2) == "check":
                    answering.send("alive\ninfo tasks_running 0\n")
            except (TimeoutError, OSError, EOFError):
                continue

    responder = threading.Thread(target=answer_checks, daemon=True)
    responder.start()
    try:
        assert silent.read_line(timeout=5) == "check"
        wait_until(lambda: queue.stats.workers_connected == 1, 10, "the silent worker to be removed")
        time.sleep(2.5)  # several more keepalive rounds: the answering worker stays
        assert queue.stats.workers_connected == 1 and queue.stats.workers_lost == 1
        assert answering.lines.count("check") >= 2
    finally:
        stop.set()
        responder.join(5)
        answering.close()
        silent.close()


def test_idle_disconnecting_worker_counts_as_idled_out(queue):
    worker = ScriptedWorker(queue.port)
    wait_until(lambda: queue.stats.workers_connected == 1, 10, "the worker")
    worker.send("info idle-disconnecting 900\n")
    wait_until(lambda: queue.stats.workers_idled_out == 1, 10, "the idle-out")
    assert queue.stats.workers_connected == 0
    worker.close()
