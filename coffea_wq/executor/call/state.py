"""One executor call as a state machine: events in, actions out, no I/O (docs/design.md, "The executor's call").

Rules of this file:

* everything that decides what happens to a work unit lives here or in a decider it holds
  (``Partials``: partials on workers; ``TreePlanner``: accumulation tasks; ``ChunkSizeModel``:
  dynamic chunk sizes); a decider returns what it decided and holds no pointer back;
* nothing here touches a socket, a file or the manager: ``CallDriver`` (driver.py) reads returned
  tasks into ``Returned`` facts once, passes them in as events, and carries the actions out;
* one in-flight table, ``in_flight``, keyed by ticket (a chunk's key, or a fresh number for a
  flush or an accumulation task), says what each submitted task is.

Theory of operation. A call is RUNNING until no work is left (nothing pending, in flight, to cut,
waiting in the tree, or held on a worker) and then OVER. A stop request (Ctrl-C) or a chunk that
failed for good makes it WINDING_DOWN: nothing new is submitted; with partials on workers, chunk
tasks no worker started are cancelled and the live partials are flushed for at most
``FLUSH_ON_STOP_S``; then everything left is cancelled and what waits in the tree is merged here.
Every chunk ends counted exactly once: in ``report.accumulated`` (or ``skipped``) or in
``unprocessed_items()`` — the property the hypothesis tests drive through thousands of histories
(tests/executor/call/test_call_histories.py).
"""

from __future__ import annotations

import logging
from typing import Any

from coffea_wq.executor.call import model as ev
from coffea_wq.executor.call.model import InFlight, Returned, TaskKind, TaskStatus, WorkUnit
from coffea_wq.executor.call.partials import Verdict
from coffea_wq.executor.call.settling import FLUSH_ON_STOP_S, CallTables, Phase
from coffea_wq.executor.results.outcome import OutcomeKind, PartialResult
from coffea_wq.executor.results.tree import WaitingResult
from coffea_wq.executor.tasks.dynamic_chunks import ChunkSizeModel, EntryRanges
from coffea_wq.executor.tasks.read_errors import classify_read_error

log = logging.getLogger("coffea_wq.executor.call")

MIN_QUEUED = 200  # tasks kept submitted beyond what the manager calls hungry
DYNAMIC_AHEAD = 2  # with dynamic chunk sizes: chunks cut beyond one per connected core


