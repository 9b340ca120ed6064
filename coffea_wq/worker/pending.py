"""A task whose start is under way in a thread, with the part of ``subprocess.Popen`` the worker uses.

Starting a warm task can take long: the first task of an environment unpacks its tarball
(hundreds of MB) and starts a zygote that imports coffea. Done in the worker's loop, that froze
the worker, which then answered neither the manager nor its other running tasks. The pool
starts warm tasks in a thread instead and hands the loop a ``PendingStart`` at once: it polls as
running until the start is done, then as the started process. A kill that comes before that is
delivered as soon as the process exists, so a cancelled task never runs on unattended.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coffea_wq.worker.execution import signal_process

log = logging.getLogger(__name__)


class PendingStart:
    """``start()`` run in a thread; behaves as the process it returns (Popen-like) from the start."""

    def __init__(self, start: Callable[[], Any], command: str, output_path: Path,
                 on_done: Callable[[], None] | None = None):
        self.args = command
        self.on_done = on_done  # told when the start is over (wakeup.py)
        self.output_path = output_path
        self.process: Any = None
        self.failed = False
        self.pending_signal: int | None = None
        self.lock = threading.Lock()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._start, args=(start,), daemon=True, name="warm-start")
        self.thread.start()

    @property
    def pid(self) -> int:
        """The started process's pid; 0 while the start is under way."""
        process = self.process
        return 0 if process is None else process.pid

    def _start(self, start: Callable[[], Any]) -> None:
        try:
            process = start()
        except Exception as exc:  # e.g. no fork possible: the task fails with the reason in its output
            log.error("could not start task %r: %s", self.args, exc)
            try:
                self.output_path.write_text(f"coffea-wq worker: could not start the task: {exc}\n")
            except OSError:
                pass
            process = None
        with self.lock:
            self.process, self.failed = process, process is None
            pending = self.pending_signal
        self.done.set()
        if process is not None and pending is not None:
            signal_process(process, pending)
        if self.on_done is not None:
            self.on_done()

    @property
    def event_driven(self) -> bool:
        """Whether its end will wake the worker's loop (a warm process), so that the loop need not poll
        it; a start under way wakes it when it is over."""
        if not self.done.is_set():
            return self.on_done is not None
        return bool(getattr(self.process, "event_driven", False))

    def poll(self) -> int | None:
        if not self.done.is_set():
            return None
        if self.failed:
            return 1
        return self.process.poll()

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.done.wait(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout)
        if self.failed:
            return 1
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self.process.wait(remaining)

    def send_signal(self, sig: int) -> None:
        with self.lock:
            if self.process is None:
                if not self.failed:
                    self.pending_signal = sig  # delivered by the starting thread once it has a process
                return
            process = self.process
        signal_process(process, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)
