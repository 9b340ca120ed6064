"""Every event the worker's connection can hand out has a handler in the manager's event table."""

from __future__ import annotations

from coffea_wq.manager import handlers
from coffea_wq.protocol import messages


def test_every_manager_event_has_a_handler():
    events = set(messages.ManagerEvent.__args__)
    assert events - set(handlers.EVENT_HANDLERS) == set()
    assert set(handlers.EVENT_HANDLERS) - events == set()  # and the table names only such events
