"""Every event the worker's connection can hand out has a handler in the manager's loop."""

from __future__ import annotations

from coffea_wq.manager import server
from coffea_wq.protocol import messages


def test_every_manager_event_has_a_handler():
    events = set(messages.ManagerEvent.__args__)
    assert events - set(server._EVENT_HANDLERS) == set()
    assert set(server._EVENT_HANDLERS) - events == set()  # and the table names only such events
