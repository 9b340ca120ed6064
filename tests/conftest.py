from __future__ import annotations

import pytest

from tests.support import Processes


@pytest.fixture
def processes():
    """Start processes with ``processes.start(argv)``; all are stopped when the test ends."""
    procs = Processes()
    yield procs
    procs.stop_all()
