"""A finished run read back from its logs: workers, task attempts, phases, transfers, log messages.

``coffea-wq report LOGDIR`` (``page.py`` draws it) reads what the executor's ``transactions-log``,
``stats-log`` and ``debug-log`` options wrote into ``LOGDIR``; each file is recognised by its
content, not its name. The transactions log is required (it holds the tasks); the stats log adds
the transfers over time and the debug log its warnings and errors. Formats: docs/catalog.md,
"Logs"; the ``PHASES`` lines: docs/executor.md, section 10.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from coffea_wq.executor.results.breakdown import Breakdown
from coffea_wq.manager.statslog import StatsLogError, read_stats_log
from coffea_wq.manager.txlog import HEADER as TRANSACTIONS_HEADER
from coffea_wq.manager.txlog import TransactionEvent, TransactionsParseError, read_transactions_log

DEBUG_LINE = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b")
DEBUG_KEPT = 20  # the last warnings and errors shown


class ReportError(ValueError):
    """The logs cannot make a report: says which folder or file, and why."""


@dataclass
class TaskAttempt:
    """One attempt of a task on a worker; times in seconds since the run started."""

    task_id: str
    worker: str
    category: str
    started: float
    ended: float | None = None  # the worker finished it (WAITING_RETRIEVAL), else when it was done
    result: str | None = None  # SUCCESS, SIGNAL, ...; None: never came back
    resources: dict[str, float] = field(default_factory=dict)  # measured (wall_time, memory, ...)
    phases: dict[str, float] = field(default_factory=dict)  # seconds (the executor's PHASES line)

    @property
    def duration(self) -> float | None:
        wall = self.resources.get("wall_time")
        if wall:
            return float(wall)
        return None if self.ended is None else max(0.0, self.ended - self.started)


@dataclass
class RunHistory:
    """What a report shows; ``span`` is the run's length in seconds."""

    logdir: Path
    span: float = 0.0
    workers: list[str] = field(default_factory=list)  # host:port, in the order they connected
    attempts: list[TaskAttempt] = field(default_factory=list)
    breakdown: Breakdown = field(default_factory=Breakdown)
    transfers: list[tuple[float, float, float]] = field(default_factory=list)  # (s, MB sent, MB received)
    messages: list[str] = field(default_factory=list)  # the debug log's last warnings and errors
    warnings: int = 0
    errors: int = 0
    files: dict[str, Path] = field(default_factory=dict)  # "transactions"/"stats"/"debug" -> the file read

    def categories(self) -> list[str]:
        return sorted({a.category for a in self.attempts})


def find_logs(logdir: Path) -> dict[str, Path]:
    """The transactions, stats and debug logs in ``logdir``, told apart by their first line."""
    if not logdir.is_dir():
        raise ReportError(f"{logdir} is not a folder of run logs")
    found: dict[str, Path] = {}
    first_header = TRANSACTIONS_HEADER.splitlines()[0]
    for path in sorted(p for p in logdir.iterdir() if p.is_file()):
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                head = f.readline()
        except OSError:
            continue
        if head.startswith(first_header):
            found.setdefault("transactions", path)
        elif head.startswith("#") and "timestamp" in head.split() and "tasks_done" in head.split():
            found.setdefault("stats", path)
        elif DEBUG_LINE.search(head) or re.match(r"\d{4}-\d\d-\d\d", head):
            found.setdefault("debug", path)
    if "transactions" not in found:
        raise ReportError(f"{logdir} holds no transactions log (the executor's transactions-log option writes "
                          "one); files there: " + (", ".join(p.name for p in sorted(logdir.iterdir())) or "none"))
    return found


def read_history(logdir: str | Path) -> RunHistory:
    """Everything the logs in ``logdir`` say about the run.

    Raises:
        ReportError: no transactions log there, or a log that cannot be read (naming the file).
    """
    logdir = Path(logdir)
    files = find_logs(logdir)
    history = RunHistory(logdir, files=files)
    try:
        events = read_transactions_log(files["transactions"])
    except (TransactionsParseError, OSError) as exc:
        raise ReportError(str(exc)) from None
    _read_transactions(history, events)
    if "stats" in files:
        _read_stats(history, files["stats"], events[0].timestamp if events else 0)
    if "debug" in files:
        _read_debug(history, files["debug"])
    return history


def _read_transactions(history: RunHistory, events: list[TransactionEvent]) -> None:
    if not events:
        return
    origin = events[0].timestamp
    categories: dict[str, str] = {}
    latest: dict[str, TaskAttempt] = {}
    for event in events:
        at = (event.timestamp - origin) / 1e6
        history.span = max(history.span, at)
        if event.kind == "WORKER" and event.event == "CONNECTION" and event.address not in history.workers:
            history.workers.append(event.address or "?")
        if event.kind != "TASK":
            continue
        task = event.subject
        if event.event == "WAITING":
            categories[task] = event.category or "default"
        elif event.event == "RUNNING":
            attempt = TaskAttempt(task, event.address or "?", categories.get(task, "default"), at)
            history.attempts.append(attempt)
            latest[task] = attempt
            if attempt.worker not in history.workers:
                history.workers.append(attempt.worker)
        elif task in latest:
            _attempt_event(latest[task], event, at, history.breakdown)


def _attempt_event(attempt: TaskAttempt, event: TransactionEvent, at: float, breakdown: Breakdown) -> None:
    if event.event == "WAITING_RETRIEVAL":
        attempt.ended = at
    elif event.event in ("RETRIEVED", "DONE"):
        if attempt.result is None:
            attempt.result = event.result
            attempt.resources = dict(event.resources)
        if attempt.ended is None:
            attempt.ended = at
    elif event.event == "PHASES":
        attempt.phases = dict(event.resources)
        breakdown.add(attempt.phases, dataset=attempt.category, worker=attempt.worker)
    elif event.event == "CANCELED" and attempt.ended is None:
        attempt.ended, attempt.result = at, "CANCELED"


def _read_stats(history: RunHistory, path: Path, origin_us: int) -> None:
    try:
        rows = read_stats_log(path)
    except (StatsLogError, OSError) as exc:
        raise ReportError(str(exc)) from None
    origin = origin_us or (rows[0]["timestamp"] if rows else 0)
    history.transfers = [((row["timestamp"] - origin) / 1e6, row.get("bytes_sent", 0) / 1e6,
                          row.get("bytes_received", 0) / 1e6) for row in rows]


def _read_debug(history: RunHistory, path: Path) -> None:
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            match = DEBUG_LINE.search(line)
            if not match:
                continue
            if match.group(1) == "WARNING":
                history.warnings += 1
            else:
                history.errors += 1
            history.messages.append(line.rstrip()[:300])
            del history.messages[:-DEBUG_KEPT]
