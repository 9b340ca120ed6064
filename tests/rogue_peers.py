"""Rogue peers for the security tests: raw sockets that speak just enough of protocol 9 to attack.

Each one runs in a thread, is bounded in time, and records what it did, so a test can check that
the attack really happened (bytes sent, names tried) before it checks that nothing came of it.
"""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass, field

from tests.manager.scripted_worker import ScriptedWorker
from tests.support import LOOPBACK

CHUNK = b"\xa5" * (1 << 20)


def connect_when_listening(port: int, deadline: float) -> socket.socket:
    """A connection to the manager on ``port``, retried until it listens (or ``deadline`` passes)."""
    while True:
        try:
            return socket.create_connection((LOOPBACK, port), timeout=10)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@dataclass
class Flooder:
    """Says it is a worker (offering nothing, so it is never given a task), then announces a result of
    ``size`` bytes for ``task_id``, a task it does not hold, and really sends all of them."""

    port: int
    size: int = 1 << 30
    task_id: int = 1
    timeout: float = 300.0
    sent: int = 0
    error: str = ""
    done: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Flooder:
        threading.Thread(target=self._run, daemon=True, name="rogue-flooder").start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            with connect_when_listening(self.port, deadline) as sock:
                sock.sendall(b"workqueue 9 flooder Linux x86_64 8.0.0\ninfo worker-id flooder\n"
                             + f"result 0 0 {self.size} 1000 {self.task_id}\n".encode())
                sock.settimeout(max(1.0, deadline - time.monotonic()))
                while self.sent < self.size:
                    piece = CHUNK[: self.size - self.sent]
                    sock.sendall(piece)
                    self.sent += len(piece)
                sock.sendall(b"alive\n")
        except OSError as error:
            self.error = str(error)
        finally:
            self.done.set()


@dataclass
class HostileNamer:
    """Offers a core, takes one task, reports success, and answers the ``get`` of its output with
    ``reply`` (``{cached}`` is replaced by the cached name the manager asked for)."""

    port: int
    reply: str
    timeout: float = 120.0
    asked_for: str = ""
    dropped: bool = False
    error: str = ""
    done: threading.Event = field(default_factory=threading.Event)

    def start(self) -> HostileNamer:
        threading.Thread(target=self._run, daemon=True, name="rogue-namer").start()
        return self

    def _run(self) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            connect_when_listening(self.port, deadline).close()  # wait for the manager
            rogue = ScriptedWorker(self.port, cores=1, memory=16000, disk=16000, hostname="namer")
            try:
                task = rogue.next_task(timeout=self.timeout)
                rogue.finish(task.task_id)
                while not (line := rogue.read_line()).startswith("get "):
                    pass
                self.asked_for = line.split()[1]
                rogue.send(self.reply.format(cached=self.asked_for).encode())
                self.dropped = _closed_by_peer(rogue.sock, deadline)
            except (EOFError, ConnectionError):
                self.dropped = True
            finally:
                rogue.close()
        except (OSError, AssertionError) as error:
            self.error = repr(error)
        finally:
            self.done.set()


def _closed_by_peer(sock: socket.socket, deadline: float) -> bool:
    """Read and ignore whatever comes until the manager hangs up (True) or ``deadline`` passes."""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        try:
            if not sock.recv(1 << 16):
                return True
        except TimeoutError:
            return False
        except ConnectionError:
            return True
    return False


@dataclass
class ResultForger:
    """Offers a core, takes one task, reports success, and answers the ``get`` of its output with
    ``payload``: the bytes of a result file of its own making (a hostile pickle, or a forged record)."""

    port: int
    payload: bytes
    hostname: str = "rogue"
    timeout: float = 60.0
    answered: bool = False
    error: str = ""
    done: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)  # set by the test: hang up

    def start(self) -> ResultForger:
        threading.Thread(target=self._run, daemon=True, name="rogue-forger").start()
        return self

    def _run(self) -> None:
        try:
            rogue = ScriptedWorker(self.port, cores=1, memory=1000, disk=1000, hostname=self.hostname)
            try:
                task = rogue.next_task(timeout=self.timeout)
                rogue.finish(task.task_id)
                while not (line := rogue.read_line(timeout=self.timeout)).startswith("get "):
                    pass
                name = line.split()[1]
                self.answered = True  # before the bytes go: the test may have the task back before send returns
                rogue.send(f"file {name} {len(self.payload)}\n".encode() + self.payload + b"end\n")
                self.release.wait(self.timeout)  # connected until the test has read the task back
            finally:
                rogue.close()
        except (OSError, EOFError, AssertionError) as error:
            self.error = repr(error)
        finally:
            self.done.set()
