"""How much a worker may hold before it hands its partial back: bounds chosen from the pool's churn.

A partial held in a warm slot is lost with its worker; what that costs is the compute it holds.
Handing partials back often bounds the loss but costs a hand-back each time (a record pickled,
sent, read and merged). That is the checkpoint-interval problem, and the answer used here is
Young's approximation: with a hand-back cost ``C`` and workers lost at a rate ``λ`` per worker
and second, the interval that minimises the expected waste is ``T = sqrt(2 C / λ)``
(docs/reduction.md, section 6, for the derivation in words and the knobs).

``λ`` is measured, not guessed: ``WorkerLifetimes`` counts the workers that left and the
worker-seconds observed (``λ = losses / exposure``, the maximum-likelihood rate for lifetimes
that are cut short by the end of observation). Until a worker has been lost there is no rate;
partials are then bounded only by the user's ``chunks_per_accum``/``accum_interval`` and by
``DEFAULT_MAX_HOLD_S``, so a calm pool keeps few, large partials, and a pool whose workers live
seconds gets per-chunk results. Everything here is pure: times are passed in.

Example:
    >>> lifetimes = WorkerLifetimes()
    >>> lifetimes.observe({"a", "b"}, now=0.0)
    []
    >>> lifetimes.observe({"b"}, now=10.0)  # "a" left after 10 s
    ['a']
    >>> round(lifetimes.loss_rate(now=10.0), 3)  # one loss in 20 worker-seconds
    0.05
    >>> hold_bounds(HoldSettings(), loss_rate=0.05, handback_s=0.1, chunk_s=0.5)
    HoldBounds(every=4, seconds=2.0, hold=True)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

DEFAULT_MAX_HOLD_S = 300.0  # without losses seen: the most compute a calm pool's slot holds
MIN_HANDBACK_S = 0.005  # the least a hand-back is taken to cost, before one is measured
MIN_HOLD_S = 1.0  # below this age bound, partials would be handed back with nearly every chunk
# before any worker has left, the rate is taken as one loss in the worker-seconds seen so far (the
# "rule of one"), and partials are held at least this long: a first loss costs a bounded share of
# what a long run did, and runs shorter than this hand back as they always did
PRIOR_MIN_HOLD_S = 10.0


@dataclass(frozen=True)
class HoldSettings:
    """The user's bounds (``chunks_per_accum``, ``accum_interval``): upper limits, never exceeded."""

    every: int | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class HoldBounds:
    """What a chunk task is told: hand the partial back at ``every`` chunks or ``seconds`` of age;
    ``hold=False``: do not hold this chunk at all (its value comes back with its task)."""

    every: int | None
    seconds: float | None
    hold: bool = True


@dataclass
class WorkerLifetimes:
    """Worker losses and exposure (worker-seconds observed), from the connected workers seen over time."""

    alive: dict[str, float] = field(default_factory=dict)  # worker -> when it was first seen
    losses: int = 0
    exposure: float = 0.0  # worker-seconds of the workers that left
    lifetimes: list[float] = field(default_factory=list)  # of the workers that left, in order
    departed: set[str] = field(default_factory=set)  # workers seen, then gone (a worker's token is never reused)

    def observe(self, connected: set[str] | frozenset[str], now: float) -> list[str]:
        """The workers connected at ``now``; returns those that left since the last observation."""
        gone = [worker for worker in self.alive if worker not in connected]
        for worker in gone:
            self.departed.add(worker)
            lived = max(0.0, now - self.alive.pop(worker))
            self.losses += 1
            self.exposure += lived
            self.lifetimes.append(lived)
        for worker in connected:
            self.alive.setdefault(worker, now)
        return gone

    def loss_rate(self, now: float) -> float | None:
        """Losses per worker-second (None until a worker has left)."""
        if not self.losses:
            return None
        exposure = self.exposure + sum(max(0.0, now - since) for since in self.alive.values())
        return self.losses / exposure if exposure > 0 else None

    def prior_rate(self, now: float) -> float | None:
        """Before any loss: one loss in the worker-seconds seen so far (None: none seen yet)."""
        exposure = self.exposure + sum(max(0.0, now - since) for since in self.alive.values())
        return 1.0 / exposure if exposure > 0 else None

    def mean_lifetime(self, now: float) -> float | None:
        rate = self.loss_rate(now)
        return None if rate is None else 1.0 / rate

    def oldest(self) -> list[str]:
        """Connected workers, longest-lived first."""
        return sorted(self.alive, key=lambda worker: self.alive[worker])


def young_interval(handback_s: float, loss_rate: float) -> float:
    """Young's checkpoint interval: the hold time that minimises the expected waste.

    Example:
        >>> round(young_interval(0.5, 1 / 3600), 1)  # workers living an hour, 0.5 s a hand-back
        60.0
    """
    return math.sqrt(2.0 * max(handback_s, MIN_HANDBACK_S) / loss_rate)


def hold_bounds(settings: HoldSettings, loss_rate: float | None, handback_s: float,
                chunk_s: float | None, prior_rate: float | None = None) -> HoldBounds:
    """The bounds in force: the user's, tightened by Young's interval once losses are seen.

    ``chunk_s`` is the mean compute of one chunk (None: not known yet). When the interval is
    shorter than one chunk, holding gains nothing and loses the chunk with its worker: the
    chunk's value comes back with its task (per-chunk results, as with ``reduction=False``).
    """
    seconds = settings.seconds if settings.seconds is not None else DEFAULT_MAX_HOLD_S
    every = settings.every
    if (loss_rate is None or loss_rate <= 0) and prior_rate is not None and prior_rate > 0:
        interval = max(PRIOR_MIN_HOLD_S, young_interval(handback_s, prior_rate))
        seconds = min(seconds, interval)
        if chunk_s is not None and chunk_s > 0:
            by_cost = max(1, int(interval // chunk_s))
            every = by_cost if every is None else min(every, by_cost)
    elif loss_rate is not None and loss_rate > 0:
        interval = young_interval(handback_s, loss_rate)
        if chunk_s is not None and interval < chunk_s:
            return HoldBounds(every=1, seconds=0.0, hold=False)
        seconds = min(seconds, max(interval, MIN_HOLD_S if chunk_s is None else min(MIN_HOLD_S, interval)))
        if chunk_s is not None and chunk_s > 0:
            by_cost = max(1, int(interval // chunk_s))
            every = by_cost if every is None else min(every, by_cost)
    return HoldBounds(every=every, seconds=round(seconds, 3))
