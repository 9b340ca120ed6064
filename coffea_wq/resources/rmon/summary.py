"""The summary of one monitored run, in resource_monitor's JSON shape, and reading it back.

Written: ``{"task_id":"7", ..., "command":..., "exit_status":0, "exit_type":"normal",
"start":[1795599846.488355,"s"], ..., "memory":[208,"MB"], ..., "peak_times":{...}}``; with a broken
limit ``"exit_type":"limits","limits_exceeded":{"memory":[50,"MB"]}`` (the limit, not the peak).
Reading accepts ours and CCTools' (pretty-printed or not); units are not checked, like CCTools.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field

from .limits import MONITOR_VERSION, RESOURCE_TABLE, compact_number, json_pair, number_with_decimals

# Keys that are neither resources nor the fixed fields: the -V ones, kept as strings.
_FIXED_KEYS = ("executable_type", "monitor_version", "host", "command", "exit_status", "exit_type",
               "signal", "limits_exceeded", "last_error", "peak_times", "snapshots")  # fmt: skip


class SummaryError(ValueError):
    """A summary that cannot be read; the message names the file."""


@dataclass
class Summary:
    """What a monitored command used, and how it ended.

    ``resources`` maps resource names (see ``RESOURCE_TABLE``) to numbers in their units (MB, s, ...);
    ``limits_exceeded`` maps each broken resource to its *limit*. ``exit_type`` is "normal",
    "signal" (then ``signal`` is set) or "limits".

    Example::

        >>> s = Summary(command="sleep 1", resources={"memory": 3.7, "wall_time": 1.0094871})
        >>> s.to_json()
        '{"executable_type":"dynamic","monitor_version":"coffea-wq-monitor 1","host":...}'  # doctest: +SKIP
        >>> Summary.from_json(s.to_json()).resources["memory"]
        3
    """

    command: str = ""
    exit_status: int = 0
    exit_type: str = "normal"
    signal: int | None = None
    limits_exceeded: dict[str, float] = field(default_factory=dict)
    resources: dict[str, float] = field(default_factory=dict)
    peak_times: dict[str, float] = field(default_factory=dict)
    verbatim: dict[str, str] = field(default_factory=dict)
    host: str = field(default_factory=socket.gethostname)
    monitor_version: str = MONITOR_VERSION
    executable_type: str = "dynamic"
    last_error: int | None = None
    # Not part of the JSON: the monitor's own exit code (0 ok, 1 task error, 2 limits, 4 monitor error).
    monitor_exit_code: int = 0

    # --- writing ---------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The JSON object, with keys in resource_monitor's order."""
        out: dict = dict(self.verbatim)
        out["executable_type"] = self.executable_type
        out["monitor_version"] = self.monitor_version
        out["host"] = self.host
        out["command"] = self.command
        out["exit_status"] = int(self.exit_status)
        out["exit_type"] = self.exit_type
        if self.signal is not None and self.exit_type == "signal":
            out["signal"] = int(self.signal)
        if self.limits_exceeded:
            out["limits_exceeded"] = {k: json_pair(k, v) for k, v in self.limits_exceeded.items()}
        if self.last_error is not None:
            out["last_error"] = self.last_error
        for name in RESOURCE_TABLE:
            if name in self.resources and self.resources[name] is not None:
                out[name] = json_pair(name, self.resources[name])
        if self.peak_times:
            names = [n for n in reversed(RESOURCE_TABLE) if n in self.peak_times]
            out["peak_times"] = {
                n: [compact_number(number_with_decimals(self.peak_times[n], 3)), "s"] for n in names
            }
        return out

    def to_json(self, pretty: bool = False) -> str:
        """One compact line (``--no-pprint``), or indented."""
        if pretty:
            return "\n" + json.dumps(self.to_dict(), indent=2) + "\n"
        return json.dumps(self.to_dict(), separators=(",", ":")) + "\n"

    def write(self, path: str, pretty: bool = False) -> None:
        with open(path, "w") as f:
            f.write(self.to_json(pretty))

    # --- reading ---------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict, origin: str = "summary") -> Summary:
        """Build from a parsed summary (ours or CCTools'); ``origin`` names it in errors."""
        if not isinstance(data, dict):
            raise SummaryError(f"{origin}: a summary is a JSON object, not {type(data).__name__}")
        try:
            exceeded = {
                k: _number(v, f"{origin}: limits_exceeded.{k}")
                for k, v in (data.get("limits_exceeded") or {}).items()
            }
            peaks = {
                k: _number(v, f"{origin}: peak_times.{k}") for k, v in (data.get("peak_times") or {}).items()
            }
            resources = {k: _number(v, f"{origin}: {k}") for k, v in data.items() if k in RESOURCE_TABLE}
            return cls(
                command=str(data.get("command", "")),
                exit_status=int(data.get("exit_status", 0)),
                exit_type=str(data.get("exit_type", "normal")),
                signal=int(data["signal"]) if "signal" in data else None,
                limits_exceeded=exceeded,
                resources=resources,
                peak_times=peaks,
                verbatim={
                    k: str(v) for k, v in data.items() if k not in RESOURCE_TABLE and k not in _FIXED_KEYS
                },
                host=str(data.get("host", "")),
                monitor_version=str(data.get("monitor_version", "")),
                executable_type=str(data.get("executable_type", "")),
                last_error=data.get("last_error"),
            )
        except (TypeError, ValueError) as err:
            if isinstance(err, SummaryError):
                raise
            raise SummaryError(f"{origin}: {err}") from None

    @classmethod
    def from_json(cls, text: str, origin: str = "summary") -> Summary:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise SummaryError(f"{origin}: not a JSON summary ({err})") from None
        return cls.from_dict(data, origin)

    @classmethod
    def read(cls, path: str) -> Summary:
        """Read a ``.summary`` file; ``SummaryError`` names the file when it is missing or malformed."""
        try:
            with open(path) as f:
                text = f.read()
        except OSError as err:
            raise SummaryError(f"{path}: cannot read the resource summary ({err.strerror})") from None
        return cls.from_json(text, origin=str(path))

    # --- for the manager and the worker ------------------------------------------------------------

    @property
    def exhausted(self) -> bool:
        """True when a limit was broken."""
        return self.exit_type == "limits" or bool(self.limits_exceeded)

    def measured(self) -> dict[str, float]:
        """The resources as plain numbers (what a task's ``resources_measured`` holds)."""
        return dict(self.resources)

    def exhaustion_message(self) -> str:
        """Which resources broke their limits, with the peak and the limit, for logs and errors.

        Example: ``"memory exceeded: peak 312 MB > limit 100 MB"``.
        """
        parts = []
        for name, limit in self.limits_exceeded.items():
            unit = RESOURCE_TABLE.get(name, ("", 3))[0]
            peak = self.resources.get(name)
            peak_text = f"{_fmt(name, peak)} {unit}" if peak is not None else "unmeasured"
            parts.append(f"{name} exceeded: peak {peak_text} > limit {_fmt(name, limit)} {unit}")
        return "; ".join(parts) if parts else "no limit exceeded"


def _fmt(name: str, value: float) -> str:
    decimals = RESOURCE_TABLE.get(name, ("", 3))[1]
    return f"{number_with_decimals(value, decimals):.{decimals}f}"  # as the JSON shows it


def _number(value, where: str) -> float:
    """CCTools writes ``[value, "unit"]``; older or hand-written summaries may hold a bare number."""
    if isinstance(value, (list, tuple)):
        if not value:
            raise SummaryError(f"{where}: empty value")
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SummaryError(f"{where}: expected a number, got {value!r}")
    return value
