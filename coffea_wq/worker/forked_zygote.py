"""A zygote forked from the worker's own process instead of started as a fresh ``python3 zygote.py``.

Only a worker that was itself forked from the user's process does this (local workers,
docs/executor.md section 6): it already holds coffea, awkward and numba, so its fork is a zygote
whose imports are done, and the first chunk does not wait ~1 s of CPU for them. The worker forks
it before it starts any thread or connects anywhere, so the zygote inherits neither. It speaks the
same protocol over two pipes (``zygote.py``'s module doc) and ``_Zygote`` in ``warm.py`` drives it
through ``ForkedChild``, the part of ``subprocess.Popen`` it uses.

Example::

    child = fork_zygote(("coffea.processor",))   # in a worker with no thread but the main one
    zygote = _Zygote(sys.executable, child)
"""

from __future__ import annotations

import gc
import os
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from typing import IO, NoReturn


class ForkedProcess:
    """A child made with ``os.fork``: ``pid``, ``poll`` and ``wait`` as ``subprocess.Popen`` has them."""

    def __init__(self, pid: int, what: str = "forked process"):
        self.pid = pid
        self.returncode: int | None = None
        self.args = [f"{what} {pid}"]

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: gone all the same
                self.returncode = -int(signal.SIGKILL)
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode


class ForkedChild(ForkedProcess):
    """A forked zygote, with the pipes ``_Zygote`` talks to it through (as a Popen's stdin and stdout)."""

    def __init__(self, pid: int, stdin: IO[bytes], stdout: IO[bytes]):
        super().__init__(pid, "forked zygote")
        self.stdin: IO[bytes] | None = stdin
        self.stdout = stdout


def fork_zygote(preload: tuple[str, ...]) -> ForkedChild:
    """Fork this process into a zygote that imports ``preload`` (what is not imported yet) and serves."""
    requests_r, requests_w = os.pipe()
    answers_r, answers_w = os.pipe()
    gc.freeze()  # as zygote.py does before it forks a slot: collections in the child skip what it inherits
    pid = os.fork()
    if pid == 0:
        _become_zygote(requests_r, answers_w, (requests_w, answers_r), preload)
    os.close(requests_r)
    os.close(answers_w)
    return ForkedChild(pid, os.fdopen(requests_w, "wb"), os.fdopen(answers_r, "rb"))


def _become_zygote(requests_fd: int, answers_fd: int, parent_ends: tuple[int, int],
                   preload: tuple[str, ...]) -> NoReturn:
    def serve() -> int:
        for fd in parent_ends:
            os.close(fd)
        os.setsid()  # as a started zygote: its own session, out of the worker's process group
        default_stop_signals()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.dup2(2, 1)  # stray prints go to the worker's log, never into the channel
        sys.stdout = sys.stderr
        from coffea_wq.worker.zygote import Zygote

        Zygote(requests_fd, answers_fd).serve(list(preload))
        return 0

    run_as_child(serve)


def default_stop_signals() -> None:
    """The default actions for the signals that stop a process, in place of the parent's handlers."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)


def run_as_child(body: Callable[[], int]) -> NoReturn:
    """In a forked child: run ``body`` and exit with its code (1 if it raised, after the traceback),
    without the parent's teardown, atexit handlers or buffered output written a second time."""
    code = 1
    try:
        code = body()
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stderr.flush()
        finally:
            os._exit(code)
