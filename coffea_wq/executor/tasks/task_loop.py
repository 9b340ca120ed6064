"""One executor call: submit a task per work item, and as results arrive accumulate, retry or split.

The walk of one item: ``submit_unit`` (a task from the call's ``TaskTemplate``) -> the manager's
``wait`` -> ``handle_completion`` -> ``accept_value`` (accumulated at once) or ``retry_or_fail``
or ``split_unit``. Worker loss is not seen here: the manager requeues those tasks itself.
A failure that used up its retries stops the call softly: the other tasks are cancelled and the
call returns what was accumulated, with the failure (``TaskFailedError``) as its exception. A stop
request (the first Ctrl-C, see ``interrupts.py``) does the same with a ``RunInterrupted``. Either
way the report's ``unprocessed`` lists the items whose results are not in what is returned.

With reduction on (``CallOptions.reduce``, docs/reduction.md) values are merged on the workers:
``reduction.py`` handles held records, returned partials and flush tasks, and on a stop or failure
brings back the live partials (at most ``FLUSH_ON_STOP_S``) before the call returns. What a failed
task means (retry, split, refusal, failure) is ``failing.py``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coffea.processor import accumulate

from coffea_wq.dashboard.tracker import RunTracker
from coffea_wq.executor.backend import module_constant
from coffea_wq.executor.errors import (
    RunInterrupted,
    TaskFailedError,
    describe_item,
)
from coffea_wq.executor.results.breakdown import Breakdown
from coffea_wq.executor.results.checkpoint import CheckpointStore
from coffea_wq.executor.results.outcome import OutcomeKind, read_outcome
from coffea_wq.executor.results.phase_log import phase_listener
from coffea_wq.executor.session import ManagerSession
from coffea_wq.executor.tasks.accumulation import TreeReduction
from coffea_wq.executor.tasks.dynamic_chunks import ChunkSizeModel, EntryRanges
from coffea_wq.executor.tasks.exhaustion import exhaustion_failure
from coffea_wq.executor.tasks.failing import FailureHandling
from coffea_wq.executor.tasks.held_retries import HeldRetries
from coffea_wq.executor.tasks.progress import ProgressBars
from coffea_wq.executor.tasks.read_errors import classify_read_error
from coffea_wq.executor.tasks.reduction import Reduction
from coffea_wq.executor.tasks.retry_policy import RetryPolicy, avoid_workers
from coffea_wq.executor.tasks.staging import TaskTemplate, build_task
from coffea_wq.executor.tasks.task_facts import (
    connected_cores,
    connected_workers,
    result_name,
    runtime_s,
    task_resources,
    verbose_report,
    worker_name,
)
from coffea_wq.executor.workers.refused import RefusedWorkers, password_mismatch_error
from coffea_wq.safe_pickle.allow_list import ResultPolicy
from coffea_wq.worker.warm_contract import CHUNK_ENV

log = logging.getLogger(__name__)

RESULT_SUCCESS = 0
RESULT_RESOURCE_EXHAUSTION = 16
WAIT_TIMEOUT_S = 1
MIN_QUEUED = 200  # tasks kept submitted beyond what the manager calls hungry
DYNAMIC_AHEAD = 2  # with dynamic chunk sizes: chunks cut beyond one per connected core
LOCAL_WORKERS_GONE_GRACE_S = 10.0
TASK_READY = 1  # CCTools' WORK_QUEUE_TASK_READY: submitted, no worker has it yet


@dataclass
class WorkUnit:
    """A work item and its history in this call; ``key`` names its staged files and task tag."""

    key: int
    item: Any
    failures: int = 0
    refused: int = 0  # results refused by the allow-list: not failures of the item, but bounded
    announced: bool = False  # counted in the Submitted bar (a resubmission is not counted again)
    shown_processed: bool = False  # counted in the Processed bar (held, taken by the tree, or merged)
    workers_tried: list[str] = field(default_factory=list)  # where its failed attempts ran (retry_policy.py)
    avoid: frozenset[str] = frozenset()  # workers its next attempt should not run on
    first_failure: float | None = None  # monotonic time of its first failure


@dataclass
class CallOptions:
    retries: int = 2
    split_on_exhaustion: bool = False
    verbose: bool = False
    print_stdout: bool = False
    status: bool = True
    desc: str = "Processing"
    unit: str = "items"
    resources_mode: str = "fixed"
    dynamic_chunksize: dict[str, float] | None = None  # targets (parsed); None: chunks as given
    result_policy: ResultPolicy = field(default_factory=ResultPolicy)  # what results may contain
    treereduction: int | None = None  # fan-in of accumulation tasks; None: every result is merged here
    compression: int | None = None  # lz4 level of the sums accumulation tasks send back
    reduce: bool = False  # partials on the workers (docs/reduction.md); the template's payload says when
    skipbadfiles: tuple[type[BaseException], ...] = ()  # coffea's, applied here (read_errors.py)


@dataclass
class CallReport:
    """What happened in one call (``coffea_wq.executor.last_report()`` returns the latest)."""

    desc: str = ""
    items: int = 0
    tasks_submitted: int = 0
    tasks_returned: int = 0
    retried: int = 0
    read_retries: dict[str, int] = field(default_factory=dict)  # of ``retried``: by kind of read error
    bad_files: list[str] = field(default_factory=list)  # skipped items (skipbadfiles), each with its error
    accumulated: list[Any] = field(default_factory=list)  # items whose result was merged, in order
    restored: list[Any] = field(default_factory=list)  # those of them read from checkpoint_dir
    skipped: list[Any] = field(default_factory=list)  # items skipped by skipbadfiles (result None)
    split: list[tuple[Any, list[Any]]] = field(default_factory=list)
    duplicates_ignored: int = 0
    failed: list[TaskFailedError] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # "CLASS from WORKER" for each refused result
    # items whose results are not in the returned output (interrupted or failed call): with
    # ``accumulated`` and ``skipped`` they cover the call's items, none twice
    unprocessed: list[Any] = field(default_factory=list)
    interrupted: RunInterrupted | None = None
    wall_time: float = 0.0
    merged_in_process: int = 0  # results this process unpickled and added to the output
    accumulation_tasks: int = 0  # accumulation tasks that sent a sum back (docs/reduction.md, section 3)
    partials_returned: int = 0  # partials of warm slots accepted: merged here or by accumulation tasks (docs/reduction.md)
    partials_lost: int = 0  # partials lost or dropped: their chunks ran again
    flush_tasks_submitted: int = 0  # flush tasks sent for partials (not in tasks_submitted, which counts chunks)
    flush_tasks_returned: int = 0  # those that came back (the others were cancelled)
    breakdown: Breakdown = field(default_factory=Breakdown)  # where the time went (docs/executor.md, section 10)


class TaskLoop(FailureHandling):
    """Runs one executor call on an open session.

    Example (with a session and template from ``coffea_wq.executor``):
        >>> loop = TaskLoop(session, template, options)                  # doctest: +SKIP
        >>> accumulated, exception = loop.run(work_items, accumulator)   # doctest: +SKIP
    """

    def __init__(self, session: ManagerSession, template: TaskTemplate, options: CallOptions,
                 tracker: RunTracker | None = None, stop_requested: Callable[[], bool] = lambda: False,
                 store: CheckpointStore | None = None, accumulation: TaskTemplate | None = None):
        self.session = session
        self.tracker = tracker  # the dashboard's view of the run (dashboard/tracker.py), if any
        self.store = store
        self.stop_requested = stop_requested
        self.queue = session.queue
        self.template = template
        self.options = options
        self.pending: deque[WorkUnit] = deque()
        self.in_flight: dict[int, WorkUnit] = {}
        self.units: dict[int, WorkUnit] = {}  # every unit of the call by key (not those split away)
        self.done_keys: set[int] = set()
        self.next_key = 0
        self.accumulated: Any = None
        self.failure: TaskFailedError | None = None
        self.failed_unit: WorkUnit | None = None
        self.report = CallReport(desc=options.desc)
        self.report.breakdown.listener = phase_listener(session.queue, tracker)  # the txlog, the dashboard
        self.bars: ProgressBars | None = None
        self.exhaustion = module_constant(session.wq, "WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION",
                                          RESULT_RESOURCE_EXHAUSTION)
        self.success = module_constant(session.wq, "WORK_QUEUE_RESULT_SUCCESS", RESULT_SUCCESS)
        self.ranges: EntryRanges | None = None  # with dynamic chunk sizes: the events not yet cut
        self.model: ChunkSizeModel | None = None
        self.refused_workers = RefusedWorkers(self.queue)
        self.tree = None if accumulation is None or not options.treereduction else \
            TreeReduction(self, accumulation, options.treereduction, options.compression)
        self.reduction = Reduction(self) if options.reduce else None
        self.stopping = False  # winding down: nothing is submitted any more
        self.waiting_state = module_constant(session.wq, "WORK_QUEUE_TASK_READY", TASK_READY)
        self.held = HeldRetries()  # retries waiting out their backoff
        self.retry_policy = RetryPolicy(retries=options.retries)

    def run(self, items: list[Any], accumulator: Any) -> tuple[Any, Any]:
        """Process every item; return ``(accumulated, 0)`` or ``(partial, TaskFailedError)``."""
        started = time.monotonic()
        self.accumulated = accumulator
        self.report.items = len(items)
        restored = self.store.restore(items) if self.store is not None else None
        if restored is not None:
            items = restored.remaining
        unit_name, total = self.options.unit, len(items) + (restored.count if restored else 0)
        if self.options.dynamic_chunksize and items and all(hasattr(i, "entrystart") for i in items):
            self.ranges = EntryRanges(items)
            self.model = ChunkSizeModel(self.options.dynamic_chunksize,
                                        base=max(i.entrystop - i.entrystart for i in items))
            self.report.items = 0  # counted as chunks are cut
            unit_name, total = "event", self.ranges.events  # as coffea 0.7's dynamic mode counted
            total += sum(self._events(item) for item in (restored.items if restored else []))
        else:
            for item in items:
                self.pending.append(self._new_unit(item))
        if self.tracker:
            planned = items + restored.items if restored else items
            self.tracker.call_started(self.options.desc, unit_name, planned, chunks_known=self.ranges is None)
        with ProgressBars(self.options.desc, unit_name, total, self.options.status) as bars:
            self.bars = bars
            for item, value in restored.results if restored else []:
                self._merge_restored([item], value)
            for bundle, value in restored.bundles if restored else []:
                self._merge_restored(bundle, value)
            try:
                self._loop_until_done()
                if self.tree is not None:
                    self.tree.salvage()  # a stop or failure left results waiting: they are merged here
            finally:
                if self.tree is not None:
                    self.tree.cancel()
                self._cancel_in_flight()
                self.report.unprocessed = self._unprocessed_items()
                self.report.wall_time = time.monotonic() - started
                if self.tracker:
                    self.tracker.call_ended()
        if self.failure is not None:
            self.report.failed.append(self.failure)
            return self.accumulated, self.failure
        if self.report.unprocessed:  # only a stop request leaves work undone without a failure
            self.report.interrupted = RunInterrupted(self.report.unprocessed, len(self.report.accumulated),
                                                     self.options.desc)
            return self.accumulated, self.report.interrupted
        return self.accumulated, 0

    def _merge_restored(self, items: list[Any], value: Any) -> None:
        """A stored result (one chunk's, or a bundle of several) merged without a task."""
        self.merge_value(value)
        for item in items:
            self.report.accumulated.append(item)
            self.report.restored.append(item)
            if self.tracker:
                self.tracker.item_restored(item)
            if self.bars:
                for bar in ("submitted", "processed", "accumulated"):
                    self.bars.advance(bar, self._events(item) if self.ranges is not None else 1)

    @staticmethod
    def _events(item: Any) -> int:
        return item.entrystop - item.entrystart

    def _unprocessed_items(self) -> list[Any]:
        """The items whose results are not accumulated: failed, in flight, held, queued and not yet cut."""
        items = [unit.item for unit in self.units.values() if unit.key not in self.done_keys]
        if self.ranges is not None:
            items += self.ranges.remaining_items()
        return items

    def _loop_until_done(self) -> None:
        gone_since: float | None = None
        reduction = self.reduction
        while self._work_left() and self.failure is None:
            if self.stop_requested():
                self._announce_stop()
                self._wind_down()
                return
            self._submit_ready()
            if reduction is not None:
                if not self.pending and not self._more_to_cut():
                    reduction.flush_live()  # nothing left to submit: bring the partials back
                reduction.check_workers()
            if self.tree is not None:
                self.tree.step()
                if not self._work_left() or self.failure is not None:
                    return
            task = self.queue.wait(WAIT_TIMEOUT_S)
            if task is None:
                gone_since = self._check_local_workers(gone_since)
                self._check_refused_workers()
                continue
            if self.tree is not None and self.tree.owns(task.id):
                self.tree.completed(task)
                continue
            if reduction is not None and reduction.handle_flush(task):
                continue
            if not self.handle_returned_chunk(task):
                log.debug("ignoring task %s, not part of this call", task.id)
        if self.failure is not None:
            self._wind_down()

    def _wind_down(self) -> None:
        """A stop or a failure: cancel the chunk tasks, and with reduction bring back what workers hold.

        With reduction, only the tasks no worker has started are cancelled at once: cancelling a
        task that runs in a warm slot kills the slot and the partial in it. The running ones end
        (their values join the partials) while the flush tasks wait behind them, for at most
        ``FLUSH_ON_STOP_S``; then whatever is left is cancelled.
        """
        self.stopping = True
        if self.reduction is not None:
            self._cancel_in_flight(not_started_only=True)
            self.reduction.flush_for_stop()
        self._cancel_in_flight()

    def handle_returned_chunk(self, task: Any) -> bool:
        """A chunk task came back (True; its record handled), or the task is not one of ours."""
        unit = self.in_flight.pop(task.id, None)
        if unit is None:
            return False
        self.report.tasks_returned += 1
        self.handle_completion(task, unit)
        return True

    def say(self, message: str) -> None:
        self.bars.print(message) if self.bars and self.options.status else log.warning(message)

    def processing_done(self) -> bool:
        """No chunk is queued, running or still to be cut."""
        return not (self.pending or self.in_flight or self._more_to_cut() or self.held)

    def nothing_more_to_come(self) -> bool:
        """Processing is done and no partial is still to come back: what waits in the tree is all there is."""
        return self.processing_done() and (self.reduction is None or not self.reduction.outstanding())

    def _work_left(self) -> bool:
        return not self.processing_done() or (self.tree is not None and self.tree.busy()) or \
            (self.reduction is not None and self.reduction.outstanding())

    def _announce_stop(self) -> None:
        running = " (running ones first hand back the work merged on their workers)" if self.reduction else ""
        self.say(f"Ctrl-C: {self.options.desc.lower()} stops; {len(self.in_flight)} task(s) in flight are "
                 f"cancelled{running} and the output so far is returned (Ctrl-C again aborts at once)")

    def _new_unit(self, item: Any) -> WorkUnit:
        unit = WorkUnit(self.allocate_key(), item)
        self.session.staging.write_item(unit.key, item)
        self.units[unit.key] = unit
        if self.reduction is not None:
            self.reduction.ledger.add(unit.key)
        return unit

    def allocate_key(self) -> int:
        """A fresh key: names a unit's (or a flush task's) staging files."""
        self.next_key += 1
        return self.next_key - 1

    def requeue(self, unit: WorkUnit) -> None:
        """Run a unit again without spending a retry (its partial was lost or dropped)."""
        self.pending.append(unit)

    def _more_to_cut(self) -> bool:
        return self.ranges is not None and bool(self.ranges.ranges)

    def _submit_ready(self) -> None:
        self.pending.extend(self.held.due(time.monotonic()))
        if self.ranges is not None:
            # cut a chunk only when a core can take it, so that it gets the size learnt so far
            while (self.pending or self._more_to_cut()) and \
                    len(self.in_flight) < DYNAMIC_AHEAD + connected_cores(self.queue):
                self.submit_unit(self.pending.popleft() if self.pending else self._cut_unit())
            return
        while self.pending and (len(self.in_flight) < MIN_QUEUED or self.queue.hungry()):
            self.submit_unit(self.pending.popleft())

    def _cut_unit(self) -> WorkUnit:
        assert self.ranges is not None and self.model is not None
        chunk = self.ranges.cut(self.model.size())
        self.report.items += 1
        if self.tracker:
            self.tracker.chunks_added([chunk])
        return self._new_unit(chunk)

    def _amount(self, item: Any) -> int:
        """What an item counts for in the progress bars: one chunk, or its events when sizes are dynamic."""
        return item.entrystop - item.entrystart if self.ranges is not None else 1

    def submit_unit(self, unit: WorkUnit) -> None:
        if self.stopping:  # a retry asked for while winding down: it stays undone
            self.pending.append(unit)
            return
        staging = self.session.staging
        output = staging.reset_output(unit.key)  # never read a previous attempt's output
        task = build_task(self.session.wq, self.template, unit.key, staging.item_path(unit.key), output, unit.item)
        avoid_workers(task, unit.avoid)
        if self.reduction is not None:
            task.specify_environment_variable(CHUNK_ENV, str(unit.key))
            self.reduction.ledger.submitted(unit.key)
        task_id = self.queue.submit(task)
        self.in_flight[task_id] = unit
        self.report.tasks_submitted += 1
        if not unit.announced and self.bars:
            self.bars.advance("submitted", self._amount(unit.item))
        unit.announced = True
        if self.options.verbose and self.bars:
            self.bars.print(f"Submitted task (id #{task_id}): {describe_item(unit.item)}")

    def handle_completion(self, task: Any, unit: WorkUnit) -> None:
        """Decide what a returned task means: accumulate, split, retry or fail."""
        self._report_task(task, unit)
        if self.tracker:
            self.tracker.task_returned(task, self.template.category)
        if self._environment_broke(task, unit):
            return
        result = int(task.result)
        if result == self.success:
            if self.tree is not None and self.tree.take(unit, task):  # its value waits for an accumulation task
                self.learn_chunk_size(unit, task, None)
                return
            output = self.session.staging.output_path(unit.key)
            # with a tree, a partial's value is left unread: it may wait for an accumulation task
            began = time.perf_counter()
            outcome = read_outcome(output, self.options.result_policy, worker_name(task), value=self.tree is None)
            self.report.breakdown.add_task(task, outcome.phases, getattr(unit.item, "dataset", None),
                                           worker_name(task), time.perf_counter() - began)
            if outcome.kind is OutcomeKind.REFUSED:
                self.refuse_result(unit, task, outcome.refused, outcome.detail)
                return
            if outcome.kind is OutcomeKind.OK:
                self.learn_chunk_size(unit, task, outcome.wall_time)
                self.accept_value(unit, outcome.value)
                return
            if self.reduction is not None and self.reduction.handle_record(unit, task, outcome):
                return
            if outcome.kind is OutcomeKind.REMOTE_ERROR:
                if self.reduction is not None:
                    self.reduction.carried(outcome, output, task)  # the slot's partial comes with the error
                remote = outcome.remote
                self.retry_or_fail(unit, f"{remote.type_name}: {remote.message}", task, remote,
                                   classify_read_error(remote.exception, remote.type_name, remote.message))
                return
            self.retry_or_fail(unit, f"{outcome.detail} (exit status {task.return_status})", task)
            return
        if result == self.exhaustion:
            if self._can_split(unit):
                self.split_unit(unit, task)
            else:
                # the manager already retried at the maximum where the mode allows: the same box cannot help
                reason = exhaustion_failure(task, self.options.resources_mode, self._why_not_split(unit))
                self.fail(unit, reason, task)
            return
        self.retry_or_fail(unit, f"task result {result_name(task)} (exit status {task.return_status})", task)

    def learn_chunk_size(self, unit: WorkUnit, task: Any, wall_time: float | None) -> None:
        if self.model is None:
            return
        memory = task_resources(task, "resources_measured").get("memory")
        self.model.observe(self._amount(unit.item), wall_time or runtime_s(task),
                           float(memory) if isinstance(memory, (int, float)) and memory > 0 else None)

    def accept_value(self, unit: WorkUnit, value: Any) -> None:
        if not self.mark_done(unit):
            return
        if self.store is not None and value is not None:
            self.store_result(unit.item, self.session.staging.output_path(unit.key))
        self.count_processed(unit)
        if value is None:
            # Runner's closure returns None when skipbadfiles swallowed the error
            self.session.staging.discard(unit.key)
            self.report.skipped.append(unit.item)
            log.warning("skipped %s (skipbadfiles)", describe_item(unit.item))
            if self.bars:
                self.bars.advance("accumulated", self._amount(unit.item))
        else:
            self.merge_value(value)
            self.count_accumulated(unit)

    def mark_done(self, unit: WorkUnit) -> bool:
        """The unit's result came back; False when one already had (a result counts once)."""
        counted = unit.key in self.done_keys
        if self.reduction is not None:  # the ledger also knows keys done through partials
            counted = not self.reduction.ledger.mark_done(unit.key) or counted
        if counted:
            self.report.duplicates_ignored += 1
            return False
        self.done_keys.add(unit.key)
        return True

    def unmark_done(self, unit: WorkUnit) -> None:
        """The unit's result turned out unusable before it was merged: it is to be done again."""
        self.done_keys.discard(unit.key)
        if self.reduction is not None:
            self.reduction.ledger.reopen(unit.key)
        if self.bars and unit.shown_processed:
            self.bars.advance("processed", -self._amount(unit.item))
        unit.shown_processed = False

    def count_processed(self, unit: WorkUnit) -> None:
        """The unit's value is computed (held on a worker, waiting for the tree, or merged)."""
        if unit.shown_processed:
            return
        unit.shown_processed = True
        if self.bars:
            self.bars.advance("processed", self._amount(unit.item))
        if self.tracker:
            self.tracker.item_processed(unit.item)

    def merge_value(self, value: Any) -> None:
        """Add one result into the output (the only place this process adds a task's value)."""
        began = time.perf_counter()
        self.accumulated = accumulate([value], self.accumulated)
        self.report.breakdown.add_here("merge", time.perf_counter() - began)
        self.report.merged_in_process += 1

    def merge_partial(self, value: Any, units: list[WorkUnit], record: Path | None = None) -> None:
        """A worker's partial holding ``units``: merged once, its units done (and stored as one bundle)."""
        self.merge_value(value)
        if self.store is not None and record is not None:
            try:
                self.store.save_bundle([unit.item for unit in units], record)
            except OSError as exc:  # merged all the same; only a rerun would redo them
                log.warning("checkpoint_dir: cannot store a partial of %d chunk(s): %s", len(units), exc)
        for unit in units:
            self.done_keys.add(unit.key)
            self.count_accumulated(unit)

    def count_accumulated(self, unit: WorkUnit) -> None:
        """The unit's value is in the output: its staged files go."""
        self.session.staging.discard(unit.key)
        self.report.accumulated.append(unit.item)
        if self.bars:
            self.bars.advance("accumulated", self._amount(unit.item))

    def store_result(self, item: Any, record: Path, keep: bool = False) -> None:
        """Keep a result record in ``checkpoint_dir`` (``keep``: it stays in staging as well)."""
        try:
            self.store.save(item, record, keep=keep)
        except OSError as exc:  # the result is merged all the same; only a rerun would redo it
            log.warning("checkpoint_dir: cannot store the result of %s: %s", describe_item(item), exc)

    def _report_task(self, task: Any, unit: WorkUnit) -> None:
        if self.options.verbose and self.bars:
            for line in verbose_report(task, unit.item):
                self.bars.print(line)
        failed = int(task.result) != self.success or task.return_status != 0
        if self.bars and (self.options.print_stdout or (failed and self.options.verbose)) and task.output:
            self.bars.print(task.output.rstrip())

    def _cancel_in_flight(self, not_started_only: bool = False) -> None:
        if self.reduction is not None and not not_started_only:
            self.reduction.cancel_all()
        for task_id, unit in list(self.in_flight.items()):
            if not_started_only and not self._not_started(task_id):
                continue
            try:
                self.queue.cancel_by_taskid(task_id)
            except Exception as exc:
                log.debug("cancel of task %s failed: %r", task_id, exc)
            self.session.staging.discard(unit.key)
            del self.in_flight[task_id]

    def _not_started(self, task_id: int) -> bool:
        try:
            return int(self.queue.task_state(task_id)) == self.waiting_state
        except Exception:  # an implementation without task states: treat it as started (keep it)
            return False

    def _check_local_workers(self, gone_since: float | None) -> float | None:
        """Fail instead of waiting forever when every local worker died and none other is here."""
        workers = self.session.workers
        if workers is None or not workers.processes or workers.alive() > 0:
            return None
        if connected_workers(self.queue) > 0:
            return None
        now = time.monotonic()
        if gone_since is None:
            return now
        if now - gone_since > LOCAL_WORKERS_GONE_GRACE_S:
            codes = [p.returncode for p in workers.processes]
            raise RuntimeError(f"all {len(codes)} local workers exited (exit codes {codes}) and no other "
                               "worker is connected; see the log above for why they stopped")
        return gone_since


    def _check_refused_workers(self) -> None:
        """Fail instead of waiting forever when every worker that tried was refused (password/TLS)."""
        if connected_workers(self.queue) > 0:
            return
        error = password_mismatch_error(self.queue)
        if error is not None:
            raise error
