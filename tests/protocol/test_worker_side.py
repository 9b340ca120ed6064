"""The worker side of the protocol: bytes in, events out (captured CCTools transcripts included), and
the bytes a worker sends."""

from __future__ import annotations

import re

import pytest

from coffea_wq.protocol.auth import password_digest
from coffea_wq.protocol.codes import FileFlags
from coffea_wq.protocol.encoding import encode, encode_all
from coffea_wq.protocol.messages import (
    NEED_DATA,
    AuthSucceeded,
    Check,
    ConnectionClosed,
    ConnectionFailed,
    DirectoryStart,
    DirEnd,
    DirStart,
    Exit,
    FileChunk,
    FileEnd,
    FileMissing,
    FileReply,
    GetRequest,
    Info,
    KillTask,
    NameRequest,
    ProjectName,
    PutFile,
    Release,
    ReplyEnd,
    ResourceTotals,
    ResultStart,
    SendResults,
    Symlink,
    TaskFile,
    TaskReceived,
    ThirdParty,
    UnlinkFile,
    UrlFile,
    WorkerIdentity,
    handshake_messages,
)
from coffea_wq.protocol.worker_side import ManagerConnection
from tests.transcripts import SAMPLES, read_proxy_log


def events_of(data: bytes, chunk: int | None = None, close: bool = False, **kwargs) -> list:
    """Feed ``data`` (in pieces of ``chunk`` bytes if given) and collect every event."""
    conn = ManagerConnection(**kwargs)
    events = []
    pieces = [data] if chunk is None else [data[i : i + chunk] for i in range(0, len(data), chunk)]
    if close:
        pieces.append(b"")
    for piece in pieces:
        conn.receive_data(piece)
        while (event := conn.next_event()) is not NEED_DATA:
            events.append(event)
    return events


def merge_chunks(events: list) -> list:
    """Join consecutive FileChunk events (their split depends on how bytes arrived)."""
    out: list = []
    for event in events:
        if isinstance(event, FileChunk) and out and isinstance(out[-1], FileChunk):
            out[-1] = FileChunk(out[-1].data + event.data)
        else:
            out.append(event)
    return out


# ------------------------------------------------------------------ captured transcripts


@pytest.fixture(scope="module")
def py_manager_stream() -> dict[str, bytes]:
    return read_proxy_log(SAMPLES / "py-manager/full/proxy.log")[1]


@pytest.mark.parametrize("chunk", [None, 1, 7, 4096])
def test_python_manager_transcript_parses_the_same_however_it_arrives(py_manager_stream, chunk):
    events = merge_chunks(events_of(py_manager_stream["M->W"], chunk=chunk, close=True))
    assert events == merge_chunks(events_of(py_manager_stream["M->W"], close=True))
    assert events[-1] == ConnectionClosed(clean=True)


def test_python_manager_transcript_directory_binary_file_and_task(py_manager_stream):
    events = merge_chunks(events_of(py_manager_stream["M->W"], close=True))
    indir = "file-4-98f1b5a2506c6e4773c499a05a229ac0-indir"
    assert events[:10] == [
        DirStart(indir, True),
        DirStart(f"{indir}/sub", False),
        PutFile(f"{indir}/sub/b.txt", 4, 0o644),
        FileChunk(b"BBB\n"),
        FileEnd(f"{indir}/sub/b.txt"),
        DirEnd(f"{indir}/sub", False),
        PutFile(f"{indir}/a.txt", 4, 0o644),
        FileChunk(b"AAA\n"),
        FileEnd(f"{indir}/a.txt"),
        DirEnd(indir, True),
    ]
    binary = events[10:13]
    assert binary[0] == PutFile("file-5-c9fb4b3de02e37b86d9d074451f2e358-bin.dat", 1024, 0o644)
    assert binary[1].data == bytes(range(256)) * 4
    task = events[13].task
    assert task.taskid == 2
    assert task.command == "ls -R indir; mkdir -p odir; cp indir/a.txt odir/; md5sum bin.dat"
    assert (task.category, task.cores, task.gpus, task.memory, task.disk) == ("cat-a", 1, 0, 100, 50)
    assert task.inputs == (
        TaskFile(indir, "indir", FileFlags.NOCACHE),
        TaskFile("file-5-c9fb4b3de02e37b86d9d074451f2e358-bin.dat", "bin.dat", FileFlags.NOCACHE),
    )
    assert task.outputs == (TaskFile("file-6-42c9f0e8a589000026e1237bb0205ef9-odir", "odir", FileFlags.NOCACHE),)
    assert events[14:16] == [SendResults(-1), GetRequest("file-6-42c9f0e8a589000026e1237bb0205ef9-odir", True)]


