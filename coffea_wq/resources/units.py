"""Names, units and decimals of measured resources, as CCTools' resource_monitor writes them.

Every resource in a summary is ``[number, "unit"]``; the number is a JSON integer when the resource
has 0 decimals and a float rounded to that many places otherwise (CCTools rmsummary's table).
"""

from __future__ import annotations

from dataclasses import dataclass

from coffea_wq.resources.rmon.limits import RESOURCE_TABLE, number_with_decimals


@dataclass(frozen=True)
class ResourceField:
    """One row of the resource table: its name, its unit and how many decimals it is written with."""

    name: str
    unit: str
    decimals: int


# In the order resource_monitor writes them in a summary (the table lives with the shippable monitor).
RESOURCE_FIELDS: tuple[ResourceField, ...] = tuple(
    ResourceField(name, unit, decimals) for name, (unit, decimals) in RESOURCE_TABLE.items()
)

FIELDS_BY_NAME: dict[str, ResourceField] = {f.name: f for f in RESOURCE_FIELDS}

# Resources a task can be limited by (``-L "name: value"``), beyond the table above.
LIMIT_ONLY_NAMES = ("wall_time", "end")


def unit_of(name: str) -> str:
    """The unit resource_monitor writes for ``name`` ("" for an unknown resource)."""
    field = FIELDS_BY_NAME.get(name)
    return field.unit if field else ""


def json_number(name: str, value: float) -> int | float:
    """``value`` as resource_monitor writes it: truncated to an int for 0-decimal resources,
    otherwise rounded half up to the resource's decimals.

    Example: ``json_number("memory", 207.6) == 207``; ``json_number("cores", 0.1235) == 0.124``.
    """
    field = FIELDS_BY_NAME.get(name)
    return number_with_decimals(value, field.decimals if field else 3)


def resource_to_str(name: str, value: float) -> str:
    """A value as text without its unit, the way CCTools prints it in status records.

    Example: ``resource_to_str("cores", 1) == "1.000"``; ``resource_to_str("memory", 250) == "250"``.
    """
    field = FIELDS_BY_NAME.get(name)
    decimals = field.decimals if field else 0
    return f"{value:.{decimals}f}"


def as_json_pair(name: str, value: float) -> list[int | float | str]:
    """``[number, "unit"]`` for a summary or a transactions-log record."""
    return [json_number(name, value), unit_of(name)]
