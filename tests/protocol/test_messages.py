"""Every message survives the round trip: ``encode`` on one end, the other end's connection decodes it."""

from __future__ import annotations

import pytest

from coffea_wq.protocol import encoding
from coffea_wq.protocol import messages as m
from coffea_wq.protocol.codes import FileFlags
from coffea_wq.protocol.encoding import encode, encode_all
from coffea_wq.protocol.manager_side import WorkerConnection
from coffea_wq.protocol.worker_side import ManagerConnection

HELLO = m.Handshake(9, "vm", "Linux", "x86_64", "8.0.0")

# (what the manager sends, what the worker's connection hands out)
TO_WORKER = [
    ([m.PutFile("f.txt", 3, 0o640), m.FileChunk(b"abc")], [m.PutFile("f.txt", 3, 0o640), m.FileChunk(b"abc"), m.FileEnd("f.txt")]),
    ([m.PutBuffer("buffer-1", b"hi")], [m.PutFile("buffer-1", 2, 0o777), m.FileChunk(b"hi"), m.FileEnd("buffer-1")]),
    ([m.DirStart("d"), m.Symlink("l", "../t"), m.DirEnd()], [m.DirStart("d"), m.Symlink("d/l", "../t"), m.DirEnd("d")]),
    ([m.UrlFile("u", "http://h/x?a=b c", 0o777, 1)], [m.UrlFile("u", "http://h/x?a=b c", 0o777, 1)]),
    ([m.ThirdParty(False, 1, "file-9", "make %% now")], [m.ThirdParty(False, 1, "file-9", "make %% now")]),
    ([m.ThirdParty(True, 2, "file-9", "/shared/out")], [m.ThirdParty(True, 2, "file-9", "/shared/out")]),
    ([m.SendResults(-1)], [m.SendResults(-1)]),
    ([m.GetRequest("file-3-x"), m.GetRequest("o", False)], [m.GetRequest("file-3-x"), m.GetRequest("o", False)]),
    ([m.KillTask(-1), m.KillTask(4)], [m.KillTask(-1), m.KillTask(4)]),
    ([m.UnlinkFile("file-0-a")], [m.UnlinkFile("file-0-a")]),
    ([m.InvalidateFile("a b")], [m.InvalidateFile("a b")]),
    ([m.Check(), m.Release(), m.Exit()], [m.Check(), m.Release(), m.Exit()]),
    # our extension (docs/protocol.md, "Our extension: peer transfers")
    ([m.CacheReport("file-1-env.tar.gz"), m.PeerGet("file-1-env.tar.gz", 123, 0o640, "ab" * 32, "10.0.0.2", 9200)],
     [m.CacheReport("file-1-env.tar.gz"), m.PeerGet("file-1-env.tar.gz", 123, 0o640, "ab" * 32, "10.0.0.2", 9200)]),
    ([m.TaskMessage(5, "echo hi", category="c", cores=1.5, memory=100, disk=10, gpus=1, wall_time=3,
                    env=(("A", "1 2"),), empty_dirs=("tmp",), inputs=(m.TaskFile("c-1", "in put.txt", FileFlags.CACHE),),
                    outputs=(m.TaskFile("c-2", "out.txt", FileFlags.WATCH),))],
     [m.TaskReceived(m.TaskAssignment(5, "echo hi", "c", cores=1, memory=100, disk=10, gpus=1, wall_time=3.0,
                                env=("A=1 2",), empty_dirs=("tmp",),
                                inputs=(m.TaskFile("c-1", "in put.txt", FileFlags.CACHE),),
                                outputs=(m.TaskFile("c-2", "out.txt", FileFlags.WATCH),)))]),
]

