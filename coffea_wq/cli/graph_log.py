"""`coffea-wq graph-log STATS_LOG`: plot a stats log with matplotlib (like work_queue_graph_log).

Writes ``PREFIX.workers.png`` (connected/busy), ``PREFIX.tasks.png`` (waiting/running/complete),
``PREFIX.throughput.png`` (tasks done per minute) and ``PREFIX.cores.png`` (cores in use and
total); the x axis is minutes since the first row, so it spans the whole run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from coffea_wq.manager.statslog import StatsLogError, read_stats_log

# (file suffix, title, y label, [(column, legend)])
PLOTS: tuple[tuple[str, str, str, tuple[tuple[str, str], ...]], ...] = (
    ("workers", "Workers", "workers", (("workers_connected", "connected"), ("workers_busy", "busy"))),
    ("tasks", "Tasks", "tasks",
     (("tasks_waiting", "waiting"), ("tasks_running", "running"), ("tasks_done", "complete"))),
    ("throughput", "Throughput", "tasks done per minute", (("throughput", "tasks/min"),)),
    ("cores", "Cores", "cores", (("committed_cores", "in use"), ("total_cores", "connected"))),
)  # fmt: skip


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("stats_log", help="a stats log written by coffea-wq or CCTools (stats_log option)")
    parser.add_argument("-o", "--output", dest="prefix", help="output prefix (default: the log's name)")
    parser.add_argument("-T", "--format", default="png", choices=("png", "svg"), help="image format (default png)")


def add_throughput(rows: list[dict[str, float]]) -> None:
    """``throughput``: tasks done per minute between consecutive rows (0 for the first)."""
    previous = None
    for row in rows:
        if previous is None or row["timestamp"] <= previous["timestamp"]:
            row["throughput"] = 0.0
        else:
            minutes = (row["timestamp"] - previous["timestamp"]) / 60e6
            row["throughput"] = max(0.0, row.get("tasks_done", 0) - previous.get("tasks_done", 0)) / minutes
        previous = row


def plot_stats(rows: list[dict[str, float]], prefix: str, image_format: str = "png") -> list[Path]:
    """Draw the plots of :data:`PLOTS` and return the files written.

    Example:
        >>> plot_stats(read_stats_log("stats.log"), "run1")  # doctest: +SKIP
        [PosixPath('run1.workers.png'), ...]
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    add_throughput(rows)
    start = rows[0]["timestamp"]
    minutes = [(r["timestamp"] - start) / 60e6 for r in rows]
    written = []
    for suffix, title, ylabel, series in PLOTS:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        for column, legend in series:
            ax.step(minutes, [r.get(column, 0.0) for r in rows], where="post", label=legend)
        ax.set_title(title)
        ax.set_xlabel("time since start (minutes)")
        ax.set_ylabel(ylabel)
        ax.set_xlim(minutes[0], max(minutes[-1], minutes[0] + 1e-6))
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
        path = Path(f"{prefix}.{suffix}.{image_format}")
        fig.savefig(path, format=image_format, dpi=100, bbox_inches="tight")
        plt.close(fig)
        written.append(path)
    return written


def run(args: argparse.Namespace) -> int:
    try:
        rows = read_stats_log(args.stats_log)
    except OSError as exc:
        print(f"coffea-wq graph-log: cannot read {args.stats_log}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except StatsLogError as exc:
        print(f"coffea-wq graph-log: {exc}", file=sys.stderr)
        return 1
    if not rows:
        print(f"coffea-wq graph-log: {args.stats_log} has no data rows", file=sys.stderr)
        return 1
    prefix = args.prefix or str(Path(args.stats_log).with_suffix(""))
    for path in plot_stats(rows, prefix, args.format):
        print(f"Generating '{path}'.")
    return 0
