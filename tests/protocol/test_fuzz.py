"""Fuzzing: over 100,000 random and mutated messages into each side's protocol state machine.

Whatever arrives, each side only ever turns it into events (a broken stream ends with one
``ConnectionFailed``, on both sides alike), and neither holds more memory than a bounded amount. Hypothesis draws the seeds of the batches (``derandomize``: the same
messages on every run); each example feeds a batch of mutated transcripts (tests/protocol/fuzzing.py).
The regression tests below pin what the fuzzers found.
"""

from __future__ import annotations

import random
import tracemalloc

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from coffea_wq.protocol import manager_side as side
from coffea_wq.protocol import messages as m
from coffea_wq.protocol import worker_side as w
from coffea_wq.protocol.framing import MAX_LINE
from tests.protocol import fuzzing

MESSAGES_PER_SIDE = 100_000
STREAMS_PER_EXAMPLE = 100
EXAMPLES = 60
MEMORY_LIMIT = 32 << 20  # far above one connection's worst case (a line, a chunk), far below a flood

# no shrinking: a failure names its example's seed, and shrinking a batch of 100 streams takes minutes
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                phases=(Phase.explicit, Phase.generate), suppress_health_check=list(HealthCheck))

MANAGER_EVENTS = tuple(m.ManagerEvent.__args__)
WORKER_EVENTS = tuple(m.WorkerEvent.__args__)
ENDS = (m.ConnectionFailed, m.ConnectionClosed)


def _drain_manager(conn: side.WorkerConnection) -> None:
    failed = False
    while (event := conn.next_event()) is not m.NEED_DATA:
        assert isinstance(event, MANAGER_EVENTS), event
        assert not failed, f"{event!r} after the connection's last event"
        failed = isinstance(event, ENDS)


def feed_manager_side(rng: random.Random, lines: list[bytes]) -> None:
    """One mutated stream into a fresh manager-side connection, in random chunks."""
    password = rng.random() < 0.15
    conn = side.WorkerConnection(password=fuzzing.PASSWORD if password else None,
                                 challenge=fuzzing.CHALLENGE if password else None,
                                 max_result_output=rng.choice((0, 3, 1 << 20)),
                                 holds_task=rng.choice((None, lambda task_id: task_id % 2 == 1)))
    conn.start()
    for _ in range(rng.randint(0, 40)):  # requests whose replies the stream may carry
        conn.send(rng.choice((m.SendResults(), m.GetRequest("file-1-out"))))
    for piece in fuzzing.chunks(rng, b"".join(lines)):
        conn.receive_data(piece)
        conn.data_to_send()
        _drain_manager(conn)
        assert len(conn._stream) <= MAX_LINE + len(piece), f"bytes pile up in the connection ({conn._reading})"
    conn.receive_data(b"")
    _drain_manager(conn)
    assert conn.closed


def _drain_worker(conn: w.ManagerConnection) -> bool:
    """Take every event; False once the connection has ended (its last event taken)."""
    ended = False
    while (event := conn.next_event()) is not m.NEED_DATA:
        assert isinstance(event, WORKER_EVENTS), event
        assert not ended, f"{event!r} after the connection's last event"
        ended = isinstance(event, ENDS)
    return not ended


def feed_worker_side(rng: random.Random, lines: list[bytes]) -> None:
    password = rng.random() < 0.15
    conn = w.ManagerConnection(password=fuzzing.PASSWORD if password else None,
                               auth_challenge=fuzzing.CHALLENGE if password else None)
    conn.start()
    if rng.random() < 0.1:
        conn.send(m.NameRequest())
    for piece in fuzzing.chunks(rng, b"".join(lines)):
        conn.receive_data(piece)
        alive = _drain_worker(conn)
        conn.data_to_send()
        if not alive:
            return
    conn.receive_data(b"")
    _drain_worker(conn)


def _fuzz(feed, direction: str, to_worker: bool) -> int:
    seeds = fuzzing.seeds(direction)
    fed = []

    @FUZZ
    @given(st.integers(0, 2**64 - 1))
    def batch(seed: int) -> None:
        # one drawn seed per batch: a HypothesisRandom records every call, far too slow for 100k messages
        rng = random.Random(seed)
        count = 0
        for _ in range(STREAMS_PER_EXAMPLE):
            if rng.random() < 0.05:
                lines = [bytes(rng.randrange(256) for _ in range(rng.randint(1, 300)))]
            else:
                lines = fuzzing.mutate_stream(rng, rng.choice(seeds), seeds, to_worker)
            feed(rng, lines)
            count += len(lines)
        fed.append(count)

    tracemalloc.start()
    try:
        batch()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MEMORY_LIMIT, f"the fuzz allocated {peak >> 20} MB at its peak"
    return sum(fed)


def test_manager_side_survives_mutated_worker_streams():
    assert _fuzz(feed_manager_side, "W->M", to_worker=False) >= MESSAGES_PER_SIDE


def test_worker_side_survives_mutated_manager_streams():
    assert _fuzz(feed_worker_side, "M->W", to_worker=True) >= MESSAGES_PER_SIDE


# ---------------------------------------------------------------- what the fuzzers found


def test_a_status_client_that_keeps_sending_holds_nothing():
    """Found by the manager-side fuzz: after ``queue_status`` (or an HTTP request) the connection
    stopped reading but kept every byte the client sent next."""
    for opening in (b"queue_status\n", b"GET / HTTP/1.1\r\n\r\n"):
        conn = side.WorkerConnection()
        conn.receive_data(opening + b"y" * 5000)
        for _ in range(64):
            conn.receive_data(b"z" * 65536)
        assert len(conn._stream) == 0
        assert isinstance(conn.next_event(), (m.StatusRequest, m.HttpRequest))


def test_a_failed_connection_holds_nothing():
    conn = side.WorkerConnection()
    conn.receive_data(b"y" * 4000)
    conn.receive_data(b"y" * 200)  # no newline within 4095 bytes: the connection fails
    assert isinstance(conn.next_event(), m.ConnectionFailed) and len(conn._stream) == 0