class CallState(CallTables):
    """The decisions of one executor call (see the module doc).

    Example (no manager, no files: a history is a list of events):
        >>> from coffea_wq.executor.call.report import CallOptions
        >>> state = CallState(CallOptions())
        >>> [type(a).__name__ for a in state.start(["a"], now=0.0)]
        []
        >>> [type(a).__name__ for a in state.handle(ev.Tick(now=0.0))]
        ['Note', 'SubmitChunk']
    """

    # ------------------------------------------------------------------ entry points
    def start(self, items: list[Any], now: float = 0.0) -> list[ev.Action]:
        """The call's items (those not restored from ``checkpoint_dir``)."""
        self.now = now
        self.report.items += len(items)
        if self.options.dynamic_chunksize and items and all(hasattr(i, "entrystart") for i in items):
            self.ranges = EntryRanges(items)
            self.model = ChunkSizeModel(self.options.dynamic_chunksize,
                                        base=max(i.entrystop - i.entrystart for i in items))
            self.report.items -= len(items)  # counted as chunks are cut
        else:
            for item in items:
                self.pending.append(self.new_unit(item))
        return self._flush_out()

    def handle(self, event: ev.Event) -> list[ev.Action]:
        """Take one event; return what to do, in order."""
        if self.phase is Phase.OVER:
            return []
        self.now = getattr(event, "now", self.now)
        if isinstance(event, ev.TaskCameBack):
            if event.workers is not None:
                self.workers_connected = event.workers
            self._came_back(event.returned)
        elif isinstance(event, ev.WorkersSeen):
            if self.partials is not None:
                self.apply(self.partials.workers_seen(event.features, event.now), "its worker left")
        elif isinstance(event, ev.Tick):
            self._turn(event)
        elif isinstance(event, ev.StopRequested):
            self._stop_requested()
        elif isinstance(event, ev.NotStarted):
            for ticket in event.tickets:
                self._forget_ticket(ticket)
                self.emit(ev.Discard(ticket=ticket))
        elif isinstance(event, ev.WaitingMerged):
            self.merging -= 1
            self.waiting_merged(event.result)
        elif isinstance(event, ev.WaitingUnusable):
            self.merging -= 1
            self.redo(event.result, event.refused, event.detail)
        elif isinstance(event, ev.HandBackCost) and self.partials is not None:
            self.partials.observe_handback(event.seconds)
        self._settle()
        return self._flush_out()

    @property
    def over(self) -> bool:
        return self.phase is Phase.OVER

    def unprocessed_items(self) -> list[Any]:
        """Items whose results are not in the output: failed, in flight, held, queued and not yet cut."""
        items = [unit.item for unit in self.units.values() if unit.key not in self.done_keys]
        if self.ranges is not None:
            items += self.ranges.remaining_items()
        return items

    # ------------------------------------------------------------------ units and submission
    def submit(self, unit: WorkUnit) -> None:
        if self.phase is not Phase.RUNNING:  # a retry asked for while winding down: it stays undone
            self.pending.append(unit)
            return
        bounds = self.partials.bounds(unit.key, self.now) if self.partials is not None else None
        if self.partials is not None:
            self.partials.ledger.submitted(unit.key)
        self.in_flight[unit.key] = InFlight(unit.key, TaskKind.CHUNK, key=unit.key, since=self.now)
        self.chunks_out += 1
        self.report.tasks_submitted += 1
        if not unit.announced:
            self.note("submitted", unit.item, self.amount(unit.item))
        unit.announced = True
        if bounds is None:
            self.emit(ev.SubmitChunk(unit, avoid=unit.avoid))
        else:
            self.emit(ev.SubmitChunk(unit, bounds.every, bounds.seconds, bounds.hold, avoid=unit.avoid))

    def _submit_ready(self, tick: ev.Tick) -> None:
        self.pending.extend(self.held_retries.due(self.now))
        if self.ranges is not None:
            # cut a chunk only when a core can take it, so that it gets the size learnt so far
            while (self.pending or self.more_to_cut()) and self.chunks_out < DYNAMIC_AHEAD + tick.cores:
                self.submit(self.pending.popleft() if self.pending else self._cut_unit())
            return
        room = max(MIN_QUEUED - self.chunks_out, int(tick.hungry))
        while self.pending and room > 0:
            self.submit(self.pending.popleft())
            room -= 1

    def _cut_unit(self) -> WorkUnit:
        assert self.ranges is not None and self.model is not None
        chunk = self.ranges.cut(self.model.size())
        self.report.items += 1
        self.note("cut", chunk)
        return self.new_unit(chunk)

    def more_to_cut(self) -> bool:
        return self.ranges is not None and bool(self.ranges.ranges)

    def requeue(self, unit: WorkUnit) -> None:
        """Run a unit again without spending a retry (its partial was lost or dropped)."""
        self.pending.append(unit)

    def _forget_ticket(self, ticket: int) -> InFlight | None:
        entry = self.in_flight.pop(ticket, None)
        if entry is not None and entry.kind is TaskKind.CHUNK:
            self.chunks_out -= 1
        return entry

    # ------------------------------------------------------------------ the driver's turn
    def _turn(self, tick: ev.Tick) -> None:
        if tick.workers is not None:
            self.workers_connected = tick.workers
        if self.phase is Phase.RUNNING:
            self._submit_ready(tick)
            if self.partials is not None:
                self.flush_live(due_only=True)  # past the bounds now in force (docs/reduction.md, 6)
                if not self.pending and not self.more_to_cut():
                    self.flush_live()  # nothing left to submit: bring the others back
        elif self.partials is not None and self.phase is Phase.WINDING_DOWN:
            self.flush_live()  # a running chunk may have started a partial in a fresh slot
        if self.partials is not None and self.phase in (Phase.RUNNING, Phase.WINDING_DOWN):
            self.apply(self.partials.overdue(self.now), "its flush was late")
        if self.tree is not None and self.phase is Phase.RUNNING:
            self.tree_step()

    def flush_live(self, due_only: bool = False) -> None:
        """Send a flush for every live partial; ``due_only``: for those past the hold bounds in force,
        urgent ones (the bounds a queued chunk task carries are those of its submission)."""
        assert self.partials is not None
        partials = self.partials.due_for_handback(self.now) if due_only else self.partials.to_flush()
        for partial_id, feature in partials:
            ticket = self.allocate_key()
            self.partials.flush_sent(ticket, partial_id, self.now)
            self.in_flight[ticket] = InFlight(ticket, TaskKind.FLUSH, partial_id=partial_id, since=self.now)
            self.report.flush_tasks_submitted += 1
            self.emit(ev.SubmitFlush(ticket, partial_id, feature, urgent=due_only))

    # ------------------------------------------------------------------ tasks coming back
    def _came_back(self, ret: Returned) -> None:
        entry = self._forget_ticket(ret.ticket)
        if entry is None:
            log.debug("ignoring ticket %s: not in flight (cancelled, or not of this call)", ret.ticket)
            if ret.waiting is not None:
                self.emit(ev.Discard(path=ret.waiting))
            return
        if entry.kind is TaskKind.FLUSH:
            self.flush_came_back(ret)
        elif entry.kind is TaskKind.ACCUMULATION:
            assert entry.job is not None
            self.accumulation_came_back(entry.job, ret)
        else:
            self.report.tasks_returned += 1
            self.chunk_came_back(self.units[ret.ticket], ret)

    def chunk_came_back(self, unit: WorkUnit, ret: Returned) -> None:
        """Accumulate, hold, split, retry or fail (docs/executor.md, section 3)."""
        if ret.environment is not None:
            self.environment_broke(unit, ret)
            return
        if ret.status is TaskStatus.EXHAUSTED:
            self.exhausted(unit, ret)
            return
        if ret.status is not TaskStatus.SUCCESS:
            self.retry_or_fail(unit, f"task result {ret.result_name} (exit status {ret.exit_status})", ret,
                               verdict=classify_read_error(None, "", ret.stdout))  # disk full, staging quota
            return
        outcome = ret.outcome
        if outcome is None:  # an ok record with a value, left unread for the tree
            self.take_for_tree(unit, ret)
            return
        if outcome.kind is OutcomeKind.REFUSED:
            self.refuse_result(unit, ret, outcome.refused, outcome.detail)
        elif outcome.kind is OutcomeKind.OK:
            self.learn_chunk_size(unit, ret, outcome.wall_time)
            self.accept_value(unit, outcome.value, ret)
        elif outcome.kind is OutcomeKind.HELD and outcome.partial is not None and self.partials is not None:
            self.held(unit, ret, outcome.partial, outcome.key, outcome.wall_time)
        elif outcome.kind is OutcomeKind.PARTIAL and outcome.partial is not None and self.partials is not None:
            self.learn_chunk_size(unit, ret, outcome.wall_time)
            self.count_processed(unit)
            self.partial_returned(outcome.partial, unit.key, ret)
        elif outcome.kind is OutcomeKind.REMOTE_ERROR:
            if outcome.partial is not None and self.partials is not None:
                self.partial_returned(outcome.partial, None, ret)  # the slot's partial came with the error
            self.remote_error(unit, ret, outcome.remote)
        else:
            self.retry_or_fail(unit, f"{outcome.detail} (exit status {ret.exit_status})", ret,
                               verdict=classify_read_error(None, "", ret.stdout))

    def learn_chunk_size(self, unit: WorkUnit, ret: Returned, wall_time: float | None) -> None:
        seconds = wall_time if wall_time is not None else ret.runtime_s
        if self.partials is not None:
            self.partials.observe_chunk(seconds)
        if self.model is not None:
            self.model.observe(self.amount(unit.item), seconds, ret.memory_mb)

    # ------------------------------------------------------------------ partials
    def held(self, unit: WorkUnit, ret: Returned, partial: PartialResult, key: int | None,
             wall_time: float | None) -> None:
        assert self.partials is not None
        self.learn_chunk_size(unit, ret, wall_time)
        if key != unit.key:  # a worker answering for another chunk: not believed
            self.retry_or_fail(unit, f"the held record names chunk {key}, not {unit.key}", ret)
            return
        self.emit(ev.Discard(ticket=unit.key, output_only=True))
        verdict = self.partials.held(unit.key, partial.partial_id, self.now)
        if unit.key not in verdict.resubmit:
            self.count_processed(unit)
        self.apply(verdict, f"chunk {unit.key}'s held record came for a partial that is gone")

    def partial_returned(self, partial: PartialResult, own_key: int | None, ret: Returned) -> None:
        """A partial came back (with a chunk, a flush or an error record): merge it once, or drop it."""
        assert self.partials is not None
        verdict = self.partials.returned(partial.partial_id, partial.keys, own_key)
        if not verdict.merge:
            if ret.waiting is not None:
                self.emit(ev.Discard(path=ret.waiting))
            self.apply(verdict, f"partial {partial.partial_id} dropped ({verdict.reason})")
            return
        self.report.partials_returned += 1
        units = [self.units[key] for key in verdict.done]
        items = tuple(unit.item for unit in units)
        for unit in units:
            self.done_keys.add(unit.key)
        if partial.value_unread and ret.waiting is not None:
            self.take_partial_for_tree(partial.partial_id, units, ret)
        else:
            self.emit(ev.MergeValue(partial.value, partial=True))
            if self.store and ret.record is not None:
                self.emit(ev.StoreResult(items, ret.record, bundle=True))
            for unit in units:
                self.count_accumulated(unit)
        self.apply(verdict, "")

    def lose(self, partial_id: str, why: str) -> None:
        assert self.partials is not None
        self.apply(self.partials.lose(partial_id, why), why)

    def apply(self, verdict: Verdict, why: str) -> None:
        """Requeue the keys a verdict gives back; cancel the flushes it gives up."""
        self.report.partials_lost += verdict.lost
        if verdict.resubmit:
            log.warning("%s%s; %d chunk(s) run again", why or "partial lost",
                        f" ({verdict.reason})" if verdict.reason and verdict.reason not in why else "",
                        len(verdict.resubmit))
        for key in verdict.resubmit:
            unit = self.units.get(key)
            if unit is not None:
                unit.losses += 1
                self.report.chunks_redone_after_loss += 1
                self.requeue(unit)
        for ticket in verdict.cancel:
            if self._forget_ticket(ticket) is not None:
                self.emit(ev.Cancel(ticket))
                self.emit(ev.Discard(ticket=ticket))

    def flush_came_back(self, ret: Returned) -> None:
        assert self.partials is not None
        flush = self.partials.flush_returned(ret.ticket)
        if flush is None:
            self.emit(ev.Discard(ticket=ret.ticket))
            return
        self._flush_outcome(flush.partial_id, ret)
        self.emit(ev.Discard(ticket=ret.ticket))  # after: a partial merged whole may be stored from it

    def _flush_outcome(self, partial_id: str, ret: Returned) -> None:
        self.report.flush_tasks_returned += 1
        outcome = ret.outcome
        if ret.status is TaskStatus.SUCCESS and outcome is not None and outcome.kind is OutcomeKind.PARTIAL \
                and outcome.partial is not None:
            if outcome.partial.partial_id == partial_id:
                self.partial_returned(outcome.partial, None, ret)
            else:
                self.lose(partial_id, f"its flush task brought back {outcome.partial.partial_id}")
            return
        if ret.waiting is not None:
            self.emit(ev.Discard(path=ret.waiting))
        why = "its slot no longer holds it" if outcome is not None and outcome.kind is OutcomeKind.LOST else \
            f"its flush task failed ({outcome.detail or outcome.kind.value if outcome else ret.result_name})"
        self.lose(partial_id, f"partial {partial_id} lost: {why}")

__all__ = ["FLUSH_ON_STOP_S", "CallState", "Phase", "WaitingResult"]
