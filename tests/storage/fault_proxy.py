"""A TCP proxy for tests that breaks some of the connections it carries, the way real storage does.

Each accepted connection gets a fate from ``plan`` (by its number, 0-based; connections past the
plan pass through), with the bytes the server may send first: ``PASS`` forwards both ways;
``RESET`` forwards until the server has sent that many bytes to the client, then closes both sides
with a TCP reset (SO_LINGER 0); ``STALL`` forwards as many, then nothing more (the client's read
times out) until the connection is dropped at ``stop()``. Threads, loopback only; ``stop()`` ends
every thread.
"""

from __future__ import annotations

import enum
import socket
import struct
import threading
from collections.abc import Sequence


class Fate(enum.Enum):
    PASS = "pass"
    RESET = "reset"
    STALL = "stall"


class FaultProxy:
    """Listen on 127.0.0.1:``port`` (0: a free one) and forward to ``target``.

    Example:
        >>> proxy = FaultProxy(("127.0.0.1", 1094), [(Fate.RESET, 0), (Fate.STALL, 100)])   # doctest: +SKIP
        >>> proxy.start(); ...; proxy.stop()                                     # doctest: +SKIP
    """

    def __init__(self, target: tuple[str, int], plan: Sequence[tuple[Fate, int]] = ()) -> None:
        self.target = target
        self.plan = list(plan)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = 0
        self.fates: list[Fate] = []  # what happened to each connection, in order
        self.broken = 0  # connections reset or stalled
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> FaultProxy:
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _close(sock)
        for thread in list(self._threads):
            thread.join(timeout=5)

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _accept_loop(self) -> None:
        self.listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            fate, after = self.plan[self.accepted] if self.accepted < len(self.plan) else (Fate.PASS, 0)
            self.accepted += 1
            self.fates.append(fate)
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            with self._lock:
                self._sockets += [client, server]
            sent = [0]
            self._spawn(self._pump, client, server, None, sent)
            self._spawn(self._pump, server, client, fate, sent, after)

    def _pump(self, source: socket.socket, sink: socket.socket, fate: Fate | None, sent: list[int],
              after: int = 0) -> None:
        """Copy ``source`` to ``sink``; the server-to-client direction (``fate`` set) may break."""
        source.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            if fate in (Fate.RESET, Fate.STALL) and sent[0] + len(data) > after:
                room = max(0, after - sent[0])
                try:
                    sink.sendall(data[:room])
                except OSError:
                    pass
                self.broken += 1
                if fate is Fate.RESET:
                    _reset(sink)
                    _reset(source)
                    return
                self._stop.wait()  # stalled: nothing more until stop()
                return
            try:
                sink.sendall(data)
            except OSError:
                break
            if fate is not None:
                sent[0] += len(data)
        _close(sink)
        _close(source)


def _reset(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.close()
    except OSError:
        pass
