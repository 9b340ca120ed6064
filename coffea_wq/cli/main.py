"""`coffea-wq SUBCOMMAND ...`: dispatches to one module per subcommand.

Each subcommand module defines ``configure(parser: argparse.ArgumentParser) -> None`` and
``run(args: argparse.Namespace) -> int``. Modules are imported only when their subcommand is
used, so `coffea-wq worker` starts without importing coffea, matplotlib or the manager.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "worker": ("coffea_wq.cli.worker", "run a worker that connects to a manager (like work_queue_worker)"),
    "status": ("coffea_wq.cli.status", "show managers, workers, tasks and categories (like work_queue_status)"),
    "catalog": ("coffea_wq.cli.catalog", "run a catalog server (like catalog_server)"),
    "factory": ("coffea_wq.cli.factory", "keep a pool of workers alive on a batch system (like work_queue_factory)"),
    "submit-workers": ("coffea_wq.cli.submit_workers", "submit N workers to a batch system"),
    "monitor": ("coffea_wq.cli.monitor", "measure and limit a command's resources (like resource_monitor)"),
    "dashboard": ("coffea_wq.cli.dashboard", "serve a live dashboard of a running manager in the browser"),
    "graph-log": ("coffea_wq.cli.graph_log", "plot a stats log (like work_queue_graph_log)"),
    "report": ("coffea_wq.cli.report", "a finished run's logs as one HTML page: timelines, where the time went"),
    "env": ("coffea_wq.cli.env", "build, list and clean packed Python environments"),
}


def _usage() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    lines = ["usage: coffea-wq SUBCOMMAND [options]", "", "subcommands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in SUBCOMMANDS.items()]
    lines += ["", "`coffea-wq SUBCOMMAND --help` describes each one."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"coffea-wq: unknown subcommand {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, help_ = SUBCOMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"coffea-wq {name}", description=help_)
    module.configure(parser)
    args = parser.parse_args(rest)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
