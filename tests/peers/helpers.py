"""Shared pieces of the peer-transfer tests: a run of tasks that read one cached input, and a rogue
source (a scripted worker whose advertised cache server misbehaves on purpose)."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import coffea_wq.work_queue as wq
from coffea_wq.protocol.auth import PasswordAuth
from tests.manager.scripted_worker import ScriptedWorker
from tests.support import LOOPBACK, wait_until

INPUT_NAME = "env.bin"


def digest_task(source: Path, sleep: float = 0.0) -> wq.Task:
    """A task that prints the SHA-256 of the cached input (and holds its core ``sleep`` s)."""
    task = wq.Task(f"sha256sum {INPUT_NAME}" + (f" && sleep {sleep}" if sleep else ""))
    task.specify_input_file(str(source), INPUT_NAME, cache=True)
    task.specify_cores(1)
    task.specify_memory(50)
    task.specify_disk(50)
    return task


def run_tasks(q: wq.WorkQueue, tasks: list[wq.Task], timeout: float = 120) -> list[wq.Task]:
    for task in tasks:
        q.submit(task)
    done = []
    deadline = time.monotonic() + timeout
    while len(done) < len(tasks) and time.monotonic() < deadline:
        task = q.wait(1)
        if task is not None:
            done.append(task)
    assert len(done) == len(tasks), f"{len(done)} of {len(tasks)} tasks came back in {timeout} s"
    return done


def expect_digests(done: list[wq.Task], data: bytes) -> None:
    want = hashlib.sha256(data).hexdigest()
    for task in done:
        assert task.result == wq.WORK_QUEUE_RESULT_SUCCESS and task.return_status == 0, (task.id, task.output)
        assert task.output.split()[0] == want, (task.id, task.output)


def wait_for_workers(q: wq.WorkQueue, count: int, timeout: float = 60) -> None:
    wait_until(lambda: q.stats.workers_connected >= count, timeout, f"{count} workers to connect")


@dataclass
class RogueSource:
    """A cache server that misbehaves: ``corrupt`` (wrong bytes of the right size), ``dies`` (half the
    bytes, then a reset), or ``wrong-password`` (a password exchange with another password)."""

    behaviour: str
    data: bytes
    password: bytes | None = None
    host: str = LOOPBACK
    requests: int = 0
    listener: socket.socket = field(init=False)

    def __post_init__(self) -> None:
        self.listener = socket.create_server((self.host, 0))
        self.listener.settimeout(60)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True, name="rogue-source").start()

    def _serve(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        with sock:
            sock.settimeout(10)
            self.requests += 1
            reader = sock.makefile("rb")
            try:
                if self.password is not None:
                    secret = b"not the run's password\n" if self.behaviour == "wrong-password" else self.password
                    auth = PasswordAuth(secret)
                    sock.sendall(auth.start())
                    while not auth.done:
                        sock.sendall(auth.receive_line(reader.readline().decode().strip()))
                    if self.behaviour == "wrong-password":
                        return
                name = reader.readline().decode().split()[1]
                sock.sendall(f"file {name} {len(self.data)}\n".encode())
                if self.behaviour == "corrupt":
                    sock.sendall(bytes(b ^ 0xFF for b in self.data[:64]) + self.data[64:])
                elif self.behaviour == "dies":
                    sock.sendall(self.data[: len(self.data) // 2])
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            except (OSError, IndexError):
                return

    def close(self) -> None:
        self.listener.close()


def scripted_holder(port: int, password: bytes | None, peer_port: int, manager_host: str = LOOPBACK) -> ScriptedWorker:
    """A scripted worker (1 core) that advertises ``peer_port`` as its cache server."""
    worker = ScriptedWorker(port, cores=1, handshake=False, host=manager_host)
    if password is not None:
        auth = PasswordAuth(password)
        worker.send(auth.start())
        while not auth.done:
            worker.send(auth.receive_line(worker.read_line()))
    worker.send("workqueue 9 rogue Linux x86_64 8.0.0\ninfo worker-id worker-rogue\nalive\n"
                "resource workers 1 1 1\nresource disk 2000 2000 2000\nresource memory 1000 1000 1000\n"
                "resource gpus 0 0 0\nresource cores 1 1 1\nresource tag 0\ninfo end_of_resource_update 0\n"
                f"info tasks_running 0\ninfo worker-end-time 0\ninfo coffea-wq-peer-port {peer_port}\n")
    return worker


def take_first_copy(worker: ScriptedWorker) -> int:
    """Read the put of the input, confirm it (``cache-update``) when asked, return the id of the task that follows."""
    sizes: dict[str, int] = {}
    while True:
        line = worker.read_line(30)
        if line.startswith("put "):
            _, name, size, _mode = line.split()
            worker.read_exact(int(size), 30)
            sizes[name] = int(size)
        elif line.startswith("cache-report "):
            name = line.split()[1]
            worker.send(f"cache-update {name} {sizes[name]}\n")
        elif line.startswith("task "):
            while worker.read_line(30) != "end":
                pass
            return int(line.split()[1])
