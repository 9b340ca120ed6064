"""Allocation modes, the box a task gets on a worker, and whether that box fits.

This is CCTools Work Queue's sizing contract, re-stated in Python (pure functions, no I/O):

* ``task_box`` is the allocation a task is *sent* with: what it declared, with every undeclared
  resource completed to the whole worker (the whole-worker rule: a task that declares nothing takes
  the whole worker, and a task that declares only cores and memory takes the whole disk, so it runs
  alone). With ``proportional=True`` in FIXED mode (CCTools' ``proportional-resources`` tune, on by
  default in CCTools' manager, off in coffea-wq's executor) the undeclared resources get a
  proportional share instead: a task asking for 1 of 4 cores gets a quarter of the memory and disk
  too. With ``whole_tasks=True`` as well (``proportional-whole-tasks``) the share is first rounded
  so that a whole number of such tasks fills the worker (0.3 becomes 1/3). See docs/resources.md.
* ``fits`` says whether that box still fits next to what a worker already runs. Cores, memory and gpus
  may be overcommitted by a multiplier (default 1.0, i.e. not at all); disk never is.

Units: cores and gpus are counts, memory and disk are MB.
"""

from __future__ import annotations

import enum
import math

from coffea_wq.resources.types import RESOURCE_NAMES, Resources


class AllocationMode(enum.Enum):
    """How a category sizes its tasks' first allocation (CCTools category modes, same numbers)."""

    FIXED = 0
    MAX = 1
    MIN_WASTE = 2
    MAX_THROUGHPUT = 3

    @classmethod
    def parse(cls, text: str | AllocationMode) -> AllocationMode:
        """The mode named by ``text``: fixed, max (or max-seen), min-waste, max-throughput (or auto).

        ``auto`` means max-throughput (coffea 0.7 made it max-seen). Case, ``_`` and ``-`` do not matter.

        Example::

            >>> AllocationMode.parse("max-seen")
            <AllocationMode.MAX: 1>
            >>> AllocationMode.parse("auto")
            <AllocationMode.MAX_THROUGHPUT: 3>
        """
        if isinstance(text, AllocationMode):
            return text
        key = str(text).strip().lower().replace("_", "-")
        try:
            return _MODE_NAMES[key]
        except KeyError:
            known = ", ".join(sorted(_MODE_NAMES))
            raise ValueError(f"unknown resources mode {text!r}: expected one of {known}") from None

    @property
    def log_name(self) -> str:
        """The name CCTools writes in the transactions log (``CATEGORY name FIRST <MODE>``)."""
        return self.name


_MODE_NAMES: dict[str, AllocationMode] = {
    "fixed": AllocationMode.FIXED,
    "max": AllocationMode.MAX,
    "max-seen": AllocationMode.MAX,
    "min-waste": AllocationMode.MIN_WASTE,
    "max-throughput": AllocationMode.MAX_THROUGHPUT,
    "auto": AllocationMode.MAX_THROUGHPUT,
}


def _declared(value: float | None) -> float:
    """CCTools keeps "not declared" as -1; we keep it as None. Comparisons below need a number."""
    return -1.0 if value is None else float(value)


def _fixed_mode_share(limits: dict[str, float], largest: dict[str, float]) -> float:
    """The largest fraction of the worker any declared resource asks for (-1 if nothing declared)."""
    proportion = -1.0
    for name in RESOURCE_NAMES:
        if largest[name] > 0:
            proportion = max(proportion, limits[name] / largest[name])
    return proportion


def _fill_proportional_share(limits: dict[str, float], largest: dict[str, float], share: float) -> None:
    """Complete the undeclared resources with ``share`` of the worker (at least 1 core/MB)."""
    if limits["cores"] < 0:
        # A gpu task that did not ask for cores gets none, like CCTools.
        limits["cores"] = 0 if limits["gpus"] > 0 else max(1, math.floor(largest["cores"] * share))
    if limits["gpus"] < 0:
        limits["gpus"] = 0
    if limits["memory"] < 0:
        limits["memory"] = max(1, math.floor(largest["memory"] * share))
    if limits["disk"] < 0:
        limits["disk"] = max(1, math.floor(largest["disk"] * share))


def _fill_whole_worker(limits: dict[str, float], largest: dict[str, float]) -> None:
    if limits["cores"] <= 0:
        limits["cores"] = 0 if limits["gpus"] > 0 else largest["cores"]
    if limits["gpus"] <= 0:
        limits["gpus"] = 0
    if limits["memory"] <= 0:
        limits["memory"] = largest["memory"]
    if limits["disk"] <= 0:
        limits["disk"] = largest["disk"]


def _asks_for_whole_worker(limits: dict[str, float], largest: dict[str, float]) -> bool:
    """True when some declared resource is at least the worker's whole amount of it."""
    return any(limits[name] > 0 and limits[name] >= largest[name] for name in RESOURCE_NAMES)


