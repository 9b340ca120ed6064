"""Local workers forked from the user's process, as FuturesExecutor's pool is, instead of started fresh.

Why (docs/executor.md section 6, "Where the time goes"): a fresh ``python -m coffea_wq worker``
spends ~0.3 s importing itself, and its zygote ~1 s of CPU importing coffea, awkward and numba
before the first chunk runs: at 100k-event chunks that start-up was the gap to the 2-core limit.
This process has all of that imported already, so a fork of it is a worker whose first zygote
(a fork of the worker, ``coffea_wq/worker/forked_zygote.py``) is ready at once.

A thread that holds a lock at the fork leaves it held forever in the child, so the executor
forks its local workers *before* it starts the manager (whose thread would be the first of its
own), and each child waits for its command line on a pipe: the manager's port and password file
are known only later. The child replaces the inherited ``sys.std*`` objects and logging handlers
before it writes anything, and then runs only coffea-wq's worker and the tasks. Threads of other
libraries may exist (uproot's fsspec I/O loop, which resets itself in a forked child; a notebook
kernel's): FuturesExecutor forks beside them too, and ``fork_local_workers=False`` is the way out
where one of them must not be copied. Local workers are forked (``fork_local_workers=True``, the
default) when the executor runs on the main thread and this process holds at most
``FORK_RSS_LIMIT`` (every slot would otherwise look that big to the resource monitor, which
counts shared pages).

Example:
    >>> fork_refusal(False, "coffea-wq")
    'fork_local_workers=False'
"""

from __future__ import annotations

import gc
import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NoReturn

from coffea_wq.worker.forked_zygote import ForkedProcess, default_stop_signals, run_as_child

log = logging.getLogger(__name__)

FORK_RSS_LIMIT = 1 << 30  # bytes
COMMAND_WAIT_S = 600.0  # a forked worker whose command never comes exits after this


def fork_refusal(requested: bool, kind: str) -> str | None:
    """Why local workers are not forked from this process (None: they are)."""
    if not requested:
        return "fork_local_workers=False"
    if kind != "coffea-wq":
        return f"the local workers are {kind}'s"
    if not hasattr(os, "fork"):
        return "this platform has no fork()"
    if threading.current_thread() is not threading.main_thread():
        return "the executor runs outside the main thread"
    rss = _resident_bytes()
    if rss > FORK_RSS_LIMIT:
        return f"this process holds {rss / 2**20:.0f} MiB (more than {FORK_RSS_LIMIT >> 20} MiB)"
    return None


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class ForkedWorker(ForkedProcess):
    """A child of this process that becomes a worker once it gets its command line (``launch``)."""

    def __init__(self, pid: int, control: int):
        super().__init__(pid, "forked worker")
        self.control = control  # write end of the pipe its command line goes through; -1 once used

    def launch(self, argv: list[str], env: dict[str, str], log_path: Path | None,
               zygote_preload: tuple[str, ...] | None) -> None:
        """Start serving as ``coffea-wq worker ARGV``, in ``env``, writing to ``log_path``."""
        message = {"argv": argv, "env": env, "log": None if log_path is None else str(log_path),
                   "preload": None if zygote_preload is None else list(zygote_preload)}
        data = (json.dumps(message) + "\n").encode()
        try:
            while data:
                data = data[os.write(self.control, data):]
        finally:
            self.discard()

    def discard(self) -> None:
        """No command will come: the child sees the end of its pipe and exits."""
        if self.control >= 0:
            os.close(self.control)
            self.control = -1


def discard_forked(workers: list[ForkedWorker], grace: float = 5.0) -> None:
    """Children that will get no command: close their pipes and reap them (SIGKILL after ``grace``)."""
    for worker in workers:
        worker.discard()
    for worker in workers:
        try:
            worker.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _kill(worker.pid)
            worker.wait(timeout=grace)


def _kill(pid: int) -> None:
    """SIGKILL to the child's session, or to the child alone before it made one."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def fork_workers(count: int) -> list[ForkedWorker]:
    """Fork ``count`` children that wait for their command line (``ForkedWorker.launch``)."""
    import coffea_wq.worker.main  # noqa: F401 - imported once here rather than in every child

    workers: list[ForkedWorker] = []
    try:
        for _ in range(count):
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(write_end)
                for sibling in workers:  # the write ends of the workers forked before this one
                    sibling.discard()
                _serve_as_worker(read_end)
            os.close(read_end)
            workers.append(ForkedWorker(pid, write_end))
    except OSError:
        for worker in workers:
            worker.discard()
        raise
    return workers


def _serve_as_worker(control: int) -> NoReturn:
    def serve() -> int:
        # the user's objects (coffea and all) are out of the collector's sight in this child: its
        # collections never walk them, nor write to (and so copy) their pages
        gc.freeze()
        os.setsid()  # its own session, as a started worker: a Ctrl-C in the terminal reaches the executor only
        default_stop_signals()
        message = _read_command(control, os.getppid())
        if message is None:
            return 0
        _point_stdio(message["log"])
        os.environ.clear()
        os.environ.update(message["env"])
        from coffea_wq.worker.main import run_forked

        preload = message["preload"]
        return run_forked(list(message["argv"]), None if preload is None else tuple(preload))

    run_as_child(serve)


def _read_command(control: int, parent: int) -> dict | None:
    """The command line the executor sends; None when the pipe ends first or the executor died."""
    data = b""
    deadline = time.monotonic() + COMMAND_WAIT_S
    while b"\n" not in data:
        if time.monotonic() > deadline or os.getppid() != parent:
            return None
        if not select.select([control], [], [], 1.0)[0]:
            continue
        chunk = os.read(control, 65536)
        if not chunk:
            return None
        data += chunk
    os.close(control)
    return json.loads(data.split(b"\n", 1)[0])


def _point_stdio(log_path: str | None) -> None:
    """fd 0 on /dev/null, 1 and 2 on the worker's log; fresh ``sys.std*`` (the inherited objects may
    hold this process's unwritten output, which must not be written twice)."""
    null = os.open(os.devnull, os.O_RDWR)
    target = null if log_path is None else os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(null, 0)
    os.dup2(target, 1)
    os.dup2(target, 2)
    for fd in {null, target} - {0, 1, 2}:
        os.close(fd)
    _INHERITED_STREAMS.extend([sys.stdin, sys.stdout, sys.stderr])  # kept: never flushed, never closed
    sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own descriptors
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
    logging.root.handlers = []  # the user's handlers write to streams of the user's process


_INHERITED_STREAMS: list[object] = []
