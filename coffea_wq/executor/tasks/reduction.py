"""The task loop's part of reduction on workers (docs/reduction.md): held records, partials, flush tasks.

With reduction on, a chunk task on a coffea-wq worker's warm slot adds its value to the slot's
partial and answers with a small *held* record; partials come back by themselves (every
``chunks_per_accum`` chunks, after ``accum_interval`` seconds, with a slot's last task or an error
record) or when a *flush task* asks (once nothing is left to submit, and on a soft stop). The
``Ledger`` (results/ledger.py) decides what each record means; this module does what it decides
on the loop: count a partial's value once, resubmit the keys of a lost or dropped partial (not a
retry: those chunks did nothing wrong), pin flush tasks to the partial's worker with its feature,
and each time the loop wakes up, declare lost the partials whose worker left (and cancel their
flush tasks, which no other worker could run).

With accumulation tasks on (``treereduction``), a partial's record is read without its value
(``read_outcome(value=False)``): an accepted partial goes to the tree (``TreeReduction.take_partial``),
which merges it here if it is small and else lets it wait for an accumulation task, so that at
the end of a run with big results the user's process loads one (docs/reduction.md, sections 2-3).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from coffea_wq.executor.results.ledger import Decision, KeyState, Ledger
from coffea_wq.executor.results.outcome import OutcomeKind, PartialResult, TaskOutcome, read_outcome
from coffea_wq.executor.tasks.staging import build_flush_task
from coffea_wq.executor.tasks.task_facts import worker_name

if TYPE_CHECKING:  # the loop owns us
    from coffea_wq.executor.tasks.task_loop import TaskLoop, WorkUnit

log = logging.getLogger(__name__)

WORKER_CHECK_INTERVAL_S = 0.5  # the manager's worker list is read at most this often
FLUSH_ON_STOP_S = 20.0  # on a soft stop, how long the flush tasks of live partials are awaited


@dataclass
class FlushTask:
    partial_id: str
    key: int  # its staging slot (output file, placeholder item)


class Reduction:
    """Partials of one call: what the loop calls when a chunk's record or a flush task comes back."""

    def __init__(self, loop: TaskLoop):
        self.loop = loop
        self.ledger = Ledger()
        self.flushes: dict[int, FlushTask] = {}  # task id -> flush
        self.last_check = 0.0

    # ------------------------------------------------------------------ the loop's hooks
    def outstanding(self) -> bool:
        """Partials still to come back (live ones, or flushes in flight)."""
        return bool(self.flushes) or bool(self.ledger.live_partials())

    def handle_record(self, unit: WorkUnit, task: Any, outcome: TaskOutcome) -> bool:
        """A chunk task's HELD or PARTIAL record (True), or anything else for the loop (False)."""
        if outcome.kind is OutcomeKind.HELD and outcome.partial is not None:
            self.loop.learn_chunk_size(unit, task, outcome.wall_time)
            if outcome.key != unit.key:  # a worker answering for another chunk: not believed
                self.loop.retry_or_fail(unit, f"the held record names chunk {outcome.key}, not {unit.key}", task)
                return True
            self.loop.session.staging.discard_output(unit.key)
            decision = self.ledger.held(unit.key, outcome.partial.partial_id)
            if not decision.resubmit:
                self.loop.count_processed(unit)
            self.apply(decision)
            return True
        if outcome.kind is OutcomeKind.PARTIAL and outcome.partial is not None:
            self.loop.learn_chunk_size(unit, task, outcome.wall_time)
            self.loop.count_processed(unit)
            self.returned(outcome.partial, unit.key, self.loop.session.staging.output_path(unit.key), task)
            return True
        return False

    def carried(self, outcome: TaskOutcome, record: Path, task: Any) -> None:
        """An error record (at ``record``) that carries its slot's partial: merge that first (docs/reduction.md, 5)."""
        if outcome.partial is not None:
            self.returned(outcome.partial, None, record, task)

    def read(self, record: Path, task: Any) -> TaskOutcome:
        """A task's record; with accumulation tasks, a partial's value is left unread (see the module doc)."""
        return read_outcome(record, self.loop.options.result_policy, worker_name(task), value=self.loop.tree is None)

    def handle_flush(self, task: Any) -> bool:
        """A flush task came back (True), or the task is not one of ours (False)."""
        flush = self.flushes.pop(task.id, None)
        if flush is None:
            return False
        self.loop.report.flush_tasks_returned += 1
        staging = self.loop.session.staging
        began = time.perf_counter()
        outcome = self.read(staging.output_path(flush.key), task)
        self.loop.report.breakdown.add_task(task, outcome.phases, None, worker_name(task), time.perf_counter() - began)
        if int(task.result) == self.loop.success and outcome.kind is OutcomeKind.PARTIAL and outcome.partial:
            if outcome.partial.partial_id == flush.partial_id:
                self.returned(outcome.partial, None, staging.output_path(flush.key), task)
            else:
                self.lose(flush.partial_id, f"its flush task brought back {outcome.partial.partial_id}")
        else:
            why = "its slot no longer holds it" if outcome.kind is OutcomeKind.LOST else \
                f"its flush task failed ({outcome.detail or outcome.kind.value}, result {task.result})"
            self.lose(flush.partial_id, why)
        staging.discard(flush.key)
        return True

    def flush_live(self) -> None:
        """Send a flush task for every live partial that has none in flight."""
        flushing = {f.partial_id for f in self.flushes.values()}
        for partial in self.ledger.live_partials():
            if partial.partial_id not in flushing:
                self.send_flush(partial.partial_id, partial.feature)

    def check_workers(self, force: bool = False) -> None:
        """Declare lost the partials whose worker left; cancel their flush tasks."""
        now = time.monotonic()
        if not force and now - self.last_check < WORKER_CHECK_INTERVAL_S:
            return
        self.last_check = now
        try:
            connected = set(self.loop.queue.worker_features())
        except Exception as exc:  # never fatal: the end-of-run flush still finds lost partials
            log.debug("cannot read the connected workers: %r", exc)
            return
        for partial in self.ledger.partials_off(connected):
            self.lose(partial.partial_id, f"its worker ({partial.feature}) left")
        for task_id, flush in list(self.flushes.items()):
            partial = self.ledger.partials.get(flush.partial_id)
            if partial is not None and (partial.lost or partial.closed) and partial.feature not in connected:
                self.cancel_flush(task_id)

    def flush_for_stop(self, seconds: float = FLUSH_ON_STOP_S) -> None:
        """Soft stop: bring back what the live partials hold, for at most ``seconds`` (docs/reduction.md, 5).

        Chunk tasks still running end meanwhile and are handled as usual (a held value joins its
        partial, whose flush waits behind it); nothing new is submitted.
        """
        deadline = time.monotonic() + seconds
        self.flush_live()
        if self.flushes:
            self.loop.say(f"{self.loop.options.desc}: bringing back {len(self.ledger.live_partials())} partial "
                          f"result(s) from the workers (at most {seconds:g} s; Ctrl-C again aborts at once)")
        while self.outstanding() and time.monotonic() < deadline:
            task = self.loop.queue.wait(min(1.0, max(0.1, deadline - time.monotonic())))
            if task is not None and not self.handle_flush(task):
                self.loop.handle_returned_chunk(task)
            self.check_workers()
            self.flush_live()  # a running chunk may have started a partial in a fresh slot
        for task_id in list(self.flushes):
            self.cancel_flush(task_id)

    def cancel_all(self) -> None:
        for task_id in list(self.flushes):
            self.cancel_flush(task_id)

    def unprocessed_keys(self) -> set[int]:
        return set(self.ledger.keys_in(KeyState.PENDING, KeyState.IN_FLIGHT, KeyState.HELD))

    # ------------------------------------------------------------------ what the ledger decides
    def returned(self, partial: PartialResult, own_key: int | None, record: Path, task: Any) -> None:
        """Partial ``partial`` came back in the record at ``record``, brought by ``task``."""
        decision = self.ledger.returned(partial.partial_id, partial.keys, own_key)
        if decision.merge:
            self.loop.report.partials_returned += 1
            units = [self.loop.units[k] for k in decision.done]
            if partial.value_unread and self.loop.tree is not None:
                self.loop.tree.take_partial(partial.partial_id, units, record, task)
            else:
                self.loop.merge_partial(partial.value, units, record)
        else:
            self.loop.report.partials_lost += 1
            log.warning("partial %s dropped (%s); %d chunk(s) run again", partial.partial_id, decision.reason,
                        len(decision.resubmit))
        self.apply(decision)

    def lose(self, partial_id: str, why: str) -> None:
        decision = self.ledger.lost(partial_id, why)
        if decision.resubmit:
            self.loop.report.partials_lost += 1
            log.warning("partial %s lost (%s); its %d chunk(s) run again", partial_id, why, len(decision.resubmit))
        self.apply(decision)

    def apply(self, decision: Decision) -> None:
        """Queue the keys to run again (the returning task's own key too, if among them)."""
        for key in decision.resubmit:
            unit = self.loop.units.get(key)
            if unit is not None:
                self.loop.requeue(unit)

    # ------------------------------------------------------------------ flush tasks
    def send_flush(self, partial_id: str, feature: str) -> None:
        loop = self.loop
        staging = loop.session.staging
        key = loop.allocate_key()
        staging.write_item(key, None)
        task = build_flush_task(loop.session.wq, loop.template, key, staging.item_path(key),
                                staging.reset_output(key), partial_id, feature)
        self.flushes[loop.queue.submit(task)] = FlushTask(partial_id, key)
        loop.report.flush_tasks_submitted += 1

    def cancel_flush(self, task_id: int) -> None:
        flush = self.flushes.pop(task_id, None)
        try:
            self.loop.queue.cancel_by_taskid(task_id)
        except Exception as exc:
            log.debug("cancel of flush task %s failed: %r", task_id, exc)
        if flush is not None:
            self.loop.session.staging.discard(flush.key)