def task_box(
    requested: Resources,
    worker_largest: Resources,
    mode: AllocationMode = AllocationMode.FIXED,
    minimum: Resources | None = None,
    proportional: bool = False,
    whole_tasks: bool = False,
) -> Resources:
    """The allocation (box) a task gets on a worker: CCTools' ``task_worker_box_size``.

    Args:
        requested: the task's maximum resources for this attempt (``Category.task_max_resources``;
            for a task outside any automatic mode simply what the user declared). ``None`` fields are
            undeclared.
        worker_largest: the worker's largest cores/memory/disk/gpus (its totals for a plain worker).
        mode: the task's category mode. Only FIXED gives a proportional share of the worker.
        minimum: never go below this (``Category.task_min_resources``); ``None`` for no minimum.
        proportional: in FIXED mode, give undeclared resources the same share of the worker as the
            largest declared one, instead of the whole worker. Declared amounts stay as declared.
        whole_tasks: with ``proportional``, round that share down to 1/n (n tasks fill the worker).

    Returns:
        A ``Resources`` with all four fields set.

    Example::

        >>> worker = Resources(cores=4, memory=8000, disk=4000, gpus=0)
        >>> task_box(Resources(cores=1, memory=1000, disk=500), worker)
        Resources(cores=1.0, memory=1000.0, disk=500.0, gpus=0.0)
        >>> task_box(Resources(cores=1), worker)
        Resources(cores=1.0, memory=8000.0, disk=4000.0, gpus=0.0)
        >>> task_box(Resources(cores=1), worker, proportional=True)
        Resources(cores=1.0, memory=2000.0, disk=1000.0, gpus=0.0)
        >>> task_box(Resources(memory=2400), worker, proportional=True)
        Resources(cores=1.0, memory=2400.0, disk=1200.0, gpus=0.0)
        >>> task_box(Resources(memory=2400), worker, proportional=True, whole_tasks=True)
        Resources(cores=1.0, memory=2400.0, disk=1333.0, gpus=0.0)
        >>> task_box(Resources(), worker)
        Resources(cores=4.0, memory=8000.0, disk=4000.0, gpus=0.0)
    """
    limits = {name: _declared(getattr(requested, name)) for name in RESOURCE_NAMES}
    largest = {name: max(0.0, _declared(getattr(worker_largest, name))) for name in RESOURCE_NAMES}

    whole_worker = True
    if proportional and mode is AllocationMode.FIXED:
        share = _fixed_mode_share(limits, largest)
        # above 1 the declared amounts do not fit this worker anyway: undeclared ones get it whole
        if 0 < share <= 1:
            whole_worker = False
            if whole_tasks:
                share = 1.0 / math.floor(1.0 / share + 1e-9)
            _fill_proportional_share(limits, largest, share)

    if all(limits[name] < 1 for name in RESOURCE_NAMES):
        whole_worker = True  # nothing declared: the whole worker
    if _asks_for_whole_worker(limits, largest):
        whole_worker = True
    if whole_worker:
        _fill_whole_worker(limits, largest)

    # Never below the minimum; anything still undeclared (a worker that reported nothing) is 0.
    if minimum is not None:
        for name in RESOURCE_NAMES:
            limits[name] = max(limits[name], _declared(getattr(minimum, name)))
    return Resources(**{name: float(max(0.0, limits[name])) for name in RESOURCE_NAMES})


def _capacity(total: float, overcommit: float) -> float:
    """How much of a resource may be committed on a worker; a worker without it has none."""
    if total <= 0:
        return 0.0
    return float(math.ceil(total * overcommit))


def fits(box: Resources, inuse: Resources, total: Resources, overcommit: float = 1.0) -> bool:
    """Whether a task's ``box`` fits on a worker that has ``inuse`` of its ``total`` committed.

    Cores, memory and gpus may use up to ``ceil(total * overcommit)``; disk is never overcommitted.
    ``None`` fields count as 0.

    Example::

        >>> total = Resources(cores=4, memory=1000, disk=1000, gpus=0)
        >>> fits(Resources(cores=1, memory=250, disk=250, gpus=0), Resources(cores=3, memory=750, disk=750), total)
        True
        >>> fits(Resources(cores=1, memory=250, disk=250, gpus=0), Resources(cores=4, memory=750, disk=750), total)
        False
    """
    for name in RESOURCE_NAMES:
        wanted = max(0.0, _declared(getattr(box, name)))
        used = max(0.0, _declared(getattr(inuse, name)))
        amount = max(0.0, _declared(getattr(total, name)))
        limit = amount if name == "disk" else _capacity(amount, overcommit)
        if used + wanted > limit + 1e-9:
            return False
    return True


def add_resources(a: Resources, b: Resources) -> Resources:
    """Field-wise sum; ``None`` counts as 0 (for summing the boxes a worker runs)."""
    return Resources(
        **{name: (getattr(a, name) or 0.0) + (getattr(b, name) or 0.0) for name in RESOURCE_NAMES}
    )


def subtract_resources(a: Resources, b: Resources) -> Resources:
    """Field-wise ``a - b``, never below 0; ``None`` counts as 0 (for releasing a finished box)."""
    return Resources(
        **{name: max(0.0, (getattr(a, name) or 0.0) - (getattr(b, name) or 0.0)) for name in RESOURCE_NAMES}
    )
