"""Run one command under the monitor, with resource_monitor's command line.

``python3 -m coffea_wq.resources.rmon.runner [options] -- CMD ARGS`` (or the shipped
``./cctools-monitor``, or ``coffea-wq monitor``) runs CMD, samples its process tree, enforces ``-L``
limits unless ``--measure-only``, writes ``PREFIX.summary`` and exits like resource_monitor:
0 the command succeeded, 1 it failed, 2 it broke a limit, 4 the monitor itself failed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from .limits import RM_MONITOR_ERROR, LimitError, parse_limits
from .summary import Summary
from .watch import TreeWatch

log = logging.getLogger("coffea_wq.resources.monitor")
DEFAULT_INTERVAL_S = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """resource_monitor's options (the ones without an effect here are accepted and ignored)."""
    add = parser.add_argument
    add(
        "-i",
        "--interval",
        type=float,
        default=DEFAULT_INTERVAL_S,
        help="longest time between samples (s, default 1)",
    )
    add(
        "-L",
        "--limits",
        action="append",
        default=[],
        metavar="'RES: VALUE, ...'",
        help='limits such as "memory: 4096" or "cores: 4" (repeatable)',
    )
    add("-l", "--limits-file", help="file of 'RES: VALUE' lines")
    add("--measure-only", action="store_true", help="record broken limits without killing the command")
    add("-O", "--with-output-files", metavar="PREFIX", help="write PREFIX.summary (default resource-pid-PID)")
    add("--with-time-series", action="store_true", help="also write PREFIX.series")
    add("--no-pprint", action="store_true", help="write the summary on one line")
    add(
        "-V",
        "--verbatim-to-summary",
        action="append",
        default=[],
        metavar="'KEY: VALUE'",
        help="add KEY: VALUE to the summary (repeatable)",
    )
    add("-c", "--sh", metavar="CMD", help="run '/bin/sh -c CMD'")
    add("--pid", type=int, help="watch an existing process instead of starting one")
    add(
        "--measure-dir",
        action="append",
        default=[],
        help="directory whose size is the disk use (default: cwd)",
    )
    add("--without-disk-footprint", action="store_true", help="do not measure disk")
    add("-d", "--debug", action="append", default=[], help="debug output (any subsystem: all)")
    add("-o", "--debug-file", help="write debug output to this file")
    add("-v", "--version", action="store_true", help="print the version and exit")
    for ignored in ("--accurate-short-processes", "-f", "--child-in-foreground", "--with-inotify"):
        add(ignored, action="store_true", help=argparse.SUPPRESS)
    for ignored in (
        "--catalog-task-name",
        "--catalog-project",
        "--catalog",
        "--catalog-interval",
        "--snapshot-events",
    ):
        add(ignored, help=argparse.SUPPRESS)
    add("command", nargs=argparse.REMAINDER, help="-- CMD ARGS")


# fmt: skip


def verbatim_fields(items: list[str]) -> dict[str, str]:
    """``-V 'task_id: 7'`` -> ``{"task_id": "7"}`` (a value without a key is kept under its text)."""
    fields: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition(":")
        fields[key.strip()] = value.strip() if sep else ""
    return fields


def read_limits(args: argparse.Namespace) -> dict[str, float]:
    texts = list(args.limits)
    limits = {}
    if args.limits_file:
        try:
            with open(args.limits_file) as f:
                limits.update(parse_limits([f.read()], origin=args.limits_file))
        except OSError as err:
            raise LimitError(f"{args.limits_file}: cannot read the limits file ({err.strerror})") from None
    limits.update(parse_limits(texts))
    return limits


def _command_argv(args: argparse.Namespace) -> tuple[list[str], str]:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if args.sh:
        return ["/bin/sh", "-c", args.sh], args.sh
    return command, " ".join(command)


def _returncode(wait_status: int) -> int:
    if os.WIFSIGNALED(wait_status):
        return -os.WTERMSIG(wait_status)
    if os.WIFSTOPPED(wait_status):
        return -os.WSTOPSIG(wait_status)
    return os.WEXITSTATUS(wait_status)


def _own_group() -> int | None:
    """Our process group when we lead it (as a task under a worker does): it is the task's group."""
    return os.getpgrp() if os.getpgrp() == os.getpid() else None


def run_command(argv: list[str], command_text: str, watch_args: dict) -> Summary:
    """Start ``argv``, watch it until it and its descendants end, and return the summary."""
    holder: dict[str, TreeWatch] = {}
    pending: list[int] = []
    previous = _forward_signals(holder, pending)  # before starting: no window to lose a signal in
    try:
        start = time.time()
        try:
            proc = subprocess.Popen(argv, stdin=None)
        except OSError as err:
            # Like resource_monitor, whose child exits with the errno of its failed exec.
            log.error("cannot run %s: %s", argv[0] if argv else "(nothing)", err.strerror)
            summary = Summary(command=command_text, exit_status=err.errno or 1, last_error=err.errno)
            summary.monitor_exit_code = 1
            return summary
        watch = holder["watch"] = TreeWatch(proc.pid, group=_own_group(), start=start, **watch_args)
        if pending:
            watch.kill_tree(signal.SIGTERM)
        watch.start()
        _, wait_status, rusage = _wait4(proc.pid)
        end = time.time()
        proc.returncode = _returncode(wait_status)  # reaped here: keep Popen from waiting again
        if _wait_for_leftovers(watch):
            end = time.time()
        return watch.stop(proc.returncode, rusage, command_text, end=end)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _wait4(pid: int):
    while True:
        try:
            return os.wait4(pid, 0)
        except ChildProcessError:
            return pid, 0, None
        except InterruptedError:
            continue


