"""The per-task report that ``verbose=True`` prints, worded as coffea's Work Queue executor did.

::

    Task (id #7) complete: python3 fn_wrapper.py ... (return code 0)
        Allocated cores: 1, memory: 2000 MB, disk: 3000 MB, gpus: 0
        Measured cores: 0.98, memory: 312 MB, disk 12 MB, gpus: 0, runtime 4.21 s

(``disk`` without a colon in the measured line is coffea's wording, kept for users' greps.)
"""

from __future__ import annotations

from collections.abc import Mapping


def _number(value: object) -> str:
    """Integers without a fraction, other numbers with up to 3 decimals, unknown as ``-``."""
    if value is None or isinstance(value, bool):
        return "-"
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)
    if number < 0:
        return "-"
    if number.is_integer():
        return str(int(number))
    return f"{number:.3f}".rstrip("0").rstrip(".")


def task_complete_line(task_id: int, command: str, return_code: int | None) -> str:
    """``Task (id #N) complete: CMD (return code C)``.

    Example:
        >>> task_complete_line(3, "echo hi", 0)
        'Task (id #3) complete: echo hi (return code 0)'
    """
    code = "-" if return_code is None else str(return_code)
    return f"Task (id #{task_id}) complete: {command} (return code {code})"


def allocated_line(resources: Mapping[str, object]) -> str:
    """``Allocated cores: ..., memory: ... MB, disk: ... MB, gpus: ...`` (memory and disk in MB).

    Example:
        >>> allocated_line({"cores": 1, "memory": 2000, "disk": 3000, "gpus": 0})
        'Allocated cores: 1, memory: 2000 MB, disk: 3000 MB, gpus: 0'
    """
    r = resources
    return (
        f"Allocated cores: {_number(r.get('cores'))}, memory: {_number(r.get('memory'))} MB, "
        f"disk: {_number(r.get('disk'))} MB, gpus: {_number(r.get('gpus'))}"
    )


def measured_line(resources: Mapping[str, object], runtime_s: float | None) -> str:
    """``Measured cores: ..., memory: ... MB, disk ... MB, gpus: ..., runtime ... s``.

    Example:
        >>> measured_line({"cores": 0.98, "memory": 312, "disk": 12, "gpus": 0}, 4.2134)
        'Measured cores: 0.98, memory: 312 MB, disk 12 MB, gpus: 0, runtime 4.213 s'
    """
    r = resources
    runtime = "-" if runtime_s is None else f"{_number(runtime_s)} s"
    return (
        f"Measured cores: {_number(r.get('cores'))}, memory: {_number(r.get('memory'))} MB, "
        f"disk {_number(r.get('disk'))} MB, gpus: {_number(r.get('gpus'))}, runtime {runtime}"
    )


def task_report_lines(
    task_id: int,
    command: str,
    return_code: int | None,
    allocated: Mapping[str, object],
    measured: Mapping[str, object] | None = None,
    runtime_s: float | None = None,
) -> list[str]:
    """The whole verbose report of one finished task; the measured line only when measured.

    Example:
        >>> print("\\n".join(task_report_lines(1, "true", 0, {"cores": 1, "memory": 10, "disk": 10})))
        Task (id #1) complete: true (return code 0)
            Allocated cores: 1, memory: 10 MB, disk: 10 MB, gpus: -
    """
    lines = [task_complete_line(task_id, command, return_code), "    " + allocated_line(allocated)]
    if measured:
        lines.append("    " + measured_line(measured, runtime_s))
    return lines
