"""A scripted manager for worker tests: a real listening TCP socket that speaks the wire protocol.

It plays the C manager's part line by line, so a test can check exactly what the worker sends.
Every read has a deadline; a test fails (never hangs) when the worker stays silent.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass

from coffea_wq.protocol.auth import PasswordAuth
from coffea_wq.protocol.framing import ByteStream


@dataclass
class Result:
    status: int
    exit_code: int
    output: bytes
    time_us: int
    taskid: int


class FakeManager:
    def __init__(self, port: int = 0) -> None:
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]

    def accept(self, timeout: float = 15.0) -> Peer:
        self.listener.settimeout(timeout)
        sock, _ = self.listener.accept()
        return Peer(sock)

    def close(self) -> None:
        self.listener.close()


class Peer:
    """One accepted worker connection."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.stream = ByteStream(max_line=1 << 20)
        self.lines_seen: list[str] = []

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the worker sent nothing in time")
        self.sock.settimeout(remaining)
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the worker closed the connection")
        self.stream.feed(data)

    def read_line(self, timeout: float = 15.0) -> str:
        deadline = time.monotonic() + timeout
        while (line := self.stream.read_line()) is None:
            self._fill(deadline)
        self.lines_seen.append(line)
        return line

    def read_exact(self, size: int, timeout: float = 15.0) -> bytes:
        deadline = time.monotonic() + timeout
        while (data := self.stream.read_exact(size)) is None:
            self._fill(deadline)
        return data

    def read_until(self, predicate, timeout: float = 15.0) -> str:
        """Skip lines until one satisfies ``predicate``; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.read_line(max(0.01, deadline - time.monotonic()))
            if predicate(line):
                return line

    def closed_by_worker(self, timeout: float = 15.0) -> bool:
        """True once the worker closes the connection (anything it sends first is skipped)."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(deadline)
        except EOFError:
            return True
        except (TimeoutError, OSError):
            return False

    def handshake(self, timeout: float = 15.0) -> list[str]:
        lines = [self.read_line(timeout)]
        while not lines[-1].startswith("info worker-end-time"):
            lines.append(self.read_line(timeout))
        return lines

    def authenticate(self, password: bytes) -> bool:
        auth = PasswordAuth(password)
        self.send(auth.start())
        while not auth.done:
            self.send(auth.receive_line(self.read_line()))
        return auth.state.value == "succeeded"

    def put(self, name: str, data: bytes, mode: str = "0644") -> None:
        self.send(f"put {name} {len(data)} {mode}\n".encode() + data)

    def task(self, taskid: int, command: str, *, inputs=(), outputs=(), env=(), resources=None, extra=()) -> None:
        """Send a task block; ``resources`` maps cores/memory/disk/gpus to numbers."""
        cmd = command.encode()
        lines = [f"task {taskid}".encode(), f"cmd {len(cmd)}".encode() + b"\n" + cmd + b"category default"]
        for name, value in (resources or {}).items():
            lines.append(f"{name} {value}".encode())
        lines += [line.encode() for line in extra]
        for item in env:
            lines.append(f"env {len(item.encode())}\n{item}".encode())
        lines += [f"infile {c} {r} {f}".encode() for c, r, f in inputs]
        lines += [f"outfile {c} {r} {f}".encode() for c, r, f in outputs]
        lines.append(b"end")
        self.send(b"\n".join(lines) + b"\n")

    def results(self, count: int = 1, timeout: float = 30.0) -> list[Result]:
        """Wait for ``available_results``, ask for them, and read until ``count`` arrived."""
        found: list[Result] = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            self.read_until(lambda line: line == "available_results", max(0.01, deadline - time.monotonic()))
            self.send(b"send_results -1\n")
            while (line := self.read_line()) != "end":
                if line.startswith("result "):
                    status, code, length, time_us, taskid = (int(x) for x in line.split()[1:])
                    found.append(Result(status, code, self.read_exact(length), time_us, taskid))
        return found

    def get(self, name: str) -> list[tuple[str, bytes | None]]:
        """Send ``get`` and return the reply lines (with file contents) up to ``end``."""
        self.send(f"get {name} 1\n".encode())
        replies = []
        while (line := self.read_line()) != "end":
            if line.startswith("file "):
                replies.append((line, self.read_exact(int(line.rsplit(" ", 1)[1]))))
            elif line.startswith(("dir ", "missing ")):
                replies.append((line, None))
        return replies

    def close(self) -> None:
        self.sock.close()
