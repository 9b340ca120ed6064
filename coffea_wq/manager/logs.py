"""The manager's logs behind one small adapter: transactions log, stats log, debug log.

The writers themselves live in ``txlog.py`` and ``statslog.py`` (formats: docs/catalog.md, "Logs");
this adapter turns manager objects into their arguments, and does nothing when a log is off.
"""

from __future__ import annotations

import logging
from typing import Any

from coffea_wq.manager.statslog import StatsLog
from coffea_wq.manager.task import TaskSpec
from coffea_wq.manager.txlog import TransactionLog

log = logging.getLogger("coffea_wq.manager")


def attach_debug_log(path: str) -> logging.Handler:
    """``debug_log=PATH``: everything the ``coffea_wq`` loggers say, at DEBUG, into PATH."""
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger("coffea_wq")
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.DEBUG:
        root.setLevel(logging.DEBUG)
    return handler


def _box_dict(resources) -> dict:
    if resources is None:
        return {}
    return {k: v for k, v in resources.as_dict().items()}


def _label(task: TaskSpec) -> str:
    return "MAX_RESOURCES" if task.label == 1 else "FIRST_RESOURCES"


class ManagerLogs:
    """Calls into the transactions and stats logs; every method is safe when they are off."""

    def __init__(self, transactions_log: str | None = None, stats_log: str | None = None) -> None:
        self.tx: TransactionLog | None = None
        self.stats: StatsLog | None = None
        if transactions_log:
            self.open_transactions(transactions_log)
        if stats_log:
            self.open_stats(stats_log)

    def open_transactions(self, path: str) -> None:
        if self.tx is not None:
            self._call("close")
        self.tx = TransactionLog(path)
        self._call("manager_start")

    def open_stats(self, path: str) -> None:
        self.stats = StatsLog(path)

    def _call(self, method: str, *args: Any) -> None:
        if self.tx is None:
            return
        try:
            getattr(self.tx, method)(*args)
        except Exception:  # a log must never take the manager down
            log.exception("transactions log: %s failed", method)

    def worker_connection(self, peer) -> None:
        self._call("worker_connection", peer.worker_id, peer.address)

    def worker_disconnection(self, peer, reason: str) -> None:
        self._call("worker_disconnection", peer.worker_id, peer.address, reason)

    def worker_resources(self, peer) -> None:
        total = peer.total
        self._call(
            "worker_resources", peer.worker_id, {"cores": total.cores, "memory": total.memory, "disk": total.disk}
        )

    def category_max(self, name: str, resources) -> None:
        if self.tx is not None:  # the arguments cost something to build: only when the log is kept
            self._call("category_max", name, _box_dict(resources))

    def category_min(self, name: str, resources) -> None:
        if self.tx is not None:  # the arguments cost something to build: only when the log is kept
            self._call("category_min", name, _box_dict(resources))

    def category_first(self, name: str, mode: str, resources) -> None:
        self._call("category_first", name, mode, _box_dict(resources))

    def task_waiting(self, task: TaskSpec) -> None:
        if self.tx is not None:
            self._call("task_waiting", task.task_id, task.category, _label(task), _box_dict(task.requested))

    def task_running(self, task: TaskSpec, address: str) -> None:
        if self.tx is not None:
            self._call("task_running", task.task_id, address, _label(task), _box_dict(task.allocated))

    def task_waiting_retrieval(self, task: TaskSpec, address: str) -> None:
        self._call("task_waiting_retrieval", task.task_id, address)

    def task_done(self, task: TaskSpec, state: str = "RETRIEVED") -> None:
        """``RETRIEVED`` when an attempt's outputs are back, ``DONE`` when ``wait`` hands the task over."""
        self._call(
            "task_done", task.task_id, state, task.result.log_name, task.return_status,
            task.limits_exceeded, task.measured,
        )

    def task_phases(self, task_id: int, phases: dict[str, float]) -> None:
        self._call("task_phases", task_id, phases)

    def task_canceled(self, task: TaskSpec) -> None:
        self._call("task_canceled", task.task_id)

    def write_stats(self, stats: dict, force: bool = False) -> None:
        if self.stats is None:
            return
        try:
            self.stats.write(stats, force=force)
        except Exception:
            log.exception("stats log: write failed")

    def close(self) -> None:
        self._call("manager_end")
        self._call("close")
        if self.stats is not None:
            self.stats.close()
        self.tx = None
        self.stats = None
