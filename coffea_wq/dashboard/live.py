"""The executor's dashboard: one server per bind address, one tracker per run.

``WorkQueueExecutor(dashboard=True)`` (or a port) calls ``tracker_for_session`` at each call: the
first call of a run (its preprocessing) starts or reuses the server for ``(host, port)``, attaches
the run's manager and a fresh ``RunTracker``, and prints the address. When the run's manager
closes, ``finish_session`` freezes the page on the run's final state. Like Dask's dashboard,
the server then stays up for the next run in this process until ``coffea_wq.executor.shutdown()``
or the interpreter exits, so a notebook user can still look at a run that just ended.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coffea_wq.dashboard.auth import DashboardAuth
from coffea_wq.dashboard.build import RunView
from coffea_wq.dashboard.server import DashboardServer
from coffea_wq.dashboard.sources import source_for_queue
from coffea_wq.dashboard.tracker import RunTracker
from coffea_wq.executor.errors import ExecutorConfigError

DEFAULT_HOST = "127.0.0.1"


@dataclass
class LiveDashboard:
    server: DashboardServer
    view: RunView
    password: bytes | None

    @property
    def url(self) -> str:
        return self.server.url


_SERVERS: dict[tuple[str, int], LiveDashboard] = {}
_RUNS: weakref.WeakKeyDictionary[Any, tuple[LiveDashboard, RunTracker]] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


def dashboard_port(option: bool | int) -> int:
    """``True`` -> 0 (any free port), a port number -> itself.

    Example:
        >>> dashboard_port(True), dashboard_port(8787)
        (0, 8787)
    """
    return 0 if option is True else int(option)


def open_dashboard(host: str, port: int, password_file: str | None) -> LiveDashboard:
    """The dashboard serving ``host:port`` in this process, started if needed."""
    password = Path(password_file).read_bytes() if password_file else None
    with _LOCK:
        live = _SERVERS.get((host, port))
        if live is None:
            view = RunView(password=password is not None)
            try:
                server = DashboardServer(view, DashboardAuth(password), host, port)
            except OSError as exc:
                raise ExecutorConfigError(f"dashboard={port or True!r}: cannot serve the dashboard on {host}:{port}: "
                                          f"{exc.strerror or exc}; choose another port (dashboard=True: any free "
                                          "port) or dashboard_host") from exc
            live = LiveDashboard(server, view, password)
            _SERVERS[(host, port)] = live
        elif live.password != password:  # a run with another password: only it opens the page now
            live.server.auth = DashboardAuth(password)
            live.view.password = password is not None
            live.password = password
        return live


def tracker_for_session(session: Any, option: bool | int, host: str, password_file: str | None) -> RunTracker:
    """The run's tracker; the first call of a session attaches its manager and prints the address."""
    run = _RUNS.get(session)
    if run is None:
        live = open_dashboard(host, dashboard_port(option), password_file)
        tracker = RunTracker()
        live.view.attach(source_for_queue(session.queue), tracker)
        _RUNS[session] = run = (live, tracker)
        print(f"Dashboard: {live.url}", flush=True)
    return run[1]


def finish_session(session: Any) -> None:
    """The run's manager is closing: keep its final state on the page."""
    run = _RUNS.pop(session, None)
    if run is not None:
        run[0].view.finish()


def running_dashboards() -> list[LiveDashboard]:
    with _LOCK:
        return list(_SERVERS.values())


def stop_dashboards() -> None:
    """Stop every dashboard server of this process."""
    with _LOCK:
        servers = list(_SERVERS.values())
        _SERVERS.clear()
    for live in servers:
        live.server.stop()


atexit.register(stop_dashboards)
