"""``WorkQueue``: the manager object of CCTools' Python API (queue, tasks, settings, catalog, shutdown)."""

from __future__ import annotations

import logging
import os

from coffea_wq.manager.api import Manager
from coffea_wq.manager.logs import ManagerLogs, attach_debug_log
from coffea_wq.manager.stats import QueueStats
from coffea_wq.protocol.codes import TaskState
from coffea_wq.work_queue.categories import CategorySettings
from coffea_wq.work_queue.constants import WORK_QUEUE_DEFAULT_PORT, WORK_QUEUE_WAITFORTASK
from coffea_wq.work_queue.functional import FunctionalMethods
from coffea_wq.work_queue.python_results import ResultSettings
from coffea_wq.work_queue.python_task import PythonTask
from coffea_wq.work_queue.task import Task
from coffea_wq.work_queue.workers import WorkerControl

log = logging.getLogger("coffea_wq.work_queue")

# tune() names (with CCTools' older spellings) -> the manager's switch; see docs/manager.md
PROPORTIONAL_TUNES = {
    "proportional-resources": "proportional_resources",
    "force-proportional-resources": "proportional_resources",
    "proportional-whole-tasks": "proportional_whole_tasks",
    "force-proportional-resources-whole-tasks": "proportional_whole_tasks",
}

# coffea-wq's own: worker-to-worker transfers of cached files (manager/peers.py)
PEER_TUNES = {"peer-transfers": "enabled", "peer-transfer-min-bytes": "min_bytes",
              "peer-transfers-per-source": "per_source"}


