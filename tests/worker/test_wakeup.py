"""The worker's loop is woken by warm tasks' news instead of polling them (coffea_wq/worker/wakeup.py)."""

from __future__ import annotations

import os
import select
import time

import pytest

from coffea_wq.worker.execution import start_cold
from coffea_wq.worker.warm import WarmPythonPool


@pytest.fixture
def pool():
    warm = WarmPythonPool()
    yield warm
    warm.close()


def _warm_start(pool: WarmPythonPool, sandbox, script: str):
    env = {"PATH": os.environ["PATH"], "COFFEA_WQ_WARM": "1"}
    request = pool.parse_warm_command("python3 coffea_wq_task.py fn item out", env)
    sandbox.mkdir()
    (sandbox / "coffea_wq_task.py").write_text(script)
    return pool.start_async(request, sandbox, env, sandbox.parent / f"{sandbox.name}.out")


def _woken_until_done(pool: WarmPythonPool, process, timeout: float) -> int:
    """Wait on the pool's wake-up pipe alone (no polling) until ``process`` is seen to end; the
    number of wake-ups it took. Fails if the pipe stays silent while the task is over."""
    wakeups = 0
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        left = deadline - time.monotonic()
        assert left > 0, "the task ended (or not) without a word on the wake-up pipe"
        if select.select([pool.wakeup], [], [], left)[0]:
            assert pool.wakeup.drain()
            wakeups += 1
    return wakeups


def test_a_warm_task_wakes_the_loop_when_it_starts_and_when_it_ends(tmp_path, pool):
    process = _warm_start(pool, tmp_path / "t.1", "import time, sys\ntime.sleep(0.5)\nsys.exit(3)\n")
    assert process.event_driven
    wakeups = _woken_until_done(pool, process, timeout=120)
    assert process.poll() == 3 and 1 <= wakeups
    # the slot is warm now: a second task's end also wakes the loop, with nothing polled
    second = _warm_start(pool, tmp_path / "t.2", "import sys\nsys.exit(0)\n")
    _woken_until_done(pool, second, timeout=60)
    assert second.poll() == 0


def test_a_cold_task_is_polled(tmp_path):
    # nothing wakes the loop when a Popen ends: the loop polls while one runs (session.BUSY_POLL)
    process = start_cold("sleep 0", tmp_path, dict(os.environ), tmp_path / "out")
    try:
        assert not getattr(process, "event_driven", False)
    finally:
        process.wait(timeout=30)