def _wait_for_leftovers(watch: TreeWatch) -> bool:
    """Like resource_monitor, keep measuring while background processes of the command run on.

    Returns True when there were such processes (the run ends when the last of them does).
    """
    waited = False
    while watch.sample_now() and watch.sampler.tracked:
        waited = True
        time.sleep(min(0.2, watch.interval))
    return waited


def _forward_signals(holder: dict, pending: list[int]) -> dict:
    """A monitor told to stop stops its command (then writes the summary as usual)."""

    def forward(signum, _frame):
        log.warning("monitor got signal %d: stopping the command", signum)
        pending.append(signum)
        if "watch" in holder:
            holder["watch"].kill_tree(signal.SIGTERM)

    previous = {}
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        try:
            previous[signum] = signal.signal(signum, forward)
        except ValueError:
            pass  # not the main thread: the caller handles signals
    return previous


def watch_existing(pid: int, command_text: str, watch_args: dict) -> Summary:
    """``--pid``: watch a process we did not start, until it ends (its exit status is unknown)."""
    watch = TreeWatch(pid, **watch_args).start()
    while _alive(pid):
        time.sleep(min(0.2, watch.interval))
    return watch.stop(None, None, command_text or f"pid {pid}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class MonitorPlan:
    """What a monitor command line asks for, resolved against the directory it runs in."""

    argv: list[str]
    command_text: str
    limits: dict[str, float]
    summary_path: str
    series_path: str | None
    pretty: bool
    verbatim: dict[str, str]
    watch_args: dict  # TreeWatch's keyword arguments, but the series file


def plan_from_args(args: argparse.Namespace, cwd: str | None = None) -> MonitorPlan:
    """The monitor's settings; raises ``LimitError`` (or ``ValueError``) naming a bad option."""
    cwd = os.path.abspath(cwd or os.getcwd())
    limits = read_limits(args)
    argv, command_text = _command_argv(args)
    if not argv and args.pid is None:
        raise ValueError("no command to run: give -- CMD ARGS, --sh 'CMD' or --pid PID")
    if args.interval <= 0:
        raise ValueError(f"the interval must be positive, not {args.interval}")
    prefix = os.path.join(cwd, args.with_output_files or f"resource-pid-{os.getpid()}")
    dirs = [] if args.without_disk_footprint else [os.path.join(cwd, d) for d in (args.measure_dir or [cwd])]
    return MonitorPlan(
        argv=argv, command_text=command_text, limits=limits, summary_path=prefix + ".summary",
        series_path=prefix + ".series" if args.with_time_series else None, pretty=not args.no_pprint,
        verbatim=verbatim_fields(args.verbatim_to_summary),
        watch_args=dict(limits=limits, interval=args.interval, enforce=not args.measure_only, measure_dirs=dirs),
    )  # fmt: skip


def finish(summary: Summary, plan: MonitorPlan) -> int:
    """Write the summary; the monitor's exit code (resource_monitor's: 0, 1, 2, or 4 on failure)."""
    summary.verbatim = plan.verbatim
    try:
        summary.write(plan.summary_path, pretty=plan.pretty)
    except OSError as err:
        print(f"monitor: cannot write {plan.summary_path}: {err.strerror}", file=sys.stderr)
        return RM_MONITOR_ERROR
    if summary.exhausted:
        log.info("%s: %s", plan.command_text, summary.exhaustion_message())
    return summary.monitor_exit_code


def run_from_args(args: argparse.Namespace) -> int:
    """Run as resource_monitor does; returns its exit code."""
    if args.version:
        print("coffea-wq monitor (resource_monitor compatible)")
        return 0
    _configure_debug(args)
    try:
        plan = plan_from_args(args)
    except ValueError as err:  # LimitError included
        print(f"monitor: {err}", file=sys.stderr)
        return RM_MONITOR_ERROR
    series = open(plan.series_path, "w") if plan.series_path else None  # noqa: SIM115 - closed below
    watch_args = dict(plan.watch_args, series=series)
    try:
        if args.pid is not None:
            summary = watch_existing(args.pid, plan.command_text, watch_args)
        else:
            summary = run_command(plan.argv, plan.command_text, watch_args)
    finally:
        if series is not None:
            series.close()
    return finish(summary, plan)


def _configure_debug(args: argparse.Namespace) -> None:
    if not args.debug:
        return
    handler = logging.FileHandler(args.debug_file) if args.debug_file else logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s monitor[%(process)d] %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cctools-monitor", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_from_args(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
