"""Ctrl-C during an executor call: the first stops the run softly, the second aborts it.

``InterruptGuard`` replaces Python's default SIGINT handler for the length of one executor call
(see docs/executor.md, "Soft termination"):

* the first SIGINT only sets ``requested``: the task loop stops submitting, cancels the tasks in
  flight and the call returns the partial output with a ``RunInterrupted``;
* the second raises ``KeyboardInterrupt`` where the program is, unless cleanup has begun
  (``defer()``): then it is remembered and ``raise_if_aborted()`` raises it once the workers are
  stopped and the staging folder removed. Later SIGINTs are remembered, never raised, so that
  cleanup cannot be cut short.

Signal handlers can only be installed from the main thread, and a handler the user installed is
theirs: in both cases the guard does nothing and Ctrl-C behaves as Python's default.
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger(__name__)


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

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is not threading.main_thread():
            log.debug("executor called outside the main thread: Ctrl-C keeps Python's default behaviour")
            return self
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            log.debug("a SIGINT handler is installed already: the executor leaves it in place")
            return self
        self._previous = signal.signal(signal.SIGINT, self._handle)
        self.installed = True
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.installed:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]
            self.installed = False

    @property
    def requested(self) -> bool:
        """Whether a SIGINT asked the run to stop."""
        return self.signals > 0

    def defer(self) -> None:
        """From now on a SIGINT is remembered, not raised (cleanup is running)."""
        self._deferring = True

    def raise_if_aborted(self) -> None:
        """Raise the ``KeyboardInterrupt`` a second SIGINT asked for and cleanup deferred."""
        if self.signals >= 2 and not self._raised:
            self._raised = True
            raise KeyboardInterrupt

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
