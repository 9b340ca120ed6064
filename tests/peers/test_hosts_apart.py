"""Manager, catalog and workers on hosts of their own (network namespaces, tests/netns_lab.py), each
with its own address: lookup by name through the catalog, password, TLS and peer transfers between
hosts; sources that are killed in the middle of a transfer, vanish without a FIN, serve corrupt
bytes or lack the password, each named and replaced by the manager's copy; a worker whose host
vanishes without a FIN, found by the keepalive and its task run elsewhere."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import coffea_wq.work_queue as wq
from tests.netns_lab import NetnsLab, unavailable_reason
from tests.peers.helpers import (
    RogueSource,
    digest_task,
    expect_digests,
    run_tasks,
    scripted_holder,
    take_first_copy,
    wait_for_workers,
)
from tests.support import wait_until

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(unavailable_reason()), reason=unavailable_reason() or "namespaces work")]

CATALOG_PORT = 9097
PROJECT = "cwqpeers-test"


@pytest.fixture
def lab():
    with NetnsLab() as made:
        yield made


@pytest.fixture
def env_file(tmp_path):
    data = os.urandom(8 << 20)
    path = tmp_path / "env.bin"
    path.write_bytes(data)
    return path, data


def worker_command(workdir: Path, *options: str) -> list[str]:
    workdir.mkdir(parents=True, exist_ok=True)
    return [sys.executable, "-m", "coffea_wq", "worker", "--cores", "1", "--memory", "500", "--disk", "500",
            "-t", "60", "-s", str(workdir), *options]


def start_worker(lab: NetnsLab, name: str, tmp_path: Path, *options: str, rate: str = "1gbit"):
    host = lab.add_host(name)
    lab.shape(host, rate)
    log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 (the process holds it)
    proc = lab.start(host, worker_command(tmp_path / name, *options), stdout=log, stderr=subprocess.STDOUT)
    return host, proc


def test_workers_find_the_manager_by_name_and_pass_files_on_over_tls_with_a_password(lab, tmp_path, env_file):
    path, data = env_file
    password = tmp_path / "password"
    password.write_bytes(b"the run's secret\n")
    manager_host, catalog_host = lab.add_host("manager"), lab.add_host("catalog")
    lab.shape(manager_host, "1gbit")
    lab.start(catalog_host, [sys.executable, "-m", "coffea_wq", "catalog", "-I", catalog_host.address,
                             "-p", str(CATALOG_PORT)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    catalog = f"{catalog_host.address}:{CATALOG_PORT}"
    with lab.entered(manager_host), wq.WorkQueue(port=9123, name=PROJECT, catalog=catalog, ssl=True) as q:
        q.specify_password_file(str(password))
        for i in range(4):
            start_worker(lab, f"w{i}", tmp_path, "-M", PROJECT, "-C", catalog, "--ssl", "-P", str(password))
        wait_for_workers(q, 4, timeout=90)
        done = run_tasks(q, [digest_task(path, sleep=1) for _ in range(8)])
        counts = q._manager.peer_transfer_counts()
        sent = q.stats.bytes_sent
    expect_digests(done, data)
    addresses = {task.host.rpartition(":")[0] for task in done}
    assert len(addresses) >= 3 and all(a.startswith("10.231.0.") for a in addresses), addresses
    assert len(data) <= sent < 2 * len(data), sent
    assert counts == {"peer_copies": 3, "manager_copies": 1, "failures": 0}, counts


def incoming_peer_bytes(workdir: Path) -> int:
    """Bytes already written by a peer transfer in progress on the worker working in ``workdir``."""
    total = 0
    for partial in workdir.glob("worker-*/cache/.incoming-*"):
        try:
            total += partial.stat().st_size
        except FileNotFoundError:
            pass
    return total


def test_a_source_killed_mid_transfer_is_named_and_the_manager_sends_the_file(lab, tmp_path, env_file, caplog):
    path, data = env_file
    caplog.set_level(logging.WARNING, logger="coffea_wq.manager")
    manager_host = lab.add_host("manager")
    with lab.entered(manager_host), wq.WorkQueue(port=9123) as q:
        target = f"{manager_host.address}"
        source_host, source = start_worker(lab, "source", tmp_path, target, "9123")
        wait_for_workers(q, 1)
        q.submit(digest_task(path, sleep=8))  # holds the source's only core
        wait_until(lambda: q._manager.peer_transfer_counts()["manager_copies"] == 1 and q.stats.tasks_running == 1,
                   30, "the first copy on the source")
        lab.shape(source_host, "16mbit", both_ways=False)  # 8 MB now take 4 s to leave the source
        start_worker(lab, "fetcher", tmp_path, target, "9123")
        wait_for_workers(q, 2)
        second = q.submit(digest_task(path))
        wait_until(lambda: incoming_peer_bytes(tmp_path / "fetcher") > (1 << 20), 30, "the peer transfer to start")
        os.killpg(source.pid, 9)
        done = []
        deadline = time.monotonic() + 90
        while len(done) < 2 and time.monotonic() < deadline:
            task = q.wait(1)
            if task is not None:
                done.append(task)
        counts = q._manager.peer_transfer_counts()
    assert len(done) == 2 and second in {t.id for t in done}
    expect_digests(done, data)
    assert counts["failures"] == 1 and counts["peer_copies"] == 0, counts
    named = [r.getMessage() for r in caplog.records if "could not get" in r.getMessage()]
    assert named and f"({source_host.address}:" in named[0], named


def test_a_worker_whose_host_vanishes_is_found_by_the_keepalive_and_its_task_runs_elsewhere(lab, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="coffea_wq.manager")
    manager_host = lab.add_host("manager")
    with lab.entered(manager_host), wq.WorkQueue(port=9123) as q:
        q.tune("keepalive-interval", 2)
        q.tune("keepalive-timeout", 3)
        lost_host, _ = start_worker(lab, "lost", tmp_path, manager_host.address, "9123")
        wait_for_workers(q, 1)
        first = wq.Task("sleep 3 && echo finished")
        first.specify_cores(1)
        first_id = q.submit(first)
        wait_until(lambda: q.stats.tasks_running == 1, 30, "the task to start on the first worker")
        start_worker(lab, "spare", tmp_path, manager_host.address, "9123")
        wait_for_workers(q, 2)
        lab.cut(lost_host)  # no FIN, no reset: the manager hears nothing more from it
        cut_at = time.monotonic()
        task = q.wait(60)
        found_after = time.monotonic() - cut_at
    assert task is not None and task.id == first_id
    assert task.result == wq.WORK_QUEUE_RESULT_SUCCESS and task.output.strip() == "finished"
    assert not task.host.startswith(lost_host.address + ":"), task.host
    lost = [r.getMessage() for r in caplog.records if "did not answer a keepalive" in r.getMessage()]
    assert lost and lost_host.address in lost[0], lost
    assert found_after < 30, found_after  # bounded by the keepalive settings, not TCP's retransmission


def test_a_source_whose_host_vanishes_mid_transfer_times_out_and_the_manager_sends_the_file(lab, tmp_path, env_file,
                                                                                             caplog):
    path, data = env_file
    caplog.set_level(logging.WARNING, logger="coffea_wq.manager")
    manager_host = lab.add_host("manager")
    with lab.entered(manager_host), wq.WorkQueue(port=9123) as q:
        q.tune("keepalive-interval", 2)
        q.tune("keepalive-timeout", 3)
        source_host, _ = start_worker(lab, "source", tmp_path, "--peer-timeout", "4", manager_host.address, "9123")
        wait_for_workers(q, 1)
        q.submit(digest_task(path, sleep=8))  # holds the source's only core
        wait_until(lambda: q._manager.peer_transfer_counts()["manager_copies"] == 1 and q.stats.tasks_running == 1,
                   30, "the first copy on the source")
        lab.shape(source_host, "16mbit", both_ways=False)
        start_worker(lab, "fetcher", tmp_path, "--peer-timeout", "4", manager_host.address, "9123")
        wait_for_workers(q, 2)
        q.submit(digest_task(path))
        wait_until(lambda: incoming_peer_bytes(tmp_path / "fetcher") > (1 << 20), 30, "the peer transfer to start")
        lab.cut(source_host)  # the fetcher's transfer stalls: no FIN, no reset
        done = []
        deadline = time.monotonic() + 90
        while len(done) < 2 and time.monotonic() < deadline:
            task = q.wait(1)
            if task is not None:
                done.append(task)
        counts = q._manager.peer_transfer_counts()
    assert len(done) == 2
    expect_digests(done, data)
    assert counts["failures"] == 1, counts
    named = [r.getMessage() for r in caplog.records if "could not get" in r.getMessage()]
    assert named and f"({source_host.address}:" in named[0] and "timed out" in named[0], named


@pytest.mark.parametrize("behaviour", ["corrupt", "wrong-password"])
def test_a_source_host_that_serves_corrupt_bytes_or_lacks_the_password_is_named(lab, tmp_path, env_file, caplog,
                                                                                 behaviour):
    path, data = env_file
    secret = b"the run's secret\n"
    password = tmp_path / "password"
    password.write_bytes(secret)
    caplog.set_level(logging.WARNING, logger="coffea_wq.manager")
    manager_host, rogue_host = lab.add_host("manager"), lab.add_host("rogue")
    with lab.entered(manager_host), wq.WorkQueue(port=9123) as q:
        q.specify_password_file(str(password))
        with lab.entered(rogue_host):  # a host of the run whose cache server misbehaves
            rogue = RogueSource(behaviour, data, secret, host=rogue_host.address)
            holder = scripted_holder(9123, secret, rogue.port, manager_host=manager_host.address)
        try:
            q.submit(digest_task(path))
            take_first_copy(holder)  # the rogue holds its only core with that task
            start_worker(lab, "fetcher", tmp_path, "-P", str(password), manager_host.address, "9123")
            done = run_tasks(q, [digest_task(path) for _ in range(2)])
            counts = q._manager.peer_transfer_counts()
        finally:
            holder.close()
            rogue.close()
    expect_digests(done, data)
    assert rogue.requests == 1 and counts["failures"] == 1, (rogue.requests, counts)
    named = [r.getMessage() for r in caplog.records if "could not get" in r.getMessage()]
    assert named and f"worker rogue ({rogue_host.address}:" in named[0], named
    assert ("corrupt bytes" if behaviour == "corrupt" else "password") in named[0], named