def test_python_manager_transcript_limits_env_buffer_and_shutdown(py_manager_stream):
    events = merge_chunks(events_of(py_manager_stream["M->W"], close=True))
    tasks = {e.task.taskid: e.task for e in events if isinstance(e, TaskReceived)}
    assert sorted(tasks) == [1, 2, 3, 4, 5, 6, 7]
    assert tasks[7].wall_time == 1.0 and tasks[7].command == "sleep 30"
    assert (tasks[7].cores, tasks[7].memory, tasks[7].disk) == (2, 800, 2000)
    assert tasks[1].env == ("MYVAR=hello world",)
    assert tasks[1].inputs[0].flags == FileFlags.CACHE
    buffer_put = next(e for e in events if isinstance(e, PutFile) and e.path.startswith("buffer-"))
    assert buffer_put.mode == 0o777  # buffers are sent as "777", without the leading 0
    kinds = [type(e) for e in events]
    assert Check in kinds and KillTask(5) in events and UnlinkFile("file-4-98f1b5a2506c6e4773c499a05a229ac0-indir") in events
    assert events[-2:] == [Exit(), ConnectionClosed(clean=True)]


def test_python_manager_transcript_worker_side_bytes_match_our_encoders(py_manager_stream):
    sent = py_manager_stream["W->M"]
    identity = WorkerIdentity("<host>", "Linux", "x86_64", "worker-6e8e7582f308ce7b02d0c539af062650")
    assert sent.startswith(encode_all(handshake_messages(identity, ResourceTotals(cores=2, memory=800, disk=2000, gpus=0))))
    odir = "file-6-42c9f0e8a589000026e1237bb0205ef9-odir"
    assert encode(ResultStart(0, 0, 77, 8169, 2)) in sent
    assert encode_all([DirectoryStart(odir), FileReply(f"{odir}/a.txt", 4)]) + b"AAA\n" + encode(ReplyEnd()) in sent
    assert encode_all([ResultStart(56, 9, 0, 4006342, 7), Info("tasks_running", "0"), ReplyEnd()]) in sent
    assert encode_all([FileMissing("file-7-16e35d0561ba5ea7c656f77ccbec6b31-missing.txt", 2), ReplyEnd()]) in sent


@pytest.mark.parametrize("run", ["run1-retries", "run2"])
def test_makeflow_transcripts(run):
    stream = read_proxy_log(SAMPLES / f"makeflow/{run}/proxy-mf.log")[1]
    events = merge_chunks(events_of(stream["M->W"], chunk=13, close=True))
    tasks = [e.task for e in events if isinstance(e, TaskReceived)]
    assert tasks, "makeflow sent no task"
    first = tasks[0]
    assert first.env == ("CORES=1", "OMP_NUM_THREADS=1")
    assert first.inputs[0].remote_name == "input.txt" and first.inputs[0].flags == FileFlags.CACHE
    puts = [e for e in events if isinstance(e, PutFile) and e.path.endswith("input.txt")]
    assert len(puts) == 1, "a cached input is sent once per worker"
    if run == "run1-retries":
        assert len(tasks) >= 6 and sum(t.command.startswith(tasks[-1].command[:10]) for t in tasks) >= 5
        assert Release() in events
    assert isinstance(events[-1], ConnectionClosed)


def test_correct_password_transcript_reproduces_the_real_workers_replies():
    stream = read_proxy_log(SAMPLES / "password/correct-password.proxy.log")[1]
    worker_challenge = stream["W->M"].split(b"\n")[1].decode("latin-1")
    conn = ManagerConnection(password=b"sekrit-pass\n", auth_challenge=worker_challenge)
    sent = conn.start()
    conn.receive_data(stream["M->W"])
    events = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
        sent += conn.data_to_send()
    assert events[0] == AuthSucceeded()
    assert sent == stream["W->M"][: len(sent)]  # auth line, challenge, response, ok: byte for byte
    assert sent.endswith(b"ok\n")
    assert any(isinstance(e, TaskReceived) and e.task.env == ("MYVAR=hello world",) for e in events)


