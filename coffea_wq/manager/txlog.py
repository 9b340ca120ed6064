"""The transactions log: one line per manager, worker, category and task event, as CCTools writes it.

Grammar (docs/catalog.md, "Logs" and "Formats"; spacing is CCTools' byte for byte, double spaces included)::

    <µs> <pid> MANAGER START|END
    <µs> <pid> WORKER <id> <host:port>  CONNECTION
    <µs> <pid> WORKER <id|(null)> <host:port>  DISCONNECTION <REASON>
    <µs> <pid> WORKER <id> RESOURCES <json>
    <µs> <pid> CATEGORY <name> MAX|MIN <json>
    <µs> <pid> CATEGORY <name> FIRST <MODE> <json>
    <µs> <pid> TASK <id> WAITING <category> FIRST_RESOURCES|MAX_RESOURCES <json>
    <µs> <pid> TASK <id> RUNNING <host:port>  FIRST_RESOURCES|MAX_RESOURCES <json>
    <µs> <pid> TASK <id> WAITING_RETRIEVAL <host:port> 
    <µs> <pid> TASK <id> RETRIEVED|DONE <RESULT>  <exit>  <json limits> <json measured>
    <µs> <pid> TASK <id> CANCELED
    <µs> <pid> TASK <id> PHASES {"process":[1.25,"s"],...}     (coffea-wq: where its time went)

Resources are ``{"name":[value,"unit"],...}`` in CCTools' resource-table order with its units
and decimals. :func:`parse_transactions_line` reads every line back, for tests and tools.
``PHASES`` is coffea-wq's own: the executor writes one per returned chunk, seconds per phase
(docs/executor.md, section 10), read by ``coffea-wq report``; CCTools never writes it.
"""  # noqa: W291

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

HEADER = (
    "# time manager_pid MANAGER START|END\n"
    "# time manager_pid WORKER worker_id host:port CONNECTION\n"
    # the missing ')' is CCTools' own
    "# time manager_pid WORKER worker_id host:port DISCONNECTION (UNKNOWN|IDLE_OUT|FAST_ABORT|FAILURE|STATUS_WORKER|EXPLICIT\n"
    "# time manager_pid WORKER worker_id RESOURCES {resources}\n"
    "# time manager_pid CATEGORY name MAX {resources_max_per_task}\n"
    "# time manager_pid CATEGORY name MIN {resources_min_per_task_per_worker}\n"
    "# time manager_pid CATEGORY name FIRST (FIXED|MAX|MIN_WASTE|MAX_THROUGHPUT) {resources_requested}\n"
    "# time manager_pid TASK taskid WAITING category_name (FIRST_RESOURCES|MAX_RESOURCES) {resources_requested}\n"
    "# time manager_pid TASK taskid RUNNING worker_address (FIRST_RESOURCES|MAX_RESOURCES) {resources_allocated}\n"
    "# time manager_pid TASK taskid WAITING_RETRIEVAL worker_address\n"
    "# time manager_pid TASK taskid (RETRIEVED|DONE) (SUCCESS|SIGNAL|END_TIME|FORSAKEN|MAX_RETRIES|MAX_WALLTIME|UNKNOWN|RESOURCE_EXHAUSTION) exit_code {limits_exceeded} {resources_measured}\n"
    "\n"
)

DISCONNECT_REASONS = ("UNKNOWN", "IDLE_OUT", "FAST_ABORT", "FAILURE", "STATUS_WORKER", "EXPLICIT")
ALLOCATION_MODES = ("FIXED", "MAX", "MIN_WASTE", "MAX_THROUGHPUT")
ALLOCATION_LABELS = ("FIRST_RESOURCES", "MAX_RESOURCES")
END_STATES = ("RETRIEVED", "DONE")
# what CCTools' work_queue_result_str writes (MAX_WALL_TIME, although the header says MAX_WALLTIME)
RESULT_NAMES = (
    "SUCCESS", "INPUT_MISS", "OUTPUT_MISS", "STDOUT_MISS", "SIGNAL", "RESOURCE_EXHAUSTION", "END_TIME",
    "FORSAKEN", "MAX_RETRIES", "MAX_WALL_TIME", "UNKNOWN", "DISK_ALLOC_FULL", "RMONITOR_ERROR",
)  # fmt: skip

