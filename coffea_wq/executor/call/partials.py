"""Partials on workers, decided: what a held record, a returned partial, a lost worker or a late flush means.

A decider of ``CallState`` (state.py): it holds the ``Ledger`` (results/ledger.py: where each chunk's
value is), the flush tasks in flight, the pool's worker lifetimes and the hold bounds in force, and
answers each fact with a ``Verdict`` (what to merge, which keys to run again, which flush tickets to
cancel). It knows nothing of the state that calls it, nor of any I/O (docs/reduction.md, sections 2
and 6).

The convergence rules, on top of the ledger's:

* a partial's worker that is no longer connected loses the partial at once, and its flush, which
  no other worker could run, is cancelled;
* a flush that is not back within its deadline (``flush_deadline``) is given up: its partial counts
  as lost (a later return of it is dropped by the ledger), so the end of a run never waits on a
  slot stuck behind a long task;
* what a slot may hold is bounded by ``bounds.hold_bounds`` from the worker lifetimes seen;
* a chunk whose value was lost twice is not held again: its value comes back with its task, so
  no chunk can be lost forever by a pool whose workers keep leaving.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from coffea_wq.executor.call.bounds import HoldBounds, HoldSettings, WorkerLifetimes, hold_bounds
from coffea_wq.executor.results.ledger import Decision, Ledger, partial_feature
from coffea_wq.worker.warm_contract import worker_feature

MAX_LOSSES_HELD = 2  # a chunk lost this often with partials is no longer held (module doc)
FLUSH_DEADLINE_MIN_S = 30.0  # a flush waits at least this long for the slot it asks
FLUSH_DEADLINE_CHUNKS = 4.0  # ... or this many times the slowest chunk seen
HANDBACK_SAMPLES = 20  # hand-back costs averaged over the latest this many


@dataclass
class Flush:
    partial_id: str
    since: float


@dataclass
class Verdict:
    """What a partial's fact means for the call: merge (``done`` keys), redo ``resubmit``, cancel flushes."""

    merge: bool = False
    done: tuple[int, ...] = ()
    resubmit: tuple[int, ...] = ()
    lost: int = 0  # partials lost or dropped by this fact
    cancel: tuple[int, ...] = ()  # flush tickets to cancel
    reason: str = ""

    def merge_with(self, other: Verdict) -> Verdict:
        """Both verdicts' keys and cancels (a merging verdict never comes with another)."""
        return Verdict(merge=self.merge or other.merge, done=self.done + other.done,
                       resubmit=self.resubmit + tuple(k for k in other.resubmit if k not in self.resubmit),
                       lost=self.lost + other.lost, cancel=self.cancel + other.cancel,
                       reason="; ".join(r for r in (self.reason, other.reason) if r))