class WorkQueue(WorkerControl, CategorySettings, FunctionalMethods):
    """The manager: listens for workers, runs submitted tasks on them (CCTools' ``WorkQueue``).

    Args:
        port: an int (0 for any free port), ``[low, high]`` or ``"low-high"`` (the first free one).
        name: the project name; when set, the manager advertises itself to the catalog.
        shutdown: send ``exit`` to idle workers when the queue is shut down.
        stats_log: path of the performance log (one row per second at most).
        transactions_log: path of the transactions log.
        debug_log: path of a debug log of everything the manager does.
        host: address to listen on ("" = all interfaces; "127.0.0.1" keeps it on loopback).
        catalog: catalog address(es) "host:port[,host:port]" used when ``name`` is set.
        ssl: TLS for every connection, as CCTools 7.4+: ``(key_file, cert_file)`` (PEM), or ``True``
            for a self-signed certificate made for this queue (needs ``openssl``); workers need ``--ssl``.
        status_display_interval: CCTools 8's Jupyter status widget; accepted and not shown.

    Example::

        with WorkQueue(port=0) as q:
            print("workers can connect to port", q.port)
    """

    def __init__(self, port=WORK_QUEUE_DEFAULT_PORT, name: str | None = None, shutdown: bool = False,
                 stats_log: str | None = None, transactions_log: str | None = None, debug_log: str | None = None,
                 host: str = "", catalog: str | None = None, ssl=None,
                 status_display_interval: float | None = None) -> None:
        self._debug_handler = attach_debug_log(debug_log) if debug_log else None
        self._shutdown_on_exit = shutdown
        try:
            self._manager = Manager(port, host, ManagerLogs(transactions_log, stats_log), ssl=ssl, project=name)
        except BaseException:  # a bad ssl option, a port in use: leave no debug handler behind
            self._detach_debug_log()
            raise
        self._catalog_option = catalog
        self._closed = False
        self._python_results = ResultSettings(trusted=False)  # what PythonTask results may contain
        if name:
            self._manager.advertise(catalog)
        log.info("manager listening on %s:%d%s", host or "0.0.0.0", self.port, " (TLS)" if self._manager.using_ssl else "")

    # ---------------------------------------------------------------- properties
    @property
    def port(self) -> int:
        return self._manager.port

    @property
    def name(self) -> str | None:
        return self._manager.project

    @property
    def stats(self) -> QueueStats:
        return self._manager.stats()

    # ---------------------------------------------------------------- tasks
    def submit(self, task: Task) -> int:
        """Queue a task; returns its id."""
        if not isinstance(task, Task):
            raise TypeError(f"submit() takes a Task, not {type(task).__name__}")
        if task._spec.state not in (TaskState.UNKNOWN, TaskState.DONE, TaskState.CANCELED):
            raise ValueError(f"task {task.id} is already in the queue")
        task._spec.reset_results()
        task._spec.try_count = 0
        task._spec.view = task  # what wait() hands back for this record
        if isinstance(task, PythonTask):
            task.follow_queue_result_settings(self._python_results)
        return self._manager.submit(task._spec)

    def log_task_phases(self, task_id: int, phases: dict[str, float]) -> None:
        """coffea-wq's own: a ``PHASES`` line in the transactions log (where a task's time went,
        docs/executor.md, section 10). CCTools' queue has no such method."""
        self._manager.logs.task_phases(int(task_id), phases)

    def wait(self, timeout: float = WORK_QUEUE_WAITFORTASK) -> Task | None:
        """The next finished task, or None if none finished within ``timeout`` s (-1: forever)."""
        spec = self._manager.wait(None if timeout is None or timeout < 0 else timeout)
        return None if spec is None else spec.view

    def wait_for_tag(self, tag: str, timeout: float = WORK_QUEUE_WAITFORTASK) -> Task | None:
        """The next finished task tagged ``tag`` (``Task.specify_tag``), or None after ``timeout`` s.

        Other finished tasks stay for later ``wait`` calls. ``tag=None`` is ``wait(timeout)``.
        """
        spec = self._manager.wait(None if timeout is None or timeout < 0 else timeout,
                                  None if tag is None else str(tag))
        return None if spec is None else spec.view

    @property
    def stats_hierarchy(self) -> QueueStats:
        """CCTools' statistics including foremen's: the same as ``stats`` (coffea-wq has no foremen)."""
        return self.stats

    def invalidate_cache_file(self, local_name: str) -> int:
        """Make every worker drop its cached copy of ``local_name`` (sent again to the next task).

        Tasks already running keep the copy in their sandbox (CCTools requeues them instead).
        """
        from coffea_wq.manager.task import FileKind, cached_name_for

        name = cached_name_for(FileKind.FILE, str(local_name), True, os.path.basename(str(local_name)) or "file")
        return self._manager.invalidate_cached_file(name)

    def empty(self) -> bool:
        """True when no submitted task is still to be returned by ``wait``."""
        return self._manager.empty()

    def hungry(self) -> int:
        """How many more tasks the queue would like: keeps twice the connected cores waiting (at least 10)."""
        return self._manager.hungry()

    def cancel_by_taskid(self, id: int) -> Task | None:
        """Remove a task from the queue (killing it if it runs); returns it, or None if unknown."""
        spec = self._manager.cancel(int(id))
        return None if spec is None else spec.view

    def cancel_by_category(self, category: str) -> list[Task]:
        """Cancel every task of ``category`` still in the queue; returns them."""
        ids = self._manager.task_ids(category=category)
        return [task for task in (self.cancel_by_taskid(i) for i in ids) if task is not None]

    def status(self, request: str) -> list[dict]:
        """What a status query gets: ``"queue_status"``, ``"task_status"``, ``"worker_status"``,
        ``"wable_status"`` or ``"resources_status"`` (a list of dicts, as CCTools 8)."""
        return self.status_records(request)

    def using_ssl(self) -> bool:
        """Whether workers connect with TLS (the ``ssl`` keyword)."""
        return self._manager.using_ssl

    def application_info(self) -> None:
        """CCTools 8 returns None here too (kept for its Jupyter display)."""
        return None

    def specify_category_max_concurrent(self, category: str, max_concurrent: int) -> int:
        """Run at most ``max_concurrent`` tasks of ``category`` at once (-1: no limit)."""
        self._manager.set_category_max_concurrent(category, int(max_concurrent))
        return 1

    def cancel_by_tasktag(self, tag: str) -> Task | None:
        ids = self._manager.task_ids(tag=tag)
        return self.cancel_by_taskid(ids[0]) if ids else None

    def task_state(self, taskid: int) -> int:
        return int(self._manager.task_state(int(taskid)))

    def specify_min_taskid(self, minid: int) -> int:
        """The next task gets at least this id."""
        self._manager.ensure_min_task_id(int(minid))
        return int(minid)

    def tune(self, name: str, value: float) -> int:
        """CCTools' tuning knobs. Honoured: ``keepalive-interval``, ``keepalive-timeout`` and
        ``category-steady-n-tasks`` (completions a category measures before it computes a first
        allocation in an automatic mode; CCTools' default 25, coffea's executor uses 3), and
        ``max-task-stdout-storage`` (bytes of a task's output kept, default 1 GB as CCTools; the
        rest is dropped and the task's result is STDOUT_MISSING), ``proportional-resources`` (1, the
        default: a task that declares some resources gets the same share of the worker in the others;
        0: it gets the whole worker in the others) and ``proportional-whole-tasks`` (1, the default:
        that share is rounded down to 1/n); coffea-wq's own ``peer-transfers`` (1, the default: coffea-wq
        workers get cached files from each other, docs/manager.md "Peer transfers"; 0: all from the
        manager), ``peer-transfer-min-bytes`` (default 1 MiB: smaller files always come from the
        manager), ``peer-transfers-per-source`` (default 2) and ``output-quota`` (an output file
        larger than this is refused and not written: a value up to 1 is a fraction of the free disk
        where it would land, above 1 bytes; 0, the default, none); others are accepted and ignored.

        Example: ``q.tune("category-steady-n-tasks", 3)``, ``q.tune("proportional-resources", 0)``.
        """
        if name == "keepalive-interval":
            return self.specify_keepalive_interval(value)
        if name == "keepalive-timeout":
            return self.specify_keepalive_timeout(value)
        if name == "category-steady-n-tasks":
            if int(value) < 1:
                raise ValueError(f"tune('category-steady-n-tasks', {value!r}): expected an integer >= 1")
            self._manager.set_steady_n_tasks(int(value))
            return 1
        if name in PROPORTIONAL_TUNES:
            self._manager.set_switch(PROPORTIONAL_TUNES[name], int(value) > 0)
            return 1
        if name == "max-task-stdout-storage":  # coffea-wq's: CCTools fixes it at 1 GB
            if int(value) < 0:
                raise ValueError(f"tune('max-task-stdout-storage', {value!r}): expected bytes >= 0")
            self._manager.set_max_task_output(int(value))
            return 1
        if name in PEER_TUNES:
            if int(value) < 0:
                raise ValueError(f"tune({name!r}, {value!r}): expected a number >= 0")
            self._manager.set_peer_transfers(**{PEER_TUNES[name]: int(value)})
            return 1
        if name == "output-quota":  # coffea-wq's: an output over it is refused, not written
            if float(value) < 0:
                raise ValueError(f"tune('output-quota', {value!r}): expected a fraction of the free disk, bytes, or 0")
            self._manager.set_output_quota(float(value))
            return 1
        log.info("tune(%r, %r): not used by coffea-wq's manager; ignored", name, value)
        return 0

    def _accepted_and_ignored(self, *args, **kwargs) -> int:
        return 0

    # CCTools settings that have no effect on this manager; accepted so that scripts run unchanged.
    specify_algorithm = _accepted_and_ignored
    specify_task_order = _accepted_and_ignored
    specify_num_tasks_left = _accepted_and_ignored
    specify_manager_mode = _accepted_and_ignored
    specify_master_mode = _accepted_and_ignored
    specify_manager_preferred_connection = _accepted_and_ignored
    specify_master_preferred_connection = _accepted_and_ignored
    estimate_capacity = _accepted_and_ignored

    # ---------------------------------------------------------------- configuration
    def specify_password(self, password: str | bytes) -> int:
        self._manager.set_password(password.encode() if isinstance(password, str) else bytes(password))
        return 1

    def specify_password_file(self, file: str) -> int:
        """Require workers to prove they know the password in ``file`` (its raw bytes)."""
        try:
            with open(file, "rb") as handle:
                password = handle.read()
        except OSError as error:
            raise OSError(f"cannot read the password file {file!r}: {error.strerror}") from None
        self._manager.set_password(password)
        return 1

    def specify_keepalive_interval(self, interval: float) -> int:
        self._manager.set_keepalive(interval=float(interval))
        return 1

    def specify_keepalive_timeout(self, timeout: float) -> int:
        self._manager.set_keepalive(timeout=float(timeout))
        return 1

    def specify_name(self, name: str) -> int:
        self._manager.project = name
        if name and self._manager.advertiser is None:
            self._manager.advertise(self._catalog_option)
        return 1

    def specify_priority(self, priority: int) -> int:
        self._manager.priority = priority
        return 1

    def specify_catalog_server(self, hostname: str, port: int) -> int:
        self._catalog_option = f"{hostname}:{port}"
        self._manager.advertise(self._catalog_option)
        return 1

    def specify_catalog_servers(self, hosts: str) -> int:
        self._catalog_option = hosts
        self._manager.advertise(self._catalog_option)
        return 1

    def specify_log(self, logfile: str) -> int:
        """Write the performance (stats) log to ``logfile``."""
        self._manager.open_stats_log(logfile)
        return 1

    def specify_transactions_log(self, logfile: str) -> int:
        """Write the transactions log to ``logfile``."""
        self._manager.open_transactions_log(logfile)
        return 1

    # ---------------------------------------------------------------- shutdown
    def shutdown(self) -> None:
        """Release every worker, stop the manager thread and close every socket and log."""
        if self._closed:
            return
        self._closed = True
        if self._shutdown_on_exit:
            self.shutdown_workers(0)
        self._manager.stop()
        self._detach_debug_log()

    def _detach_debug_log(self) -> None:
        if self._debug_handler is not None:
            logging.getLogger("coffea_wq").removeHandler(self._debug_handler)
            self._debug_handler.close()
            self._debug_handler = None

    def __enter__(self) -> WorkQueue:
        return self

    def __exit__(self, *exc_info) -> None:
        self.shutdown()

    def __del__(self) -> None:
        try:
            self.shutdown()
        except Exception:
            pass

