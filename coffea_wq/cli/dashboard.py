"""`coffea-wq dashboard HOST PORT`: the run's dashboard for any running manager, ours or CCTools'.

The page is the executor's (``coffea_wq.dashboard``), filled from the manager's answers to the
status queries ``work_queue_status HOST PORT`` uses (queue, workers, tasks, categories), polled
while the page is open. A manager with a password cannot be asked (the status protocol has no
authentication); ``--password-file`` protects the page itself.
"""

from __future__ import annotations

import argparse
import sys
import threading

from coffea_wq.catalog.query import StatusQueryError, query_manager
from coffea_wq.dashboard.auth import DashboardAuth
from coffea_wq.dashboard.build import RunView
from coffea_wq.dashboard.server import DashboardServer
from coffea_wq.dashboard.sources import StatusQuerySource

DEFAULT_MANAGER_PORT = 9123


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manager", help="the manager's host name or address")
    parser.add_argument("port", nargs="?", type=int, default=DEFAULT_MANAGER_PORT,
                        help=f"the manager's port (default {DEFAULT_MANAGER_PORT})")
    parser.add_argument("--bind", default="127.0.0.1",
                        help="address the page is served on (default 127.0.0.1; 0.0.0.0 for every interface)")
    parser.add_argument("--http-port", type=int, default=0, help="port the page is served on (default: any free port)")
    parser.add_argument("--password-file", default=None, help="ask for this password before showing anything")
    parser.add_argument("-t", "--timeout", type=float, default=5.0, help="seconds for each status query (default 5)")


def run(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    try:
        query_manager(args.manager, args.port, "queue_status", args.timeout)
    except StatusQueryError as exc:
        print(f"coffea-wq dashboard: {exc}", file=sys.stderr)
        return 1
    try:
        auth = DashboardAuth.from_file(args.password_file)
    except OSError as exc:
        print(f"coffea-wq dashboard: --password-file {args.password_file!r}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    view = RunView(password=auth.required)
    view.attach(StatusQuerySource(args.manager, args.port, args.timeout), tracker=None)
    try:
        server = DashboardServer(view, auth, args.bind, args.http_port)
    except OSError as exc:
        print(f"coffea-wq dashboard: cannot serve on {args.bind}:{args.http_port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1
    print(f"Dashboard of manager {args.manager}:{args.port}: {server.url}", flush=True)
    try:
        (stop or threading.Event()).wait()
    finally:
        server.stop()
    return 0
