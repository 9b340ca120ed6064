"""Task categories: per-category limits, measured statistics and automatic labeling.

Theory of operation (CCTools' category.c, re-stated):

* Every task belongs to a category ("default" unless told). A category has a maximum and a minimum
  allocation (user limits), an allocation mode, and statistics of what its tasks really used.
* A task is first tried with the FIRST label. In FIXED mode that is simply what the user declared.
  In the automatic modes, once the category has seen ``steady_n_tasks`` normal completions, the
  FIRST allocation is computed from the histograms of measured peaks (see histogram.py).
* A task that exhausts its FIRST allocation is retried once with the MAX label: the category maximum,
  or the whole worker for what is undeclared. Exhausting that too (or exceeding what the user
  explicitly declared, or running in FIXED mode) gives ERROR: a permanent failure.
* A new peak above everything seen (outside steady state) discards the first allocation, so the
  statistics start over rather than under-size tasks.

Pure Python, no I/O: the manager owns the categories and calls these methods.
"""

from __future__ import annotations

import enum
import logging
import math
from dataclasses import dataclass, field

from coffea_wq.resources.allocation import AllocationMode
from coffea_wq.resources.histogram import (
    DEFAULT_BUCKET_SIZES,
    Histogram,
    first_allocation_max_seen,
    first_allocation_max_throughput,
    first_allocation_min_waste,
)
from coffea_wq.resources.types import RESOURCE_NAMES, Resources
from coffea_wq.resources.units import resource_to_str

log = logging.getLogger(__name__)

# Resources whose measured peaks are kept in histograms (CCTools' labeled resources).
LABELED_RESOURCES = ("cores", "gpus", "memory", "disk")
# Of those, the ones sized automatically in the non-FIXED modes (never gpus, like CCTools).
AUTOLABELED_RESOURCES = ("cores", "memory", "disk")
DEFAULT_STEADY_N_TASKS = 25
# Names used for coffea's task categories; any other name works too.
COFFEA_CATEGORIES = ("preprocessing", "processing", "accumulating", "default")


class RequestLabel(enum.Enum):
    """Which allocation a task asks for on this attempt (CCTools' numbers)."""

    FIRST = 0
    MAX = 1
    ERROR = 2

    @property
    def log_name(self) -> str:
        """As in the transactions log: FIRST_RESOURCES, MAX_RESOURCES or ERROR_RESOURCES."""
        return f"{self.name}_RESOURCES"


def _value(resources: Resources | None, name: str) -> float:
    """A field as CCTools keeps it: -1 when unset."""
    if resources is None:
        return -1.0
    value = getattr(resources, name)
    return -1.0 if value is None else float(value)


def _override(base: dict[str, float | None], over: Resources | None, names=RESOURCE_NAMES) -> None:
    """Replace ``base`` fields with the fields ``over`` declares."""
    if over is None:
        return
    for name in names:
        value = getattr(over, name)
        if value is not None and value >= 0:
            base[name] = float(value)


def _as_resources(values: dict[str, float | None]) -> Resources:
    return Resources(**{name: values.get(name) for name in RESOURCE_NAMES})


def measured_number(measured: dict | None, name: str) -> float:
    """A measured value as a float, or -1 when missing or not a number.

    Accepts plain numbers and resource_monitor's ``[value, "unit"]`` pairs, so a summary parsed
    from JSON can be passed as is. Example: ``measured_number({"memory": [208, "MB"]}, "memory") == 208``.
    """
    if not measured:
        return -1.0
    value = measured.get(name)
    if isinstance(value, (list, tuple)) and value:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return -1.0
    return float(value)


