"""`coffea-wq monitor [-L "cores: 4"] [-i SECONDS] [-O PREFIX] [--no-pprint] -- CMD ARGS`.

Runs CMD, measures its process tree, enforces the limits (unless --measure-only), writes
PREFIX.summary in resource_monitor's shape and exits as resource_monitor does (0 ok, 1 the command
failed, 2 a limit was broken, 4 monitor error).
"""

from __future__ import annotations

import argparse

from coffea_wq.resources.rmon.runner import add_arguments, run_from_args


def configure(parser: argparse.ArgumentParser) -> None:
    add_arguments(parser)


def run(args: argparse.Namespace) -> int:
    return run_from_args(args)
