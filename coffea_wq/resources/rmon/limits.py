"""Resource names, units and decimals as resource_monitor writes them, and parsing ``-L`` limits."""

from __future__ import annotations

import math

MONITOR_VERSION = "coffea-wq-monitor 1"
RM_SUCCESS, RM_TASK_ERROR, RM_OVERFLOW, RM_TIME_EXPIRE, RM_MONITOR_ERROR = 0, 1, 2, 3, 4

# resource -> (unit, decimals), in the order resource_monitor writes them.
RESOURCE_TABLE: dict[str, tuple[str, int]] = {
    "start": ("s", 6), "end": ("s", 6), "wall_time": ("s", 6), "cpu_time": ("s", 6),
    "memory": ("MB", 0), "virtual_memory": ("MB", 0), "swap_memory": ("MB", 0), "disk": ("MB", 0),
    "bytes_read": ("MB", 0), "bytes_written": ("MB", 0), "bytes_received": ("MB", 0),
    "bytes_sent": ("MB", 0), "bandwidth": ("Mbps", 3), "gpus": ("gpus", 0), "cores": ("cores", 3),
    "cores_avg": ("cores", 3), "machine_cpus": ("cores", 3), "machine_load": ("procs", 0),
    "context_switches": ("switches", 0), "max_concurrent_processes": ("procs", 0),
    "total_processes": ("procs", 0), "total_files": ("files", 0), "fs_nodes": ("nodes", 0),
    "workers": ("workers", 0),
}  # fmt: skip
# Size suffixes accepted in limits for MB resources.
_MB_FACTORS = {"": 1.0, "mb": 1.0, "m": 1.0, "kb": 1 / 1024, "k": 1 / 1024, "gb": 1024.0, "g": 1024.0}
# Time suffixes accepted in limits for s resources.
_S_FACTORS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
# resource_monitor forgives a quarter of a core: short bursts above the declared cores are normal.
CORES_FORGIVENESS = 0.25


class LimitError(ValueError):
    """A limit string that cannot be understood; the message names the culprit."""


def number_with_decimals(value: float, decimals: int) -> int | float:
    """CCTools' number format: ``decimals == 0`` truncates to an int, otherwise rounds half up."""
    if decimals == 0:
        return int(value)
    factor = 10**decimals
    return math.floor(value * factor + 0.5) / factor


def json_pair(name: str, value: float) -> list:
    """``[number, "unit"]`` for one resource, e.g. ``json_pair("memory", 208.7) == [208, "MB"]``."""
    unit, decimals = RESOURCE_TABLE.get(name, ("", 3))
    return [compact_number(number_with_decimals(value, decimals)), unit]


def compact_number(value: int | float) -> int | float:
    """Whole floats as ints (``2.0`` -> ``2``), as CCTools' JSON printer writes them."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    return value


def parse_limits(texts: list[str] | tuple[str, ...], origin: str = "-L") -> dict[str, float]:
    """Parse ``"memory: 100, cores: 2"`` strings (each may hold several, comma-separated).

    Memory-like values accept MB/GB/KB suffixes and times s/m/h. Example::

        >>> parse_limits(["memory: 1 GB", "cores: 2, wall_time: 10"])
        {'memory': 1024.0, 'cores': 2.0, 'wall_time': 10.0}
    """
    limits: dict[str, float] = {}
    for text in texts:
        for item in text.replace("\n", ",").split(","):
            item = item.strip()
            if not item or item.startswith("#"):
                continue
            name, sep, value = item.partition(":")
            name = name.strip()
            if not sep or name not in RESOURCE_TABLE:
                known = ", ".join(sorted(RESOURCE_TABLE))
                raise LimitError(
                    f"{origin}: cannot read limit {item!r}: expected 'NAME: VALUE' with NAME one of {known}"
                )
            limits[name] = _limit_value(name, value.strip(), origin)
    return limits


def _limit_value(name: str, text: str, origin: str) -> float:
    unit = RESOURCE_TABLE[name][0]
    digits = text.rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ ")
    suffix = text[len(digits) :].strip().lower()
    factors = _MB_FACTORS if unit == "MB" else _S_FACTORS if unit == "s" else {"": 1.0, unit.lower(): 1.0}
    try:
        value = float(digits)
    except ValueError:
        raise LimitError(f"{origin}: limit for {name!r} is not a number: {text!r}") from None
    if suffix not in factors:
        raise LimitError(f"{origin}: unknown unit {suffix!r} in the limit for {name!r} (use {unit})")
    return value * factors[suffix]