# CCTools' rmsummary table: name, unit, decimals, in the order a summary is printed.
RESOURCE_TABLE: tuple[tuple[str, str, int], ...] = (
    ("start", "s", 6), ("end", "s", 6), ("wall_time", "s", 6), ("cpu_time", "s", 6),
    ("memory", "MB", 0), ("virtual_memory", "MB", 0), ("swap_memory", "MB", 0), ("disk", "MB", 0),
    ("bytes_read", "MB", 0), ("bytes_written", "MB", 0), ("bytes_received", "MB", 0),
    ("bytes_sent", "MB", 0), ("bandwidth", "Mbps", 3), ("gpus", "gpus", 0), ("cores", "cores", 3),
    ("cores_avg", "cores", 3), ("machine_cpus", "cores", 3), ("machine_load", "procs", 0),
    ("context_switches", "switches", 0), ("max_concurrent_processes", "procs", 0),
    ("total_processes", "procs", 0), ("total_files", "files", 0), ("fs_nodes", "nodes", 0),
    ("workers", "workers", 0),
)  # fmt: skip


def _json_number(value: float, decimals: int) -> str:
    """CCTools' value_to_jx_number printed by jx: truncated integer, or rounded ``%.16g``."""
    if decimals == 0:
        return str(int(value))
    factor = 10**decimals
    rounded = int(value * factor + 0.5) / factor
    return format(rounded, ".16g")


def resources_json(resources: dict | None) -> str:
    """``{"cores":2,...}`` (units as CCTools: memory/disk MB, times s) as the log's resource JSON.

    Undefined values (None or negative) and names outside CCTools' table are left out.

    Example:
        >>> resources_json({"cores": 1, "memory": 100, "disk": 50.7, "gpus": 0})
        '{"memory":[100,"MB"],"disk":[50,"MB"],"gpus":[0,"gpus"],"cores":[1,"cores"]}'
    """
    if not resources:
        return "{}"
    parts = []
    for name, unit, decimals in RESOURCE_TABLE:
        value = resources.get(name)
        if value is None or isinstance(value, bool) or value < 0:
            continue
        parts.append(f'"{name}":[{_json_number(float(value), decimals)},"{unit}"]')
    return "{" + ",".join(parts) + "}"


def _one_of(value: object, allowed: tuple[str, ...], what: str, aliases: dict[str, str] | None = None) -> str:
    text = getattr(value, "name", value) if not isinstance(value, str) else value
    text = str(text).strip().upper()
    text = (aliases or {}).get(text, text)
    if text not in allowed:
        raise ValueError(f"transactions log: {what} {value!r} is not one of {', '.join(allowed)}")
    return text


def _token(value: object, what: str) -> str:
    """A field that must be one whitespace-free word (the log is split on spaces)."""
    text = "(null)" if value is None else str(value)
    if not text or any(ch.isspace() for ch in text):
        raise ValueError(f"transactions log: {what} {text!r} must be one word without spaces")
    return text


