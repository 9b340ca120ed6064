"""``WorkQueueExecutor``: coffea's Runner on a Work Queue of workers (embedded manager, workers anywhere).

The executor is a dataclass of options, like every coffea executor; the manager, the staging
directory and local workers live in ``coffea_wq.executor.session`` so they survive Runner's
``executor.copy(...)`` and are shared by the preprocessing and processing calls of a run.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coffea.processor.executor import ExecutorBase

from coffea_wq.dashboard.live import finish_session, stop_dashboards, tracker_for_session
from coffea_wq.executor.backend import ALLOCATION_MODES, module_constant
from coffea_wq.executor.call.bounds import HoldSettings
from coffea_wq.executor.call.driver import CallDriver
from coffea_wq.executor.call.report import CallOptions, CallReport
from coffea_wq.executor.errors import ExecutorConfigError, RunInterrupted, TaskFailedError
from coffea_wq.executor.interrupts import InterruptGuard, plain_runner_call
from coffea_wq.executor.options import (
    RESOURCE_MODES,
    ExecutorOptions,
    category_limits,
    frozen_ssl,
    reduce_settings,
    resolve_environment,
    resolve_x509_proxy,
    resolved_local_workers,
    resolved_monitor,
    validate_options,
)
from coffea_wq.executor.results.checkpoint import CheckpointStore, function_digest
from coffea_wq.executor.session import (
    ManagerSession,
    SessionConfig,
    acquire_session,
    close_all_sessions,
    close_session,
    queue_feature,
)
from coffea_wq.executor.tasks.dynamic_chunks import parse_targets
from coffea_wq.executor.tasks.preprocessing import PreprocessingCheckpoint, batch_files
from coffea_wq.executor.tasks.read_errors import unwrap_coffea_retries
from coffea_wq.executor.tasks.staging import TaskTemplate
from coffea_wq.executor.workers.factory_pool import freeze_factory_options
from coffea_wq.safe_pickle.allow_list import ResultPolicy, user_modules_of
from coffea_wq.worker.warm_contract import RUN_ENV

__all__ = ["WorkQueueExecutor", "TaskFailedError", "RunInterrupted", "ExecutorConfigError", "last_report", "shutdown"]

log = logging.getLogger(__name__)

# tasks a category measures before it sizes tasks itself (coffea's value; CCTools' default is 25)
STEADY_N_TASKS = 3



class CallReports:
    """The reports of the latest ``kept`` executor calls, newest last.

    Calls may run in several threads of one process (two Runners at once), and ``last_report`` may
    be read from any thread while a call ends: every read and write holds the lock.
    """

    def __init__(self, kept: int):
        self._kept = kept
        self._lock = threading.Lock()
        self._reports: list[CallReport] = []

    def add(self, report: CallReport) -> None:
        with self._lock:
            self._reports.append(report)
            del self._reports[:-self._kept]

    def latest(self, desc: str | None = None) -> CallReport | None:
        """The newest report, or the newest of the calls whose ``desc`` is ``desc``."""
        with self._lock:
            for report in reversed(self._reports):
                if desc is None or report.desc == desc:
                    return report
        return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._reports)


_REPORTS = CallReports(kept=8)


@dataclass
class WorkQueueExecutor(ExecutorOptions, ExecutorBase):
    """Run coffea work items as Work Queue tasks on workers anywhere (the real CCTools ones included).

    Use it as any coffea executor:

        >>> from coffea import processor
        >>> import coffea_wq
        >>> runner = processor.Runner(executor=coffea_wq.WorkQueueExecutor(local_workers=2),
        ...                           chunksize=100_000)                                # doctest: +SKIP
        >>> out = runner(fileset, MyProcessor(), treename="Events")                   # doctest: +SKIP

    Parameters (coffea 0.7's names; ``master_name`` and hyphenated names are accepted too)
    ----------
    status : bool (True)              rich progress bars Submitted / Processed / Accumulated.
    unit, desc, function_name         set by Runner.
    compression : int (9)             lz4 level of results in flight (``None`` means 1).
    retries : int (2)                 resubmissions of a failing task before the run stops softly;
                                      a task lost with its worker is requeued and is not a retry.
    manager_name : str (None)         project name advertised to the catalog (workers ``-M name``).
    master_name : str (None)          deprecated alias of ``manager_name``.
    port : int or [low, high] (None)  listening port or range; default 0 (any free port) with a
                                      name or local workers, else 9123.
    local_workers : int (None)        start N coffea-wq workers on 127.0.0.1 and stop them at the end.
                                      None: one per CPU core unless ``manager_name`` or ``factory``
                                      is set (then 0).
    factory : dict (None)             run a ``coffea_wq.Factory`` for the manager during the run
                                      (preprocessing and processing), e.g. ``{"batch_type": "slurm",
                                      "max_workers": 20, "cores": 4}`` (keys as ``Factory`` settings
                                      or the factory's JSON file); stopped, its workers removed, at
                                      the end, also on failure.
    local_worker_kind : str ("auto")  "coffea-wq", "cctools" (work_queue_worker) or "auto".
    fork_local_workers : bool (True)  coffea-wq local workers are forks of this process, as
                                      FuturesExecutor's are (coffea is imported already: no start-up
                                      before the first chunk); False: fresh processes.
    filepath : str (".")              where the per-run staging directory is made.
    environment_file : str (None)     packed Python environment (envtools / conda-pack / venv-pack
                                      tarball) the tasks run in; default: ``python3`` on the worker.
    extra_input_files : list ([])     local files every task gets (cached on workers).
    ship_input_files : bool (True)    data files given by a relative path (``./samples/x.root``) are
                                      sent to the workers with their tasks (cached), as coffea 0.7
                                      did; absolute paths and URLs are read in place. False: read
                                      every path in place (workers that share this directory).
    x509_proxy : str or False (None)  proxy shipped to tasks; None: ``$X509_USER_PROXY`` or
                                      ``/tmp/x509up_u<uid>`` when present; False: none.
    password_file : str (None)        shared secret workers must prove. Unset, and with neither
                                      manager_name nor port, the run's own workers (local, factory)
                                      get a fresh password made for the run.
    manager_host : str (None)         address to listen on; default 127.0.0.1 when only local workers
                                      serve the run (no manager_name, port or factory), else all.
    ssl : bool or (key, cert) (False) TLS on every worker connection: True makes a self-signed
                                      certificate for the run (openssl); workers need ``--ssl``.
    allowed_result_modules : list ([]) modules whose classes results may contain beyond the built-in
                                      allow-list ("pkg" for its classes, "pkg.mod:name" for one
                                      global): results are never unpickled with plain pickle.
    cores, memory, disk, gpus (None)  per-task resources (MB for memory/disk); unset: a whole worker.
                                      In fixed mode what every task declares; in the other modes the
                                      most a task is given (its retry after an exhaustion).
    category_resources : dict (None)  per-category overrides of those four, e.g.
                                      ``{"processing": {"memory": 4000}, "preprocessing": {"memory": 500}}``
                                      (categories preprocessing, processing, accumulating, default).
    resources_mode : str ("fixed")    fixed, max-seen (alias max), max-throughput (alias auto), min-waste:
                                      how processing tasks are sized from measured peaks; preprocessing
                                      uses max-seen in every mode but fixed.
    resource_monitor : str ("off")    off, measure, watchdog (True: watchdog); a non-fixed mode
                                      forces watchdog. Measured peaks are in the verbose report.
    split_on_exhaustion : bool (True) a processing task that still exhausts its resources is split
                                      into halves, down to one event.
    fast_terminate_workers : float    abort tasks slower than this multiple of the average.
    verbose, print_stdout : bool      a line per task / the task's output.
    debug_log, stats_log, transactions_log : str   the manager's logs.
    custom_init : callable (None)     called with the WorkQueue before each call submits anything.
    warm_python : bool (True)         let coffea-wq workers run tasks in warm Python slots.
    preload_modules : tuple           modules a warm slot imports once.
    reduction : bool (True)           merge results on the workers: each coffea-wq worker's warm slot
                                      keeps a running sum (a partial) and hands it back, so this
                                      process merges a few results, not one per chunk (docs/reduction.md).
                                      False: every chunk's result is merged here, as before.
    chunks_per_accum : int (None)     most chunks a partial holds before it is handed back (None: the
                                      run chooses, from how long its workers live, docs/reduction.md
                                      section 6; bounds what a lost worker or a killed run costs).
    accum_interval : float (None)     seconds after which a partial is handed back at its next chunk
                                      (None: the run chooses, at most 300).
    chunks_accum_in_mem : int (2)     accepted for coffea 0.7; merging always holds at most two results.
    treereduction : int (20)          results an accumulation task adds (fan-in): the results of chunks
                                      that ran cold (CCTools' work_queue_worker) are added on workers;
                                      fewer than this are left for this process, and one only when
                                      results are big (docs/reduction.md, section 3).
    chunksize, events_total, status_display_interval : accepted for coffea 0.7 compatibility.
    dashboard : bool or int (False)   serve a live dashboard of the run (True: any free port; or a
                                      port), with Prometheus ``/metrics``; its address is printed at
                                      the start. See docs/dashboard.md.
    dashboard_host : str ("127.0.0.1") the dashboard's bind address ("0.0.0.0": every interface);
                                      with ``password_file`` the page asks for the password.
    dynamic_chunksize : dict (None)   re-cut the chunks to targets, e.g. {"wall_time": 60, "memory": 2000}
                                      (s, MB; memory needs resource_monitor): see dynamic_chunks.py.
    checkpoint_dir : str (None)       keep every chunk's result in this folder of the submit host; a
                                      rerun merges them and submits only the rest (checkpoint.py).
    preprocessing_batch : int (None)  files a preprocessing task fetches (None: up to 50, fewer when that
                                      would make under 200 tasks); with checkpoint_dir the
                                      files' metadata is kept there and a rerun fetches only new files.
    staging_quota : float (0.5)       an output larger than this is refused and named, not written to
                                      this host: up to 1 a fraction of the disk space free in the staging
                                      folder when it arrives, above 1 bytes; 0: no quota (coffea-wq's
                                      manager only).
    tasks_accum_log, wrapper, bar_format : accepted for coffea 0.7 scripts; not implemented yet (a
                                      warning says so).
    """

    def __post_init__(self) -> None:
        if self.master_name is not None:
            warnings.warn("master_name is deprecated, use manager_name", DeprecationWarning, stacklevel=3)
            if self.manager_name is None:
                self.manager_name = self.master_name
            self.master_name = None
        validate_options(self)

    def __call__(self, items: Iterable, function: Callable, accumulator: Any) -> tuple[Any, Any]:
        """Run ``function`` on every item as a task; return ``(accumulated, 0 | exception)``.

        The first Ctrl-C stops the call softly and the second aborts it (docs/executor.md, "Soft
        termination"); the session is closed on every path but a successful preprocessing call.
        """
        items = list(items)
        if not items:
            return accumulator, 0
        preprocessing = self.desc == "Preprocessing"
        stored = PreprocessingCheckpoint.open(self.checkpoint_dir, function) if preprocessing else None
        if stored is not None:  # files preprocessed by an earlier run (preprocessing.py)
            accumulator, items = stored.restore_into(accumulator, items)
            if not items:
                return accumulator, 0
        config = self.session_config()
        with InterruptGuard() as guard:
            session = acquire_session(config)
            keep_open = False
            try:
                accumulated, exception = self._run_call(session, items, function, accumulator, preprocessing,
                                                        guard)
                if stored is not None:
                    stored.save_new(accumulated)
                # the processing call follows preprocessing: keep its workers and caches for it
                keep_open = preprocessing and exception == 0
            finally:
                guard.defer()  # a Ctrl-C now waits until the workers are stopped and the staging removed
                if not keep_open:
                    finish_session(session)  # the dashboard keeps the run's final state
                    close_session(config)
            guard.raise_if_aborted()
        if exception != 0 and (accumulated is None or preprocessing):
            # Runner ignores a preprocessing call's exception and would blame another file, and with
            # nothing accumulated it would hide the cause behind "No chunks returned results"
            raise exception
        if isinstance(exception, RunInterrupted):
            warnings.warn(f"{exception}; returning the partial output", UserWarning, stacklevel=2)
            if plain_runner_call(function):
                return accumulated, 0  # coffea 0.7's contract: a Ctrl-C'd run returns what it has
        return accumulated, exception

    def _run_call(self, session: ManagerSession, items: list, function: Callable, accumulator: Any,
                  preprocessing: bool, guard: InterruptGuard) -> tuple[Any, Any]:
        category = "preprocessing" if preprocessing else "processing"
        if session.calls == 1:
            message = f"Listening for work queue workers on port {session.port}. {session.describe_access()}"
            print(message, flush=True) if self.verbose else log.info(message)
        configure_category(session, self, category)
        if callable(getattr(session.queue, "worker_features", None)):  # coffea-wq's manager: outputs over it refused
            session.queue.tune("output-quota", self.staging_quota)
        if self.custom_init is not None:
            self.custom_init(session.queue)
        # partials on workers need coffea-wq's manager, which says which workers are connected
        reduce = self.reduction and not preprocessing and callable(getattr(session.queue, "worker_features", None))
        run_id = secrets.token_hex(8) if reduce else ""  # one partial per call in a slot (docs/reduction.md)
        function, skipbadfiles = unwrap_coffea_retries(function)  # retried and skipped here (read_errors.py)
        if preprocessing:  # many files per task (preprocessing.py)
            items, function = batch_files(items, function, self.preprocessing_batch)
        template = self.task_template(session, function, category, reduce, run_id)
        options = CallOptions(retries=self.retries, split_on_exhaustion=self.split_on_exhaustion and not preprocessing,
                              verbose=self.verbose, print_stdout=self.print_stdout, status=self.status,
                              desc=self.desc, unit=self.unit, resources_mode=RESOURCE_MODES[self.resources_mode],
                              dynamic_chunksize=None if preprocessing or self.dynamic_chunksize is None
                              else parse_targets(self.dynamic_chunksize),
                              result_policy=ResultPolicy.build(self.allowed_result_modules, user_modules_of(function)),
                              # reduction=False: every result merged here, as before reduction (docs/reduction.md)
                              treereduction=self.treereduction if self.reduction and not preprocessing else None,
                              compression=self.compression, reduce=reduce, skipbadfiles=skipbadfiles)
        tracker = tracker_for_session(session, self.dashboard, self.dashboard_host, self.password_file) \
            if self.dashboard is not False and self.dashboard is not None else None
        store = None
        if self.checkpoint_dir is not None and not preprocessing:
            store = CheckpointStore(Path(self.checkpoint_dir), function_digest(function), options.result_policy)
        accumulation = None
        if options.treereduction:
            configure_category(session, self, "accumulating")
            accumulation = self.task_template(session, function, "accumulating", reduce, run_id)
        settings = reduce_settings(self)
        driver = CallDriver(session, template, options, tracker, stop_requested=lambda: guard.requested, store=store,
                            accumulation_template=accumulation,
                            hold=HoldSettings(settings["every"], settings["seconds"]))
        try:
            return driver.run(items, accumulator)
        finally:
            _REPORTS.add(driver.report)

    def session_config(self) -> SessionConfig:
        port = self.port
        if isinstance(port, (list, tuple)):
            port = (int(port[0]), int(port[1]))
        return SessionConfig(
            manager_name=self.manager_name, port=port, password_file=self.password_file,
            filepath=str(self.filepath), local_workers=resolved_local_workers(self),
            local_worker_kind=self.local_worker_kind, stats_log=self.stats_log,
            transactions_log=self.transactions_log, debug_log=self.debug_log,
            resource_monitor=resolved_monitor(self), factory=freeze_factory_options(self.factory),
            manager_host=self.manager_host, ssl=frozen_ssl(self.ssl), fork_local_workers=self.fork_local_workers,
            local_zygote_preload=tuple(self.preload_modules) if self.warm_python and not self.environment_file
            else None)

    def task_template(self, session: ManagerSession, function: Callable, category: str,
                      reduce: bool = False, run_id: str = "") -> TaskTemplate:
        fixed = RESOURCE_MODES[self.resources_mode] == "fixed"
        declared = category_limits(self, category) if fixed else {}
        env, env_runner, env_name = resolve_environment(self.environment_file)
        return TaskTemplate(
            function=session.staging.write_function(function, self.function_name, self.compression,
                                                    reduce_settings(self) if reduce else None),
            script=session.staging.script, category=category, environment=env, env_runner=env_runner,
            environment_name=env_name,
            extra_inputs=[(Path(p).resolve(), Path(p).name) for p in self.extra_input_files],
            ship_input_files=bool(self.ship_input_files),
            x509_proxy=resolve_x509_proxy(self.x509_proxy),
            cores=declared.get("cores"), memory=declared.get("memory"), disk=declared.get("disk"),
            gpus=declared.get("gpus"),
            warm=self.warm_python, preload=tuple(self.preload_modules),
            # one partial per call in a slot: a slot never adds this call's values to another's
            environment_variables={RUN_ENV: run_id} if run_id else {})


def last_report(desc: str | None = None) -> CallReport | None:
    """What the latest executor call in this process did: items accumulated, retried, split, skipped.

    ``desc`` picks the latest call of one phase ("Preprocessing" or "Processing").

    Example:
        >>> report = last_report("Processing")                               # doctest: +SKIP
        >>> len(report.accumulated), report.retried, report.skipped          # doctest: +SKIP
    """
    return _REPORTS.latest(desc)


def shutdown() -> None:
    """Stop every manager and local worker this process started (also done at exit)."""
    close_all_sessions()
    stop_dashboards()


def configure_category(session: ManagerSession, ex: WorkQueueExecutor, category: str) -> None:
    """Allocation mode, maximum resources and fast abort of ``category`` on the session's queue.

    As coffea's executor: the category maximum is the executor's (or ``category_resources``') values in
    every mode; processing tasks follow ``resources_mode`` and the other categories, in any mode but
    fixed, max-seen (their sizes hardly vary); a category measures 3 tasks before it sizes them.
    """
    queue, wq = session.queue, session.wq
    mode = RESOURCE_MODES[ex.resources_mode]
    if mode != "fixed" and category != "processing":
        mode = "max"
    maxima = category_limits(ex, category)
    if maxima:
        queue_feature(queue, "specify_category_max_resources", "cores/memory/disk/gpus")(category, maxima)
    if mode != "fixed":
        names = {"max": "WORK_QUEUE_ALLOCATION_MODE_MAX", "min-waste": "WORK_QUEUE_ALLOCATION_MODE_MIN_WASTE",
                 "max-throughput": "WORK_QUEUE_ALLOCATION_MODE_MAX_THROUGHPUT"}
        tune = getattr(queue, "tune", None)
        if callable(tune):
            tune("category-steady-n-tasks", STEADY_N_TASKS)
        queue_feature(queue, "specify_category_mode", "resources_mode")(
            category, module_constant(wq, names[mode], ALLOCATION_MODES[mode]))
    if ex.fast_terminate_workers:
        queue_feature(queue, "activate_fast_abort_category", "fast_terminate_workers")(
            category, float(ex.fast_terminate_workers))


def executor_field_names() -> list[str]:
    """Every option ``WorkQueueExecutor`` accepts (its dataclass fields)."""
    return [f.name for f in dataclasses.fields(WorkQueueExecutor)]
