"""The ledger of a call with reduction on: where every chunk's result is, and what each partial holds.

Pure bookkeeping (no I/O, no manager): the task loop tells it what came back and does what it
decides. The rules are docs/reduction.md, section 2:

* a chunk key is PENDING (to submit), IN_FLIGHT (its task is out), HELD (its value was added to a
  partial in a worker's warm slot) or DONE (its value, or a partial holding it, is merged in the
  output, or it was skipped);
* a partial is known by its id (``<worker token>/<slot pid>/<seq>``) and lives on the worker that
  advertises the feature ``coffea-wq-worker-<token>``; it holds a SET of keys;
* a returned partial is merged only if it is still live and every key it lists is HELD in it (or
  is the returning task's own key); otherwise it is dropped and the keys that are nowhere else are
  resubmitted. Keys the ledger put in a partial that the partial does not list are resubmitted;
* a lost partial's keys are resubmitted, and a later return of it is dropped.

So no key is ever DONE twice, and a lost or dropped partial costs only the chunks it held.

Example:
    >>> ledger = Ledger()
    >>> for key in (0, 1):
    ...     ledger.add(key); ledger.submitted(key)
    >>> ledger.held(0, "tok/12/0").resubmit
    ()
    >>> decision = ledger.returned("tok/12/0", [0, 1], own_key=1)
    >>> decision.merge, decision.done, decision.resubmit
    (True, (0, 1), ())
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field

from coffea_wq.worker.warm_contract import worker_feature


class KeyState(enum.Enum):
    PENDING = "pending"
    IN_FLIGHT = "in flight"
    HELD = "held"
    DONE = "done"


@dataclass
class Partial:
    """One partial accumulator on a worker, as far as the executor knows it."""

    partial_id: str
    feature: str
    keys: set[int] = field(default_factory=set)
    lost: bool = False  # its worker left, or it was declared gone: a return of it is dropped
    closed: bool = False  # came back (merged or dropped): nothing more is added to it


@dataclass(frozen=True)
class Decision:
    """What the loop must do: merge the value or not, which keys are now done, which to resubmit."""

    merge: bool = False
    done: tuple[int, ...] = ()
    resubmit: tuple[int, ...] = ()
    reason: str = ""


def partial_feature(partial_id: str) -> str:
    """The worker feature of the worker holding ``partial_id`` (its first field is the worker token).

    Example:
        >>> partial_feature("9f2c/4711/3")
        'coffea-wq-worker-9f2c'
    """
    return worker_feature(partial_id.split("/", 1)[0])


class Ledger:
    """Key states and partials of one executor call (see the module doc for the rules)."""

    def __init__(self) -> None:
        self.states: dict[int, KeyState] = {}
        self.held_in: dict[int, str] = {}  # HELD key -> partial id
        self.partials: dict[str, Partial] = {}

    # ------------------------------------------------------------------ keys
    def add(self, key: int) -> None:
        self.states[key] = KeyState.PENDING

    def submitted(self, key: int) -> None:
        self._set(key, KeyState.IN_FLIGHT)

    def forget(self, key: int) -> None:
        """A key replaced by others (split): it no longer counts."""
        self.states.pop(key, None)
        partial = self.partials.get(self.held_in.pop(key, ""))
        if partial is not None:
            partial.keys.discard(key)

    def state(self, key: int) -> KeyState | None:
        return self.states.get(key)

    def mark_done(self, key: int) -> bool:
        """A key whose own value (or skip) was merged; False if it already was (count it once)."""
        if self.states.get(key) is KeyState.DONE:
            return False
        self._set(key, KeyState.DONE)
        return True

    def reopen(self, key: int) -> None:
        """A key counted done whose value turned out unusable before it was merged: to be run again."""
        if key in self.states:
            self._set(key, KeyState.PENDING)

    def returned_without_value(self, key: int) -> None:
        """The key's task came back with no value to count (a failure): it is no longer in flight."""
        if self.states.get(key) is KeyState.IN_FLIGHT:
            self._set(key, KeyState.PENDING)

    def keys_in(self, *states: KeyState) -> list[int]:
        return [key for key, state in self.states.items() if state in states]

    # ------------------------------------------------------------------ partials
    def held(self, key: int, partial_id: str) -> Decision:
        """A task says its key's value joined ``partial_id``."""
        partial = self._partial(partial_id)
        if self.states.get(key) is KeyState.DONE:
            # counted already (a duplicate run): the partial now holds a key done elsewhere, and
            # its return will be dropped (returned() sees the key is not held in it)
            return Decision(reason=f"key {key} is already done")
        if partial.lost or partial.closed:
            self._set(key, KeyState.PENDING)
            return Decision(resubmit=(key,), reason=f"partial {partial_id} is gone")
        self._set(key, KeyState.HELD)
        self.held_in[key] = partial_id
        partial.keys.add(key)
        return Decision()

    def returned(self, partial_id: str, keys: Iterable[int], own_key: int | None = None) -> Decision:
        """A partial came back listing ``keys`` (``own_key``: the key of the task that brought it)."""
        listed = list(keys)
        partial = self._partial(partial_id)
        problem = self._why_not_mergeable(partial, listed, own_key)
        if problem is None:
            for key in listed:
                self._set(key, KeyState.DONE)
            missing = sorted(partial.keys - set(listed))
            for key in missing:
                self._set(key, KeyState.PENDING)
            partial.closed = True
            partial.keys.clear()
            return Decision(merge=True, done=tuple(listed), resubmit=tuple(missing))
        candidates = set(listed) | partial.keys
        resubmit = sorted(key for key in candidates if self._redo_after_drop(key, partial_id, own_key))
        for key in resubmit:
            self._set(key, KeyState.PENDING)
        partial.closed = True
        partial.keys.clear()
        return Decision(resubmit=tuple(resubmit), reason=problem)

    def lost(self, partial_id: str, why: str = "lost") -> Decision:
        """``partial_id`` will never come back (its worker left, or its slot no longer has it)."""
        partial = self._partial(partial_id)
        if partial.closed or partial.lost:
            return Decision(reason=f"partial {partial_id} was already {'closed' if partial.closed else 'lost'}")
        partial.lost = True
        resubmit = sorted(partial.keys)
        for key in resubmit:
            self._set(key, KeyState.PENDING)
        partial.keys.clear()
        return Decision(resubmit=tuple(resubmit), reason=why)

    def live_partials(self) -> list[Partial]:
        """Partials holding keys that have not come back and are not lost."""
        return [p for p in self.partials.values() if p.keys and not (p.lost or p.closed)]

    def partials_off(self, connected_features: set[str]) -> list[Partial]:
        """Live partials whose worker is no longer connected."""
        return [p for p in self.live_partials() if p.feature not in connected_features]

    # ------------------------------------------------------------------ helpers
    def _partial(self, partial_id: str) -> Partial:
        partial = self.partials.get(partial_id)
        if partial is None:
            partial = self.partials[partial_id] = Partial(partial_id, partial_feature(partial_id))
        return partial

    def _set(self, key: int, state: KeyState) -> None:
        if key not in self.states:
            return  # forgotten (split away) or never ours: a rogue record cannot add keys
        if state is not KeyState.HELD:
            partial = self.partials.get(self.held_in.pop(key, ""))
            if partial is not None:
                partial.keys.discard(key)
        self.states[key] = state

    def _why_not_mergeable(self, partial: Partial, listed: list[int], own_key: int | None) -> str | None:
        if partial.lost:
            return f"partial {partial.partial_id} was declared lost"
        if partial.closed:
            return f"partial {partial.partial_id} came back before"
        if len(set(listed)) != len(listed):
            return f"partial {partial.partial_id} lists a key twice"
        for key in listed:
            state = self.states.get(key)
            if key == own_key and state is KeyState.IN_FLIGHT:
                continue
            if state is not KeyState.HELD or self.held_in.get(key) != partial.partial_id:
                return f"key {key} of partial {partial.partial_id} is {state.value if state else 'unknown'}" + (
                    f" in {self.held_in[key]}" if state is KeyState.HELD else "")
        return None

    def _redo_after_drop(self, key: int, partial_id: str, own_key: int | None) -> bool:
        """After a dropped return: does ``key`` need running again (is it nowhere else)?"""
        state = self.states.get(key)
        if state is KeyState.HELD:
            return self.held_in.get(key) == partial_id
        if state is KeyState.IN_FLIGHT:
            return key == own_key  # its task just came back: nothing else is running it
        return False  # pending: queued already; done: counted
