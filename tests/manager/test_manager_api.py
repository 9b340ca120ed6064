"""The manager's public API (``coffea_wq/manager/api.py``) as the ``WorkQueue`` facade reaches it:
releasing one worker, dropping a cached file, cancelling by tag, per-category statistics, snapshots.
Real TCP on loopback; a ``ScriptedWorker`` shows every line the manager sends."""

from __future__ import annotations

import time

import pytest

import coffea_wq.work_queue as wq
from coffea_wq.protocol.codes import TaskState
from tests.manager.scripted_worker import ScriptedWorker
from tests.support import LOOPBACK, wait_until


@pytest.fixture
def queue():
    q = wq.WorkQueue(port=0, host=LOOPBACK)
    yield q
    q.shutdown()


def worker_address(queue, hostname: str) -> str:
    records = wait_until(lambda: [w for w in queue.snapshot().workers if w["hostname"] == hostname], 10,
                         f"worker {hostname} in the snapshot")
    return records[0]["address_port"]


def test_disconnect_worker_releases_that_worker_and_requeues_its_task(queue):
    first = ScriptedWorker(queue.port, hostname="first", cores=1)
    second = None
    try:
        address = worker_address(queue, "first")
        queue.submit(wq.Task("echo once"))
        assert first.next_task().command == "echo once"
        second = ScriptedWorker(queue.port, hostname="second", cores=1)
        worker_address(queue, "second")
        assert queue.disconnect_worker(address) == 1
        assert first.read_line() == "release"
        with pytest.raises(EOFError):
            first.read_line(timeout=5)
        assert second.next_task().command == "echo once"  # requeued onto the worker left
        assert queue.disconnect_worker(address) == 0  # gone: nothing to release
        assert [w["hostname"] for w in queue.snapshot().workers] == ["second"]
    finally:
        first.close()
        if second is not None:
            second.close()


def test_invalidate_cache_file_unlinks_the_cached_copy(queue, tmp_path):
    data = tmp_path / "calib.txt"
    data.write_text("constants\n")
    worker = ScriptedWorker(queue.port, hostname="cache")
    try:
        task = wq.Task("cat calib.txt")
        task.specify_input_file(str(data), "calib.txt", cache=True)
        queue.submit(task)
        cached_name = worker.next_task().infiles[0][0]
        assert queue.invalidate_cache_file(str(data)) == 1
        assert worker.read_line() == f"unlink {cached_name}"
        assert queue.invalidate_cache_file(str(data)) == 0  # no worker holds it any more
    finally:
        worker.close()


def test_cancel_by_tasktag_returns_the_submitted_task_and_category_stats_count_it(queue):
    kept, dropped = wq.Task("true"), wq.Task("true")
    kept.specify_category("keep")
    dropped.specify_category("drop")
    dropped.specify_tag("drop-me")
    queue.submit(kept)
    task_id = queue.submit(dropped)
    assert queue.stats_category("drop").tasks_waiting == 1
    assert queue.cancel_by_tasktag("drop-me") is dropped
    assert queue.task_state(task_id) == TaskState.UNKNOWN
    assert queue.cancel_by_tasktag("drop-me") is None
    assert queue.stats_category("drop").tasks_waiting == 0
    assert queue.stats_category("drop").tasks_cancelled == 1
    assert queue.stats_category("keep").tasks_waiting == 1


def test_snapshot_has_each_workers_last_contact(queue):
    worker = ScriptedWorker(queue.port, hostname="seen")
    try:
        address = worker_address(queue, "seen")
        snapshot = queue.snapshot()
        assert snapshot.queue["workers"] == 1 and snapshot.queue["port"] == queue.port
        assert abs(snapshot.last_contact[address] - time.time()) < 30
        assert snapshot.tasks == [] and snapshot.categories[0]["category"] == "whole queue"
    finally:
        worker.close()


def test_a_start_that_fails_leaves_no_debug_log_handler(tmp_path):
    import logging
    import socket

    taken = socket.socket()
    taken.bind((LOOPBACK, 0))
    taken.listen()
    handlers = list(logging.getLogger("coffea_wq").handlers)
    try:
        with pytest.raises(OSError):
            wq.WorkQueue(port=taken.getsockname()[1], host=LOOPBACK, debug_log=str(tmp_path / "debug.log"))
        assert logging.getLogger("coffea_wq").handlers == handlers
    finally:
        taken.close()


def test_the_certificate_made_for_ssl_true_is_removed_at_shutdown():
    from pathlib import Path

    q = wq.WorkQueue(port=0, host=LOOPBACK, ssl=True)
    try:
        directory = Path(q._manager._tls_dir.name)
        assert q.using_ssl() and any(directory.iterdir())
    finally:
        q.shutdown()
    assert not directory.exists()
