"""The manager side of the protocol: bytes in, events out, and bytes built for the worker."""

from __future__ import annotations

import hashlib

import pytest

from coffea_wq.protocol import manager_side as side
from coffea_wq.protocol import messages as m
from coffea_wq.protocol.encoding import encode
from coffea_wq.protocol.framing import MAX_LINE
from tests.protocol.helpers import Result, fold
from tests.transcripts import SAMPLES, stream

HANDSHAKE = (
    b"workqueue 9 vm Linux x86_64 8.0.0\n"
    b"info worker-id worker-84ce86df0501dca940b66f71c84cb9b6\n"
    b"alive\n"
    b"resource workers 1 1 1\nresource disk 2000 2000 2000\nresource memory 1000 1000 1000\n"
    b"resource gpus 0 0 0\nresource cores 2 2 2\nresource tag 0\n"
    b"info end_of_resource_update 0\ninfo tasks_running 0\ninfo worker-end-time 0\n"
)


def events_of(data: bytes | list[bytes], conn: side.WorkerConnection | None = None, sent: tuple = ()) -> list:
    """Feed ``data`` after the manager has sent ``sent`` (the requests whose replies it carries)."""
    conn = conn or side.WorkerConnection()
    for message in sent:
        conn.send(message)
    out = []
    for chunk in [data] if isinstance(data, bytes) else data:
        conn.receive_data(chunk)
        while (event := conn.next_event()) is not m.NEED_DATA:
            out.append(event)
    return out


merge_file_data = fold


def test_handshake_events_in_order():
    events = events_of(HANDSHAKE)
    assert events[0] == m.Handshake(9, "vm", "Linux", "x86_64", "8.0.0")
    assert events[1] == m.WorkerIdentified("worker-84ce86df0501dca940b66f71c84cb9b6")
    assert events[2] == m.Alive()
    assert m.ResourceReport("cores", 2, 2, 2) in events
    assert m.ResourceReport("memory", 1000, 1000, 1000) in events
    assert m.ResourceTag(0) in events
    assert events[-1] == m.Info("worker-end-time", "0")


def test_byte_by_byte_gives_the_same_events():
    whole = fold(events_of(HANDSHAKE + b"result 0 3 10 3245 7\nhello\nerr\ninfo tasks_running 0\nend\n",
                           sent=(m.SendResults(),)))
    trickled = fold(events_of([HANDSHAKE[i : i + 1] for i in range(len(HANDSHAKE))]
                              + [bytes([b]) for b in b"result 0 3 10 3245 7\nhello\nerr\ninfo tasks_running 0\nend\n"],
                              sent=(m.SendResults(),)))
    assert whole == trickled


def test_result_with_output_and_async_lines_inside_the_reply():
    data = b"result 0 3 10 3245 7\nhello\nerr\ninfo tasks_running 0\navailable_results\nend\n"
    assert fold(events_of(data, sent=(m.SendResults(),))) == [
        Result(0, 3, b"hello\nerr\n", 3245, 7),
        m.Info("tasks_running", "0"),
        m.ResultsAvailable(),
        m.ReplyEnd(),
    ]


def test_result_output_may_contain_protocol_words():
    output = b"end\nresult 1 2 3 4 5\n"
    events = fold(events_of(b"result 0 0 %d 10 3\n" % len(output) + output + b"end\n", sent=(m.SendResults(),)))
    assert events == [Result(0, 0, output, 10, 3), m.ReplyEnd()]


def test_result_output_over_the_storage_limit_is_dropped_and_flagged():
    conn = side.WorkerConnection(max_result_output=4)
    chunks = [b"result 0 0 10 5 7\n", b"abcdef", b"ghij", b"info tasks_running 0\nresult 0 0 3 5 8\nxyzend\n"]
    assert fold(events_of(chunks, conn, sent=(m.SendResults(),))) == [
        Result(0, 0, b"abcd", 5, 7, output_truncated=True),
        m.Info("tasks_running", "0"),
        Result(0, 0, b"xyz", 5, 8),
        m.ReplyEnd(),
    ]


