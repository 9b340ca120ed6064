"""The worker's command-line options, named like ``work_queue_worker``'s.

``configure(parser)`` adds them to an argparse parser (``coffea-wq worker`` and
``python -m coffea_wq.worker`` share it); ``options_from_args`` checks them and returns a
``WorkerOptions``, raising ``OptionError`` with a message that names the bad option.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_TIMEOUT = 900.0


class OptionError(ValueError):
    """A command-line option is wrong; the message says which and why."""


@dataclass
class WorkerOptions:
    """Everything a worker run needs (see ``configure`` for the meaning of each)."""

    managers: list[tuple[str, int]] = field(default_factory=list)
    project_regex: str | None = None
    catalog: str | None = None
    cores: float | None = None
    memory: float | None = None
    disk: float | None = None
    gpus: float | None = None
    single_shot: bool = False
    idle_timeout: float = DEFAULT_TIMEOUT
    connect_timeout: float = DEFAULT_TIMEOUT
    workdir: Path | None = None
    password_file: Path | None = None
    ssl: bool = False
    ssl_ca: Path | None = None
    min_backoff: float = 1.0
    max_backoff: float = 60.0
    arch: str | None = None
    os_name: str | None = None
    wall_time: float | None = None
    features: list[str] = field(default_factory=list)
    debug: list[str] = field(default_factory=list)
    debug_file: str | None = None
    parent_death: bool = False
    keep_path: bool = False
    peer_transfers: bool = True  # serve the cache to other workers and fetch from them (docs/worker.md)
    peer_port: int = 0  # where the cache server listens (0: any free port)
    peer_timeout: float = 60.0  # seconds a peer transfer may make no progress before it counts as failed


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the worker's options to ``parser``."""
    parser.usage = "%(prog)s [options] HOST PORT | HOST:PORT[;HOST:PORT...] | -M NAME"
    parser.add_argument("address", nargs="*", help="the manager: HOST PORT, or HOST:PORT[;HOST:PORT...]")
    parser.add_argument("-M", "-N", "--manager-name", dest="manager_name", metavar="REGEX",
                        help="find managers whose project name matches REGEX in the catalog")
    parser.add_argument("-C", "--catalog", metavar="HOST:PORT",
                        help="catalog server(s) to ask for managers (default: $CATALOG_HOST:$CATALOG_PORT, "
                             "else CCTools' default catalogs)")
    parser.add_argument("--cores", type=float, help="cores to offer (default: measured; 0 = measure)")
    parser.add_argument("--memory", type=float, help="memory to offer, in MB (default: measured)")
    parser.add_argument("--disk", type=float, help="disk to offer, in MB (default: free space of the workspace)")
    parser.add_argument("--gpus", type=float, help="GPUs to offer (default: measured)")
    parser.add_argument("--single-shot", action="store_true", help="exit after the first manager connection ends")
    parser.add_argument("-t", "--timeout", type=float,
                        help="set both --idle-timeout and --connect-timeout, in seconds")
    parser.add_argument("--idle-timeout", type=float,
                        help=f"disconnect after this many seconds without work (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("--connect-timeout", type=float,
                        help=f"give up after this many seconds without a manager (default {DEFAULT_TIMEOUT:g})")
    parser.add_argument("-s", "--workdir", type=Path,
                        help="where to create the workspace worker-UID-PID (default: $TMPDIR or /tmp)")
    parser.add_argument("-P", "--password", type=Path, metavar="FILE", help="password file shared with the manager")
    parser.add_argument("--ssl", action="store_true",
                        help="connect with TLS (the manager must use TLS too: ssl=... / CCTools' --ssl-key)")
    parser.add_argument("--ssl-ca", type=Path, metavar="FILE",
                        help="with --ssl: accept only a manager whose certificate this PEM file vouches for "
                             "(default: any certificate; the password authenticates the manager)")
    parser.add_argument("--no-peer-transfers", dest="peer_transfers", action="store_false",
                        help="neither serve this worker's cache to other workers nor fetch from them (then every "
                             "file comes from the manager, as with work_queue_worker)")
    parser.add_argument("--peer-port", type=int, default=0, metavar="PORT",
                        help="the port the cache server listens on for other workers (default: any free port)")
    parser.add_argument("--peer-timeout", type=float, default=60.0, metavar="SECONDS",
                        help="a transfer from or to another worker that makes no progress for this long fails "
                             "(the manager then sends the file; default 60)")
    parser.add_argument("-i", "--min-backoff", type=float, default=1.0, help="first retry delay, in s (default 1)")
    parser.add_argument("-b", "--max-backoff", type=float, default=60.0, help="longest retry delay, in s (default 60)")
    parser.add_argument("-A", "--arch", help="architecture to report instead of uname's")
    parser.add_argument("-O", "--os", dest="os_name", help="operating system to report instead of uname's")
    parser.add_argument("--wall-time", type=float, help="seconds this worker may run in all")
    parser.add_argument("--feature", action="append", default=[], help="a user-defined feature (repeatable)")
    parser.add_argument("-d", "--debug", action="append", default=[], metavar="SUBSYSTEM",
                        help="log debugging messages (any subsystem name, e.g. all)")
    parser.add_argument("-o", "--debug-file", metavar="FILE", help="write the log to FILE (or :stderr, :stdout)")
    parser.add_argument("--parent-death", action="store_true", help="exit when the parent process dies")
    parser.add_argument("--keep-path", action="store_true",
                        help="give tasks this worker's PATH unchanged (default: the directory of the "
                             "worker's own python first, as activating its environment would)")