def test_wrong_password_transcript_fails():
    stream = read_proxy_log(SAMPLES / "password/wrong-password.proxy.log")[1]
    worker_challenge = stream["W->M"].split(b"\n")[1].decode("latin-1")
    events = events_of(stream["M->W"], close=True, password=b"sekrit-pass\n", auth_challenge=worker_challenge)
    assert isinstance(events[0], ConnectionFailed) and events[0].refusal == "password"
    assert len(events) == 1


def test_password_worker_against_manager_without_password_sees_close_during_auth():
    stream = read_proxy_log(SAMPLES / "password/password-worker-vs-nopassword-manager.proxy.log")[1]
    assert stream["M->W"] == b""
    assert events_of(b"", close=True, password=b"pw\n") == [ConnectionClosed(clean=True, during_auth=True)]


def test_worker_without_password_against_password_manager():
    conn = ManagerConnection()
    conn.receive_data(b"auth password sha1\n")
    event = conn.next_event()
    assert isinstance(event, ConnectionFailed) and event.refusal == "password"
    assert "requires a password" in event.reason


def test_auth_is_symmetric_with_a_manager_side_peer():
    manager_challenge = "M" * 63
    conn = ManagerConnection(password=b"pw\n", auth_challenge="W" * 63)
    conn.start()
    conn.receive_data(b"auth password sha1\n" + manager_challenge.encode() + b"\n")
    conn.receive_data(password_digest(b"pw\n", "W" * 63).encode() + b"\nok\ntask 1\ncmd 4\ntrueend\n")
    assert conn.next_event() == AuthSucceeded()
    assert conn.data_to_send() == (password_digest(b"pw\n", manager_challenge) + "\nok\n").encode()
    assert isinstance(conn.next_event(), TaskReceived)


# ------------------------------------------------------------------ single messages


def test_task_block_with_every_field():
    data = (
        b"task 12\ncmd 11\necho 'a b'\ncategory my cat\ncores 1.500\ngpus 1\nmemory 100.7\ndisk 10\n"
        b"end_time 1795599576.500000\nwall_time 60.000000\nenv 5\nFOO=1\nenv 3\nBAR\n"
        b"dir empty/sub\ninfile file-1-x in%20put.txt 1\noutfile file-2-y out/o.txt 16\nend\n"
    )
    (event,) = events_of(data)
    task = event.task
    assert task.command == "echo 'a b'\n"
    assert task.category == "my cat"
    assert (task.cores, task.gpus, task.memory, task.disk) == (1, 1, 100, 10)
    assert task.end_time == 1795599576.5 and task.wall_time == 60.0
    assert task.env == ("FOO=1", "BAR")
    assert task.empty_dirs == ("empty/sub",)
    assert task.inputs == (TaskFile("file-1-x", "in put.txt", FileFlags.CACHE),)
    assert task.outputs == (TaskFile("file-2-y", "out/o.txt", FileFlags.WATCH),)


def test_other_manager_messages():
    data = (
        b"send_results -1\nget out%20dir 1\nkill -1\nunlink file-0-a\ncheck\nrelease\n"
        b"thirdget 2 file-9 /shared/x y\nurl file-8 16 0644 0\nhttp://h/x?a=b c"
    )
    assert events_of(data) == [
        SendResults(-1),
        GetRequest("out dir", True),
        KillTask(-1),
        UnlinkFile("file-0-a"),
        Check(),
        Release(),
        ThirdParty(False, 2, "file-9", "/shared/x y"),
        UrlFile("file-8", "http://h/x?a=b c", 0o644, 0),
    ]


def test_symlink_inside_a_directory_block():
    data = b"dir d\nsymlink l 6\ntargetend\n"
    assert events_of(data) == [DirStart("d", True), Symlink("d/l", "target"), DirEnd("d", True)]


def test_project_name_reply_is_matched_to_our_request():
    conn = ManagerConnection()
    assert conn.send(NameRequest()) == b"name\n"
    conn.receive_data(b"myproject\ncheck\n")
    assert conn.next_event() == ProjectName("myproject")
    assert conn.next_event() == Check()


def test_close_in_the_middle_of_a_payload_is_not_clean():
    assert events_of(b"put f 10 0644\nabc", close=True)[-1] == ConnectionClosed(clean=False)


