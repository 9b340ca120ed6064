"""The stats (performance) log: a header line, then one row of queue counters per second at most.

Format (docs/catalog.md, "Formats"; CCTools ``work_queue_specify_log``/``log_queue_stats``): the header
names 57 columns; rows are space-separated, the timestamp and times in µs, ``bandwidth`` and
``manager_load`` as ``%f``, everything else as integers. One upstream quirk is kept so that
CCTools' ``work_queue_graph_log`` reads our logs exactly as it reads its own: in the rows,
``workers_fast_aborted`` comes *before* ``workers_blocked``, the reverse of the header.
:func:`read_stats_log` undoes that swap.
"""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path

HEADER_COLUMNS: tuple[str, ...] = (
    "timestamp",
    "workers_connected", "workers_init", "workers_idle", "workers_busy", "workers_able",
    "workers_joined", "workers_removed", "workers_released", "workers_idled_out", "workers_blocked",
    "workers_fast_aborted", "workers_lost",
    "tasks_waiting", "tasks_on_workers", "tasks_running", "tasks_with_results",
    "tasks_submitted", "tasks_dispatched", "tasks_done", "tasks_failed", "tasks_cancelled",
    "tasks_exhausted_attempts",
    "time_when_started", "time_send", "time_receive", "time_send_good", "time_receive_good",
    "time_status_msgs", "time_internal", "time_polling", "time_application",
    "time_execute", "time_execute_good", "time_execute_exhaustion",
    "bytes_sent", "bytes_received", "bandwidth",
    "capacity_tasks", "capacity_cores", "capacity_memory", "capacity_disk", "capacity_instantaneous",
    "capacity_weighted", "manager_load",
    "total_cores", "total_memory", "total_disk",
    "committed_cores", "committed_memory", "committed_disk",
    "max_cores", "max_memory", "max_disk",
    "min_cores", "min_memory", "min_disk",
)  # fmt: skip


def _swapped(columns: tuple[str, ...], a: str, b: str) -> tuple[str, ...]:
    out = list(columns)
    i, j = out.index(a), out.index(b)
    out[i], out[j] = out[j], out[i]
    return tuple(out)


# the order in which CCTools really writes the values of a row
DATA_COLUMNS = _swapped(HEADER_COLUMNS, "workers_blocked", "workers_fast_aborted")
HEADER_LINE = "# " + " ".join(HEADER_COLUMNS) + "\n"
FLOAT_COLUMNS = frozenset({"bandwidth", "manager_load"})
# the names the manager's record (and CCTools' work_queue_stats) uses for the same counters
ALIASES = {
    "time_workers_execute": "time_execute",
    "time_workers_execute_good": "time_execute_good",
    "time_workers_execute_exhaustion": "time_execute_exhaustion",
}


def _number(value: object) -> float:
    if isinstance(value, (list, tuple, set, dict)):  # e.g. workers_blocked as a list of hosts
        return float(len(value))
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def format_stats_row(stats: dict, timestamp_us: int | None = None) -> str:
    """One data row (no newline) from a dict keyed by the header's column names.

    Missing counters are 0; ``timestamp`` defaults to now (µs).

    Example:
        >>> format_stats_row({"workers_connected": 2}, timestamp_us=5).split()[:3]
        ['5', '2', '0']
    """
    values = {ALIASES.get(k, k): v for k, v in stats.items()}
    if timestamp_us is None:
        timestamp_us = int(values.get("timestamp") or time.time_ns() // 1000)
    values["timestamp"] = timestamp_us
    fields = []
    for name in DATA_COLUMNS:
        number = _number(values.get(name, 0))
        fields.append(f"{number:f}" if name in FLOAT_COLUMNS else str(int(number)))
    return " ".join(fields)


class StatsLog:
    """Writes a manager's stats log (appends; the header goes in on open).

    Args:
        path: the log file.

    Example:
        >>> log = StatsLog("stats.log")  # doctest: +SKIP
        >>> log.write({"workers_connected": 1, "tasks_waiting": 3}, force=True)  # doctest: +SKIP
    """

    MIN_INTERVAL_US = 1_000_000

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._last_us: int | None = None
        self._file = open(self.path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        self._file.write(HEADER_LINE)

    def write(self, stats: dict, force: bool = False) -> bool:
        """Append a row unless one was written less than a second ago (``force`` overrides).

        Returns:
            whether a row was written.
        """
        now_us = time.time_ns() // 1000
        with self._lock:
            if self._file.closed:
                return False
            if not force and self._last_us is not None and now_us - self._last_us < self.MIN_INTERVAL_US:
                return False
            self._last_us = now_us
            self._file.write(format_stats_row(stats, now_us) + "\n")
            return True

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()

    def __enter__(self) -> StatsLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StatsLogError(ValueError):
    """A stats log that cannot be read; names the file and line."""


def read_stats_log(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """The rows of a stats log (ours or CCTools'), as dicts keyed by what each value means.

    The header line names the columns; for CCTools' header the blocked/fast-aborted swap of the
    rows is undone. Rows with a different number of fields than the header are an error.

    Raises:
        StatsLogError: naming the file and line.

    Example:
        >>> rows = read_stats_log("stats.log")  # doctest: +SKIP
        >>> rows[-1]["tasks_done"]  # doctest: +SKIP
        10.0
    """
    columns: tuple[str, ...] | None = None
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if line.startswith("#"):
                names = tuple(line[1:].split())
                if "timestamp" in names:
                    columns = names
                    if columns == HEADER_COLUMNS:
                        columns = DATA_COLUMNS
                continue
            if not line.strip():
                continue
            if columns is None:
                raise StatsLogError(f"{path} line {number}: data before the '# timestamp ...' header line")
            words = line.split()
            if len(words) != len(columns):
                raise StatsLogError(
                    f"{path} line {number}: {len(words)} fields, but the header names {len(columns)} columns"
                )
            try:
                rows.append({name: float(word) for name, word in zip(columns, words, strict=True)})
            except ValueError as exc:
                raise StatsLogError(f"{path} line {number}: {exc}") from None
    return rows
