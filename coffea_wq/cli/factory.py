"""`coffea-wq factory`: keep a pool of workers alive on a batch system (like work_queue_factory).

    coffea-wq factory -T slurm -M my-analysis --min-workers 2 --max-workers 50 --cores 4
    coffea-wq factory -T local 127.0.0.1 9123 -C factory.json

The JSON file (``-C``) uses the long option names as keys and is re-read every cycle.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

from coffea_wq.factory.config import BATCH_TYPES, ConfigError

log = logging.getLogger(__name__)


def add_worker_options(parser: argparse.ArgumentParser) -> None:
    """Options shared with ``submit-workers``: manager, size, lifetime, environment, batch system."""
    parser.add_argument("-T", "--batch-type", required=True, choices=BATCH_TYPES, help="batch system")
    parser.add_argument("-M", "-N", "--manager-name", help="project name of the manager(s), a regular expression")
    parser.add_argument("--catalog", metavar="HOST:PORT", help="catalog server to find managers by name")
    parser.add_argument("--cores", type=float, help="cores per worker")
    parser.add_argument("--memory", type=int, metavar="MB", help="memory per worker (MB)")
    parser.add_argument("--disk", type=int, metavar="MB", help="disk per worker (MB)")
    parser.add_argument("--gpus", type=int, help="GPUs per worker")
    parser.add_argument("-t", "--timeout", type=int, default=300, metavar="S",
                        help="workers exit after this many idle seconds (default 300)")
    parser.add_argument("-S", "--scratch-dir", type=Path,
                        help="directory the jobs start from, seen by the worker nodes "
                             "(default /tmp/coffea-wq-factory-$UID)")
    parser.add_argument("--python-env", type=Path, metavar="TARBALL",
                        help="packed environment carrying coffea-wq to start workers from")
    parser.add_argument("--python-package", dest="python_env", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--python", help="Python interpreter with coffea-wq on the worker nodes "
                                         "(default: this one)")
    parser.add_argument("--worker-binary", help="run this worker program instead (e.g. work_queue_worker)")
    parser.add_argument("-P", "--password", type=Path, metavar="FILE", help="password file for the workers")
    parser.add_argument("-E", "--extra-options", default="", help="extra options for each worker")
    parser.add_argument("-B", "--batch-options", default="", help="extra options for the batch system")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.usage = "%(prog)s -T TYPE [options] (HOST PORT | -M NAME | -C CONFIG.json)"
    parser.add_argument("manager", nargs="*", metavar="HOST PORT",
                        help="the manager's host and port (or use -M NAME)")
    add_worker_options(parser)
    parser.add_argument("-C", "--config-file", type=Path, metavar="CONFIG.json",
                        help="JSON file of options (keys as the long options), re-read every cycle")
    parser.add_argument("-w", "--min-workers", type=int,
                        help="minimum workers (default 5, or --max-workers when lower)")
    parser.add_argument("-W", "--max-workers", type=int, default=100, help="maximum workers (default 100)")
    parser.add_argument("--workers-per-cycle", type=int, default=5,
                        help="at most this many new workers per cycle, 0 for no limit (default 5)")
    parser.add_argument("--tasks-per-worker", type=float, help="average tasks per worker (default: one per core)")
    parser.add_argument("--cycle-interval", type=float, default=30.0, metavar="S",
                        help="seconds between cycles (default 30)")
    parser.add_argument("--factory-timeout", type=float, metavar="S",
                        help="exit after no manager has been seen for this many seconds")
    parser.add_argument("-d", "--debug", nargs="?", const="all", metavar="SUBSYSTEM",
                        help="log every decision and batch command (CCTools' -d all)")
    parser.add_argument("-o", "--debug-file", type=Path, metavar="FILE",
                        help="write the debug log to FILE instead of stderr")
    # The manager's HOST PORT may come before and the count after the options (as in CCTools'
    # submit scripts); plain parse_args would take only the first run of positionals.
    parser.parse_args = parser.parse_intermixed_args  # type: ignore[method-assign]


def manager_address(words: list[str]) -> dict[str, Any]:
    """``{"manager_host": ..., "manager_port": ...}`` from the HOST PORT words (none: empty)."""
    if not words:
        return {}
    if len(words) != 2 or not words[1].isdigit() or not 0 < int(words[1]) < 65536:
        raise ConfigError(f"expected the manager as HOST PORT, got {' '.join(words)!r}")
    return {"manager_host": words[0], "manager_port": int(words[1])}


def settings_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """``FactoryConfig`` keyword arguments from the parsed options (None: keep the default)."""
    settings: dict[str, Any] = {"batch_type": args.batch_type}
    settings.update(manager_address(args.manager))
    names = ("manager_name", "catalog", "cores", "memory", "disk", "gpus", "timeout", "scratch_dir",
             "python_env", "python", "worker_binary", "password", "batch_options",
             "min_workers", "max_workers", "workers_per_cycle", "tasks_per_worker",
             "cycle_interval", "factory_timeout")
    for name in names:
        value = getattr(args, name, None)
        if value is not None:
            settings[name] = value
    if args.extra_options:
        settings["extra_options"] = tuple(shlex.split(args.extra_options))
    return settings


def configure_logging(debug: bool, debug_file: Path | None) -> None:
    """``-d``: the factory's decisions and batch commands at DEBUG; ``-o FILE``: into FILE."""
    if not debug:
        return
    logger = logging.getLogger("coffea_wq.factory")
    logger.setLevel(logging.DEBUG)
    if debug_file is not None:
        handler = logging.FileHandler(debug_file)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def run(args: argparse.Namespace) -> int:
    from coffea_wq.factory.config import build_config
    from coffea_wq.factory.loop import FactoryLoop

    configure_logging(args.debug is not None or args.debug_file is not None, args.debug_file)
    try:
        settings = settings_from_args(args)
        if not args.config_file:
            build_config(settings)  # report a bad command line before touching anything
        loop = FactoryLoop(settings, config_file=args.config_file, echo=lambda line: print(line, flush=True))
    except ConfigError as err:
        print(f"coffea-wq factory: {err}", file=sys.stderr)
        return 2

    def on_signal(signum: int, frame: object) -> None:
        # os.write, not print: a signal arriving during a print would make print re-entrant.
        os.write(sys.stdout.fileno(), b"received abort signal, shutting down workers...\n")
        loop.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        loop.run()
    finally:
        removed_all = loop.shutdown()
    return 0 if removed_all else 1
