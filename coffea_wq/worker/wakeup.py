"""A pipe that wakes the worker's loop when a warm task's state changes (docs/worker.md).

Why: with a task running, the loop used to wake every 5 ms to poll it: ~180 wake-ups a second
and ~3% of a core per worker doing nothing (measured on a task that sleeps), which on a node with
one worker per core adds up to whole cores. A warm task's news (started, exited) arrives on a
thread that reads its zygote, so that thread writes a byte here and the loop, which waits on this
pipe beside the manager's socket, wakes at once. Cold tasks (``Popen``) have no such thread: the
loop still polls every 5 ms while one runs.

Example:
    >>> wakeup = Wakeup()
    >>> wakeup.notify(); wakeup.drain()
    True
    >>> wakeup.drain()
    False
    >>> wakeup.close()
"""

from __future__ import annotations

import os


class Wakeup:
    """The read end goes into the loop's selector; ``notify`` may be called from any thread."""

    def __init__(self) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)

    def fileno(self) -> int:
        return self.read_fd

    def notify(self) -> None:
        try:
            os.write(self.write_fd, b"\0")
        except (BlockingIOError, OSError):  # full (the loop will wake anyway) or closed (shutting down)
            pass

    def drain(self) -> bool:
        """Empty the pipe; whether anything was in it."""
        seen = False
        while True:
            try:
                data = os.read(self.read_fd, 4096)
            except (BlockingIOError, OSError):
                return seen
            if not data:
                return seen
            seen = True

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
