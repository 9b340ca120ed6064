"""Categories, resource monitoring and fast abort of ``WorkQueue``."""

from __future__ import annotations

import logging

log = logging.getLogger("coffea_wq.work_queue")


class CategorySettings:
    """Methods of ``WorkQueue`` that configure task categories and monitoring (mixed into it; they call ``self._manager``)."""

    def specify_category_mode(self, category: str, mode) -> int:
        """Allocation mode of a category: WORK_QUEUE_ALLOCATION_MODE_FIXED/MAX/MIN_WASTE/MAX_THROUGHPUT."""
        from coffea_wq.resources.allocation import AllocationMode

        chosen = AllocationMode(int(mode)) if isinstance(mode, int) else AllocationMode.parse(mode)
        self._manager.set_category_mode(category, chosen)
        return 1

    def specify_category_max_resources(self, category: str, resources: dict) -> int:
        """The most any task of ``category`` may use, e.g. ``{"cores": 4, "memory": 2000}``."""
        return self._set_category_limit(category, "max_allocation", resources)

    def specify_category_min_resources(self, category: str, resources: dict) -> int:
        """The least any task of ``category`` is given."""
        return self._set_category_limit(category, "min_allocation", resources)

    def specify_category_first_allocation_guess(self, category: str, resources: dict) -> int:
        """The allocation tasks of ``category`` get in an automatic mode until measurements take over.

        As CCTools: the guess is used from the next task on (the category counts as sized), until
        the first measured completion; then tasks are sized from measurements as usual.
        """
        self._manager.set_first_allocation_guess(category, _as_resources(category, resources))
        return 1

    specify_category_first_resources = specify_category_first_allocation_guess

    def specify_max_resources(self, resources: dict) -> int:
        """The most a task of the ``default`` category may use (as CCTools)."""
        return self.specify_category_max_resources("default", resources)

    def specify_min_resources(self, resources: dict) -> int:
        """The least a task of the ``default`` category is given (as CCTools)."""
        return self.specify_category_min_resources("default", resources)

    def specify_category_autolabel_resource(self, category: str, resource: str, autolabel: bool) -> int:
        """Accepted; in an automatic mode coffea-wq sizes cores, memory and disk together (docs/manager.md)."""
        log.info("specify_category_autolabel_resource(%r, %r, %r) is not supported; ignored",
                 category, resource, autolabel)
        return 0

    def initialize_categories(self, filename: str, resources: dict | None = None) -> int:
        """Accepted; categories are not primed from a file of summaries here (docs/manager.md)."""
        log.info("initialize_categories(%r) is not supported; categories learn from their own tasks", filename)
        return 0

    def stats_category(self, category: str):
        """The queue's statistics with the task counts of one category (CCTools' ``stats_category``)."""
        return self._manager.stats(category=category)

    def _set_category_limit(self, category: str, attribute: str, resources: dict) -> int:
        self._manager.set_category_limit(category, attribute, _as_resources(category, resources))
        return 1

    def enable_monitoring(self, dirname: str | None = None, watchdog: bool = False) -> int:
        """Measure every task with the shipped resource monitor; ``watchdog=True`` also enforces limits.

        Measured peaks appear as ``task.resources_measured`` (``.memory``, ``.cores``, ``.wall_time``,
        ...); with ``dirname`` the summaries are kept there as ``wq-<pid>-task-<id>.summary``.
        """
        from coffea_wq.manager.monitoring import MonitorSettings

        self._manager.enable_monitoring(MonitorSettings.create(dirname, watchdog))
        return 1

    def enable_monitoring_full(self, dirname: str | None = None, watchdog: bool = False) -> int:
        return self.enable_monitoring(dirname, watchdog)

    def activate_fast_abort(self, multiplier: float) -> int:
        """Accepted for compatibility; fast abort is not implemented (tasks are never aborted as slow)."""
        log.info("fast abort (multiplier %s) is not implemented; ignored", multiplier)
        return 0

    def activate_fast_abort_category(self, name: str, multiplier: float) -> int:
        return self.activate_fast_abort(multiplier)


def _as_resources(category: str, resources: dict):
    """``{"cores": 1, "memory": 2}`` as ``Resources``; negative or None values are undeclared."""
    from coffea_wq.resources.types import RESOURCE_NAMES, Resources

    unknown = set(resources) - set(RESOURCE_NAMES)
    if unknown:
        raise ValueError(f"category {category!r}: unknown resource(s) {sorted(unknown)}; use {RESOURCE_NAMES}")
    return Resources(**{k: (None if v is None or v < 0 else float(v)) for k, v in resources.items()})
