"""Each coffea-wq worker advertises its own token feature, and the queue says which workers are here."""

from __future__ import annotations

import os
import signal

import coffea_wq.work_queue as wq
from tests.support import LOOPBACK, wait_until
from tests.work_queue.helpers import start_worker


def test_each_coffea_wq_worker_advertises_its_token_and_a_killed_one_is_gone(tmp_path, processes):
    q = wq.WorkQueue(port=0, host=LOOPBACK)
    try:
        first = start_worker("coffea-wq", processes, q.port, tmp_path / "w1")
        wait_until(lambda: len(q.worker_features()) == 1, 60, "the first worker's feature")
        (mine,) = q.worker_features()
        start_worker("coffea-wq", processes, q.port, tmp_path / "w2")
        wait_until(lambda: len(q.worker_features()) == 2, 60, "the second worker's feature")
        tokens = [f.removeprefix("coffea-wq-worker-") for f in q.worker_features()]
        assert all(len(t) == 16 and int(t, 16) >= 0 for t in tokens) and len(set(tokens)) == 2
        os.killpg(first.pid, signal.SIGKILL)
        wait_until(lambda: mine not in q.worker_features(), 60, "the killed worker to leave")
        assert len(q.worker_features()) == 1
    finally:
        q.shutdown()