def parse_manager_addresses(words: list[str]) -> list[tuple[str, int]]:
    """``["host", "9123"]`` or ``["h1:9123;h2:9124"]`` -> ``[(host, port), ...]``.

    Example::

        parse_manager_addresses(["localhost", "9123"])   # [("localhost", 9123)]
    """
    if len(words) == 2 and ":" not in words[0]:
        return [(words[0], _port(words[1], f"port {words[1]!r}"))]
    if len(words) == 1:
        out = []
        for item in filter(None, (part.strip() for part in words[0].split(";"))):
            host, sep, port = item.rpartition(":")
            if not sep or not host:
                raise OptionError(f"manager address {item!r} is not HOST:PORT (nor HOST PORT)")
            out.append((host.strip("[]"), _port(port, f"manager address {item!r}")))
        if out:
            return out
    raise OptionError(f"expected HOST PORT or HOST:PORT[;HOST:PORT...], got {' '.join(words)!r}")


def _port(text: str, what: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise OptionError(f"{what}: not a TCP port (1-65535)")
    return int(text)


def options_from_args(args: argparse.Namespace) -> WorkerOptions:
    """Check the parsed arguments and turn them into ``WorkerOptions``."""
    if args.address and args.manager_name:
        raise OptionError("give either a manager address or -M NAME, not both")
    if not args.address and not args.manager_name:
        raise OptionError("give a manager address (HOST PORT) or a project name (-M NAME)")
    for name in ("cores", "memory", "disk", "gpus", "timeout", "idle_timeout", "connect_timeout", "wall_time"):
        value = getattr(args, name)
        if value is not None and value < 0:
            raise OptionError(f"--{name.replace('_', '-')} must not be negative (got {value:g})")
    if args.manager_name:
        try:
            re.compile(args.manager_name)
        except re.error as exc:
            raise OptionError(f"-M {args.manager_name!r} is not a valid regular expression: {exc}") from None
    if args.min_backoff <= 0 or args.max_backoff < args.min_backoff:
        raise OptionError("--min-backoff must be positive and not above --max-backoff")
    if args.password is not None and not args.password.is_file():
        raise OptionError(f"password file {str(args.password)!r} does not exist or is not a file")
    if args.ssl_ca is not None and not args.ssl:
        raise OptionError("--ssl-ca needs --ssl")
    if args.ssl_ca is not None and not args.ssl_ca.is_file():
        raise OptionError(f"--ssl-ca file {str(args.ssl_ca)!r} does not exist or is not a file")
    if args.peer_timeout <= 0:
        raise OptionError(f"--peer-timeout must be positive (got {args.peer_timeout:g})")
    if not 0 <= args.peer_port < 65536:
        raise OptionError(f"--peer-port {args.peer_port}: not a TCP port (0-65535)")
    timeout = args.timeout
    return WorkerOptions(
        managers=parse_manager_addresses(args.address) if args.address else [],
        project_regex=args.manager_name,
        catalog=args.catalog,
        cores=args.cores,
        memory=args.memory,
        disk=args.disk,
        gpus=args.gpus,
        single_shot=args.single_shot,
        idle_timeout=_first(args.idle_timeout, timeout, DEFAULT_TIMEOUT),
        connect_timeout=_first(args.connect_timeout, timeout, DEFAULT_TIMEOUT),
        workdir=args.workdir,
        password_file=args.password,
        ssl=args.ssl,
        ssl_ca=args.ssl_ca,
        min_backoff=args.min_backoff,
        max_backoff=args.max_backoff,
        arch=args.arch,
        os_name=args.os_name,
        wall_time=args.wall_time,
        features=list(args.feature),
        debug=list(args.debug),
        debug_file=args.debug_file,
        parent_death=args.parent_death,
        keep_path=args.keep_path,
        peer_transfers=args.peer_transfers,
        peer_port=args.peer_port,
        peer_timeout=args.peer_timeout,
    )


def _first(*values: float | None) -> float:
    for value in values:
        if value is not None:
            return float(value)
    return DEFAULT_TIMEOUT
