"""A worker driven line by line by a test, over a real TCP socket: to see every byte the manager sends.

It speaks the worker side of protocol 9 just enough: the handshake, reading ``put``/``dir``/``task``
blocks, and sending the replies the test asks for.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

from tests.support import LOOPBACK


@dataclass
class ReceivedTask:
    task_id: int
    command: str
    fields: dict[str, str] = field(default_factory=dict)
    env: list[str] = field(default_factory=list)
    infiles: list[tuple[str, str, int]] = field(default_factory=list)
    outfiles: list[tuple[str, str, int]] = field(default_factory=list)


class ScriptedWorker:
    def __init__(self, port: int, cores: int = 2, memory: int = 1000, disk: int = 2000, hostname: str = "scripted",
                 handshake: bool = True, host: str = LOOPBACK) -> None:
        self.sock = socket.create_connection((host, port), timeout=10)
        self.buffer = b""
        self.puts: list[tuple[str, bytes]] = []
        self.lines: list[str] = []  # every control line received, in order
        if handshake:
            self.send(
                f"workqueue 9 {hostname} Linux x86_64 8.0.0\ninfo worker-id worker-{hostname}\nalive\n"
                f"resource workers 1 1 1\nresource disk {disk} {disk} {disk}\n"
                f"resource memory {memory} {memory} {memory}\nresource gpus 0 0 0\n"
                f"resource cores {cores} {cores} {cores}\nresource tag 0\n"
                "info end_of_resource_update 0\ninfo tasks_running 0\ninfo worker-end-time 0\n"
            )

    def send(self, data: str | bytes) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def _fill(self, deadline: float) -> None:
        self.sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("manager closed the connection")
        self.buffer += data

    def read_line(self, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            self._fill(deadline)
        line, _, self.buffer = self.buffer.partition(b"\n")
        text = line.decode()
        self.lines.append(text)
        return text

    def read_exact(self, size: int, timeout: float = 10) -> bytes:
        deadline = time.monotonic() + timeout
        while len(self.buffer) < size:
            self._fill(deadline)
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def next_task(self, timeout: float = 10) -> ReceivedTask:
        """Read messages (recording puts) until a whole task block has arrived."""
        while True:
            line = self.read_line(timeout)
            if line.startswith("put "):
                _, name, size, _mode = line.split()
                self.puts.append((name, self.read_exact(int(size))))
            elif line.startswith("task "):
                return self._read_task_body(int(line.split()[1]))

    def _read_task_body(self, task_id: int) -> ReceivedTask:
        task = ReceivedTask(task_id, "")
        while True:
            line = self.read_line()
            keyword, _, rest = line.partition(" ")
            if line == "end":
                return task
            if keyword == "cmd":
                task.command = self.read_exact(int(rest)).decode()
            elif keyword == "env":
                task.env.append(self.read_exact(int(rest)).decode())
                assert self.read_exact(1) == b"\n", "env payload must be followed by a newline"
            elif keyword in ("infile", "outfile"):
                cached, remote, flags = rest.split()
                getattr(task, f"{keyword}s").append((cached, remote, int(flags)))
            else:
                task.fields[keyword] = rest

    def finish(self, task_id: int, output: bytes = b"", status: int = 0, exit_code: int = 0) -> None:
        """Report one finished task the way the C worker does."""
        self.send("info tasks_running 0\navailable_results\n")
        assert self.read_line() == "send_results -1"
        self.send(f"result {status} {exit_code} {len(output)} 1000 {task_id}\n".encode() + output + b"end\n")

    def close(self) -> None:
        self.sock.close()
