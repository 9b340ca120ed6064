"""``coffea-wq worker``: a Work Queue worker (flags as ``work_queue_worker``; see docs/worker.md)."""

from __future__ import annotations

import argparse

from coffea_wq.worker import options as worker_options


def configure(parser: argparse.ArgumentParser) -> None:
    worker_options.configure(parser)


def run(args: argparse.Namespace) -> int:
    from coffea_wq.worker.main import run_from_args

    return run_from_args(args)
