"""Transactions and stats logs: exact CCTools format, parsers, and CCTools' own logs read back."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from coffea_wq.manager.statslog import (
    HEADER_COLUMNS,
    StatsLog,
    StatsLogError,
    format_stats_row,
    read_stats_log,
)
from coffea_wq.manager.txlog import (
    HEADER,
    TransactionLog,
    TransactionsParseError,
    parse_transactions_line,
    read_transactions_log,
    resources_json,
)
from tests.support import SAMPLES, needs_system

PY_TRANSACTIONS = SAMPLES / "py-manager/full/py-transactions.log"
PY_STATS = SAMPLES / "py-manager/full/py-stats.log"


def _bodies(path: Path) -> list[str]:
    """Event lines without their timestamp and pid."""
    lines = path.read_text().splitlines()
    return [line.split(" ", 2)[2] for line in lines if line and not line.startswith("#")]


def test_resources_json_is_cctools_order_units_and_decimals():
    text = resources_json({"cores": 2, "gpus": 0, "disk": 2000, "memory": 800.9, "wall_time": 1})
    assert text == '{"wall_time":[1,"s"],"memory":[800,"MB"],"disk":[2000,"MB"],"gpus":[0,"gpus"],"cores":[2,"cores"]}'
    assert resources_json({"cores": 0.0041, "memory": -1, "disk": None}) == '{"cores":[0.004,"cores"]}'
    assert resources_json({}) == "{}"


def test_every_event_is_written_byte_for_byte_as_cctools(tmp_path):
    path = tmp_path / "tr.log"
    with TransactionLog(path) as log:
        log.manager_start()
        log.task_waiting(1, "default", "FIRST_RESOURCES", {})
        log.task_waiting(2, "cat-a", "first", {"cores": 1, "memory": 100, "disk": 50})
        log.worker_connection("worker-6e8e", "127.0.0.1:47116")
        log.worker_resources("worker-6e8e", {"cores": 2, "memory": 800, "disk": 2000, "gpus": 0})
        log.task_running(2, "127.0.0.1:47116", "FIRST_RESOURCES", {"cores": 1, "memory": 100, "disk": 50, "gpus": 0})
        log.task_waiting_retrieval(2, "127.0.0.1:47116")
        log.task_done(2, "RETRIEVED", "SUCCESS", 0, None, None)
        log.task_done(2, "DONE", "SUCCESS", 0, None, None)
        log.task_done(7, "RETRIEVED", "MAX_WALL_TIME", 9, None, None)
        log.task_canceled(5)
        log.worker_disconnection(None, "127.0.0.1:47120", "STATUS_WORKER")
        log.worker_disconnection("worker-6e8e", "127.0.0.1:47116", "explicit")
        log.category_max("cat-a", {"cores": 1})
        log.category_min("cat-a", {})
        log.category_first("cat-a", "max-throughput", {"memory": 100})
        log.task_done(8, "DONE", "RESOURCE_EXHAUSTION", 0, {"memory": 50}, {"memory": 60, "cores": 1})
        log.task_done(9, "DONE", "SUCCESS", 0, {}, {"memory": 3})
        log.manager_end()
    text = path.read_text()
    assert text.startswith(HEADER)
    assert _bodies(path) == [
        "MANAGER START",
        "TASK 1 WAITING default FIRST_RESOURCES {}",
        'TASK 2 WAITING cat-a FIRST_RESOURCES {"memory":[100,"MB"],"disk":[50,"MB"],"cores":[1,"cores"]}',
        "WORKER worker-6e8e 127.0.0.1:47116  CONNECTION",
        'WORKER worker-6e8e RESOURCES {"memory":[800,"MB"],"disk":[2000,"MB"],"cores":[2,"cores"]}',
        'TASK 2 RUNNING 127.0.0.1:47116  FIRST_RESOURCES {"memory":[100,"MB"],"disk":[50,"MB"],"gpus":[0,"gpus"],"cores":[1,"cores"]}',
        "TASK 2 WAITING_RETRIEVAL 127.0.0.1:47116 ",
        "TASK 2 RETRIEVED SUCCESS  0  {} {}",
        "TASK 2 DONE SUCCESS  0  {} {}",
        "TASK 7 RETRIEVED MAX_WALL_TIME  9  {} {}",
        "TASK 5 CANCELED",
        "WORKER (null) 127.0.0.1:47120  DISCONNECTION STATUS_WORKER",
        "WORKER worker-6e8e 127.0.0.1:47116  DISCONNECTION EXPLICIT",
        'CATEGORY cat-a MAX {"cores":[1,"cores"]}',
        "CATEGORY cat-a MIN {}",
        'CATEGORY cat-a FIRST MAX_THROUGHPUT {"memory":[100,"MB"]}',
        'TASK 8 DONE RESOURCE_EXHAUSTION  0 {"memory":[50,"MB"]} {"memory":[60,"MB"],"cores":[1,"cores"]}',
        'TASK 9 DONE SUCCESS  0  {} {"memory":[3,"MB"]}',
        "MANAGER END",
    ]
    prefix = re.compile(r"^\d{16} \d+ ")
    assert all(prefix.match(line) for line in text.splitlines() if line and not line.startswith("#"))


@pytest.mark.parametrize("path", [PY_TRANSACTIONS, *sorted(SAMPLES.glob("makeflow/*/wq.log.tr"))])
def test_parser_reads_every_line_of_real_cctools_logs(path):
    events = read_transactions_log(path)
    assert events[0].kind == "MANAGER" and events[0].event == "START"
    done = [e for e in events if e.kind == "TASK" and e.event == "DONE"]
    assert done and all(e.result and e.exit_code is not None for e in done)


def test_parser_round_trips_structured_fields():
    event = parse_transactions_line(
        '17 4 TASK 8 DONE RESOURCE_EXHAUSTION  0 {"memory":[50,"MB"]} {"memory":[60,"MB"],"cores":[0.5,"cores"]}'
    )
    assert (event.timestamp, event.pid, event.subject, event.event) == (17, 4, "8", "DONE")
    assert event.result == "RESOURCE_EXHAUSTION" and event.exit_code == 0
    assert event.limits_exceeded == {"memory": 50}
    assert event.resources == {"memory": 60, "cores": 0.5}
    running = parse_transactions_line('1 2 TASK 3 RUNNING 10.0.0.1:9  MAX_RESOURCES {"cores":[4,"cores"]}')
    assert (running.address, running.label, running.resources) == ("10.0.0.1:9", "MAX_RESOURCES", {"cores": 4})


@pytest.mark.parametrize(
    "line, complaint",
    [
        ("TASK 1 CANCELED", "expected '<time> <pid> <event>'"),
        ("1 2 TASK 1 RUNNING 127.0.0.1:1 FIRST_RESOURCES {}", "not a transactions-log event"),  # one space
        ("1 2 TASK 1 WAITING default FIRST_RESOURCES {nope}", "bad resource JSON"),
        ("1 2 WORKER w 1.2.3.4:5  DISCONNECTION BORED", "not a transactions-log event"),
    ],
)
def test_parser_names_the_line_and_the_problem(line, complaint):
    with pytest.raises(TransactionsParseError, match=f"line 42: .*{re.escape(complaint)}"):
        parse_transactions_line(line, 42)


def test_bad_values_are_refused_with_a_clear_message(tmp_path):
    with TransactionLog(tmp_path / "tr.log") as log:
        with pytest.raises(ValueError, match="disconnection reason 'BORED'"):
            log.worker_disconnection("w", "1.2.3.4:5", "BORED")
        with pytest.raises(ValueError, match="category 'two words'"):
            log.task_waiting(1, "two words", "FIRST_RESOURCES", {})


def test_read_log_error_names_file_and_line(tmp_path):
    path = tmp_path / "tr.log"
    path.write_text(HEADER + "1 2 MANAGER START\n1 2 TASK x WAITING\n")
    with pytest.raises(TransactionsParseError, match=rf"{re.escape(str(path))}: transactions log line 14"):
        read_transactions_log(path)


# ----------------------------------------------------------------------------- stats log


def test_stats_header_is_the_real_one():
    with open(PY_STATS) as f:
        real_header = f.readline()
    assert real_header == "# " + " ".join(HEADER_COLUMNS) + "\n"
    assert len(HEADER_COLUMNS) == 57


def test_stats_row_puts_fast_aborted_before_blocked_like_cctools():
    row = format_stats_row(
        {"workers_blocked": 7, "workers_fast_aborted": 3, "bandwidth": 1, "manager_load": 0.13585,
         "time_workers_execute": 99, "tasks_done": 4},
        timestamp_us=1795599730851654,
    )  # fmt: skip
    fields = row.split()
    assert len(fields) == 57
    assert fields[0] == "1795599730851654"
    assert fields[HEADER_COLUMNS.index("workers_blocked")] == "3"  # the swapped pair
    assert fields[HEADER_COLUMNS.index("workers_fast_aborted")] == "7"
    assert fields[HEADER_COLUMNS.index("bandwidth")] == "1.000000"
    assert fields[HEADER_COLUMNS.index("manager_load")] == "0.135850"
    assert fields[HEADER_COLUMNS.index("time_execute")] == "99"
    assert fields[HEADER_COLUMNS.index("tasks_done")] == "4"


def test_stats_log_rate_limit_and_reader(tmp_path):
    path = tmp_path / "stats.log"
    with StatsLog(path) as log:
        assert log.write({"tasks_waiting": 5, "workers_blocked": 2}, force=True)
        assert not log.write({"tasks_waiting": 4})  # within the same second
        assert log.write({"tasks_waiting": 3}, force=True)
    rows = read_stats_log(path)
    assert [r["tasks_waiting"] for r in rows] == [5, 3]
    assert rows[0]["workers_blocked"] == 2 and rows[0]["workers_fast_aborted"] == 0


def test_reader_reads_the_real_stats_log():
    rows = read_stats_log(PY_STATS)
    assert len(rows) > 3
    assert rows[0]["time_when_started"] == 1795599728957540
    assert max(r["tasks_done"] for r in rows) >= 4


def test_reader_reports_a_short_row(tmp_path):
    path = tmp_path / "stats.log"
    path.write_text("# " + " ".join(HEADER_COLUMNS) + "\n1 2 3\n")
    with pytest.raises(StatsLogError, match=r"line 2: 3 fields, but the header names 57"):
        read_stats_log(path)


@needs_system(shutil.which("work_queue_graph_log") is None, "work_queue_graph_log", "coop-computing-tools")
@needs_system(shutil.which("gnuplot") is None, "gnuplot", "gnuplot-nox")
def test_real_work_queue_graph_log_accepts_our_stats_log(tmp_path):
    path = tmp_path / "stats.log"
    StatsLog(path).close()  # just the header
    start = 1795599728957540
    with open(path, "a") as f:
        for i in range(6):  # one row every 40 s: graph_log keeps one row per 30 s step
            row = {"workers_connected": 1, "workers_busy": i % 2, "tasks_waiting": 5 - i, "tasks_done": i,
                   "time_when_started": start, "time_polling": i * 10**6, "total_cores": 2, "bandwidth": 1.5}
            f.write(format_stats_row(row, timestamp_us=start + i * 40 * 10**6) + "\n")
    result = subprocess.run(
        ["work_queue_graph_log", "-T", "svg", "-o", str(tmp_path / "g"), str(path)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert "invalid value" not in output and "Aborting" not in output, output
    for name in ("workers", "tasks", "tasks-accum", "time-manager", "transfer"):
        assert (tmp_path / f"g.{name}.svg").stat().st_size > 1000, output