@dataclass
class Partials:
    """The partials of one call (see the module doc)."""

    settings: HoldSettings = field(default_factory=HoldSettings)
    ledger: Ledger = field(default_factory=Ledger)
    flushes: dict[int, Flush] = field(default_factory=dict)  # flush ticket -> flush
    lifetimes: WorkerLifetimes = field(default_factory=WorkerLifetimes)
    handback_costs: list[float] = field(default_factory=list)
    chunk_times: list[float] = field(default_factory=list)  # compute of the latest chunks (s)
    slowest_chunk_s: float = 0.0
    losses: dict[int, int] = field(default_factory=dict)  # key -> times its value was lost
    held_since: dict[str, float] = field(default_factory=dict)  # partial -> when its first held record came

    # ------------------------------------------------------------------ bounds
    def bounds(self, key: int, now: float) -> HoldBounds:
        """What the task of chunk ``key`` is told about holding its value."""
        if self.losses.get(key, 0) >= MAX_LOSSES_HELD:
            return HoldBounds(every=1, seconds=0.0, hold=False)
        return self.current_bounds(now)

    def current_bounds(self, now: float) -> HoldBounds:
        chunk_s = sum(self.chunk_times) / len(self.chunk_times) if self.chunk_times else None
        rate = self.lifetimes.loss_rate(now)
        prior = self.lifetimes.prior_rate(now) if rate is None else None
        return hold_bounds(self.settings, rate, self.handback_s(), chunk_s, prior)

    def handback_s(self) -> float:
        return sum(self.handback_costs) / len(self.handback_costs) if self.handback_costs else 0.0

    def observe_chunk(self, seconds: float | None) -> None:
        if seconds is None or seconds < 0:
            return
        self.chunk_times = [*self.chunk_times[-(HANDBACK_SAMPLES - 1):], seconds]
        self.slowest_chunk_s = max(self.slowest_chunk_s, seconds)

    def observe_handback(self, seconds: float) -> None:
        self.handback_costs = [*self.handback_costs[-(HANDBACK_SAMPLES - 1):], max(0.0, seconds)]

    def flush_deadline(self) -> float:
        return max(FLUSH_DEADLINE_MIN_S, FLUSH_DEADLINE_CHUNKS * self.slowest_chunk_s)

    # ------------------------------------------------------------------ facts
    def held(self, key: int, partial_id: str, now: float = 0.0) -> Verdict:
        """A chunk's held record: its value joined ``partial_id``."""
        if self.ledger.partials.get(partial_id) is None:
            self.held_since[partial_id] = now
            feature = partial_feature(partial_id)
            # held by a worker seen leaving already: lost at once (one that joined since the last
            # look is simply not seen yet)
            if feature in self.lifetimes.departed:
                decision = self.ledger.held(key, partial_id)
                return self._verdict(decision).merge_with(self.lose(partial_id, f"its worker ({feature}) left"))
        return self._verdict(self.ledger.held(key, partial_id))

    def returned(self, partial_id: str, keys: list[int], own_key: int | None) -> Verdict:
        """A partial came back listing ``keys`` (``own_key``: the chunk of the task that brought it)."""
        decision = self.ledger.returned(partial_id, keys, own_key)
        verdict = self._verdict(decision)
        if not decision.merge:
            verdict.lost = 1
        return verdict

    def lose(self, partial_id: str, why: str) -> Verdict:
        """``partial_id`` will never come back; its flush (if any) is cancelled."""
        decision = self.ledger.lost(partial_id, why)
        verdict = self._verdict(decision)
        verdict.lost = 1 if decision.resubmit else 0
        verdict.cancel = tuple(t for t, f in self.flushes.items() if f.partial_id == partial_id)
        for ticket in verdict.cancel:
            del self.flushes[ticket]
        return verdict

    def flush_returned(self, ticket: int) -> Flush | None:
        return self.flushes.pop(ticket, None)

    def workers_seen(self, features: frozenset[str], now: float) -> Verdict:
        """The connected workers now: partials of the workers that left are lost."""
        self.lifetimes.observe({f for f in features if f.startswith(_FEATURE_PREFIX)}, now)
        verdict = Verdict()
        for partial in self.ledger.partials_off(set(features)):
            verdict = verdict.merge_with(self.lose(partial.partial_id, f"its worker ({partial.feature}) left"))
        for ticket, flush in list(self.flushes.items()):  # a flush for a partial gone meanwhile
            partial = self.ledger.partials.get(flush.partial_id)
            if partial is not None and (partial.lost or partial.closed) and partial.feature not in features:
                del self.flushes[ticket]
                verdict.cancel += (ticket,)
        return verdict

    def overdue(self, now: float) -> Verdict:
        """Flushes past their deadline: given up, their partials lost."""
        verdict = Verdict()
        deadline = self.flush_deadline()
        for flush in [f for f in self.flushes.values() if now - f.since > deadline]:
            verdict = verdict.merge_with(
                self.lose(flush.partial_id, f"its flush was not back after {deadline:g} s"))
        return verdict

    def to_flush(self) -> list[tuple[str, str]]:
        """(partial id, feature) of the live partials that have no flush in flight."""
        flushing = {f.partial_id for f in self.flushes.values()}
        return [(p.partial_id, p.feature) for p in self.ledger.live_partials() if p.partial_id not in flushing]

    def due_for_handback(self, now: float) -> list[tuple[str, str]]:
        """(partial id, feature) of the live partials, without a flush in flight, that the bounds in
        force now say should be back: too many chunks, too old, or not to be held at all."""
        bounds = self.current_bounds(now)
        flushing = {f.partial_id for f in self.flushes.values()}
        due = []
        for partial in self.ledger.live_partials():
            if partial.partial_id in flushing:
                continue
            age = now - self.held_since.get(partial.partial_id, now)
            if not bounds.hold or (bounds.every is not None and len(partial.keys) >= bounds.every) or \
                    (bounds.seconds is not None and age >= bounds.seconds):
                due.append((partial.partial_id, partial.feature))
        return due

    def flush_sent(self, ticket: int, partial_id: str, now: float) -> None:
        self.flushes[ticket] = Flush(partial_id, now)

    def outstanding(self) -> bool:
        """Partials still to come back (live ones, or flushes in flight)."""
        return bool(self.flushes) or bool(self.ledger.live_partials())

    def _verdict(self, decision: Decision) -> Verdict:
        for key in decision.resubmit:
            if not decision.merge or key not in decision.done:
                self.losses[key] = self.losses.get(key, 0) + 1
        return Verdict(merge=decision.merge, done=decision.done, resubmit=decision.resubmit, reason=decision.reason)


_FEATURE_PREFIX = worker_feature("")
