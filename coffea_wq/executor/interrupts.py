"""Ctrl-C during an executor call: the first stops the run softly, the second aborts it.

``InterruptGuard`` replaces Python's default SIGINT handler for the length of one executor call
(see docs/executor.md, "Soft termination"):

* the first SIGINT only sets ``requested``: the task loop stops submitting, cancels the tasks in
  flight and the call returns the partial output with a ``RunInterrupted``;
* the second raises ``KeyboardInterrupt`` where the program is, unless cleanup has begun
  (``defer()``): then it is remembered and ``raise_if_aborted()`` raises it once the workers are
  stopped and the staging folder removed. Later SIGINTs are remembered, never raised, so that
  cleanup cannot be cut short.

SIGTERM (``kill``, a batch system's stop), where it would otherwise kill the process outright,
raises ``SystemExit(143)`` the same way (at once, or after cleanup if cleanup has begun), so the
workers are stopped and the staging folder removed before the process exits.

Signal handlers can only be installed from the main thread, and a handler the user installed is
theirs: in both cases the guard leaves that signal alone and it behaves as without coffea-wq.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)

TERMINATED_EXIT = 128 + signal.SIGTERM  # a shell's status for a process ended by SIGTERM


class InterruptGuard:
    """SIGINT handling for one executor call (a context manager).

    Example:
        >>> with InterruptGuard() as guard:
        ...     guard.requested
        False
    """

    def __init__(self) -> None:
        self.signals = 0
        self.installed = False
        self._deferring = False
        self._raised = False
        self._previous: object = None
        self.terminated = False
        self._terminate_installed = False
        self._exited = False

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is not threading.main_thread():
            log.debug("executor called outside the main thread: Ctrl-C keeps Python's default behaviour")
            return self
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self.installed = True
        else:
            log.debug("a SIGINT handler is installed already: the executor leaves it in place")
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, self._terminate)
            self._terminate_installed = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.installed:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]
            self.installed = False
        if self._terminate_installed:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            self._terminate_installed = False

    @property
    def requested(self) -> bool:
        """Whether a SIGINT asked the run to stop."""
        return self.signals > 0

    def defer(self) -> None:
        """From now on a SIGINT is remembered, not raised (cleanup is running)."""
        self._deferring = True

    def raise_if_aborted(self) -> None:
        """Raise what a SIGTERM or a second SIGINT asked for and cleanup deferred."""
        if self.terminated and not self._exited:
            self._exited = True
            raise SystemExit(TERMINATED_EXIT)
        if self.signals >= 2 and not self._raised:
            self._raised = True
            raise KeyboardInterrupt

    def _terminate(self, signum: int, frame: FrameType | None) -> None:
        self.terminated = True
        if not self._deferring and not self._exited:
            self._exited = True
            raise SystemExit(TERMINATED_EXIT)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        if self.signals == 2 and not self._deferring:
            self._raised = True
            raise KeyboardInterrupt


def plain_runner_call(function: Callable) -> bool:
    """Whether ``function`` is the closure of a coffea ``Runner`` without ``use_result_type``.

    Such a Runner raises any exception the executor returns unless ``skipbadfiles`` lists its type,
    so the executor hands it an interrupted run's partial output with exception 0 (the warning and
    ``last_report()`` keep the news); with ``use_result_type`` it returns ``Err(exception,
    value=partial)``.

    Example:
        >>> plain_runner_call(len)
        False
    """
    from coffea.processor.executor import Runner

    if not isinstance(function, functools.partial) or function.func is not Runner.automatic_retries:
        return False
    return not function.keywords.get("use_result_type", False)
