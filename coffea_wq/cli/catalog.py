"""`coffea-wq catalog`: a catalog server (like CCTools' catalog_server)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading

from coffea_wq.catalog.server import CatalogServer


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-p", "--port", type=int, default=9097,
                        help="UDP+HTTP port; TCP updates go to port+1 (default 9097; 0 = any free port)")
    parser.add_argument("-I", "--interface", default="127.0.0.1", metavar="ADDR",
                        help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    parser.add_argument("-l", "--lifetime", type=float, default=1800, metavar="SECONDS",
                        help="drop a record not updated for this long (default 1800)")
    parser.add_argument("-H", "--history", metavar="DIR", help="append every update to DIR/<date>.jsonl")
    parser.add_argument("-L", "--update-log", metavar="FILE", help="append each new record to FILE as JSON")
    parser.add_argument("-Z", "--port-file", metavar="FILE", help="write the chosen port to FILE once listening")
    parser.add_argument("-d", "--debug", action="store_true", help="log every update and query")
    # fmt: skip


def run(args: argparse.Namespace) -> int:
    if args.debug:
        logging.getLogger("coffea_wq.catalog").setLevel(logging.DEBUG)
        logging.getLogger().setLevel(logging.DEBUG)
    if args.lifetime <= 0:
        print(f"coffea-wq catalog: --lifetime must be positive, not {args.lifetime}", file=sys.stderr)
        return 2
    try:
        server = CatalogServer(args.interface, args.port, args.lifetime, args.history, args.update_log)
    except OSError as exc:
        print(f"coffea-wq catalog: {exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start()
    print(f"catalog listening on {args.interface} port {server.port} (UDP+HTTP) and {server.port + 1} (TCP updates)",
          flush=True)  # fmt: skip
    if args.port_file:
        try:
            with open(args.port_file + ".tmp", "w") as f:
                f.write(f"{server.port}\n")
            os.replace(args.port_file + ".tmp", args.port_file)
        except OSError as exc:
            print(f"coffea-wq catalog: cannot write the port file {args.port_file}: {exc.strerror}", file=sys.stderr)
            server.stop()
            return 1
    while not stop.wait(1.0):
        pass
    server.stop()
    return 0
