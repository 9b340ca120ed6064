"""Plain resource records shared by the manager, the worker and the monitor."""

from __future__ import annotations

from dataclasses import dataclass, replace

RESOURCE_NAMES = ("cores", "memory", "disk", "gpus")


@dataclass(frozen=True)
class Resources:
    """Cores (count, may be fractional), memory and disk (MB), gpus (count).

    ``None`` means "not declared": a task that leaves any of cores, memory or disk undeclared
    takes a whole worker (CCTools' rule).
    """

    cores: float | None = None
    memory: float | None = None
    disk: float | None = None
    gpus: float | None = None

    def as_dict(self) -> dict[str, float]:
        # spelled out: dataclasses.fields() costs more than the rest of a submit
        pairs = (("cores", self.cores), ("memory", self.memory), ("disk", self.disk), ("gpus", self.gpus))
        return {name: value for name, value in pairs if value is not None}

    def merged_over(self, base: Resources) -> Resources:
        """Our declared values, falling back to ``base`` for the undeclared ones."""
        return replace(base, **self.as_dict())

    @property
    def fully_declared(self) -> bool:
        return None not in (self.cores, self.memory, self.disk)