class TransactionLog:
    """Writes the transactions log of one manager (line-buffered, thread-safe, appends).

    Args:
        path: the log file; opened for appending, the header is written at once.

    Example:
        >>> log = TransactionLog("tr.log")  # doctest: +SKIP
        >>> log.manager_start(); log.task_waiting(1, "default", "FIRST_RESOURCES", {})  # doctest: +SKIP
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._file = open(self.path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
        self._file.write(HEADER)

    def write_event(self, body: str) -> None:
        """Write one event line ``<µs> <pid> <body>``."""
        with self._lock:
            if self._file.closed:
                return
            self._file.write(f"{time.time_ns() // 1000} {self._pid} {body}\n")

    def manager_start(self) -> None:
        self.write_event("MANAGER START")

    def manager_end(self) -> None:
        self.write_event("MANAGER END")

    def worker_connection(self, worker_id: str, addr: str) -> None:
        self.write_event(f"WORKER {_token(worker_id, 'worker id')} {_token(addr, 'address')}  CONNECTION")

    def worker_disconnection(self, worker_id: str | None, addr: str, reason: object = "UNKNOWN") -> None:
        """``reason``: UNKNOWN, IDLE_OUT, FAST_ABORT, FAILURE, STATUS_WORKER or EXPLICIT (or an enum of them)."""
        reason_name = _one_of(reason, DISCONNECT_REASONS, "disconnection reason")
        self.write_event(
            f"WORKER {_token(worker_id, 'worker id')} {_token(addr, 'address')}  DISCONNECTION {reason_name}"
        )

    def worker_resources(self, worker_id: str, resources: dict) -> None:
        """The worker's totals; CCTools logs only cores, memory and disk here."""
        totals = {k: resources.get(k) for k in ("cores", "memory", "disk")}
        self.write_event(f"WORKER {_token(worker_id, 'worker id')} RESOURCES {resources_json(totals)}")

    def category_max(self, name: str, resources: dict) -> None:
        self.write_event(f"CATEGORY {_token(name, 'category')} MAX {resources_json(resources)}")

    def category_min(self, name: str, resources: dict) -> None:
        self.write_event(f"CATEGORY {_token(name, 'category')} MIN {resources_json(resources)}")

    def category_first(self, name: str, mode: str, resources: dict) -> None:
        """``mode``: FIXED, MAX, MIN_WASTE or MAX_THROUGHPUT (any case, ``-`` for ``_``)."""
        mode_name = _one_of(str(getattr(mode, "name", mode)).replace("-", "_"), ALLOCATION_MODES, "mode")
        self.write_event(f"CATEGORY {_token(name, 'category')} FIRST {mode_name} {resources_json(resources)}")

    def task_waiting(self, task_id: int, category: str, label: str, resources: dict) -> None:
        """``label``: FIRST_RESOURCES or MAX_RESOURCES (``first``/``max`` accepted)."""
        label_name = _allocation_label(label)
        self.write_event(
            f"TASK {int(task_id)} WAITING {_token(category, 'category')} {label_name} {resources_json(resources)}"
        )

    def task_running(self, task_id: int, addr: str, label: str, resources: dict) -> None:
        label_name = _allocation_label(label)
        self.write_event(
            f"TASK {int(task_id)} RUNNING {_token(addr, 'address')}  {label_name} {resources_json(resources)}"
        )

    def task_waiting_retrieval(self, task_id: int, addr: str) -> None:
        self.write_event(f"TASK {int(task_id)} WAITING_RETRIEVAL {_token(addr, 'address')} ")

    def task_done(
        self,
        task_id: int,
        state: str,
        result_name: str,
        exit_code: int,
        limits_exceeded: dict | None = None,
        measured: dict | None = None,
    ) -> None:
        """``state`` RETRIEVED or DONE; ``result_name`` as CCTools writes it (``ResultCode.log_name``)."""
        state_name = _one_of(state, END_STATES, "task end state")
        result = _token(getattr(result_name, "log_name", result_name), "result")
        # CCTools: " {} {}" when nothing was measured; the limits JSON only for broken limits
        if measured is None:
            tail = " {} {}"
        elif limits_exceeded:
            tail = f"{resources_json(limits_exceeded)} {resources_json(measured)}"
        else:
            tail = f" {{}} {resources_json(measured)}"
        self.write_event(f"TASK {int(task_id)} {state_name} {result}  {int(exit_code)} {tail}")

    def task_phases(self, task_id: int, phases: dict[str, float]) -> None:
        """coffea-wq's own line: where a task's time went, ``{"phase":[seconds,"s"],...}``."""
        body = ",".join(f'"{_token(name, "phase")}":[{_json_number(seconds, 6)},"s"]'
                        for name, seconds in phases.items())
        self.write_event(f"TASK {int(task_id)} PHASES {{{body}}}")

    def task_canceled(self, task_id: int) -> None:
        self.write_event(f"TASK {int(task_id)} CANCELED")

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()

    def __enter__(self) -> TransactionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _allocation_label(label: str) -> str:
    return _one_of(label, ALLOCATION_LABELS, "allocation label", {"FIRST": "FIRST_RESOURCES", "MAX": "MAX_RESOURCES"})


# ---------------------------------------------------------------------------------------------
# Reading the log back


class TransactionsParseError(ValueError):
    """A line that does not follow the transactions-log grammar; says which line and why."""


@dataclass(frozen=True)
class TransactionEvent:
    """One parsed line. ``kind`` is MANAGER, WORKER, CATEGORY or TASK; ``event`` the verb
    (START, CONNECTION, RESOURCES, MAX, WAITING, RUNNING, DONE, ...)."""

    timestamp: int
    pid: int
    kind: str
    subject: str  # the worker id, category name or task id ("" for MANAGER)
    event: str
    address: str | None = None
    category: str | None = None
    label: str | None = None  # FIRST_RESOURCES/MAX_RESOURCES, allocation mode, or disconnection reason
    result: str | None = None
    exit_code: int | None = None
    resources: dict = field(default_factory=dict)
    limits_exceeded: dict = field(default_factory=dict)


_PREFIX = re.compile(r"(\d+) (\d+) (.*)\Z", re.S)
_ADDR = r"(\S+)"
_JSON = r"(\{.*?\})"
_NAME = r"(\S+)"
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern + r"\Z"), name)
    for pattern, name in (
        (r"MANAGER (START|END)", "manager"),
        (rf"WORKER {_NAME} {_ADDR}  CONNECTION", "worker_connection"),
        (rf"WORKER {_NAME} {_ADDR}  DISCONNECTION ({'|'.join(DISCONNECT_REASONS)})", "worker_disconnection"),
        (rf"WORKER {_NAME} RESOURCES {_JSON}", "worker_resources"),
        (rf"CATEGORY {_NAME} (MAX|MIN) {_JSON}", "category_limit"),
        (rf"CATEGORY {_NAME} FIRST ({'|'.join(ALLOCATION_MODES)}) {_JSON}", "category_first"),
        (rf"TASK (\d+) WAITING {_NAME} (FIRST_RESOURCES|MAX_RESOURCES) {_JSON}", "task_waiting"),
        (rf"TASK (\d+) RUNNING {_ADDR}  (FIRST_RESOURCES|MAX_RESOURCES) {_JSON}", "task_running"),
        (rf"TASK (\d+) WAITING_RETRIEVAL {_ADDR} ", "task_waiting_retrieval"),
        (rf"TASK (\d+) (RETRIEVED|DONE) ([A-Z_]+)  (-?\d+)  ?{_JSON} {_JSON}", "task_done"),
        (rf"TASK (\d+) PHASES {_JSON}", "task_phases"),
        (r"TASK (\d+) (CANCELED|UNKNOWN)", "task_other"),
    )
)


