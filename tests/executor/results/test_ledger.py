"""The ledger's decisions (docs/reduction.md, section 2): never a chunk twice, only a lost partial's chunks redone."""

from __future__ import annotations

from coffea_wq.executor.results.ledger import KeyState, Ledger, partial_feature


def ledger_with(keys: range, in_flight: bool = True) -> Ledger:
    ledger = Ledger()
    for key in keys:
        ledger.add(key)
        if in_flight:
            ledger.submitted(key)
    return ledger


def test_held_keys_come_back_in_their_partial_and_are_done_once():
    ledger = ledger_with(range(3))
    for key in (0, 1):
        assert ledger.held(key, "w1/10/0").resubmit == ()
    assert ledger.state(0) is KeyState.HELD and ledger.live_partials()[0].keys == {0, 1}
    decision = ledger.returned("w1/10/0", [0, 1, 2], own_key=2)
    assert decision.merge and sorted(decision.done) == [0, 1, 2] and decision.resubmit == ()
    assert ledger.keys_in(KeyState.DONE) == [0, 1, 2] and not ledger.live_partials()
    again = ledger.returned("w1/10/0", [0, 1, 2], own_key=None)  # a second copy of the same partial
    assert not again.merge and again.resubmit == () and "came back before" in again.reason


def test_a_returned_partial_with_a_key_done_elsewhere_is_dropped_and_the_rest_resubmitted():
    ledger = ledger_with(range(4))
    for key in (0, 1, 2):
        ledger.held(key, "w1/10/0")
    # key 1 was also run elsewhere and its own value merged (e.g. a duplicate the manager ran)
    ledger.states[1] = KeyState.IN_FLIGHT
    assert ledger.mark_done(1)
    decision = ledger.returned("w1/10/0", [0, 1, 2, 3], own_key=3)
    assert not decision.merge and "key 1" in decision.reason
    assert sorted(decision.resubmit) == [0, 2, 3]  # the own key too: its task came back without a counted value
    assert ledger.state(1) is KeyState.DONE and all(ledger.state(k) is KeyState.PENDING for k in (0, 2, 3))


def test_keys_held_elsewhere_or_in_flight_are_not_resubmitted_after_a_drop():
    ledger = ledger_with(range(4))
    ledger.held(0, "w1/10/0")
    ledger.held(1, "w2/20/0")  # key 1 lives in another worker's partial
    decision = ledger.returned("w1/10/0", [0, 1, 2], own_key=None)  # 2 is in flight (its task not back)
    assert not decision.merge and decision.resubmit == (0,)
    assert ledger.state(1) is KeyState.HELD and ledger.state(2) is KeyState.IN_FLIGHT


def test_keys_the_ledger_put_in_a_partial_that_it_does_not_list_are_resubmitted():
    ledger = ledger_with(range(3))
    for key in (0, 1, 2):
        ledger.held(key, "w1/10/0")
    decision = ledger.returned("w1/10/0", [0, 2])
    assert decision.merge and decision.done == (0, 2) and decision.resubmit == (1,)
    assert ledger.state(1) is KeyState.PENDING


def test_a_lost_partial_resubmits_its_keys_and_a_later_return_is_dropped():
    ledger = ledger_with(range(3))
    ledger.held(0, "w1/10/0")
    ledger.held(1, "w1/10/0")
    lost = ledger.lost("w1/10/0", "worker left")
    assert lost.resubmit == (0, 1) and not ledger.live_partials()
    assert ledger.lost("w1/10/0").resubmit == ()  # declared twice: nothing more
    # the key runs again and is held elsewhere; then the lost partial shows up after all
    ledger.submitted(0)
    ledger.held(0, "w2/30/0")
    late = ledger.returned("w1/10/0", [0, 1])
    assert not late.merge and late.resubmit == () and "lost" in late.reason
    assert ledger.state(0) is KeyState.HELD and ledger.held_in[0] == "w2/30/0"
    # a held record for the lost partial arriving late: its key is resubmitted, not held
    assert ledger.held(2, "w1/10/0").resubmit == (2,)


def test_workers_that_left_are_found_by_their_feature():
    ledger = ledger_with(range(2))
    ledger.held(0, "tokA/10/0")
    ledger.held(1, "tokB/11/0")
    gone = ledger.partials_off({partial_feature("tokB/11/0"), "other"})
    assert [p.partial_id for p in gone] == ["tokA/10/0"]
    assert partial_feature("tokA/10/0") == "coffea-wq-worker-tokA"


def test_a_key_already_done_is_never_done_again():
    ledger = ledger_with(range(1))
    assert ledger.mark_done(0) and not ledger.mark_done(0)
    assert ledger.held(0, "w/1/0").resubmit == () and ledger.state(0) is KeyState.DONE
    assert not ledger.returned("w/1/0", [0]).merge


def test_a_partial_listing_a_key_twice_or_an_unknown_key_is_dropped():
    ledger = ledger_with(range(2))
    ledger.held(0, "w/1/0")
    twice = ledger.returned("w/1/0", [0, 0])
    assert not twice.merge and twice.resubmit == (0,)
    ledger.submitted(0)
    ledger.held(0, "w/1/1")
    rogue = ledger.returned("w/1/1", [0, 99])  # 99 is no key of this call
    assert not rogue.merge and rogue.resubmit == (0,) and 99 not in ledger.states


def test_a_split_key_is_forgotten_by_its_partial():
    ledger = ledger_with(range(2))
    ledger.held(0, "w/1/0")
    ledger.forget(0)
    assert ledger.state(0) is None and not ledger.live_partials()
    assert ledger.returned_without_value(1) is None and ledger.state(1) is KeyState.PENDING
