"""Partials under churn, decided without processes: worker lifetimes, hold bounds, lost workers, late flushes."""

from __future__ import annotations

import math

import pytest

from coffea_wq.executor.call.bounds import (
    DEFAULT_MAX_HOLD_S,
    HoldSettings,
    WorkerLifetimes,
    hold_bounds,
    young_interval,
)
from coffea_wq.executor.call.partials import FLUSH_DEADLINE_MIN_S, MAX_LOSSES_HELD, Partials

W1, W2 = "coffea-wq-worker-w1", "coffea-wq-worker-w2"


def test_the_loss_rate_counts_the_exposure_of_workers_still_here():
    lifetimes = WorkerLifetimes()
    assert lifetimes.observe({W1, W2}, now=0.0) == []
    assert lifetimes.loss_rate(now=5.0) is None  # no loss seen: no rate
    assert lifetimes.observe({W2}, now=10.0) == [W1]
    # one loss over 10 s of W1 and 30 s of W2 (still here at 30 s)
    assert lifetimes.loss_rate(now=30.0) == pytest.approx(1 / 40)
    assert lifetimes.mean_lifetime(now=30.0) == pytest.approx(40)
    assert lifetimes.oldest() == [W2]


def test_young_interval_is_the_textbook_formula():
    assert young_interval(0.5, 1 / 3600) == pytest.approx(math.sqrt(2 * 0.5 * 3600))
    assert young_interval(0.0, 1.0) == pytest.approx(math.sqrt(2 * 0.005))  # at least 5 ms a hand-back


def test_a_calm_pool_holds_up_to_the_users_bounds_or_the_default():
    assert hold_bounds(HoldSettings(), None, 0.1, 1.0) == (
        hold_bounds(HoldSettings(seconds=DEFAULT_MAX_HOLD_S), None, 0.1, 1.0))
    calm = hold_bounds(HoldSettings(every=50, seconds=90.0), None, 0.1, 1.0)
    assert (calm.every, calm.seconds, calm.hold) == (50, 90.0, True)


def test_workers_that_live_an_hour_get_large_partials_and_seconds_get_none():
    hours = hold_bounds(HoldSettings(), loss_rate=1 / 3600, handback_s=0.5, chunk_s=2.0)
    assert hours.hold and hours.seconds == pytest.approx(60.0) and hours.every == 30
    seconds = hold_bounds(HoldSettings(), loss_rate=1 / 2, handback_s=0.05, chunk_s=1.0)
    assert not seconds.hold  # Young's interval (0.45 s) is shorter than a chunk: per-chunk results


def test_the_users_bounds_stay_upper_limits_under_churn():
    bounds = hold_bounds(HoldSettings(every=3, seconds=10.0), loss_rate=1 / 36000, handback_s=1.0, chunk_s=0.1)
    assert bounds.every == 3 and bounds.seconds == 10.0


def test_a_partial_is_lost_at_once_when_its_worker_leaves_and_its_flush_is_cancelled():
    partials = Partials()
    for key in (1, 2):
        partials.ledger.add(key)
        partials.ledger.submitted(key)
    partials.workers_seen(frozenset({W1, W2}), now=0.0)
    assert partials.held(1, "w1/7/0").resubmit == ()
    assert partials.held(2, "w1/7/0").resubmit == ()
    partials.flush_sent(ticket=99, partial_id="w1/7/0", now=1.0)
    verdict = partials.workers_seen(frozenset({W2}), now=2.0)
    assert sorted(verdict.resubmit) == [1, 2] and verdict.lost == 1 and verdict.cancel == (99,)
    assert not partials.outstanding()
    assert partials.lifetimes.losses == 1


