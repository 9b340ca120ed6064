"""Worker-to-worker transfers of cached files on loopback: one copy from the manager, the rest from
peers; sources that misbehave are named and the manager sends the file itself; a mixed pool with
CCTools' ``work_queue_worker`` still gets every file from the manager (docs/manager.md, "Peer transfers")."""

from __future__ import annotations

import logging
import os
import subprocess
import time

import pytest

import coffea_wq.work_queue as wq
from tests.peers.helpers import (
    RogueSource,
    digest_task,
    expect_digests,
    run_tasks,
    scripted_holder,
    take_first_copy,
    wait_for_workers,
)
from tests.support import LOOPBACK, requires_cctools, worker_argv

SIZE = 8 << 20


@pytest.fixture
def env_file(tmp_path):
    data = os.urandom(SIZE)
    path = tmp_path / "env.bin"
    path.write_bytes(data)
    return path, data


def start_workers(processes, port, tmp_path, kind, count, *extra):
    for i in range(count):
        argv = worker_argv(kind, port, tmp_path / f"{kind}-{i}", *extra, cores=1, memory=500, disk=500,
                           idle_timeout=60)
        processes.start(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
@pytest.mark.parametrize("peers_on", [True, False])
def test_the_manager_sends_a_cached_input_once_and_workers_pass_it_on(processes, tmp_path, env_file, peers_on):
    path, data = env_file
    with wq.WorkQueue(port=0, host=LOOPBACK) as q:
        q.tune("peer-transfers", int(peers_on))
        start_workers(processes, q.port, tmp_path, "coffea-wq", 4)
        wait_for_workers(q, 4)
        done = run_tasks(q, [digest_task(path, sleep=1) for _ in range(8)])
        counts = q._manager.peer_transfer_counts()
        sent = q.stats.bytes_sent
    expect_digests(done, data)
    assert len({t.hostname + t.host for t in done}) >= 3  # spread over the workers
    if peers_on:
        assert SIZE <= sent < 2 * SIZE, sent  # one copy (plus the small task files)
        assert counts["manager_copies"] == 1 and counts["peer_copies"] == 3, counts
    else:
        assert sent >= 4 * SIZE, sent
        assert counts == {"peer_copies": 0, "manager_copies": 0, "failures": 0}


@pytest.mark.slow
@requires_cctools
def test_a_pool_mixing_work_queue_worker_and_coffea_wq_workers(processes, tmp_path, env_file):
    path, data = env_file
    with wq.WorkQueue(port=0, host=LOOPBACK) as q:
        start_workers(processes, q.port, tmp_path, "coffea-wq", 2)
        start_workers(processes, q.port, tmp_path, "cctools", 2)
        wait_for_workers(q, 4)
        done = run_tasks(q, [digest_task(path, sleep=1) for _ in range(8)])
        counts = q._manager.peer_transfer_counts()
        sent = q.stats.bytes_sent
    expect_digests(done, data)
    # the CCTools workers get the file from the manager; the second coffea-wq worker from the first
    assert counts["failures"] == 0 and counts["peer_copies"] <= 1
    assert sent <= (4 - counts["peer_copies"]) * SIZE + (1 << 20), (sent, counts)


@pytest.mark.slow
@pytest.mark.parametrize("behaviour, password", [("corrupt", None), ("dies", None), ("wrong-password", b"secret\n"),
                                                 ("corrupt", b"secret\n")])
def test_a_misbehaving_source_is_named_and_the_manager_sends_the_file(processes, tmp_path, env_file, caplog,
                                                                       behaviour, password):
    path, data = env_file
    rogue = RogueSource(behaviour, data, password)
    password_file = tmp_path / "password"
    extra = ()
    if password is not None:
        password_file.write_bytes(password)
        extra = ("-P", str(password_file))
    caplog.set_level(logging.WARNING, logger="coffea_wq.manager")
    with wq.WorkQueue(port=0, host=LOOPBACK) as q:
        if password is not None:
            q.specify_password_file(str(password_file))
        holder = scripted_holder(q.port, password, rogue.port)
        try:
            q.submit(digest_task(path))
            held_task = take_first_copy(holder)  # the scripted worker holds its only core with it
            start_workers(processes, q.port, tmp_path, "coffea-wq", 1, *extra)
            done = run_tasks(q, [digest_task(path) for _ in range(2)])
            counts = q._manager.peer_transfer_counts()
            assert held_task > 0
        finally:
            holder.close()
            rogue.close()
    expect_digests(done, data)
    assert rogue.requests == 1
    assert counts["failures"] == 1 and counts["manager_copies"] == 2, counts
    named = [r.getMessage() for r in caplog.records if "could not get" in r.getMessage()]
    assert named and "worker rogue (127.0.0.1:" in named[0], named
    reason = {"corrupt": "corrupt bytes", "dies": "failed", "wrong-password": "password"}[behaviour]
    assert reason in named[0], named



@pytest.mark.slow
def test_a_changed_or_invalidated_input_reaches_every_worker_again(processes, tmp_path, env_file):
    path, data = env_file
    with wq.WorkQueue(port=0, host=LOOPBACK) as q:
        start_workers(processes, q.port, tmp_path, "coffea-wq", 3)
        wait_for_workers(q, 3)
        expect_digests(run_tasks(q, [digest_task(path, sleep=0.5) for _ in range(6)]), data)
        new = os.urandom(SIZE)
        path.write_bytes(new)
        os.utime(path, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))  # a new signature, surely
        expect_digests(run_tasks(q, [digest_task(path, sleep=0.5) for _ in range(6)], timeout=60), new)
        q.invalidate_cache_file(str(path))
        expect_digests(run_tasks(q, [digest_task(path, sleep=0.5) for _ in range(6)], timeout=60), new)
        counts = q._manager.peer_transfer_counts()
    assert counts["failures"] == 0 and counts["manager_copies"] == 3, counts
