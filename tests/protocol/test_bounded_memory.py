"""What a peer announces never decides what the manager's connection holds (docs/manager.md, "Bounded memory")."""

from __future__ import annotations

import tracemalloc

from coffea_wq.protocol import manager_side as side
from coffea_wq.protocol import messages as m
from tests.protocol.helpers import Result, fold

HANDSHAKE = b"workqueue 9 rogue Linux x86_64 8.0.0\n"
GIGABYTE = 1 << 30
MEGABYTE = b"\0" * (1 << 20)


def _events(conn: side.WorkerConnection) -> list:
    out = []
    while (event := conn.next_event()) is not m.NEED_DATA:
        out.append(event)
    return out


def _peak_while_feeding(conn: side.WorkerConnection, header: bytes, megabytes: int) -> tuple[int, list]:
    """Peak bytes allocated while ``header`` and ``megabytes`` MB of payload go in; the events."""
    events = []
    tracemalloc.start()
    try:
        conn.receive_data(header)
        for _ in range(megabytes):
            conn.receive_data(MEGABYTE)
            # the test keeps each update's offset and size, not its bytes (it would hold them itself)
            events += [(e.offset, len(e.data)) if isinstance(e, m.WatchUpdate) else e for e in _events(conn)]
        return tracemalloc.get_traced_memory()[1], events
    finally:
        tracemalloc.stop()


def test_a_result_for_a_task_the_peer_does_not_hold_is_read_and_dropped():
    conn = side.WorkerConnection(holds_task=lambda task_id: task_id == 1)
    conn.receive_data(HANDSHAKE)
    _events(conn)
    peak, events = _peak_while_feeding(conn, f"result 0 0 {64 << 20} 1000 99\n".encode(), 64)
    assert peak < 8 << 20, f"{peak} bytes held while 64 MB were announced and sent"
    assert fold(events) == [Result(0, 0, b"", 1000, 99, True)]
    conn.receive_data(b"alive\n")
    assert _events(conn) == [m.Alive()]


def test_an_announced_gigabyte_that_never_comes_holds_nothing():
    conn = side.WorkerConnection(holds_task=lambda task_id: False)
    conn.receive_data(HANDSHAKE)
    _events(conn)
    peak, events = _peak_while_feeding(conn, f"result 0 0 {GIGABYTE} 1000 5\n".encode(), 16)
    assert peak < 8 << 20 and events == [m.ResultStart(0, 0, GIGABYTE, 1000, 5)]


def test_a_held_task_keeps_its_output_up_to_the_limit_only():
    conn = side.WorkerConnection(max_result_output=3 << 20, holds_task=lambda task_id: True)
    conn.receive_data(HANDSHAKE)
    _events(conn)
    peak, events = _peak_while_feeding(conn, f"result 0 0 {32 << 20} 1000 1\n".encode(), 32)
    assert peak < 12 << 20
    (result,) = fold(events)
    assert len(result.output) == 3 << 20 and result.output_truncated


def test_a_watched_file_update_arrives_in_chunks():
    conn = side.WorkerConnection()
    conn.receive_data(HANDSHAKE)
    _events(conn)
    peak, events = _peak_while_feeding(conn, f"update 3 log.txt 10 {40 << 20}\n".encode(), 40)
    assert peak < 8 << 20
    assert sum(size for _, size in events) == 40 << 20
    assert all(offset == 10 + sum(size for _, size in events[:i]) for i, (offset, _) in enumerate(events))
    conn.receive_data(b"update 3 log.txt 0 0\nupdate 3 log.txt 5 3\nabc")
    events = _events(conn)
    assert events == [m.WatchUpdate(3, "log.txt", 0, b""), m.WatchUpdate(3, "log.txt", 5, b"abc")]
