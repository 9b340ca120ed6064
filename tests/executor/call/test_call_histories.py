"""The executor's call state through thousands of random histories (no process, no file, no manager).

Each history: a handful of chunks, a simulated pool (sim.py) whose workers leave at random (alone,
or every worker holding a partial at once, again and again, during the final flush too), tasks
that fail, exhaust their allocation, come back refused or out of order, waiting results refused
when read, a stop at a random step. After the chaos the pool calms down, and the call must end,
with every event counted exactly once: in the output (and ``report.accumulated``), or skipped, or
in ``unprocessed_items()``.
"""

from __future__ import annotations

import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coffea_wq.executor.call.report import CallOptions
from tests.executor.call.sim import Chaos, chunks, event_ranges, merged_events, run_history


@pytest.fixture(autouse=True)
def quiet_call_log():
    """Thousands of histories log thousands of retries and losses: only what says more is kept."""
    logger = logging.getLogger("coffea_wq.executor.call")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


HISTORIES = int(__import__("os").environ.get("CALL_HISTORIES", "10000"))


def check_counted_once(world, items) -> None:
    state = world.state
    assert state.over, f"the call did not end after {world.step} steps (phase {state.phase})"
    assert world.finished
    report = state.report
    merged = merged_events(world.output)
    assert all(times == 1 for times in merged.values()), "an event was merged twice"
    assert merged == event_ranges(report.accumulated), "the output and report.accumulated disagree"
    covered = event_ranges(report.accumulated) + event_ranges(report.skipped) + \
        event_ranges(state.unprocessed_items())
    assert covered == event_ranges(items), "accumulated + skipped + unprocessed do not cover every event once"
    if state.failure is None and not state.interrupted:
        assert not state.unprocessed_items(), "a call that neither failed nor stopped left work undone"


chaos_strategy = st.builds(
    Chaos,
    error=st.sampled_from([0.0, 0.05, 0.2]),
    exhausted=st.sampled_from([0.0, 0.05]),
    refused=st.sampled_from([0.0, 0.03]),
    crash=st.sampled_from([0.0, 0.05]),
    loss=st.sampled_from([0.0, 0.1, 0.4]),
    lose_all_holders=st.sampled_from([0.0, 0.05, 0.3]),
    unusable=st.sampled_from([0.0, 0.05]),
    stop_at=st.one_of(st.none(), st.integers(1, 80)),
    calm_after=st.integers(0, 150),
)


@settings(max_examples=HISTORIES, deadline=None, suppress_health_check=list(HealthCheck))
@given(count=st.integers(1, 10), reduce=st.booleans(), fan_in=st.sampled_from([None, 2, 3]),
       split=st.booleans(), dynamic=st.booleans(), retries=st.integers(0, 3), skip=st.booleans(),
       chaos=chaos_strategy, seed=st.integers(0, 2**32 - 1))
def test_every_history_ends_with_every_chunk_counted_once(count, reduce, fan_in, split, dynamic, retries, skip, chaos,
                                                          seed):
    options = CallOptions(retries=retries, split_on_exhaustion=split, reduce=reduce, treereduction=fan_in,
                          dynamic_chunksize={"wall_time": 1.0} if dynamic else None, status=False,
                          skipbadfiles=(OSError,) if skip else ())
    items = chunks(count)
    world = run_history(options, chaos, items, seed)
    check_counted_once(world, items)


def test_losing_every_holder_again_and_again_still_ends():
    """The pool loses every worker that holds a partial at every other step, for 200 steps."""
    items = chunks(30)
    for seed in range(20):
        options = CallOptions(reduce=True, treereduction=2, status=False)
        world = run_history(options, Chaos(lose_all_holders=0.5, calm_after=200), items, seed)
        check_counted_once(world, items)
        assert world.state.report.partials_lost > 0


def test_a_chunk_lost_twice_is_no_longer_held():
    """Every worker holding a partial leaves at every step: chunks lost twice come back per chunk."""
    items = chunks(20)
    lost_twice = 0
    for seed in range(10):
        # chunks so short that holding several stays worth it, however often workers leave
        world = run_history(CallOptions(reduce=True, status=False), Chaos(lose_all_holders=1.0, calm_after=10**6),
                            items, seed, max_steps=2000, chunk_s=0.0001)
        check_counted_once(world, items)
        partials = world.state.partials
        assert partials is not None
        twice = [key for key, times in partials.losses.items() if times >= 2]
        assert all(not partials.bounds(key, world.now).hold for key in twice)
        assert all(times <= 2 for times in partials.losses.values()), "a chunk held after two losses"
        lost_twice += len(twice)
    assert lost_twice > 0, "no history lost a chunk twice"
