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

    def specify_category_first_allocation_guess(self, category: str, resources: dict) -> int:
        """The allocation tasks of ``category`` get in an automatic mode until measurements take over.

        As CCTools: the guess is used from the next task on (the category counts as sized), until
        the first measured completion; then tasks are sized from measurements as usual.
        """
        value = _as_resources(category, resources)
        with self._server.lock:
            self._server.core.category(category).set_first_allocation_guess(value)
            self._status.categories.setdefault(category, {})["first"] = value.as_dict()
        self._server.wake()
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
        from coffea_wq.manager.stats import collect_stats
        from coffea_wq.protocol.codes import TaskState

        with self._server.lock:
            stats = collect_stats(self._server, self._priority)
            tasks = [t for t in self._server.queue.tasks.values() if t.category == category]
            stats.tasks_waiting = sum(1 for t in tasks if t.state is TaskState.READY)
            stats.tasks_running = sum(1 for t in tasks if t.state is TaskState.RUNNING)
            retrieving = sum(1 for t in tasks if t.state in (TaskState.WAITING_RETRIEVAL, TaskState.RETRIEVED))
            stats.tasks_with_results = retrieving
            stats.tasks_on_workers = stats.tasks_running + retrieving
            for name in ("tasks_submitted", "tasks_done", "tasks_failed", "tasks_cancelled"):
                setattr(stats, name, self._server.queue.category_totals.get(category, {}).get(name, 0))
        return stats

    def _set_category_limit(self, category: str, attribute: str, resources: dict) -> int:
        value = _as_resources(category, resources)
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


def _as_resources(category: str, resources: dict):
    """``{"cores": 1, "memory": 2}`` as ``Resources``; negative or None values are undeclared."""
    from coffea_wq.resources.types import RESOURCE_NAMES, Resources

    unknown = set(resources) - set(RESOURCE_NAMES)
    if unknown:
        raise ValueError(f"category {category!r}: unknown resource(s) {sorted(unknown)}; use {RESOURCE_NAMES}")
    return Resources(**{k: (None if v is None or v < 0 else float(v)) for k, v in resources.items()})