def test_get_replies_file_dir_missing():
    data = (
        b"file file-0-y-out.txt 4\nabc\nend\n"
        b"dir file-6-odir 0\nfile file-6-odir/a.txt 4\nAAA\ninfo tasks_running 1\nend\n"
        b"missing nosuch 2\nend\n"
    )
    gets = (m.GetRequest("file-0-y-out.txt"), m.GetRequest("file-6-odir"), m.GetRequest("nosuch"))
    events = merge_file_data(events_of(data, sent=gets))
    assert events == [
        m.FileReply("file-0-y-out.txt", 4), m.FileData(b"abc\n", True), m.ReplyEnd(),
        m.DirectoryStart("file-6-odir"), m.FileReply("file-6-odir/a.txt", 4), m.FileData(b"AAA\n", True),
        m.Info("tasks_running", "1"), m.ReplyEnd(),
        m.FileMissing("nosuch", 2), m.ReplyEnd(),
    ]


def test_large_file_arrives_in_chunks_without_buffering_it_whole():
    size = 3 * side.FILE_CHUNK + 5
    conn = side.WorkerConnection()
    conn.send(m.GetRequest("big"))
    conn.receive_data(b"file big %d\n" % size)
    assert conn.next_event() == m.FileReply("big", size)
    total, lasts = 0, []
    for piece in (side.FILE_CHUNK, side.FILE_CHUNK, side.FILE_CHUNK, 5):
        conn.receive_data(b"x" * piece)
        while (event := conn.next_event()) is not m.NEED_DATA:
            assert isinstance(event, m.FileData) and len(event.data) <= side.FILE_CHUNK
            total += len(event.data)
            lasts.append(event.last)
    assert total == size
    assert lasts[-1] and not any(lasts[:-1])
    assert events_of(b"end\n", conn) == [m.ReplyEnd()]


def test_empty_file():
    assert events_of(b"file empty 0\nend\n", sent=(m.GetRequest("empty"),)) == [
        m.FileReply("empty", 0), m.FileData(b"", True), m.ReplyEnd()]


def test_watch_update_and_feature():
    events = events_of(b"feature gpu%20big\nupdate 3 log.txt 10 4\nabcdend\n", sent=(m.SendResults(),))
    assert events == [m.Feature("gpu big"), m.WatchUpdate(3, "log.txt", 10, b"abcd"), m.ReplyEnd()]


@pytest.mark.parametrize("kind", side.STATUS_REQUESTS)
def test_status_request_as_first_line(kind):
    assert events_of(kind.encode() + b"\n") == [m.StatusRequest(kind)]


def test_http_request_after_headers():
    conn = side.WorkerConnection()
    events = events_of(b"GET /queue_status HTTP/1.1\r\nHost: x\r\n", conn)
    assert events == []
    assert events_of(b"\r\n", conn) == [m.HttpRequest("/queue_status")]


def test_name_request():
    assert events_of(b"name\n") == [m.NameRequest()]


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"workqueue 8 vm Linux x86_64 7.0.0\n", "protocol 8"),
        (b"workqueue 9 vm\n", "malformed handshake"),
        (b"bogus line\n", "unexpected message"),
        (b"result 0 0 x 1 2\n", "expected a number"),
        (b"result 0 0 inf 1 2\n", "finite number"),
        (b"result 0 0 nan 1 2\n", "finite number"),
        (b"resource cores nan nan nan\n", "finite number"),
        (b"resource memory 1 inf 1\n", "finite number"),
        (b"update 1 out.log 0 -3\nabcdefgh\n", "negative offset or length"),
        (b"update 1 out.log -1 3\nabc", "negative offset or length"),
        (b"resource cores 2\n", "malformed resource"),
        (b"info lonely\n", "malformed info"),
        (b"auth password sha1\n", "password"),
        (b"ready\n", "pre-protocol-9"),
        (b"x" * (MAX_LINE + 1), "longer than"),
        (b"x" * (MAX_LINE + 1) + b"\n", "longer than"),
        (HANDSHAKE + b"queue_status\n", "status request"),
        (HANDSHAKE + b"end\n", "no request pending"),
        (HANDSHAKE + b"file out 3\nabc", "FileReply with no get pending"),
        (HANDSHAKE + b"missing out 2\n", "FileMissing with no get pending"),
        (HANDSHAKE + b"dir out 0\n", "DirectoryStart with no get pending"),
    ],
)
def test_malformed_input_ends_in_one_connection_failed(data, reason):
    conn = side.WorkerConnection()
    events = events_of(data, conn)
    assert isinstance(events[-1], m.ConnectionFailed)
    assert reason in events[-1].reason
    assert conn.closed
    conn.receive_data(b"alive\n")
    assert conn.next_event() is m.NEED_DATA


