"""`coffea-wq status`: managers from the catalog, or one manager's workers/tasks/categories.

Works like CCTools' ``work_queue_status`` against coffea-wq and CCTools managers and catalogs:
without HOST PORT it asks the catalog for every manager; with them it asks that manager
directly (``-W`` workers, ``-T`` tasks, ``-A`` categories, ``-R`` resources, ``-l`` JSON).
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import sys

from coffea_wq.catalog import tables
from coffea_wq.catalog.client import MANAGER_TYPES, CatalogError, catalog_addresses, query_catalog
from coffea_wq.catalog.jx import JxError, parse_expression, record_matches
from coffea_wq.catalog.query import StatusQueryError, query_manager

DEFAULT_MANAGER_PORT = 9123


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manager", nargs="?", help="ask this manager directly instead of the catalog")
    parser.add_argument("port", nargs="?", type=int, default=DEFAULT_MANAGER_PORT,
                        help=f"the manager's port (default {DEFAULT_MANAGER_PORT})")
    views = parser.add_mutually_exclusive_group()
    views.add_argument("-Q", "--statistics", dest="view", action="store_const", const="queue",
                       help="queue summary (default)")
    views.add_argument("-W", "--workers", dest="view", action="store_const", const="worker",
                       help="workers of the manager")
    views.add_argument("-T", "--tasks", dest="view", action="store_const", const="task", help="tasks of the manager")
    views.add_argument("-A", "--able-workers", dest="view", action="store_const", const="wable",
                       help="categories: largest task and workers that can run it (~ largest seen, > exceeded)")
    views.add_argument("-R", "--resources", dest="view", action="store_const", const="resources",
                       help="resources of each manager")
    views.add_argument("--capacity", dest="view", action="store_const", const="capacity",
                       help="estimated capacity of each manager")
    parser.add_argument("-M", "--project-name", metavar="NAME", help="only managers whose project matches NAME (regex)")
    parser.add_argument("-l", "--verbose", dest="long", action="store_true", help="long output: the raw JSON")
    parser.add_argument("-C", "--catalog", metavar="HOST:PORT", help="catalog server(s) to ask")
    parser.add_argument("--where", metavar="EXPR", help="only catalog records for which the JX expression is true")
    parser.add_argument("-t", "--timeout", type=float, default=30, help="seconds to wait for an answer (default 30)")
    # fmt: skip


def run(args: argparse.Namespace) -> int:
    view = args.view or "queue"
    try:
        if args.manager:
            return _direct(args, view)
        return _from_catalog(args, view)
    except (ValueError, JxError) as exc:
        print(f"coffea-wq status: {exc}", file=sys.stderr)
        return 2


DIRECT_TABLES = {
    "queue": ("queue_status", tables.QUEUE),
    "task": ("task_status", tables.TASKS),
    "worker": ("worker_status", tables.WORKERS),
    "wable": ("wable_status", tables.CATEGORIES),
    "resources": ("resources_status", tables.RESOURCES),
    "capacity": ("queue_status", tables.CAPACITY),
}


def _direct(args: argparse.Namespace, view: str) -> int:
    request, columns = DIRECT_TABLES[view]
    try:
        rows = query_manager(args.manager, args.port, request, timeout=args.timeout)
    except StatusQueryError as exc:
        print(f"couldn't get {request} from {args.manager} port {args.port}: {exc}", file=sys.stderr)
        return 1
    if args.long:
        sys.stdout.write(json.dumps(rows, separators=(",", ":")))
        return 0
    sys.stdout.write(tables.format_table(columns, [r for r in rows if isinstance(r, dict)]))
    return 0


CATALOG_TABLES = {"resources": tables.RESOURCES, "capacity": tables.CAPACITY}


def _from_catalog(args: argparse.Namespace, view: str) -> int:
    if view in ("task", "worker", "wable"):
        print(f"coffea-wq status: -{view[0].upper()} needs a manager: coffea-wq status -{view[0].upper()} HOST PORT",
              file=sys.stderr)  # fmt: skip
        return 2
    addresses = catalog_addresses(args.catalog)
    try:
        records = query_catalog(addresses, timeout=args.timeout)
    except CatalogError as exc:
        print(f"coffea-wq status: {exc}", file=sys.stderr)
        return 1
    managers = [r for r in records if r.get("type") in MANAGER_TYPES]
    if args.where:
        node = parse_expression(args.where)
        managers = [r for r in managers if record_matches(node, r)]
    if args.long:
        sys.stdout.write("[\n" + ",\n".join(json.dumps(r, separators=(",", ":")) for r in managers) + "\n]\n")
        return 0
    pattern = re.compile(args.project_name) if args.project_name else None
    columns = CATALOG_TABLES.get(view, tables.QUEUE)
    rows = _tree_rows(managers, pattern)
    sys.stdout.write(tables.format_table(columns, rows))
    return 0


def _tree_rows(managers: list[dict], pattern: re.Pattern[str] | None) -> list[dict]:
    """Top-level managers matching ``pattern``, each followed by its foremen as ``->name``."""
    rows: list[dict] = []
    for record in managers:
        uplink = record.get("my_manager")
        if uplink and uplink != "127.0.0.1:-1":
            continue
        if pattern and not pattern.fullmatch(str(record.get("project", ""))):
            continue
        rows.append(record)
        _add_children(record, managers, 1, rows)
    return rows


def _add_children(parent: dict, managers: list[dict], depth: int, rows: list[dict]) -> None:
    if depth > 8:
        return
    try:
        address = socket.gethostbyname(str(parent.get("name", "")))
    except OSError:
        return
    uplink = f"{address}:{parent.get('port')}"
    for record in managers:
        if record.get("my_manager") == uplink:
            rows.append({**record, "project": "-" * (depth - 1) + ">" + str(record.get("project", ""))})
            _add_children(record, managers, depth + 1, rows)