# (what the manager sent first, what the worker sends, what the manager's connection hands out)
GET = m.GetRequest("o")
TO_MANAGER = [
    ((), [HELLO, m.WorkerIdentified("worker-1"), m.Feature("gpu big"), m.Alive(), m.ResourceReport("cores", 2, 2, 2),
          m.ResourceTag(3), m.Info("tasks_running", "1"), m.ResultsAvailable()], None),
    ((m.SendResults(),), [HELLO, m.ResultStart(0, 3, 4, 99, 7), m.ResultOutput(b"out\n", True),
                          m.WatchUpdate(7, "log file", 10, b"abc"), m.ReplyEnd()], None),
    ((GET,), [HELLO, m.DirectoryStart("o"), m.FileReply("o/a", 2), m.FileData(b"hi", True), m.FileMissing("o/b", 2),
              m.ReplyEnd()], None),
    ((), [m.StatusRequest("queue_status")], None),
    ((), [m.HttpRequest("/worker_status")], None),
    ((), [m.NameRequest()], None),
    ((), [HELLO, m.CacheUpdate("file-1-env.tar.gz", 123), m.CacheInvalid("file-2-x", "peer 10.0.0.2:9200 sent corrupt bytes")],
     None),
]


def decode_on_the_worker(data: bytes, names_expected: int = 0) -> list:
    conn = ManagerConnection()
    for _ in range(names_expected):
        conn.send(m.NameRequest())
    conn.receive_data(data)
    out = []
    while (event := conn.next_event()) is not m.NEED_DATA:
        out.append(event)
    return out


def decode_on_the_manager(data: bytes, sent: tuple) -> list:
    conn = WorkerConnection()
    for request in sent:
        conn.send(request, context="ctx")
    conn.receive_data(data)
    out = []
    while (event := conn.next_event()) is not m.NEED_DATA:
        out.append(event)
    return out


@pytest.mark.parametrize("sent, received", TO_WORKER)
def test_what_the_manager_sends_the_worker_reads_back(sent, received):
    assert decode_on_the_worker(encode_all(sent)) == received


def test_a_project_name_reply_is_read_back_after_a_name_request():
    assert decode_on_the_worker(encode(m.ProjectName("my project")), names_expected=1) == [m.ProjectName("my project")]


@pytest.mark.parametrize("requests, sent, expected", TO_MANAGER)
def test_what_the_worker_sends_the_manager_reads_back(requests, sent, expected):
    events = decode_on_the_manager(encode_all(sent), requests)
    assert events == (sent if expected is None else expected)
    for event in events:  # a reply's events say which request they answer
        if isinstance(event, (m.FileReply, m.FileData, m.DirectoryStart, m.FileMissing, m.ReplyEnd)):
            assert event.context == "ctx"


def test_every_encodable_message_has_a_round_trip_here():
    covered = {type(message) for sent, _ in TO_WORKER for message in sent}
    covered |= {type(message) for _, sent, _ in TO_MANAGER for message in sent}
    covered |= {m.ProjectName, m.ThirdPutComplete}  # the manager never reads thirdput-complete
    assert set(encoding._ENCODERS) - covered == set()


def test_thirdput_complete():
    assert encode(m.ThirdPutComplete(True)) == b"thirdput-complete 1\n"


def test_events_that_only_come_out_are_not_encodable():
    for event in (m.ConnectionFailed("x"), m.ConnectionClosed(True), m.FileEnd("f"), m.TaskReceived(m.TaskAssignment(1))):
        with pytest.raises(TypeError, match="not sent on the wire"):
            encode(event)


@pytest.mark.parametrize("build", [
    lambda: m.Info("tasks_running", "1\n2"),
    lambda: m.Handshake(9, "a\nb", "Linux", "x86_64"),
    lambda: m.ResultStart(0, 0, -1, 0, 1),
    lambda: m.FileReply("f", -2),
    lambda: m.PutFile("f", -1),
    lambda: m.TaskMessage(1, "true", category="a\nb"),
    lambda: m.ProjectName("a\nb"),
])
def test_a_message_the_wire_cannot_carry_cannot_be_built(build):
    with pytest.raises(ValueError):
        build()
