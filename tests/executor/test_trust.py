"""The trust boundary of a run, attacked for real on 127.0.0.1 (docs/executor.md, "Security").

* a rogue worker (raw socket, protocol 9, no password) returns a pickle whose ``__reduce__`` runs a
  shell command: the command never runs, the refusal names the class and the worker, and the run
  still ends with IterativeExecutor's histograms once honest workers did the chunk;
* a local-workers-only run listens on 127.0.0.1 (read from the socket table) and its workers get
  a fresh password through a 0600 file, not on their command line;
* a run whose only workers have another password fails within 60 s naming them;
* a TLS run (ssl=True, local workers) gives the same histograms.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import stat
import threading
import time
from pathlib import Path

import lz4.frame
import psutil
import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

import coffea_wq
from coffea_wq.executor import last_report
from coffea_wq.executor.workers.refused import PeersRefusedError
from tests import support
from tests.executor import helpers, nano
from tests.manager.scripted_worker import ScriptedWorker

pytestmark = pytest.mark.slow


def _run(executor, fileset):
    # preprocessing in this process: the attacks below are aimed at the processing call
    runner = processor.Runner(executor=executor, pre_executor=processor.IterativeExecutor(status=False),
                              chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema, metadata_cache={})
    return runner(fileset, nano.LeptonJetProcessor(), treename="Events")


class WritesAFile:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _rogue(port: int, marker: Path, processes, tmp_path, errors: list, answer=None) -> None:
    """Take one task, answer it with a hostile pickle (``answer(task)``: the output's bytes), then let
    honest workers in."""
    try:
        rogue = ScriptedWorker(port, cores=1, hostname="rogue")
        task = rogue.next_task(timeout=30)
        rogue.finish(task.task_id)
        line = rogue.read_line(timeout=30)
        assert line.startswith("get "), line
        name = line.split()[1]
        payload = answer(task) if answer else \
            lz4.frame.compress(pickle.dumps({"status": "ok", "value": WritesAFile(marker)}))
        rogue.send(f"file {name} {len(payload)}\n".encode() + payload + b"end\n")
        for index in range(2):
            processes.start(helpers.worker_argv("coffea-wq", port, tmp_path / f"honest{index}"),
                            env=helpers.worker_environment())
        deadline = time.monotonic() + 60
        with contextlib.suppress(EOFError):  # until the manager drops us (it may send a task first)
            while time.monotonic() < deadline:
                rogue._fill(deadline)
        received = rogue.buffer
        assert b"\nrelease\n" in b"\n" + received, "the manager did not release the rogue worker"
        rogue.close()
    except BaseException as exc:  # reported by the test, not lost in the thread
        errors.append(exc)


def test_a_rogue_workers_pickle_is_refused_and_the_run_completes(fileset, reference, processes, tmp_path):
    marker = tmp_path / "pwned"
    errors: list = []
    threads: list[threading.Thread] = []

    def start_rogue(queue):
        thread = threading.Thread(target=_rogue, args=(queue.port, marker, processes, tmp_path, errors), daemon=True)
        thread.start()
        threads.append(thread)

    executor = coffea_wq.WorkQueueExecutor(port=0, manager_host=support.LOOPBACK, local_workers=0, status=False,
                                           filepath=str(tmp_path), custom_init=start_rogue)
    out = _run(executor, fileset)
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert not marker.exists(), "the rogue worker's pickle ran code in the user's process"
    report = last_report("Processing")
    assert len(report.refused) == 1 and report.refused[0].startswith("posix.system from rogue (127.0.0.1:")
    nano.assert_same_histograms(reference, out)
    assert report.failed == [] and report.duplicates_ignored == 0
    assert sorted(report.accumulated, key=repr) == sorted(helpers.all_chunks(fileset), key=repr)


def _listening_addresses(port: int) -> set[str]:
    return {c.laddr.ip for c in psutil.Process().net_connections(kind="inet")
            if c.status == psutil.CONN_LISTEN and c.laddr.port == port}


def test_local_workers_only_listen_on_loopback_with_a_run_password(fileset, reference, tmp_path):
    seen: dict = {}

    def inspect(queue):
        seen["listening"] = _listening_addresses(queue.port)
        with socket.create_connection((support.LOOPBACK, queue.port), timeout=10) as sock:
            seen["opening"] = sock.recv(100)
        workers = [p for p in psutil.Process().children(recursive=True) if "worker" in p.cmdline()]
        seen["argv"] = [p.cmdline() for p in workers]

    # started fresh, so that their command lines show how the password reaches them (forked workers,
    # the default, get their options through a pipe: test_forked_workers.py)
    executor = coffea_wq.WorkQueueExecutor(local_workers=2, status=False, filepath=str(tmp_path), custom_init=inspect,
                                           fork_local_workers=False)
    out = _run(executor, fileset)
    nano.assert_same_histograms(reference, out)
    assert seen["listening"] == {"127.0.0.1"}
    assert seen["opening"].startswith(b"auth password sha1\n"), "the manager accepted a worker without a password"
    assert len(seen["argv"]) == 2
    for argv in seen["argv"]:
        password_file = Path(argv[argv.index("--password") + 1])
        assert password_file.name == "run.password" and password_file.parent.parent == tmp_path
    assert list(tmp_path.iterdir()) == []  # the password went with the staging directory


def test_the_run_password_file_is_private(tmp_path):
    from coffea_wq.executor.workers.run_secrets import write_run_password

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_run_password(tmp_path / "a")
    second = write_run_password(tmp_path / "b")
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert first.read_bytes() != second.read_bytes() and len(first.read_bytes().strip()) >= 32


def test_workers_with_another_password_fail_the_run_within_60_s(fileset, processes, tmp_path):
    ours, theirs = tmp_path / "ours.pw", tmp_path / "theirs.pw"
    ours.write_bytes(b"ours\n")
    theirs.write_bytes(b"theirs\n")

    def start_wrong_worker(queue):
        argv = helpers.worker_argv("coffea-wq", queue.port, tmp_path / "w")
        processes.start([*argv[:-2], "--password", str(theirs), *argv[-2:]], env=helpers.worker_environment())

    executor = coffea_wq.WorkQueueExecutor(port=0, manager_host=support.LOOPBACK, local_workers=0, status=False,
                                           password_file=str(ours), filepath=str(tmp_path),
                                           custom_init=start_wrong_worker)
    started = time.monotonic()
    with pytest.raises(PeersRefusedError) as failure:
        _run(executor, fileset)
    assert time.monotonic() - started < 60
    text = str(failure.value)
    assert "passwords differ" in text and "127.0.0.1:" in text and "does not match" in text


def test_a_tls_run_gives_the_same_histograms(fileset, reference, tmp_path):
    executor = coffea_wq.WorkQueueExecutor(local_workers=2, ssl=True, status=False, filepath=str(tmp_path))
    out = _run(executor, fileset)
    nano.assert_same_histograms(reference, out)
    report = last_report("Processing")
    assert report.failed == [] and report.refused == []


def test_an_open_port_without_a_password_gets_one_warning(tmp_path):
    from coffea_wq.executor.session import open_port_warning

    assert open_port_warning("127.0.0.1", None, "127.0.0.1:1") is None
    assert open_port_warning("::1", None, "[::1]:1") is None
    assert open_port_warning("", "pw", "0.0.0.0:1") is None
    text = open_port_warning("", None, "0.0.0.0:9123")
    assert "0.0.0.0:9123 without a password" in text and "password_file=" in text and "-P FILE" in text
    assert open_port_warning("10.1.2.3", None, "10.1.2.3:9123") is not None


def test_a_loopback_run_without_a_password_does_not_warn(tmp_path, recwarn):
    from coffea_wq.executor.session import SessionConfig, acquire_session, close_session

    config = SessionConfig(manager_name=None, port=0, password_file=None, filepath=str(tmp_path), local_workers=0,
                           local_worker_kind="auto", stats_log=None, transactions_log=None, debug_log=None,
                           resource_monitor="off", manager_host="127.0.0.1")
    session = acquire_session(config)
    try:
        assert session.password_file is None and session.listening_address.startswith("127.0.0.1:")
        assert "password" not in " ".join(str(w.message) for w in recwarn)
    finally:
        close_session(config)


def _refused_handshake(port: int) -> None:
    """A worker without a password at a manager with one: it opens with its handshake and is dropped."""
    with socket.create_connection((support.LOOPBACK, port), timeout=10) as sock:
        sock.sendall(b"workqueue 9 nopw Linux x86_64 8.0.0\n")
        with contextlib.suppress(OSError):
            while sock.recv(4096):
                pass


def test_refusals_fail_a_run_only_when_nobody_else_came():
    import coffea_wq.work_queue as wq
    from coffea_wq.executor.workers.refused import password_mismatch_error
    from coffea_wq.protocol.auth import PasswordAuth

    with wq.WorkQueue(port=0, host=support.LOOPBACK) as q:
        q.specify_password(b"right\n")
        assert password_mismatch_error(q, grace_s=0) is None  # no worker yet: keep waiting
        with socket.create_connection((support.LOOPBACK, q.port), timeout=10) as probe:  # a port scan
            probe.sendall(b"GET / HTTP/1.1\r\n\r\n")
            with contextlib.suppress(OSError):
                probe.recv(100)
        _refused_handshake(q.port)
        peers = support.wait_until(q.refused_peers, 10, "the refusal to be recorded")
        assert [p.kind for p in peers] == ["password"], "a port scan counted as a worker with a wrong password"
        assert password_mismatch_error(q, grace_s=60) is None  # not yet: the grace period runs
        error = password_mismatch_error(q, grace_s=0)
        assert error is not None and peers[0].address in str(error) and "passwords differ" in str(error)
        # an honest worker joins: from then on, waiting makes sense again
        sock = socket.create_connection((support.LOOPBACK, q.port), timeout=10)
        try:
            auth = PasswordAuth(b"right\n")
            sock.sendall(auth.start())
            buffer = b""
            while not auth.done:
                buffer += sock.recv(4096)
                while b"\n" in buffer:
                    line, _, buffer = buffer.partition(b"\n")
                    sock.sendall(auth.receive_line(line.decode()))
            sock.sendall(b"workqueue 9 honest Linux x86_64 8.0.0\n")
            support.wait_until(lambda: q.stats.workers_joined == 1, 10, "the honest worker to join")
            assert password_mismatch_error(q, grace_s=0) is None
        finally:
            sock.close()