def test_the_connection_tracks_the_replies_it_awaits_and_hands_back_their_context():
    conn = side.WorkerConnection()
    assert conn.send(m.GetRequest("out-1"), context="first") == b"get out-1 1\n"
    conn.send(m.SendResults())
    assert conn.awaits(m.GetRequest) and conn.awaits(m.SendResults)
    events = events_of(b"file out-1 2\nhi", conn)
    assert [e.context for e in events] == ["first", "first"]
    events += events_of(b"end\n", conn)
    assert not conn.awaits(m.GetRequest) and conn.awaits(m.SendResults)
    ends = [e for e in events if isinstance(e, m.ReplyEnd)]
    assert [(e.request, e.context) for e in ends] == [(m.GetRequest("out-1"), "first")]
    (end,) = events_of(b"end\n", conn)
    assert end.request == m.SendResults() and not conn.awaits(m.SendResults)
    assert isinstance(events_of(b"end\n", conn)[-1], m.ConnectionFailed)  # nothing is owed any more


def test_line_of_exactly_max_length_is_accepted():
    line = b"info x " + b"y" * (MAX_LINE - 7) + b"\n"
    assert events_of(line) == [m.Info("x", "y" * (MAX_LINE - 7))]


def test_eof_is_connection_closed():
    assert events_of([HANDSHAKE, b""])[-1] == m.ConnectionClosed(clean=True)


# ----------------------------------------------------------------------------- building messages
def test_task_block_matches_the_cctools_manager_bytes():
    """Byte for byte the block Debian's manager sent for task 1 of the captured session."""
    sent = b"".join(stream(SAMPLES / "py-manager/full/proxy.log", 1, "M->W"))
    start = sent.index(b"task 1\n")
    expected = sent[start : sent.index(b"end\n", start) + 4]
    task = m.TaskMessage(
        task_id=1,
        command='cat in.txt buf.txt; echo "E=$MYVAR"; echo made > out1.txt',
        cores=2, gpus=0, memory=800, disk=2000,
        env=(("MYVAR", "hello world"),),
        inputs=(m.TaskFile("file-0-fc91f21b3f8552b556a1ea9731c804d5-in.txt", "in.txt", 1),
                m.TaskFile("buffer-2-7f2db423a49b305459147332fb01cf87", "buf.txt", 0)),
        outputs=(m.TaskFile("file-3-e1678d455dd4ae3ba12142ff61028b78-out1.txt", "out1.txt", 0),),
    )
    assert encode(task) == expected


def test_task_block_with_limits_and_dirs():
    task = m.TaskMessage(task_id=7, command="sleep 30", cores=1.5, memory=100, disk=10, wall_time=3,
                         end_time=5.5, empty_dirs=("scratch",), inputs=(m.TaskFile("c", "a b", 0),))
    data = encode(task)
    assert b"cores 1.500\n" in data
    assert b"end_time 5.500000\nwall_time 3.000000\n" in data
    assert b"dir scratch\ninfile c a%20b 0\nend\n" in data


def test_put_and_buffer_and_simple_messages():
    assert encode(m.PutFile("file-0-x-in.txt", 4, 0o644)) == b"put file-0-x-in.txt 4 0644\n"
    assert encode(m.PutBuffer("buffer-2-ab", b"hi")) == b"put buffer-2-ab 2 777\nhi"
    assert encode(m.DirStart("my dir")) == b"dir my%20dir\n"
    assert encode(m.Symlink("l", "../t")) == b"symlink l 4\n../t"
    assert encode(m.GetRequest("file-3-x")) == b"get file-3-x 1\n"
    assert encode(m.KillTask(5)) == b"kill 5\n"
    assert encode(m.UnlinkFile("file-3-x")) == b"unlink file-3-x\n"
    assert encode(m.SendResults(-1)) == b"send_results -1\n"
    assert encode(m.Check()) == b"check\n"
    assert encode(m.Release()) == b"release\n"
    assert encode(m.Exit()) == b"exit\n"
    assert encode(m.ProjectName("proj")) == b"proj\n"
    assert encode(m.ProjectName("")) == b"\n"


