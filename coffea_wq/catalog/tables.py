"""The tables ``work_queue_status`` prints, column for column (CCTools' jx_table).

Each column has a key, a title, a mode, an alignment and a width; a negative width is a minimum
that grows to share the terminal's spare columns. Columns that do not fit the terminal width
(``COLUMNS``, else the terminal, else 80) are dropped from the right, with CCTools' exact rule,
so the output matches the real tool's byte for byte. Missing values print ``???``.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from enum import Enum


class Mode(Enum):
    PLAIN = "plain"
    GIGABYTES = "gigabytes"  # a value in MB shown as whole GB


class Align(Enum):
    LEFT = "left"
    RIGHT = "right"


@dataclass(frozen=True)
class Column:
    key: str
    title: str
    align: Align
    width: int
    mode: Mode = Mode.PLAIN


L, R = Align.LEFT, Align.RIGHT
QUEUE = (
    Column("project", "PROJECT", L, -18), Column("name", "HOST", L, -21), Column("port", "PORT", R, 5),
    Column("tasks_waiting", "WAITING", R, 7), Column("tasks_running", "RUNNING", R, 7),
    Column("tasks_complete", "COMPLETE", R, 8), Column("workers", "WORKERS", R, 7),
)  # fmt: skip
TASKS = (
    Column("taskid", "ID", L, 4), Column("state", "STATE", L, 8), Column("priority", "PRIORITY", R, 8),
    Column("host", "HOST", L, -10), Column("command", "COMMAND", L, -18), Column("cores", "CORES", L, 8),
    Column("memory", "MEMORY", L, 8), Column("disk", "DISK", L, 8), Column("gpus", "GPUS", L, 8),
)  # fmt: skip
WORKERS = (
    Column("hostname", "HOST", L, -10), Column("address_port", "ADDRESS", L, -15),
    Column("total_tasks_complete", "COMPLETED", R, 9), Column("total_tasks_running", "RUNNING", L, 7),
    Column("cores_inuse", "CORE_USE", L, -6), Column("cores_total", "CORE_ALL", L, -6),
    Column("memory_inuse", "MEM_USE", L, -5), Column("memory_total", "MEM_ALL", L, -5),
    Column("disk_inuse", "DISK_USE", L, -6), Column("disk_total", "DISK_ALL", L, -6),
    Column("gpus_inuse", "GPUS_USE", L, -6), Column("gpus_total", "GPUS_ALL", L, -6),
)  # fmt: skip
CATEGORIES = (
    Column("category", "CATEGORY", L, -12), Column("tasks_on_workers", "DISPATCHED", R, 10),
    Column("tasks_waiting", "WAITING", R, 10), Column("workers_able", "FIT-WORKERS", R, 12),
    Column("max_cores", "MAX-CORES", R, 10), Column("max_memory", "MAX-MEMORY", R, 10),
    Column("max_disk", "MAX-DISK", R, 10),
)  # fmt: skip
RESOURCES = (
    Column("project", "MANAGER", L, -19), Column("cores_total", "CORES", R, 6), Column("cores_inuse", "INUSE", R, 6),
    Column("memory_total", "MEM(GB)", R, 8, Mode.GIGABYTES), Column("memory_inuse", "INUSE", R, 8, Mode.GIGABYTES),
    Column("disk_total", "DISK(GB)", R, 9, Mode.GIGABYTES), Column("disk_inuse", "INUSE", R, 9, Mode.GIGABYTES),
)  # fmt: skip
CAPACITY = (
    Column("project", "MANAGER", L, 30), Column("capacity_tasks", "TASKS", L, 10),
    Column("capacity_cores", "CORES", L, 10), Column("capacity_memory", "MEMORY", L, 15),
    Column("capacity_disk", "DISK", L, 20),
)  # fmt: skip


def terminal_columns() -> int:
    """``COLUMNS`` if set (>= 10), else the terminal's width, else 80 (as work_queue_status)."""
    text = os.environ.get("COLUMNS")
    if text is not None:
        try:
            value = int(text)
        except ValueError:
            value = 0
        return value if value >= 10 else 80
    try:
        width = os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 80
    return width if width >= 10 else 80


def _budget(columns: tuple[Column, ...], max_width: int) -> tuple[int, int]:
    total = sum(abs(c.width) + 1 for c in columns)
    growing = sum(1 for c in columns if c.width < 0)
    extra = max(0, max_width - total) // growing if growing else 0
    return (min(total, max_width) if max_width > 0 else total), extra


def _fill(text: str, column: Column, extra: int) -> str:
    width = abs(column.width) + extra if column.width < 0 else column.width
    text = text[:width] if column.align is Align.LEFT else text[max(0, len(text) - width) :]
    return text.ljust(width) if column.align is Align.LEFT else text.rjust(width)


def format_value(value: object, mode: Mode = Mode.PLAIN, found: bool = True) -> str:
    """A value as jx prints it: strings raw, numbers plainly (doubles ``%.16g``), ``???`` if absent."""
    if mode is Mode.GIGABYTES:
        number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0
        return f"{int(number) / 1024:.1f}".split(".")[0]
    if not found:
        return "???"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format(value, ".16g")
    if value is None:
        return "null"
    return json.dumps(value, separators=(",", ":"))


def _line(cells: list[str]) -> str:
    return "".join(cell + " " for cell in cells) + "\n"


def _visible(columns: tuple[Column, ...], max_width: int) -> list[tuple[Column, int]]:
    """The columns that fit, each with its extra width (CCTools' off-by-one rule kept)."""
    left, extra = _budget(columns, max_width)
    shown = []
    for index, column in enumerate(columns):
        if left >= 1 and column.width != 0:
            shown.append((column, extra))
        if index + 1 < len(columns):
            left -= abs(columns[index + 1].width) + 1
    return shown


def format_header(columns: tuple[Column, ...], max_width: int = 80) -> str:
    return _line([_fill(c.title.upper(), c, extra) for c, extra in _visible(columns, max_width)])


def format_row(columns: tuple[Column, ...], row: dict, max_width: int = 80) -> str:
    cells = []
    for column, extra in _visible(columns, max_width):
        text = format_value(row.get(column.key), column.mode, column.key in row)
        cells.append(_fill(text, column, extra))
    return _line(cells)


def format_table(columns: tuple[Column, ...], rows: list[dict], max_width: int | None = None) -> str:
    """Header and rows, as ``work_queue_status`` prints them.

    Example:
        >>> print(format_table(QUEUE, [{"project": "p", "name": "h", "port": 1}]), end="")
        PROJECT            HOST                   PORT WAITING RUNNING COMPLETE WORKERS 
        p                  h                         1     ???     ???      ???     ??? 
    """  # noqa: W291
    width = terminal_columns() if max_width is None else max_width
    return format_header(columns, width) + "".join(format_row(columns, r, width) for r in rows)
