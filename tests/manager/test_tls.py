"""TLS between the manager and coffea-wq workers: a task runs over it, and a peer speaking the other
way (plaintext to a TLS manager, TLS to a plaintext one) is refused with a line that says why.

Debian's work_queue_worker (CCTools 8.0 DEVELOPMENT, 2018 build) has no --ssl option, so TLS
interoperability with CCTools' own binaries is not tested here (docs/manager.md says so).
"""

from __future__ import annotations

import logging
import socket
import ssl
import subprocess

import pytest

import coffea_wq.work_queue as wq
from tests.support import LOOPBACK, wait_until, worker_argv


def start_worker(processes, port, workdir, *extra, stderr=subprocess.DEVNULL):
    argv = worker_argv("coffea-wq", port, workdir, *extra, cores=1, memory=500, disk=500, idle_timeout=20)
    return processes.start(argv, stdout=subprocess.DEVNULL, stderr=stderr)


def test_a_task_runs_over_tls_with_a_password(processes, tmp_path):
    password = tmp_path / "pw"
    password.write_bytes(b"tls-and-password\n")
    with wq.WorkQueue(port=0, host=LOOPBACK, ssl=True) as q:
        q.specify_password_file(str(password))
        start_worker(processes, q.port, tmp_path / "w", "--ssl", "-P", str(password))
        (tmp_path / "in.txt").write_text("hello over tls\n")
        t = wq.Task("tr a-z A-Z < in.txt > out.txt")
        t.specify_input_file(str(tmp_path / "in.txt"), "in.txt")
        t.specify_output_file(str(tmp_path / "out.txt"), "out.txt")
        q.submit(t)
        done = q.wait(30)
        assert done is not None and done.result == wq.WORK_QUEUE_RESULT_SUCCESS, done and done.result_str
        assert (tmp_path / "out.txt").read_text() == "HELLO OVER TLS\n"
        assert q.refused_peers() == []


def test_a_tls_manager_refuses_a_plaintext_worker_and_says_why(processes, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="coffea_wq.manager")
    with wq.WorkQueue(port=0, host=LOOPBACK, ssl=True) as q:
        start_worker(processes, q.port, tmp_path / "plain")
        refused = wait_until(q.refused_peers, 20, "the plaintext worker to be refused")
        assert refused[0].kind == "tls" and "without --ssl" in refused[0].reason
        assert q.stats.workers_joined == 0
    assert any("refused connection" in r.message and "requires TLS" in r.message for r in caplog.records)


def test_a_silent_peer_does_not_stall_a_tls_handshake(processes, tmp_path):
    """A peer that connects and says nothing must not keep an honest worker from its handshake."""
    with wq.WorkQueue(port=0, host=LOOPBACK, ssl=True) as q:
        silent = socket.create_connection((LOOPBACK, q.port), timeout=5)
        try:
            start_worker(processes, q.port, tmp_path / "w", "--ssl")
            assert q.wait_for_workers(1, 20), "the TLS worker never joined while a silent peer was connected"
        finally:
            silent.close()


def test_a_tls_worker_fails_clearly_against_a_plaintext_manager(processes, tmp_path):
    with wq.WorkQueue(port=0, host=LOOPBACK) as q:
        worker = start_worker(processes, q.port, tmp_path / "w", "--ssl", "--connect-timeout", "3",
                              stderr=subprocess.PIPE)
        _, err = worker.communicate(timeout=60)
        text = err.decode()
        assert "refused the TLS handshake" in text and "without --ssl" in text, text
        refused = q.refused_peers()
        assert refused and refused[0].kind == "tls" and "speaks TLS" in refused[0].reason
        assert q.stats.workers_joined == 0


def test_ssl_option_checks_its_files(tmp_path):
    with pytest.raises(ValueError, match="missing.key"):
        wq.WorkQueue(port=0, host=LOOPBACK, ssl=(str(tmp_path / "missing.key"), str(tmp_path / "missing.crt")))
    with pytest.raises(ValueError, match="expected True"):
        wq.WorkQueue(port=0, host=LOOPBACK, ssl="yes")


def test_a_raw_tls_client_gets_the_password_challenge(tmp_path):
    """The password exchange starts only after the handshake, inside TLS (what CCTools' --ssl does)."""
    with wq.WorkQueue(port=0, host=LOOPBACK, ssl=True) as q:
        q.specify_password(b"x\n")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with context.wrap_socket(socket.create_connection((LOOPBACK, q.port), timeout=10)) as sock:
            assert sock.recv(100).startswith(b"auth password sha1\n")


def test_a_plaintext_status_query_is_closed_but_not_counted_as_a_refused_worker(caplog):
    caplog.set_level(logging.INFO, logger="coffea_wq.manager")
    with wq.WorkQueue(port=0, host=LOOPBACK, ssl=True) as q:
        with socket.create_connection((LOOPBACK, q.port), timeout=10) as sock:
            sock.sendall(b"queue_status\n")
            try:
                answer = sock.recv(100)
            except ConnectionResetError:  # closed with our query unread
                answer = b""
            assert answer == b""  # nothing answered in plaintext
        wait_until(lambda: any("is not TLS" in r.message for r in caplog.records), 10, "the close to be logged")
        assert q.refused_peers() == []
