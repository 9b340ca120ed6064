"""How work units settle in a ``CallState``: accepted, retried, split, refused or failed; the tree; the end.

Part of ``CallState`` (state.py), split off by responsibility: state.py routes events and owns the
tables, this file says what a returned value or failure means for its unit (docs/executor.md,
section 3), what the tree of accumulation tasks does with waiting results (docs/reduction.md,
section 3), and how a call winds down and ends. No I/O here either: everything is an action.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from typing import Any

from coffea_wq.executor.call import model as ev
from coffea_wq.executor.call.bounds import HoldSettings
from coffea_wq.executor.call.model import InFlight, Returned, TaskKind, TaskStatus, WorkUnit
from coffea_wq.executor.call.partials import Partials
from coffea_wq.executor.call.report import CallOptions, CallReport
from coffea_wq.executor.errors import EnvironmentFileError, RemoteError, TaskFailedError, describe_item
from coffea_wq.executor.results.tree import AccumulationJob, TreePlanner, WaitingResult
from coffea_wq.executor.tasks.dynamic_chunks import ChunkSizeModel, EntryRanges
from coffea_wq.executor.tasks.exhaustion import exhaustion_failure
from coffea_wq.executor.tasks.held_retries import HeldRetries
from coffea_wq.executor.tasks.preprocessing import is_file_batch
from coffea_wq.executor.tasks.read_errors import (
    ReadErrorClass,
    ReadErrorKind,
    classify_read_error,
    exception_chain,
    killed_for_memory,
)
from coffea_wq.executor.tasks.retry_policy import RetryPolicy, decide_retry
from coffea_wq.executor.tasks.splitting import split_work_item

log = logging.getLogger("coffea_wq.executor.call")

NOT_A_READ_ERROR = ReadErrorClass(ReadErrorKind.OTHER)
MAX_REFUSED_RESULTS = 3  # refused results of one item (each from a worker then dropped) before it fails
FLUSH_ON_STOP_S = 20.0  # on a soft stop, how long the flushes of live partials are awaited


class Phase(enum.Enum):
    RUNNING = "running"
    WINDING_DOWN = "winding down"
    CLOSING = "closing"  # everything is cancelled; results asked to merge here are still being merged
    OVER = "over"


class CallTables:
    """The tables of one call and how its units settle; ``CallState`` (state.py) adds the routing of
    events, submission (``submit``, ``flush_live``) and partials (``learn_chunk_size``), which the
    methods here call."""

    def __init__(self, options: CallOptions, hold: HoldSettings | None = None, big_bytes: int | None = None,
                 store: bool = False, environment: str | None = None):
        self.options = options
        self.store = store  # results are kept in checkpoint_dir: say so with StoreResult
        self.environment = environment
        self.report = CallReport(desc=options.desc)
        self.phase = Phase.RUNNING
        self.units: dict[int, WorkUnit] = {}  # every unit of the call by key (not those split away)
        self.pending: deque[WorkUnit] = deque()
        self.in_flight: dict[int, InFlight] = {}
        self.chunks_out = 0  # CHUNK entries of in_flight
        self.done_keys: set[int] = set()
        self.next_key = 0
        self.failure: Any = None  # TaskFailedError (or EnvironmentFileError) that stops the call
        self.interrupted = False
        self.salvaging = False
        self.stop_deadline = 0.0
        self.now = 0.0
        self.partials = Partials(hold or HoldSettings()) if options.reduce else None
        self.tree = TreePlanner(options.treereduction, big_bytes) if options.treereduction else None
        self.big_bytes = big_bytes
        self.bundles: dict[int, tuple[Any, ...]] = {}  # key -> the items of its stored partial bundle
        self.ranges: EntryRanges | None = None
        self.model: ChunkSizeModel | None = None
        self.out: list[ev.Action] = []
        self.merging = 0  # waiting results asked to merge here (MergeWaiting) and not answered yet
        self.held_retries = HeldRetries()  # retries waiting out their backoff (retry_policy.py)
        self.retry_policy = RetryPolicy(retries=options.retries)
        self.workers_connected: int | None = None  # as the last tick said
        self.can_avoid = False  # the manager can steer a task away from workers (set by the driver)

    def new_unit(self, item: Any) -> WorkUnit:
        unit = WorkUnit(self.allocate_key(), item)
        self.units[unit.key] = unit
        if self.partials is not None:
            self.partials.ledger.add(unit.key)
        return unit

    def allocate_key(self) -> int:
        self.next_key += 1
        return self.next_key - 1

    def amount(self, item: Any) -> int:
        """What an item counts for in the progress bars: one, or its events when sizes are dynamic."""
        return item.entrystop - item.entrystart if self.ranges is not None else 1

    # ------------------------------------------------------------------ helpers
    def emit(self, action: ev.Action) -> None:
        self.out.append(action)

    def note(self, what: str, item: Any = None, amount: int = 0, text: str = "", **extra: Any) -> None:
        self.emit(ev.Note(what, item, amount, text, extra))

    def _flush_out(self) -> list[ev.Action]:
        out, self.out = self.out, []
        return out



    # ------------------------------------------------------------------ values
    def mark_done(self, unit: WorkUnit) -> bool:
        """The unit's result came back; False when one already had (a result counts once)."""
        counted = unit.key in self.done_keys
        if self.partials is not None:  # the ledger also knows keys done through partials
            counted = not self.partials.ledger.mark_done(unit.key) or counted
        if counted:
            self.report.duplicates_ignored += 1
            return False
        self.done_keys.add(unit.key)
        return True

    def unmark_done(self, unit: WorkUnit) -> None:
        """The unit's result turned out unusable before it was merged: it is to be done again."""
        self.done_keys.discard(unit.key)
        if self.partials is not None:
            self.partials.ledger.reopen(unit.key)
        if unit.shown_processed:
            self.note("processed", unit.item, -self.amount(unit.item))
        unit.shown_processed = False

    def accept_value(self, unit: WorkUnit, value: Any, ret: Returned) -> None:
        if not self.mark_done(unit):
            return
        if self.store and value is not None and ret.record is not None:
            self.emit(ev.StoreResult((unit.item,), ret.record))
        self.count_processed(unit)
        if value is None:  # Runner's closure returns None when skipbadfiles swallowed the error
            self.emit(ev.Discard(ticket=unit.key))
            self.report.skipped.append(unit.item)
            log.warning("skipped %s (skipbadfiles)", describe_item(unit.item))
            self.note("accumulated", unit.item, self.amount(unit.item))
            return
        self.emit(ev.MergeValue(value))
        self.count_accumulated(unit)

    def count_processed(self, unit: WorkUnit) -> None:
        """The unit's value is computed (held on a worker, waiting for the tree, or merged)."""
        if not unit.shown_processed:
            unit.shown_processed = True
            self.note("processed", unit.item, self.amount(unit.item))

    def count_accumulated(self, unit: WorkUnit) -> None:
        """The unit's value is in the output: its staged files go."""
        self.emit(ev.Discard(ticket=unit.key))
        self.report.accumulated.append(unit.item)
        self.note("accumulated", unit.item, self.amount(unit.item))

    # ------------------------------------------------------------------ failures
    def remote_error(self, unit: WorkUnit, ret: Returned, remote: RemoteError | None) -> None:
        if remote is None:
            self.retry_or_fail(unit, "the task raised", ret)
            return
        self.retry_or_fail(unit, f"{remote.type_name}: {remote.message}", ret, remote,
                           classify_read_error(remote.exception, remote.type_name, remote.message))

    def environment_broke(self, unit: WorkUnit, ret: Returned) -> None:
        """The environment runner failed (exit 65): fail the call if the tarball itself is bad, else retry."""
        assert ret.environment is not None
        if ret.environment.retry_can_help:
            self.retry_or_fail(unit, ret.environment.reason, ret)
            return
        self.fail(unit, ret.environment.reason, ret)
        self.failure = EnvironmentFileError(str(self.environment), unit.item, unit.failures, ret.environment.reason,
                                            host=ret.hostname, stdout=ret.stdout)

    def refuse_result(self, unit: WorkUnit, ret: Returned, refused: str, detail: str) -> None:
        """A result off the allow-list: drop the worker that sent it, run the item elsewhere (no retry spent)."""
        self.report.refused.append(f"{refused} from {ret.worker}")
        log.error("%s: %s; that worker is disconnected and the item resubmitted", describe_item(unit.item), detail)
        self.emit(ev.Disconnect(ret.hostname, ret.address))
        self.resubmit_refused(unit, ret, detail)

    def resubmit_refused(self, unit: WorkUnit, ret: Returned, detail: str) -> None:
        unit.refused += 1
        if unit.refused >= MAX_REFUSED_RESULTS:
            self.fail(unit, f"{detail} ({unit.refused} results refused)", ret)
            return
        self.submit(unit)

    def retry_or_fail(self, unit: WorkUnit, reason: str, ret: Returned, remote: RemoteError | None = None,
                      verdict: ReadErrorClass = NOT_A_READ_ERROR) -> None:
        """Retry (later, elsewhere), fail, or skip under ``skipbadfiles``: as retry_policy.py decides."""
        if is_file_batch(unit.item):  # each file alone: a bad one is named and handled by itself
            self.split_batch(unit, reason)
            return
        if killed_for_memory(ret.exit_status, remote) and self.options.split_on_exhaustion \
                and hasattr(unit.item, "entrystart") and unit.item.entrystop - unit.item.entrystart > 1:
            self.split(unit, ret)  # the kernel's OOM killer or a MemoryError: as resource exhaustion
            return
        unit.failures += 1
        unit.workers_tried.append(str(ret.address or ret.hostname or "?"))
        if unit.first_failure is None:
            unit.first_failure = self.now
        decision = decide_retry(verdict, unit.failures, unit.workers_tried,
                                self.workers_connected if self.can_avoid else None, self.retry_policy,
                                self.now - unit.first_failure)
        if decision.retry:
            self.report.retried += 1
            if decision.kind is not ReadErrorKind.OTHER:
                self.report.read_retries[decision.kind.value] = self.report.read_retries.get(decision.kind.value, 0) + 1
                reason = f"{reason} [{decision.kind.value}]"
            if decision.kind is ReadErrorKind.DISK_FULL:
                reason = f"disk full on worker {ret.worker}: {reason}"
            self.note("failed", unit.item, text=reason, host=ret.hostname, attempt=unit.failures, final=False)
            log.warning("%s failed on %s (%s); retry %d%s", describe_item(unit.item), ret.hostname, reason,
                        unit.failures, f" in {decision.delay_s:.1f} s" if decision.delay_s else "")
            unit.avoid = decision.avoid_workers
            if decision.delay_s and self.phase is Phase.RUNNING:
                self.held_retries.hold(unit, decision.delay_s, self.now)
            else:
                self.submit(unit)
            return
        if decision.permanent_reason is not None:
            reason = f"{reason} (not retried: {decision.permanent_reason})"
        if not self.skip_bad_file(unit, reason, remote):
            self.fail(unit, reason, ret, remote)

    def skip_bad_file(self, unit: WorkUnit, reason: str, remote: RemoteError | None) -> bool:
        """Under coffea's ``skipbadfiles``: an item whose error it names is skipped and listed, not failed."""
        types = self.options.skipbadfiles
        if not types or remote is None or not any(isinstance(e, types) for e in exception_chain(remote.exception)):
            return False
        self.report.bad_files.append(f"{describe_item(unit.item)}: {reason}")
        self.accept_value(unit, None, Returned(ticket=unit.key, status=TaskStatus.FAILED))
        return True

    def fail(self, unit: WorkUnit, reason: str, ret: Returned, remote: RemoteError | None = None) -> None:
        """The item failed for good: the call winds down (the first failure is the one reported)."""
        unit.failures = max(unit.failures, 1)
        self.note("failed", unit.item, text=reason, host=ret.hostname, attempt=unit.failures, final=True)
        self.emit(ev.Discard(ticket=unit.key))
        if self.failure is None:
            self.failure = TaskFailedError(unit.item, unit.failures, reason, remote=remote, host=ret.hostname,
                                           stdout=ret.stdout or None)

    def exhausted(self, unit: WorkUnit, ret: Returned) -> None:
        item = unit.item
        if self.options.split_on_exhaustion and hasattr(item, "entrystart") and item.entrystop - item.entrystart > 1:
            self.split(unit, ret)
            return
        why = "not a chunk of events" if not hasattr(item, "entrystart") else \
            "split_on_exhaustion is off" if not self.options.split_on_exhaustion else "a single event cannot be split"
        self.fail(unit, exhaustion_failure(ret.exhaustion, ret.allocation, self.options.resources_mode, why), ret)

    def split(self, unit: WorkUnit, ret: Returned) -> None:
        """Replace an item that exhausted its resources by two halves (fresh retries each)."""
        pieces = split_work_item(unit.item, 2)
        self.emit(ev.Discard(ticket=unit.key))
        self.units.pop(unit.key, None)
        if self.partials is not None:
            self.partials.ledger.forget(unit.key)
        self.report.split.append((unit.item, pieces))
        self.note("split", unit.item, self.amount(unit.item), text=ret.exhaustion, host=ret.hostname,
                  pieces=pieces, grow=self.ranges is None)
        log.warning("%s exhausted its resources on %s (%s); split into %d pieces", describe_item(unit.item),
                    ret.hostname or "?", ret.exhaustion, len(pieces))
        if self.model is not None:
            self.model.lower_to(max(1, self.amount(unit.item) // 2))  # later chunks shrink too
        for piece in pieces:
            self.submit(self.new_unit(piece))

    def split_batch(self, unit: WorkUnit, reason: str) -> None:
        """A preprocessing batch failed: its files run again one per task (preprocessing.py), no retry spent."""
        log.warning("a batch of %d files failed (%s); its files are preprocessed one by one", len(unit.item), reason)
        self.emit(ev.Discard(ticket=unit.key))
        self.units.pop(unit.key, None)
        self.report.split.append((unit.item, list(unit.item)))
        self.note("split", unit.item, 1, text=reason, pieces=list(unit.item), grow=True)
        for meta in unit.item:
            self.submit(self.new_unit(meta))

    # ------------------------------------------------------------------ the tree
    def take_for_tree(self, unit: WorkUnit, ret: Returned) -> None:
        """A chunk's value left unread in ``ret.waiting``: it waits for an accumulation task."""
        assert self.tree is not None and ret.waiting is not None
        if not self.mark_done(unit):
            self.emit(ev.Discard(path=ret.waiting))
            return
        self.learn_chunk_size(unit, ret, None)
        if self.store:
            self.emit(ev.StoreResult((unit.item,), ret.waiting, keep=True))
        self.count_processed(unit)
        self.tree.add(WaitingResult(f"chunk {describe_item(unit.item)}", ret.waiting, ret.waiting_size, (unit.key,),
                                    ret.hostname, ret.address))

    def take_partial_for_tree(self, partial_id: str, units: list[WorkUnit], ret: Returned) -> None:
        """An accepted partial, its value unread: it waits if big, else it is merged now."""
        assert ret.waiting is not None
        items = tuple(unit.item for unit in units)
        if self.store:
            self.emit(ev.StoreResult(items, ret.waiting, bundle=True, keep=True))
            self.bundles.update(dict.fromkeys((unit.key for unit in units), items))
        result = WaitingResult(f"partial {partial_id} of {len(units)} chunk(s)", ret.waiting, ret.waiting_size,
                               tuple(unit.key for unit in units), ret.hostname, ret.address)
        if self.tree is None or self.big_bytes is None or result.size < self.big_bytes:
            self.merge_waiting([result])  # small: no task round trip for it
        else:
            self.tree.add(result)

    def tree_step(self) -> None:
        """Start the accumulation tasks the planner wants; at the end, merge what is left here."""
        assert self.tree is not None
        final = self.nothing_more_to_come()
        for job in self.tree.plan(final):
            self.submit_accumulation(job)
        if self.tree.finished(final) and self.tree.waiting:
            self.merge_waiting(self.tree.take_waiting())

    def submit_accumulation(self, job: AccumulationJob) -> None:
        ticket = self.allocate_key()
        self.in_flight[ticket] = InFlight(ticket, TaskKind.ACCUMULATION, job=job, since=self.now)
        self.emit(ev.SubmitAccumulation(ticket, job))

    def accumulation_came_back(self, job: AccumulationJob, ret: Returned) -> None:
        assert self.tree is not None
        if ret.status is TaskStatus.SUCCESS and ret.waiting is not None:
            self.tree.succeeded(job.job_id, WaitingResult(f"sum of {len(job.keys)} chunks", ret.waiting,
                                                          ret.waiting_size, job.keys, ret.hostname, ret.address))
            self.report.accumulation_tasks += 1
            for result in job.inputs:  # their sum is safely here
                self.emit(ev.Discard(path=result.path))
            return
        if ret.blamed is not None and 0 <= ret.blamed[0] < len(job.inputs):
            culprit = job.inputs[ret.blamed[0]]
            self.tree.give_back(job.job_id, keep=[r for r in job.inputs if r is not culprit])
            self.redo(culprit, ret.blamed[1], ret.blamed[2])
            return
        reason = ret.blamed[2] if ret.blamed is not None and ret.blamed[2] else \
            f"task result {ret.result_name} (exit status {ret.exit_status})"
        if job.failures < self.options.retries:
            self.tree.retry(job.job_id)
            log.warning("accumulation task of %d results failed on %s (%s); retry %d of %d", len(job.inputs),
                        ret.hostname, reason, job.failures, self.options.retries)
            self.submit_accumulation(job)
            return
        self.tree.abandon(job.job_id)
        log.warning("accumulation task of %d results failed on %s (%s) after %d retries; its inputs are merged in "
                    "this process instead", len(job.inputs), ret.hostname, reason, job.failures)
        self.merge_waiting(job.inputs)

    def merge_waiting(self, results: list[WaitingResult]) -> None:
        """Ask the driver to read and merge ``results`` here; each answer comes back as an event."""
        self.merging += len(results)
        self.emit(ev.MergeWaiting(tuple(results)))

    def waiting_merged(self, result: WaitingResult) -> None:
        self.emit(ev.Discard(path=result.path))
        for key in result.keys:
            self.bundles.pop(key, None)
            self.count_accumulated(self.units[key])

    def redo(self, result: WaitingResult, refused: str, detail: str) -> None:
        """``result`` is unusable: its producer is the culprit, and the chunks it covered run again."""
        self.emit(ev.Discard(path=result.path))
        producer = Returned(ticket=-1, status=TaskStatus.FAILED, hostname=result.hostname, address=result.address,
                            worker=_worker(result))
        units = [self.units[key] for key in result.keys]
        for unit in units:
            self.unmark_done(unit)
            if self.store:
                self.emit(ev.Unstore((unit.item,)))
                bundle = self.bundles.pop(unit.key, None)
                if bundle is not None:
                    self.emit(ev.Unstore(bundle, bundle=True))
                    for other in [k for k, b in self.bundles.items() if b is bundle]:
                        self.bundles.pop(other, None)
        if refused:
            self.report.refused.append(f"{refused} from {_worker(result)}")
            self.emit(ev.Disconnect(result.hostname, result.address))
        log.error("%s from %s cannot be used (%s); its %d chunk(s) are resubmitted", result.name, _worker(result),
                  detail, len(units))
        for unit in units:
            if self.salvaging:
                self.pending.append(unit)  # reported unprocessed: the call is stopping
            elif refused:
                self.resubmit_refused(unit, producer, detail)
            else:
                self.retry_or_fail(unit, detail, producer)

    # ------------------------------------------------------------------ the end
    def processing_done(self) -> bool:
        """No chunk is queued, running or still to be cut."""
        return not (self.pending or self.chunks_out or self.more_to_cut() or self.held_retries)

    def nothing_more_to_come(self) -> bool:
        """Processing is done and no partial is still to come back: what waits in the tree is all there is."""
        return self.processing_done() and (self.partials is None or not self.partials.outstanding())

    def work_left(self) -> bool:
        tree_busy = self.tree is not None and bool(self.tree.running or self.tree.waiting)
        return not self.nothing_more_to_come() or tree_busy or self.merging > 0

    def _stop_requested(self) -> None:
        if self.phase is not self.phase.RUNNING:
            return
        self.interrupted = True
        running = " (running ones first hand back the work merged on their workers)" if self.partials else ""
        self.note("say", text=f"Ctrl-C: {self.options.desc.lower()} stops; {self.chunks_out} task(s) in flight are "
                              f"cancelled{running} and the output so far is returned (Ctrl-C again aborts at once)")
        self.wind_down()

    def wind_down(self) -> None:
        """A stop or a failure: cancel the chunk tasks; with partials, flush them back first (module doc)."""
        self.phase = Phase.WINDING_DOWN
        if self.partials is None:
            self.close()
            return
        chunks = frozenset(t for t, entry in self.in_flight.items() if entry.kind is TaskKind.CHUNK)
        if chunks:
            self.emit(ev.CancelUnstarted(chunks))
        self.stop_deadline = self.now + FLUSH_ON_STOP_S
        self.flush_live()
        if self.partials.flushes:
            self.note("say", text=f"{self.options.desc}: bringing back {len(self.partials.ledger.live_partials())} "
                                  f"partial result(s) from the workers (at most {FLUSH_ON_STOP_S:g} s; Ctrl-C "
                                  "again aborts at once)")

    def close(self) -> None:
        """Cancel what is left, merge what waits in the tree here, and finish."""
        for ticket, entry in list(self.in_flight.items()):
            self.emit(ev.Cancel(ticket))
            if entry.kind is not TaskKind.ACCUMULATION:
                self.emit(ev.Discard(ticket=ticket))
        if self.tree is not None:
            inputs = [r for entry in self.in_flight.values() if entry.job is not None for r in entry.job.inputs]
            self.tree.running.clear()
            waiting = sorted(inputs + self.tree.take_waiting(), key=lambda r: r.size)
            if waiting:
                self.salvaging = True
                self.merge_waiting(waiting)
        self.in_flight.clear()
        self.chunks_out = 0
        if self.partials is not None:
            self.partials.flushes.clear()
            lifetimes = self.partials.lifetimes
            self.report.workers_lost = lifetimes.losses
            self.report.mean_worker_lifetime_s = lifetimes.mean_lifetime(self.now)
            self.report.hold_bound = self.hold_description()
        self.phase = Phase.CLOSING
        self.finish_when_merged()

    def hold_description(self) -> str:
        """The hand-back bound in force, in words ("" without partials on workers)."""
        if self.partials is None:
            return ""
        bounds = self.partials.current_bounds(self.now)
        if not bounds.hold:
            return "per chunk"
        return f"{bounds.every or 'any number of'} chunk(s) or {bounds.seconds:g} s"

    def finish_when_merged(self) -> None:
        if self.phase is Phase.CLOSING and self.merging == 0:
            self.phase = Phase.OVER
            self.emit(ev.Finish(self.failure))

    def _settle(self) -> None:
        """After each event: a failure winds the call down; a call with no work left, or a stop whose
        flushes are back or late, closes."""
        if self.phase is Phase.RUNNING:
            if self.failure is not None:
                self.wind_down()
            elif not self.work_left():
                self.close()
                return
        if self.phase is Phase.WINDING_DOWN:
            done = self.partials is None or not self.partials.outstanding()
            if done or self.now >= self.stop_deadline:
                self.close()
        self.finish_when_merged()


def _worker(result: WaitingResult) -> str:
    hostname, address = result.hostname or "?", result.address
    return f"{hostname} ({address})" if address and address != hostname else hostname