@dataclass
class Category:
    """One category's limits, mode and statistics.

    Example::

        >>> c = Category("processing", mode=AllocationMode.MAX, steady_n_tasks=2)
        >>> for peak in (90, 110):
        ...     _ = c.accumulate({"cores": 1, "memory": peak, "disk": 5}, "normal", wall_time_s=1)
        >>> c.first_allocation
        Resources(cores=1.0, memory=250.0, disk=250.0, gpus=None)
        >>> c.task_max_resources(Resources(), RequestLabel.FIRST, Resources(cores=4, memory=1000, disk=1000))
        Resources(cores=1.0, memory=250.0, disk=250.0, gpus=None)
    """

    name: str
    mode: AllocationMode = AllocationMode.FIXED
    max_allocation: Resources = field(default_factory=Resources)
    min_allocation: Resources = field(default_factory=Resources)
    first_allocation: Resources | None = None
    max_resources_seen: Resources = field(default_factory=Resources)
    steady_state: bool = False
    histograms: dict[str, Histogram] = field(default_factory=dict)
    steady_n_tasks: int = DEFAULT_STEADY_N_TASKS
    completions_since_last_reset: int = 0
    total_tasks: int = 0
    # Largest value by which each resource was exceeded (from limits_exceeded), for status strings.
    limits_exceeded_seen: dict[str, float] = field(default_factory=dict)
    # at most this many of the category's tasks on workers at once (< 0: no limit; CCTools 8)
    max_concurrent: int = -1

    def __post_init__(self) -> None:
        self.mode = AllocationMode.parse(self.mode)
        for name in LABELED_RESOURCES:
            self.histograms.setdefault(name, Histogram(DEFAULT_BUCKET_SIZES[name]))

    @property
    def autolabeled(self) -> tuple[str, ...]:
        """The resources this category sizes from measurements (none in FIXED mode)."""
        return () if self.mode is AllocationMode.FIXED else AUTOLABELED_RESOURCES

    @property
    def _automatic(self) -> bool:
        return self.mode is not AllocationMode.FIXED

    # --- what a task is tried with ---------------------------------------------------------------

    def task_max_resources(
        self, user: Resources, label: RequestLabel, max_worker: Resources | None = None
    ) -> Resources:
        """The most a task may use on this attempt (before completing it to a box on a worker).

        Args:
            user: what the task itself declared (``None`` fields undeclared).
            label: FIRST on the first attempt, MAX on the retry after an exhaustion.
            max_worker: the largest connected worker; not needed for the maximum (kept for symmetry
                with ``task_min_resources``).

        In steady state of an automatic mode, a FIRST attempt gets the largest peaks seen, replaced by
        the category maximum, replaced by the first allocation; the user's own values always win.
        A MAX attempt gets the category maximum (undeclared fields: the whole worker, later).
        """
        values: dict[str, float | None] = {}
        first_try = label is RequestLabel.FIRST
        if self.steady_state and self._automatic and first_try:
            _override(values, self.max_resources_seen, LABELED_RESOURCES)
        _override(values, self.max_allocation)
        if self.steady_state and self._automatic and first_try:
            _override(values, self.first_allocation)
        _override(values, user)
        return _as_resources(values)

    def task_min_resources(
        self, user: Resources, label: RequestLabel, max_worker: Resources | None = None
    ) -> Resources:
        """The least a task is given: its maximum, else the peaks seen, never below the category minimum.

        For a FIRST attempt whose minimum exceeds the largest connected worker in some resource, the
        worker's values are used instead, so that one outlier does not leave tasks unable to run.
        """
        minimum = self._min_resources(user, label)
        if label is not RequestLabel.FIRST or max_worker is None:
            return minimum
        if any(0 < _value(max_worker, n) < _value(minimum, n) for n in RESOURCE_NAMES):
            values: dict[str, float | None] = {}
            _override(values, max_worker)
            _override(values, user)
            minimum = self._min_resources(_as_resources(values), label)
        return minimum

    def _min_resources(self, user: Resources, label: RequestLabel) -> Resources:
        values: dict[str, float | None] = {}
        if self._automatic:
            _override(values, self.max_resources_seen, LABELED_RESOURCES)
        _override(values, self.task_max_resources(user, label))
        for name in RESOURCE_NAMES:
            floor = _value(self.min_allocation, name)
            if floor >= 0:
                current = values.get(name)
                values[name] = floor if current is None else max(current, floor)
        return _as_resources(values)

    def next_label(
        self, label: RequestLabel, user: Resources, measured: dict[str, float] | None
    ) -> RequestLabel:
        """The label after an exhaustion: MAX for a retry, or ERROR for a permanent failure.

        ERROR in FIXED mode, after an exhaustion at MAX already, or when a measured peak is above
        what the user declared for the task (or, where the task declares nothing, the category max):
        a bigger box could not be given.
        """
        if not self._automatic or label is not RequestLabel.FIRST:
            return RequestLabel.ERROR
        for name in LABELED_RESOURCES:
            limit = _value(user, name)
            if limit < 0:
                limit = _value(self.max_allocation, name)
            if limit > -1 and measured_number(measured, name) > limit:
                return RequestLabel.ERROR
        return RequestLabel.MAX

    # --- learning from completed tasks -----------------------------------------------------------

    def accumulate(
        self,
        measured: dict[str, float] | None,
        exit_type: str | None,
        wall_time_s: float,
        max_worker: Resources | None = None,
        limits_exceeded: dict[str, float] | None = None,
    ) -> bool:
        """Add one finished task's measured peaks; True when the first allocation changed.

        Args:
            measured: peaks by resource name (numbers or ``[value, unit]``); None or missing keys
                when the task was not measured (then nothing is learnt).
            exit_type: the monitor's exit type: "normal" (or None) for a task that completed, which
                is the only kind that enters the histograms; "limits" or "signal" otherwise.
            wall_time_s: the task's wall time in seconds.
            max_worker: the largest connected worker, used as the ceiling of the first allocation.
            limits_exceeded: the monitor's ``limits_exceeded`` for an exhausted task.
        """
        if not measured:
            return False
        changed = False
        if not self.steady_state and self._is_new_maximum(measured):
            self.first_allocation = None
            self.completions_since_last_reset = 0
            changed = True
        self.steady_state = self.completions_since_last_reset >= self.steady_n_tasks
        self._raise_max_seen(measured)
        self._record_exceeded(limits_exceeded)
        if exit_type not in (None, "normal"):
            return changed
        for name in LABELED_RESOURCES:
            self.histograms[name].insert(measured_number(measured, name), wall_time_s)
        self.completions_since_last_reset += 1
        self.total_tasks += 1
        if self.steady_n_tasks > 0 and self.completions_since_last_reset % self.steady_n_tasks == 0:
            changed |= self.update_first_allocation(max_worker)
        # Refreshed here too (CCTools only does it on the next completion), so that the allocation
        # just computed is used from the very next task on.
        self.steady_state = self.completions_since_last_reset >= self.steady_n_tasks
        return changed

    def _is_new_maximum(self, measured: dict) -> bool:
        for name in LABELED_RESOURCES:
            if _value(self.max_allocation, name) > 0:
                continue  # an explicit maximum: peaks above what we saw cannot matter
            h = self.histograms[name]
            if measured_number(measured, name) > h.round_up(h.max_value):
                return True
        return False

    def _raise_max_seen(self, measured: dict) -> None:
        values = {n: getattr(self.max_resources_seen, n) for n in RESOURCE_NAMES}
        for name in LABELED_RESOURCES:
            value = measured_number(measured, name)
            if value >= 0:
                values[name] = max(value, _value(self.max_resources_seen, name))
        self.max_resources_seen = _as_resources(values)

    def _record_exceeded(self, limits_exceeded: dict | None) -> None:
        for name in LABELED_RESOURCES:
            value = measured_number(limits_exceeded, name)
            if value >= 0:
                self.limits_exceeded_seen[name] = max(value, self.limits_exceeded_seen.get(name, -1))

    def set_first_allocation_guess(self, guess: Resources) -> None:
        """CCTools' first-allocation guess: used from the very next task, as if the category were
        already in steady state; the first measured completion (with monitoring) ends that steady
        state as usual, and the histograms take over after ``steady_n_tasks`` completions.

        Example::

            >>> c = Category("auto", mode=AllocationMode.MIN_WASTE)
            >>> c.set_first_allocation_guess(Resources(cores=1, memory=2, disk=3))
            >>> c.task_max_resources(Resources(), RequestLabel.FIRST)
            Resources(cores=1.0, memory=2.0, disk=3.0, gpus=None)
        """
        self.steady_state = True
        seen = {name: getattr(self.max_resources_seen, name) for name in RESOURCE_NAMES}
        for name in RESOURCE_NAMES:
            value = _value(guess, name)
            if value >= 0:
                seen[name] = max(value, _value(self.max_resources_seen, name))
        self.max_resources_seen = _as_resources(seen)
        self.first_allocation = _as_resources({name: getattr(guess, name) for name in RESOURCE_NAMES})

    def update_first_allocation(self, max_worker: Resources | None = None) -> bool:
        """Recompute the first allocation from the histograms; False in FIXED mode or with no data."""
        if not self._automatic or self.total_tasks < 1:
            return False
        top: dict[str, float | None] = {}
        _override(top, max_worker)
        _override(top, self.max_resources_seen)
        _override(top, self.max_allocation)
        values = {
            n: getattr(self.first_allocation, n) if self.first_allocation else None for n in RESOURCE_NAMES
        }
        for name in self.autolabeled:
            value = self._first_allocation_of(name, top, max_worker)
            if value is not None:
                # Never below one bucket: 0 would read as "undeclared", i.e. the whole worker.
                values[name] = float(max(value, self.histograms[name].bucket_size))
        for name in RESOURCE_NAMES:
            floor = _value(self.min_allocation, name)
            if floor >= 0:
                current = values.get(name)
                values[name] = floor if current is None else max(current, floor)
        self.first_allocation = _as_resources(values)
        log.debug(
            "category %s: first allocation %s (mode %s)", self.name, self.first_allocation, self.mode.name
        )
        return True

    def _first_allocation_of(
        self, name: str, top: dict[str, float | None], max_worker: Resources | None
    ) -> float | None:
        h = self.histograms[name]
        top_value = top.get(name)
        top_value = -1.0 if top_value is None else top_value
        if self.mode is AllocationMode.MIN_WASTE:
            return first_allocation_min_waste(h, top_value)
        if self.mode is AllocationMode.MAX_THROUGHPUT:
            return first_allocation_max_throughput(h, top_value)
        if self.mode is AllocationMode.MAX:
            return first_allocation_max_seen(
                h, top_value, _value(max_worker, name), _value(self.max_allocation, name)
            )
        return top_value if top_value >= 0 else None

    # --- reporting -------------------------------------------------------------------------------

    def max_strings(self, largest_declared: Resources | None = None) -> dict[str, str | int]:
        """The category's maxima as work_queue_status and the catalog show them.

        ``max_<r>`` is ``"n"`` for the largest value a task declared (``largest_declared``),
        ``">n"`` when a task exceeded ``n`` before steady state, or ``"~n"`` for the largest peak
        measured; absent when nothing is known. ``first_<r>`` (integers, as CCTools sends them) are
        there once a first allocation was computed.

        Example::

            >>> Category("default").max_strings(Resources(cores=1, memory=100))
            {'max_cores': '1.000', 'max_memory': '100'}
        """
        out: dict[str, str | int] = {}
        for name in ("cores", "memory", "disk"):
            declared = _value(largest_declared, name)
            seen = _value(self.max_resources_seen, name)
            exceeded = self.limits_exceeded_seen.get(name, -1)
            if declared > -1:
                out[f"max_{name}"] = resource_to_str(name, declared)
            elif not self.steady_state and exceeded > -1 and seen > -1:
                out[f"max_{name}"] = ">" + resource_to_str(name, seen - 1)
            elif seen > -1:
                out[f"max_{name}"] = "~" + resource_to_str(name, seen)
        if self.first_allocation is not None:
            for name in ("cores", "memory", "disk"):
                value = _value(self.first_allocation, name)
                if value > -1:
                    out[f"first_{name}"] = int(value)
        return out
