"""Where the phases of each returned task go besides the call's report: the transactions log and the dashboard.

The breakdown (``breakdown.py``) calls the listener made here for every task it adds; the manager's
queue writes a ``PHASES`` line (coffea-wq's own queue only: CCTools' has no such method), and the
run's tracker (``coffea_wq/dashboard/tracker.py``) sums them for the page and ``/metrics``.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from coffea_wq.executor.results.breakdown import Breakdown, Listener

log = logging.getLogger(__name__)


def phase_listener(queue: Any, tracker: Any = None) -> Listener | None:
    """A listener writing each task's phases to ``queue``'s transactions log and to ``tracker``; None
    when neither can take them.

    Example:
        >>> phase_listener(object()) is None
        True
    """
    method = getattr(queue, "log_task_phases", None)
    if not callable(method) and tracker is None:
        return None
    # weakly: the call's report (and this listener with it) outlives the run's queue and its tasks
    write = weakref.WeakMethod(method) if callable(method) else lambda: None
    if tracker is not None:
        tracker.keep_breakdown(Breakdown())  # the run's, over every call

    def heard(task_id: int | None, phases: dict[str, float], dataset: str | None, worker: str | None) -> None:
        log_phases = write()
        if task_id is not None and log_phases is not None:
            try:
                log_phases(task_id, phases)
            except Exception:  # a log must never stop the run
                log.exception("transactions log: phases of task %s not written", task_id)
        if tracker is not None:
            tracker.phases_reported(phases, dataset, worker, task=task_id is not None)

    return heard