def _resources(text: str, line_number: int | None) -> dict:
    """``{"memory":[100,"MB"]}`` -> ``{"memory": 100}``."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise TransactionsParseError(f"{_where(line_number)}: bad resource JSON {text!r}: {exc}") from None
    if not isinstance(data, dict):
        raise TransactionsParseError(f"{_where(line_number)}: resources {text!r} are not a JSON object")
    out = {}
    for name, value in data.items():
        if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (int, float))):
            raise TransactionsParseError(f"{_where(line_number)}: resource {name!r} is not [value, \"unit\"]")
        out[name] = value[0]
    return out


def _where(line_number: int | None) -> str:
    return "transactions log" if line_number is None else f"transactions log line {line_number}"


def parse_transactions_line(line: str, line_number: int | None = None) -> TransactionEvent:
    """Parse one event line (not a ``#`` comment or blank line) against the grammar.

    Raises:
        TransactionsParseError: naming the line number (when given) and what is wrong.

    Example:
        >>> parse_transactions_line("1 2 TASK 3 WAITING default FIRST_RESOURCES {}").event
        'WAITING'
    """
    line = line.rstrip("\n")
    prefix = _PREFIX.match(line)
    if not prefix:
        raise TransactionsParseError(f"{_where(line_number)}: expected '<time> <pid> <event>', got {line!r}")
    timestamp, pid, body = int(prefix[1]), int(prefix[2]), prefix[3]
    for pattern, name in _PATTERNS:
        m = pattern.match(body)
        if m:
            return _build_event(name, m, timestamp, pid, line_number)
    raise TransactionsParseError(f"{_where(line_number)}: not a transactions-log event: {body!r}")


def _build_event(name: str, m: re.Match[str], ts: int, pid: int, n: int | None) -> TransactionEvent:
    if name == "manager":
        return TransactionEvent(ts, pid, "MANAGER", "", m[1])
    if name == "worker_connection":
        return TransactionEvent(ts, pid, "WORKER", m[1], "CONNECTION", address=m[2])
    if name == "worker_disconnection":
        return TransactionEvent(ts, pid, "WORKER", m[1], "DISCONNECTION", address=m[2], label=m[3])
    if name == "worker_resources":
        return TransactionEvent(ts, pid, "WORKER", m[1], "RESOURCES", resources=_resources(m[2], n))
    if name == "category_limit":
        return TransactionEvent(ts, pid, "CATEGORY", m[1], m[2], resources=_resources(m[3], n))
    if name == "category_first":
        return TransactionEvent(ts, pid, "CATEGORY", m[1], "FIRST", label=m[2], resources=_resources(m[3], n))
    if name == "task_waiting":
        return TransactionEvent(
            ts, pid, "TASK", m[1], "WAITING", category=m[2], label=m[3], resources=_resources(m[4], n)
        )
    if name == "task_running":
        return TransactionEvent(
            ts, pid, "TASK", m[1], "RUNNING", address=m[2], label=m[3], resources=_resources(m[4], n)
        )
    if name == "task_waiting_retrieval":
        return TransactionEvent(ts, pid, "TASK", m[1], "WAITING_RETRIEVAL", address=m[2])
    if name == "task_done":
        return TransactionEvent(
            ts, pid, "TASK", m[1], m[2], result=m[3], exit_code=int(m[4]),
            limits_exceeded=_resources(m[5], n), resources=_resources(m[6], n),
        )  # fmt: skip
    if name == "task_phases":
        return TransactionEvent(ts, pid, "TASK", m[1], "PHASES", resources=_resources(m[2], n))
    return TransactionEvent(ts, pid, "TASK", m[1], m[2])


def read_transactions_log(path: str | os.PathLike[str]) -> list[TransactionEvent]:
    """Every event of a transactions log, skipping comments and blank lines.

    Raises:
        TransactionsParseError: naming the file and the first bad line.
    """
    events = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            if not line.strip() or line.startswith("#"):
                continue
            try:
                events.append(parse_transactions_line(line, number))
            except TransactionsParseError as exc:
                raise TransactionsParseError(f"{path}: {exc}") from None
    return events