@pytest.mark.parametrize(
    "data, message",
    [
        (b"hello there\n", "unrecognized message"),
        (b"put ../../etc/passwd 3 0644\nabc", "leaves its directory"),
        (b"put /etc/passwd 3 0644\nabc", "absolute path"),
        (b"put f x 0644\n", "expected an integer"),
        (b"put f 3 0999\nabc", "octal"),
        (b"put f -3 0644\n", "negative length"),
        (b"dir d\nput a/b 1 0644\nx", "not a plain file name"),
        (b"dir d\ndir ..\n", "not a plain file name"),
        (b"task 1\ncmd 4\ntruebogus line\n", "task 1: unexpected line"),
        (b"task 1\nenv 3\nA=1X", "not followed by a newline"),
        (b"task 1\ncores lots\n", "expected a number"),
        (b"task 1\nwall_time nan\n", "finite"),
        (b"task 1\ninfile a/b c 0\n", "must not contain '/'"),
        (b"task 1\noutfile a ../c 0\n", "leaves its directory"),
        (b"task x\n", "expected an integer"),
        (b"kill\n", "needs 1 argument"),
        (b"get ..\n", "leaves its directory"),
        (b"task 1\ncmd 99999999999\n", "over the 67108864-byte limit"),
        (b"task 1\nenv 99999999999\n", "over the 67108864-byte limit"),
        (b"url f 99999999999 0644\n", "over the 67108864-byte limit"),
        (b"dir d\nsymlink l 99999999999\n", "over the 67108864-byte limit"),
        (b"dir d\nsymlink l -1\n", "negative length"),
        (b"dir d\n" + b"dir d\n" * 3000, "nested deeper than 200 levels"),
    ],
)
def test_malformed_input_ends_in_one_connection_failed_naming_the_culprit(data, message):
    conn = ManagerConnection()
    conn.receive_data(data)
    events = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
    assert isinstance(events[-1], ConnectionFailed) and re.search(message, events[-1].reason)
    assert not any(isinstance(e, ConnectionFailed) for e in events[:-1])
    conn.receive_data(b"check\n")
    assert conn.next_event() is NEED_DATA and conn.closed  # the connection stays failed


def test_directories_nested_to_the_depth_limit_are_accepted():
    depth = 200
    events = events_of(b"dir d\n" + b"dir d\n" * (depth - 1) + b"end\n" * depth)
    assert sum(isinstance(e, DirStart) for e in events) == depth
    assert events[-1] == DirEnd("d", True)


def test_line_too_long():
    conn = ManagerConnection()
    conn.receive_data(b"x" * 5000)
    event = conn.next_event()
    assert isinstance(event, ConnectionFailed) and "longer than 4095" in event.reason


def test_large_put_streams_in_bounded_chunks():
    payload = bytes(range(256)) * 20000  # 5 MB
    events = events_of(b"put big 5120000 0600\n" + payload + b"check\n", chunk=65536)
    chunks = [e for e in events if isinstance(e, FileChunk)]
    assert b"".join(c.data for c in chunks) == payload
    assert max(len(c.data) for c in chunks) <= 1 << 20
    assert events[-2:] == [FileEnd("big"), Check()]


def test_handshake_has_features_and_end_time():
    data = encode_all(handshake_messages(
        WorkerIdentity("my host", "Linux", "x86_64", "worker-" + "a" * 32),
        ResourceTotals(cores=4, memory=8000, disk=100, gpus=1, tag=3),
        tasks_running=2,
        end_time=1795599576,
        features=("gpu model",),
    ))
    assert data == (
        b"workqueue 9 my_host Linux x86_64 8.0.0\ninfo worker-id worker-" + b"a" * 32 + b"\nfeature gpu%20model\n"
        b"alive\nresource workers 1 1 1\nresource disk 100 100 100\nresource memory 8000 8000 8000\n"
        b"resource gpus 1 1 1\nresource cores 4 4 4\nresource tag 3\ninfo end_of_resource_update 0\n"
        b"info tasks_running 2\ninfo worker-end-time 1795599576\n"
    )


@pytest.mark.parametrize("line", [
    b"peer-get a/b 10 0644 abcd 10.0.0.2 9200\n",  # a cached name never has a '/'
    b"peer-get ../x 10 0644 abcd 10.0.0.2 9200\n",
    b"peer-get x 10 0644 abcd 10.0.0.2 0\n",  # no such port
    b"peer-get x -1 0644 abcd 10.0.0.2 9200\n",
    b"peer-get x 10 0644 abcd 10.0.0.2\n",  # a field missing
    b"cache-report\n",
])
def test_a_malformed_peer_message_is_a_protocol_error(line):
    conn = ManagerConnection()
    conn.receive_data(line)
    event = conn.next_event()
    assert isinstance(event, ConnectionFailed), event
