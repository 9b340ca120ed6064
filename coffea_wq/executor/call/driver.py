"""The executor's call, driven: the manager's tasks become events for ``CallState``, its actions become I/O.

The loop reads top to bottom (docs/design.md, "The executor's call"): a stop request, the workers
connected (with partials on workers, at most every ``WORKER_CHECK_INTERVAL_S``), a tick (submit
what the manager can take, deadlines), then one returned task, read once (reading.py) and handed
to the state. Everything the state decides comes back as actions, carried out by ``carry_out``:
tasks built and submitted, cancelled, values merged into the output (the only place this process
adds a task's value), checkpoints written, staging files removed, progress shown.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from coffea.processor import accumulate

from coffea_wq.dashboard.tracker import RunTracker
from coffea_wq.executor.backend import module_constant
from coffea_wq.executor.call import model as ev
from coffea_wq.executor.call.bounds import HoldSettings
from coffea_wq.executor.call.model import TaskKind
from coffea_wq.executor.call.reading import (
    RESULT_RESOURCE_EXHAUSTION,
    RESULT_SUCCESS,
    RecordReader,
)
from coffea_wq.executor.call.report import CallOptions, CallReport
from coffea_wq.executor.call.state import CallState
from coffea_wq.executor.errors import RunInterrupted, describe_item
from coffea_wq.executor.results.checkpoint import CheckpointStore
from coffea_wq.executor.results.outcome import OutcomeKind, carried_value, read_outcome
from coffea_wq.executor.results.phase_log import phase_listener
from coffea_wq.executor.results.tree import WaitingResult
from coffea_wq.executor.session import ManagerSession
from coffea_wq.executor.tasks import accumulation
from coffea_wq.executor.tasks.progress import ProgressBars
from coffea_wq.executor.tasks.retry_policy import avoid_workers
from coffea_wq.executor.tasks.staging import BuiltTask, TaskTemplate, build_flush_task, build_task
from coffea_wq.executor.tasks.task_facts import (
    FinishedTask,
    connected_cores,
    connected_workers,
    verbose_report,
)
from coffea_wq.executor.workers.refused import RefusedWorkers, password_mismatch_error
from coffea_wq.worker.warm_contract import CHUNK_ENV, HOLD_ENV, HOLD_EVERY_ENV, HOLD_SECONDS_ENV

log = logging.getLogger("coffea_wq.executor.call")

WAIT_TIMEOUT_S = 1
WORKER_CHECK_INTERVAL_S = 0.5  # the manager's worker list is read at most this often
LOCAL_WORKERS_GONE_GRACE_S = 10.0
TASK_READY = 1  # CCTools' WORK_QUEUE_TASK_READY: submitted, no worker has it yet


class CallDriver:
    """Runs one executor call on an open session.

    Example (with a session and template from ``coffea_wq.executor``):
        >>> driver = CallDriver(session, template, options)                  # doctest: +SKIP
        >>> accumulated, exception = driver.run(work_items, accumulator)     # doctest: +SKIP
    """

    def __init__(self, session: ManagerSession, template: TaskTemplate, options: CallOptions,
                 tracker: RunTracker | None = None, stop_requested: Callable[[], bool] = lambda: False,
                 store: CheckpointStore | None = None, accumulation_template: TaskTemplate | None = None,
                 hold: HoldSettings | None = None):
        self.session, self.queue, self.wq = session, session.queue, session.wq
        self.template, self.options, self.tracker, self.store = template, options, tracker, store
        self.stop_requested = stop_requested
        tree = accumulation_template is not None and bool(options.treereduction)
        self.accumulation = accumulation.accumulation_template(accumulation_template, session.staging.root,
                                                               options.result_policy, options.compression) \
            if tree and accumulation_template is not None else None
        self.state = CallState(options if tree else _without_tree(options), hold, accumulation.BIG_RESULT_BYTES,
                               store=store is not None,
                               environment=str(template.environment) if template.environment else None)
        # coffea-wq's manager can steer a retry away from the workers that failed it (retry_policy.py)
        self.state.can_avoid = callable(getattr(getattr(self.wq, "Task", None), "specify_avoided_host", None))
        self.prefix = f"call-{secrets.token_hex(4)}"  # this call's names in a staging folder calls may share
        self.reader = RecordReader(session.staging, template, options.result_policy, tree, self.prefix,
                                   module_constant(self.wq, "WORK_QUEUE_RESULT_SUCCESS", RESULT_SUCCESS),
                                   module_constant(self.wq, "WORK_QUEUE_RESULT_RESOURCE_EXHAUSTION",
                                                   RESULT_RESOURCE_EXHAUSTION))
        self.waiting_state = module_constant(self.wq, "WORK_QUEUE_TASK_READY", TASK_READY)
        self.refused_workers = RefusedWorkers(self.queue)
        self.report.breakdown.listener = phase_listener(self.queue, tracker)  # the txlog, the dashboard
        self.tickets: dict[int, int] = {}  # manager task id -> the state's ticket
        self.task_ids: dict[int, int] = {}  # ticket -> manager task id
        self.accumulated: Any = None
        self.bars: ProgressBars | None = None
        self.stop_sent = False
        self.handback_extra_s = 0.0
        self.last_check = 0.0

    @property
    def report(self) -> CallReport:
        return self.state.report

    # ------------------------------------------------------------------ the call
    def run(self, items: list[Any], accumulator: Any) -> tuple[Any, Any]:
        """Process every item; return ``(accumulated, 0)`` or ``(partial, TaskFailedError)``."""
        started = time.monotonic()
        self.accumulated = accumulator
        restored = self.store.restore(items) if self.store is not None else None
        if restored is not None:
            items = restored.remaining
            self.report.items += restored.count
        state = self.state
        self.carry_out_all(state.start(items, time.monotonic()))
        unit_name, total = self.options.unit, len(items) + (restored.count if restored else 0)
        if state.ranges is not None:
            unit_name, total = "event", state.ranges.events  # as coffea 0.7's dynamic mode counted
            total += sum(item.entrystop - item.entrystart for item in (restored.items if restored else []))
        if self.tracker:
            planned = items + restored.items if restored else items
            self.tracker.call_started(self.options.desc, unit_name, planned, chunks_known=state.ranges is None)
        with ProgressBars(self.options.desc, unit_name, total, self.options.status) as bars:
            self.bars = bars
            for restored_items, value in [([i], v) for i, v in restored.results] + list(restored.bundles) \
                    if restored else []:
                self._merge_restored(restored_items, value)
            try:
                self._loop()
            finally:
                self._cancel_everything()
                self.report.unprocessed = state.unprocessed_items()
                self.report.wall_time = time.monotonic() - started
                if self.tracker:
                    self.tracker.call_ended()
        if state.failure is not None:
            self.report.failed.append(state.failure)
            return self.accumulated, state.failure
        if self.report.unprocessed:  # only a stop request leaves work undone without a failure
            self.report.interrupted = RunInterrupted(self.report.unprocessed, len(self.report.accumulated),
                                                     self.options.desc)
            return self.accumulated, self.report.interrupted
        return self.accumulated, 0

    def _loop(self) -> None:
        gone_since: float | None = None
        state = self.state
        while not state.over:
            now = time.monotonic()
            if not self.stop_sent and self.stop_requested():
                self.stop_sent = True
                self.feed(ev.StopRequested(now))
            if state.partials is not None and now - self.last_check >= WORKER_CHECK_INTERVAL_S:
                self.last_check = now
                self._workers_seen(now)
            self.feed(ev.Tick(now, hungry=int(self.queue.hungry()) if state.pending else 0,
                              cores=connected_cores(self.queue) if state.ranges is not None else 0,
                              workers=connected_workers(self.queue) if state.can_avoid else None))
            if state.over:
                return
            task = self.queue.wait(WAIT_TIMEOUT_S)
            if task is None:
                gone_since = self._check_local_workers(gone_since)
                self._check_refused_workers()
                continue
            self.task_returned(task)

    def task_returned(self, task: FinishedTask) -> None:
        ticket = self.tickets.pop(task.id, None)
        entry = self.state.in_flight.get(ticket) if ticket is not None else None
        if ticket is None or entry is None:
            log.debug("ignoring task %s, not part of this call", task.id)
            return
        del self.task_ids[ticket]
        if entry.kind is TaskKind.ACCUMULATION:
            output = self._accumulation_output(ticket)
            if self.tracker:
                self.tracker.task_returned(task, accumulation.CATEGORY)
        else:
            output = self.session.staging.output_path(ticket)
        if entry.kind is TaskKind.CHUNK:
            self._show_task(task, self.state.units[ticket].item)
            if self.tracker:
                self.tracker.task_returned(task, self.template.category)
        began = time.perf_counter()
        returned = self.reader.read(task, ticket, entry.kind, output)
        # what handing a partial back cost besides the merge: its write on the worker, its read here
        self.handback_extra_s = time.perf_counter() - began + (returned.outcome.phases.get("write", 0.0)
                                                               if returned.outcome is not None else 0.0)
        if entry.kind is not TaskKind.ACCUMULATION:  # chunks and flushes (a value left unread: the manager's phases)
            unit = self.state.units.get(ticket) if entry.kind is TaskKind.CHUNK else None
            phases = returned.outcome.phases if returned.outcome is not None else {}
            self.report.breakdown.add_task(task, phases, getattr(unit and unit.item, "dataset", None),
                                           returned.worker, time.perf_counter() - began)
        self.feed(ev.TaskCameBack(returned, time.monotonic(),
                                  workers=connected_workers(self.queue) if self.state.can_avoid else None))

    def feed(self, event: ev.Event) -> None:
        self.carry_out_all(self.state.handle(event))

    def _workers_seen(self, now: float) -> None:
        try:
            features = frozenset(self.queue.worker_features())
        except Exception as exc:  # never fatal: the end-of-run flush still finds lost partials
            log.debug("cannot read the connected workers: %r", exc)
            return
        self.feed(ev.WorkersSeen(features, now))
        if self.tracker:
            self.tracker.churn(self.report.partials_lost, self.report.chunks_redone_after_loss,
                               self.state.hold_description())

    # ------------------------------------------------------------------ actions
    def carry_out_all(self, actions: list[ev.Action]) -> None:
        for action in actions:
            self.carry_out(action)

    def carry_out(self, action: ev.Action) -> None:  # noqa: C901 (one branch per action, as a table would be)
        staging = self.session.staging
        if isinstance(action, ev.SubmitChunk):
            self._submit_chunk(action)
        elif isinstance(action, ev.SubmitFlush):
            staging.write_item(action.ticket, None)
            task = build_flush_task(self.wq, self.template, action.ticket, staging.item_path(action.ticket),
                                    staging.reset_output(action.ticket), action.partial_id, action.feature,
                                    urgent=action.urgent)
            self._submitted(action.ticket, task)
        elif isinstance(action, ev.SubmitAccumulation):
            self._submit_accumulation(action)
        elif isinstance(action, ev.Cancel):
            self._cancel_ticket(action.ticket)
        elif isinstance(action, ev.CancelUnstarted):
            self.feed(ev.NotStarted(frozenset(t for t in action.tickets if self._cancel_if_not_started(t))))
        elif isinstance(action, ev.MergeValue):
            self._merge(action.value, timed=action.partial)
        elif isinstance(action, ev.MergeWaiting):
            for result in action.results:
                self._merge_waiting(result)
        elif isinstance(action, (ev.StoreResult, ev.Unstore)):
            self._checkpoint(action)
        elif isinstance(action, ev.Discard):
            if action.path is not None:
                action.path.unlink(missing_ok=True)
            elif action.ticket is not None:
                (staging.discard_output if action.output_only else staging.discard)(action.ticket)
        elif isinstance(action, ev.Disconnect):
            self.refused_workers.disconnect(action.address, action.hostname)
        elif isinstance(action, ev.Note):
            self._note(action)

    def _submit_chunk(self, action: ev.SubmitChunk) -> None:
        staging, unit = self.session.staging, action.unit
        item_path = staging.item_path(unit.key)
        if not item_path.exists():
            staging.write_item(unit.key, unit.item)
        output = staging.reset_output(unit.key)  # never read a previous attempt's output
        task = build_task(self.wq, self.template, unit.key, item_path, output, unit.item)
        avoid_workers(task, action.avoid)
        if self.state.partials is not None:
            task.specify_environment_variable(CHUNK_ENV, str(unit.key))
            if not action.hold:
                task.specify_environment_variable(HOLD_ENV, "0")
            if action.every is not None:
                task.specify_environment_variable(HOLD_EVERY_ENV, str(action.every))
            if action.seconds is not None:
                task.specify_environment_variable(HOLD_SECONDS_ENV, f"{action.seconds:g}")
        task_id = self._submitted(unit.key, task)
        if self.options.verbose and self.bars:
            self.bars.print(f"Submitted task (id #{task_id}): {describe_item(unit.item)}")

    def _submit_accumulation(self, action: ev.SubmitAccumulation) -> None:
        assert self.accumulation is not None
        job = action.job
        task = accumulation.build_accumulation_task(
            self.wq, self.accumulation, self.session.staging.root, f"{self.prefix}-accumulate-{action.ticket}",
            [result.path for result in job.inputs if result.path is not None], self._accumulation_output(action.ticket))
        task_id = self._submitted(action.ticket, task)
        if self.options.verbose and self.bars:
            self.bars.print(f"Submitted accumulation task (id #{task_id}): {len(job.inputs)} results, "
                            f"{len(job.keys)} chunks")

    def _accumulation_output(self, ticket: int) -> Any:
        return self.session.staging.root / "outputs" / f"{self.prefix}-sum-{ticket}.lz4"

    def _submitted(self, ticket: int, task: BuiltTask) -> int:
        task_id = self.queue.submit(task)
        self.tickets[task_id] = ticket
        self.task_ids[ticket] = task_id
        return task_id

    def _cancel_ticket(self, ticket: int) -> None:
        task_id = self.task_ids.pop(ticket, None)
        if task_id is None:
            return
        self.tickets.pop(task_id, None)
        try:
            self.queue.cancel_by_taskid(task_id)
        except Exception as exc:
            log.debug("cancel of task %s failed: %r", task_id, exc)

    def _cancel_if_not_started(self, ticket: int) -> bool:
        task_id = self.task_ids.get(ticket)
        try:
            waiting = task_id is not None and int(self.queue.task_state(task_id)) == self.waiting_state
        except Exception:  # an implementation without task states: treat it as started (keep it)
            waiting = False
        if waiting:
            self._cancel_ticket(ticket)
        return waiting

    def _cancel_everything(self) -> None:
        """Whatever is still out when the call ends (an error, a second Ctrl-C) is cancelled."""
        for ticket in list(self.task_ids):
            self._cancel_ticket(ticket)
            self.session.staging.discard(ticket)

    # ------------------------------------------------------------------ merging here
    def _merge(self, value: Any, timed: bool = False) -> None:
        """Add one result into the output (the only place this process adds a task's value)."""
        started = time.perf_counter()
        self.accumulated = accumulate([value], self.accumulated)
        seconds = time.perf_counter() - started
        self.report.breakdown.add_here("merge", seconds)
        self.report.merged_in_process += 1
        if timed:
            self.feed(ev.HandBackCost(seconds + self.handback_extra_s))

    def _merge_waiting(self, result: WaitingResult) -> None:
        assert result.path is not None
        started = time.monotonic()
        outcome = read_outcome(result.path, self.options.result_policy, _worker(result))
        found, value = carried_value(outcome)
        if not found:
            refused = outcome.refused if outcome.kind is OutcomeKind.REFUSED else ""
            self.feed(ev.WaitingUnusable(result, refused, outcome.detail or
                                         f"it carries no value ({outcome.kind.value} record)"))
            return
        merging = time.perf_counter()
        self.accumulated = accumulate([value], self.accumulated)
        self.report.breakdown.add_here("merge", time.perf_counter() - merging)
        self.report.merged_in_process += 1
        del outcome, value  # not held while the next one loads
        if result.name.startswith("partial"):
            self.feed(ev.HandBackCost(time.monotonic() - started))
        self.feed(ev.WaitingMerged(result))

    def _merge_restored(self, items: list[Any], value: Any) -> None:
        """A stored result (one chunk's, or a bundle of several) merged without a task."""
        self._merge(value)
        for item in items:
            self.report.accumulated.append(item)
            self.report.restored.append(item)
            if self.tracker:
                self.tracker.item_restored(item)
            if self.bars:
                amount = item.entrystop - item.entrystart if self.state.ranges is not None else 1
                for bar in ("submitted", "processed", "accumulated"):
                    self.bars.advance(bar, amount)

    def _checkpoint(self, action: ev.StoreResult | ev.Unstore) -> None:
        store = self.store
        if store is None:
            return
        if isinstance(action, ev.Unstore):
            store.discard_bundle(list(action.items)) if action.bundle else store.discard(action.items[0])
            return
        try:
            if action.bundle:
                store.save_bundle(list(action.items), action.path, keep=action.keep)
            else:
                store.save(action.items[0], action.path, keep=action.keep)
        except OSError as exc:  # merged all the same; only a rerun would redo them
            log.warning("checkpoint_dir: cannot store the result of %d chunk(s): %s", len(action.items), exc)

    # ------------------------------------------------------------------ what the user sees
    def _note(self, note: ev.Note) -> None:
        bars, tracker, extra = self.bars, self.tracker, note.extra
        if note.what in ("submitted", "processed", "accumulated") and bars:
            bars.advance(note.what, note.amount)
        if note.what == "processed" and tracker and note.amount > 0:
            tracker.item_processed(note.item)
        elif note.what == "failed" and tracker:
            tracker.attempt_failed(note.item, note.text, extra.get("host"), extra.get("attempt", 1),
                                   final=bool(extra.get("final")))
        elif note.what == "cut" and tracker:
            tracker.chunks_added([note.item])
        elif note.what == "split":
            if tracker:
                tracker.item_split(note.item, extra["pieces"], note.text, extra.get("host"), self.template.category)
            if bars:
                if extra.get("grow"):
                    bars.grow(len(extra["pieces"]) - 1)
                bars.advance("submitted", -note.amount)  # each piece counts as submitted on its own
        elif note.what == "say":
            self.say(note.text)

    def say(self, message: str) -> None:
        self.bars.print(message) if self.bars and self.options.status else log.warning(message)

    def _show_task(self, task: FinishedTask, item: Any) -> None:
        if self.options.verbose and self.bars:
            for line in verbose_report(task, item):
                self.bars.print(line)
        failed = int(task.result) != self.reader.success or task.return_status != 0
        if self.bars and (self.options.print_stdout or (failed and self.options.verbose)) and task.output:
            self.bars.print(task.output.rstrip())

    # ------------------------------------------------------------------ a pool that cannot serve
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


def _without_tree(options: CallOptions) -> CallOptions:
    return dataclasses.replace(options, treereduction=None)


def _worker(result: WaitingResult) -> str:
    hostname, address = result.hostname or "?", result.address
    return f"{hostname} ({address})" if address and address != hostname else hostname
