"""`coffea-wq report LOGDIR -o report.html`: a finished run's logs as one self-contained page.

LOGDIR holds what the executor's ``transactions-log`` (required), ``stats-log`` and ``debug-log``
options wrote; the page shows where the time went, the workers' timelines, task durations and
memory per category, transfers over time and the debug log's warnings (docs/executor.md, section 10).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coffea_wq.executor.report.history import ReportError, read_history
from coffea_wq.executor.report.page import render


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("logdir", help="the folder holding the run's transactions log (and stats and debug logs)")
    parser.add_argument("-o", "--output", default="report.html", help="the page to write (default report.html)")


def run(args: argparse.Namespace) -> int:
    try:
        history = read_history(Path(args.logdir))
    except ReportError as exc:
        print(f"coffea-wq report: {exc}", file=sys.stderr)
        return 1
    output = Path(args.output)
    output.write_text(render(history), encoding="utf-8")
    print(f"{output}: {len(history.attempts)} task attempts on {len(history.workers)} workers; "
          f"{history.breakdown.advice()}")
    return 0