def test_env_value_too_long_for_the_c_worker_is_refused():
    task = m.TaskMessage(task_id=1, command="true", env=(("X", "y\nz"),))
    data = encode(task)
    assert b"env 5\nX=y\nz\n" in data  # the payload is length-prefixed, so a newline in a value is fine
    with pytest.raises(ValueError):
        encode(m.TaskMessage(task_id=1, command="true", category="a\nb"))


# ----------------------------------------------------------------------------- transcripts
def requests_in(manager_chunks: list[bytes]) -> tuple:
    """The ``send_results`` and ``get`` requests the manager sent, in order (their replies follow in order)."""
    lines = b"".join(manager_chunks).split(b"\n")
    return tuple(m.SendResults() if line.startswith(b"send_results") else m.GetRequest(line.split()[1].decode())
                 for line in lines if line.startswith((b"send_results", b"get ")))


def test_captured_worker_session_parses_completely():
    """Every byte the real worker sent in the captured session, in its recorded TCP reads."""
    chunks = stream(SAMPLES / "py-manager/full/proxy.log", 1, "W->M")
    events = merge_file_data(events_of(chunks, sent=requests_in(stream(SAMPLES / "py-manager/full/proxy.log", 1, "M->W"))))
    assert not any(isinstance(e, m.ConnectionFailed) for e in events)
    results = {e.task_id: e for e in events if isinstance(e, Result)}
    assert results[7].status == 56 and results[7].exit_code == 9  # wall time exceeded
    assert results[6].exit_code == 7 and results[6].output == b"to-stderr\n"
    assert results[4].exit_code == 9 and results[4].status == 0  # killed by a signal
    assert results[1].output == b"line one\nline two\nbuffer-contents\nE=hello world\n"
    assert m.FileMissing("file-7-16e35d0561ba5ea7c656f77ccbec6b31-missing.txt", 2) in events
    assert m.DirectoryStart("file-6-42c9f0e8a589000026e1237bb0205ef9-odir") in events
    assert m.FileData(b"made\n", True) in events
    assert sum(isinstance(e, m.ReplyEnd) for e in events) == 6 + 3  # six send_results, three gets


def test_captured_password_exchange_is_accepted():
    """Replay the real worker's side of a correct-password exchange against our manager side."""
    log = SAMPLES / "password/correct-password.proxy.log"
    manager_lines = b"".join(stream(log, 1, "M->W")).split(b"\n")
    our_challenge = manager_lines[1].decode("latin-1")
    conn = side.WorkerConnection(password=b"sekrit-pass\n", challenge=our_challenge)
    assert conn.start() == b"auth password sha1\n" + manager_lines[1] + b"\n"
    events = events_of(stream(log, 1, "W->M"), conn)
    reply = conn.data_to_send()
    assert reply == manager_lines[2] + b"\nok\n"  # the same digest the real manager sent, then ok
    assert events[0] == m.AuthSucceeded()
    assert isinstance(events[1], m.Handshake)


def test_wrong_password_fails():
    conn = side.WorkerConnection(password=b"right\n")
    peer_challenge = "H" * 63
    events = events_of(b"auth password sha1\n" + peer_challenge.encode() + b"\n" + b"0" * 40 + b"\nok\n", conn)
    assert conn.data_to_send() == hashlib.sha1(b"right\n " + peer_challenge.encode()).hexdigest().encode() + b"\nfailure\n"
    assert isinstance(events[-1], m.ConnectionFailed) and "password" in events[-1].reason


def test_worker_without_password_is_refused_by_a_manager_with_one():
    events = events_of(HANDSHAKE, side.WorkerConnection(password=b"pw\n"))
    assert isinstance(events[-1], m.ConnectionFailed)
    assert "not using password authentication" in events[-1].reason


def test_status_client_on_a_password_manager_is_refused():
    events = events_of(b"queue_status\n", side.WorkerConnection(password=b"pw\n"))
    assert isinstance(events[-1], m.ConnectionFailed)
