"""The manager with a thousand simulated workers (benchmarks/swarm.py): correctness at scale, not speed.

A thousand real loopback connections from two swarm processes, speaking protocol 9 through our
worker-side connection. Thousands of short tasks, each with a cached input and an output file, go
through them with keepalives every second: every task comes back once with its own output, no worker
is dropped, and a status query is answered while all of it goes on. The speed figures are
``benchmarks/bench_manager_scale.py``'s.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time

import pytest

import coffea_wq.work_queue as wq
from tests.support import LOOPBACK, REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from swarm import Swarm, SwarmConfig, raise_fd_limit  # noqa: E402

WORKERS = 1000
TASKS = 3000


def ask_status(port: int, kind: str) -> list[dict]:
    with socket.create_connection((LOOPBACK, port), timeout=30) as sock:
        sock.sendall(kind.encode() + b"\n")
        body = b""
        while chunk := sock.recv(1 << 16):
            body += chunk
    return json.loads(body)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_thousand_simulated_workers(tmp_path, monkeypatch):
    if raise_fd_limit(2 * WORKERS + 512) < 2 * WORKERS + 512:
        pytest.skip(f"RLIMIT_NOFILE's hard limit is under {2 * WORKERS + 512}: too few descriptors for "
                    f"{WORKERS} connections at both ends")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "input.txt").write_text("shared input\n")
    q = wq.WorkQueue(port=0, host=LOOPBACK)
    q.specify_keepalive_interval(1)  # every idle worker gets checks: none may miss one
    q.specify_keepalive_timeout(30)
    swarm = Swarm(SwarmConfig(LOOPBACK, q.port, workers=WORKERS, processes=2))
    try:
        swarm.start()
        swarm.wait_connected(timeout=120)
        deadline = time.monotonic() + 60
        while q.stats.workers_connected < WORKERS and time.monotonic() < deadline:
            time.sleep(0.05)
        assert q.stats.workers_connected == WORKERS

        expected = {}
        for n in range(TASKS):
            t = wq.Task(f"echo task-{n}")
            t.specify_input_file("input.txt", "input.txt", cache=True)
            t.specify_output_file(f"out/{n}.txt", "result.txt")
            t.specify_cores(1)
            expected[q.submit(t)] = n
        assert len(expected) == TASKS  # every id given once

        answered = None
        seen: dict[int, int] = {}
        deadline = time.monotonic() + 150
        while len(seen) < TASKS and time.monotonic() < deadline:
            if answered is None and len(seen) >= TASKS // 3:
                answered = ask_status(q.port, "queue_status")  # in the middle of the run
            t = q.wait(5)
            if t is None:
                continue
            assert t.id not in seen, f"task {t.id} returned twice"
            seen[t.id] = expected[t.id]
            n = expected[t.id]
            assert (t.result, t.return_status) == (0, 0), f"task {t.id}: result {t.result}, exit {t.return_status}"
            assert t.output == f"task-{n}\n"
            assert (tmp_path / "out" / f"{n}.txt").read_text() == f"task {t.id} wrote result.txt\n"
        assert len(seen) == TASKS, f"{TASKS - len(seen)} of {TASKS} tasks never came back"
        assert q.wait(0) is None

        time.sleep(2.5)  # idle: keepalives go to every worker
        stats = swarm.stats()
        assert stats.dropped == 0 and stats.protocol_errors == 0
        assert stats.connected == WORKERS
        assert stats.tasks_reported == TASKS and stats.missing_inputs == 0
        assert stats.keepalives_answered >= WORKERS
        # the cached input went to each worker that ran a task once, not once per task
        assert stats.files_received <= WORKERS
        assert q.stats.workers_lost == 0 and q.stats.workers_connected == WORKERS

        assert answered is not None and answered[0]["workers"] == WORKERS
        assert answered[0]["tasks_submitted"] == TASKS
        final = ask_status(q.port, "queue_status")[0]
        assert final["tasks_done"] == TASKS and final["workers_lost"] == 0
        assert len(ask_status(q.port, "worker_status")) == WORKERS
    finally:
        swarm.stop()
        q.shutdown()


def test_the_manager_raises_its_open_files_limit():
    """One descriptor per worker: a manager started under a low soft limit raises it (to the hard limit)."""
    script = (
        "import resource\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))\n"
        "import coffea_wq.work_queue as wq\n"
        "q = wq.WorkQueue(port=0, host='127.0.0.1')\n"
        "print(resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard)\n"
        "q.shutdown()\n"
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    soft, hard = (int(n) for n in run.stdout.split())
    if hard != -1 and hard <= 256:
        pytest.skip(f"the hard open-files limit is {hard}: nothing to raise it to")
    assert soft == (65536 if hard == -1 else min(65536, hard))
