"""Categories, resource monitoring and fast abort of ``WorkQueue``."""

from __future__ import annotations

import logging

log = logging.getLogger("coffea_wq.work_queue")


class CategorySettings:
    """Methods of ``WorkQueue`` that configure task categories and monitoring (mixed into it)."""

    def specify_category_mode(self, category: str, mode) -> int:
        """Allocation mode of a category: WORK_QUEUE_ALLOCATION_MODE_FIXED/MAX/MIN_WASTE/MAX_THROUGHPUT."""
        from coffea_wq.resources.allocation import AllocationMode

        chosen = AllocationMode(int(mode)) if isinstance(mode, int) else AllocationMode.parse(mode)
        with self._server.lock:
            self._server.core.category(category).mode = chosen
            self._logs.category_first(category, chosen.log_name, self._server.core.category(category).first_allocation)
        return 1

    def specify_category_max_resources(self, category: str, resources: dict) -> int:
        """The most any task of ``category`` may use, e.g. ``{"cores": 4, "memory": 2000}``."""
        return self._set_category_limit(category, "max_allocation", resources)

    def specify_category_min_resources(self, category: str, resources: dict) -> int:
        """The least any task of ``category`` is given."""
        return self._set_category_limit(category, "min_allocation", resources)

    def specify_category_first_resources(self, category: str, resources: dict) -> int:
        """The first allocation to try in an automatic mode, before enough tasks were measured."""
        return self._set_category_limit(category, "first_allocation", resources)

    specify_category_first_allocation_guess = specify_category_first_resources

    def _set_category_limit(self, category: str, attribute: str, resources: dict) -> int:
        from coffea_wq.resources.types import RESOURCE_NAMES, Resources

        unknown = set(resources) - set(RESOURCE_NAMES)
        if unknown:
            raise ValueError(f"category {category!r}: unknown resource(s) {sorted(unknown)}; use {RESOURCE_NAMES}")
        value = Resources(**{k: (None if v is None or v < 0 else float(v)) for k, v in resources.items()})
        with self._server.lock:
            setattr(self._server.core.category(category), attribute, value)
            self._status.categories.setdefault(category, {})[attribute.split("_")[0]] = value.as_dict()
            log_method = {"max_allocation": "category_max", "min_allocation": "category_min"}.get(attribute)
            if log_method:
                getattr(self._logs, log_method)(category, value)
        self._server.wake()
        return 1

    def enable_monitoring(self, dirname: str | None = None, watchdog: bool = False) -> int:
        """Measure every task with the shipped resource monitor; ``watchdog=True`` also enforces limits.

        Measured peaks appear as ``task.resources_measured`` (``.memory``, ``.cores``, ``.wall_time``,
        ...); with ``dirname`` the summaries are kept there as ``wq-<pid>-task-<id>.summary``.
        """
        from coffea_wq.manager.monitoring import MonitorSettings

        with self._server.lock:
            self._server.core.monitor = MonitorSettings.create(dirname, watchdog)
        return 1

    def enable_monitoring_full(self, dirname: str | None = None, watchdog: bool = False) -> int:
        return self.enable_monitoring(dirname, watchdog)

    def activate_fast_abort(self, multiplier: float) -> int:
        """Accepted for compatibility; fast abort is not implemented (tasks are never aborted as slow)."""
        log.info("fast abort (multiplier %s) is not implemented; ignored", multiplier)
        return 0

    def activate_fast_abort_category(self, name: str, multiplier: float) -> int:
        return self.activate_fast_abort(multiplier)