def test_a_held_record_from_a_worker_already_gone_is_lost_at_once():
    partials = Partials()
    for key in (5, 6):
        partials.ledger.add(key)
        partials.ledger.submitted(key)
    partials.workers_seen(frozenset({W1, W2}), now=0.0)
    partials.workers_seen(frozenset({W2}), now=1.0)
    verdict = partials.held(5, "w1/7/0")  # W1 left before its held record was read
    assert verdict.resubmit == (5,)
    assert not partials.ledger.live_partials()
    # a worker that joined since the last look is not gone: its first held record starts a partial
    assert partials.held(6, "w3/9/0").resubmit == ()
    assert [p.partial_id for p in partials.ledger.live_partials()] == ["w3/9/0"]


def test_a_late_flush_is_given_up_and_its_partial_counts_as_lost():
    partials = Partials()
    partials.ledger.add(3)
    partials.ledger.submitted(3)
    partials.held(3, "w1/7/0")
    partials.flush_sent(ticket=42, partial_id="w1/7/0", now=0.0)
    assert partials.overdue(now=FLUSH_DEADLINE_MIN_S - 1).resubmit == ()
    partials.observe_chunk(20.0)  # a slow chunk seen: the deadline grows to four chunks
    assert partials.flush_deadline() == 80.0
    verdict = partials.overdue(now=81.0)
    assert verdict.resubmit == (3,) and verdict.cancel == (42,)
    late = partials.returned("w1/7/0", [3], None)  # the flush comes back after all: dropped
    assert not late.merge


def test_a_chunk_lost_twice_is_told_not_to_hold():
    partials = Partials()
    partials.ledger.add(8)
    for attempt in range(MAX_LOSSES_HELD):
        assert partials.bounds(8, now=0.0).hold
        partials.ledger.submitted(8)
        partials.held(8, f"w1/7/{attempt}")
        partials.lose(f"w1/7/{attempt}", "its worker left")
    assert not partials.bounds(8, now=0.0).hold


def test_partials_past_the_bounds_now_in_force_are_due_though_their_tasks_carried_older_ones():
    partials = Partials()
    for key in range(6):
        partials.ledger.add(key)
        partials.ledger.submitted(key)
    partials.workers_seen(frozenset({W1, W2}), now=0.0)
    for key in range(5):  # five chunks held in W1's slot under the calm pool's bounds
        partials.held(key, "w1/7/0", now=0.0)
    partials.held(5, "w2/8/0", now=0.0)
    assert partials.due_for_handback(now=1.0) == []  # a calm pool: 300 s and any number of chunks
    partials.observe_chunk(0.1)
    partials.workers_seen(frozenset({W1}), now=10.0)  # W2 left: from now on the pool churns
    bounds = partials.current_bounds(now=10.0)
    assert bounds.hold and bounds.every is not None and bounds.every < 5
    assert partials.due_for_handback(now=10.0) == [("w1/7/0", W1)]  # too many chunks for the new bound
    partials.flush_sent(ticket=7, partial_id="w1/7/0", now=10.0)
    assert partials.due_for_handback(now=10.0) == []  # its flush is in flight


def test_before_any_loss_a_prior_of_one_loss_bounds_what_a_first_loss_costs():
    from coffea_wq.executor.call.bounds import PRIOR_MIN_HOLD_S

    # 16 workers for a minute (960 worker-seconds), 10 ms a hand-back, 1-s chunks: held 10 s at most
    early = hold_bounds(HoldSettings(), None, 0.01, 1.0, prior_rate=1 / 960)
    assert early.hold and early.seconds == PRIOR_MIN_HOLD_S and early.every == 10
    # the same pool after an hour without a loss: sqrt(2 x 0.01 x 57,600) = 34 s
    later = hold_bounds(HoldSettings(), None, 0.01, 1.0, prior_rate=1 / 57_600)
    assert later.seconds == pytest.approx(math.sqrt(2 * 0.01 * 57_600), rel=1e-3) and later.every == 33
    lifetimes = WorkerLifetimes()
    lifetimes.observe({W1, W2}, now=0.0)
    assert lifetimes.prior_rate(now=30.0) == pytest.approx(1 / 60)
