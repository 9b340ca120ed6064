"""A real coffea-wq worker process against a scripted manager on a real loopback socket."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from tests.support import coffea_wq_command, wait_until
from tests.worker.fake_manager import FakeManager, Peer


@pytest.fixture
def manager():
    fake = FakeManager()
    yield fake
    fake.close()


def start_worker(processes, tmp_path: Path, *args: str, cores: int = 2):
    log = tmp_path / f"worker-{len(processes.procs)}.log"
    argv = coffea_wq_command("worker", "--cores", str(cores), "--memory", "1000", "--disk", "1000",
                             "--workdir", str(tmp_path / "work"), *args)
    with open(log, "wb") as out:
        proc = processes.start(argv, stdout=out, stderr=out)
    proc.log = log  # type: ignore[attr-defined]
    return proc


def log_of(proc) -> str:
    return proc.log.read_text()


def connect(manager: FakeManager, processes, tmp_path: Path, *args: str, cores: int = 2) -> tuple[object, Peer]:
    proc = start_worker(processes, tmp_path, *args, "127.0.0.1", str(manager.port), cores=cores)
    peer = manager.accept()
    return proc, peer


def test_handshake_task_outputs_and_cleanup(manager, processes, tmp_path):
    proc, peer = connect(manager, processes, tmp_path, "-t", "30")
    lines = peer.handshake()
    assert lines[0].startswith("workqueue 9 ") and lines[0].endswith(" 8.0.0")
    assert lines[1].startswith("info worker-id worker-") and len(lines[1].split()[2]) == 39
    # every coffea-wq worker advertises its token (docs/reduction.md), as --feature names are sent
    assert lines[2].startswith("feature coffea-wq-worker-") and len(lines[2].split("-")[-1]) == 16
    # the cache server's port, for peer transfers (docs/protocol.md, "Our extension: peer transfers")
    assert re.fullmatch(r"info coffea-wq-peer-port \d+", lines[3]), lines[3]
    assert lines[4:] == [
        "alive", "resource workers 1 1 1", "resource disk 1000 1000 1000", "resource memory 1000 1000 1000",
        "resource gpus 0 0 0", "resource cores 2 2 2", "resource tag 0", "info end_of_resource_update 0",
        "info tasks_running 0", "info worker-end-time 0",
    ]  # fmt: skip
    peer.put("file-0-abc-in.txt", b"hello input\n")
    command = (
        'cat in.txt; echo "V=$MYVAR C=$CORES O=$OMP_NUM_THREADS M=$MEMORY"; echo err >&2; pwd; '
        'echo "T=$TMPDIR"; echo "S=$WORK_QUEUE_SANDBOX"; mkdir -p odir/s; echo 1 > odir/s/f; echo made > out.txt; exit 3'
    )
    peer.task(1, command, inputs=[("file-0-abc-in.txt", "in.txt", 1)],
              outputs=[("file-1-def-out.txt", "out.txt", 0), ("file-2-odir", "odir", 0)],
              env=["MYVAR=hello world"], resources={"cores": "1.000", "memory": 100, "disk": 10, "gpus": 0})
    assert peer.read_line() == "info tasks_running 1"
    (result,) = peer.results()
    assert (result.status, result.exit_code, result.taskid) == (0, 3, 1)
    out = result.output.decode().splitlines()
    assert out[:3] == ["hello input", "V=hello world C=1 O=1 M=100", "err"]
    workspace = Path(out[3]).parent
    assert out[3] == str(workspace / "t.1")
    assert workspace.name.startswith(f"worker-{os.getuid()}-") and workspace.parent == (tmp_path / "work").resolve()
    assert out[4].startswith(f"T={workspace}/t.1/cctools-temp-t.1.")
    assert out[5] == f"S={workspace}"
    assert peer.get("file-1-def-out.txt") == [("file file-1-def-out.txt 5", b"made\n")]
    assert peer.get("file-2-odir") == [("dir file-2-odir 0", None), ("dir file-2-odir/s 0", None),
                                       ("file file-2-odir/s/f 2", b"1\n")]
    assert peer.get("file-9-nothing") == [("missing file-9-nothing 2", None)]
    assert (workspace / "t.1").is_dir(), "a finished task's sandbox stays until the manager's kill"
    peer.send(b"kill 1\nunlink file-1-def-out.txt\ncheck\n")
    assert peer.read_until(lambda line: line == "alive")
    assert peer.read_line() == "info tasks_running 0"
    assert not (workspace / "t.1").exists()
    assert not (workspace / "cache" / "file-1-def-out.txt").exists()
    assert (workspace / "cache" / "file-0-abc-in.txt").read_bytes() == b"hello input\n"
    peer.send(b"exit\n")
    assert proc.wait(timeout=15) == 0
    assert not workspace.exists(), "the workspace is deleted at exit"
    assert "Traceback" not in log_of(proc)


def test_tasks_run_concurrently_as_resources_allow(manager, processes, tmp_path):
    proc, peer = connect(manager, processes, tmp_path, "-t", "30")
    peer.handshake()
    one_core = {"cores": "1.000", "memory": 100, "disk": 10, "gpus": 0}
    for taskid in (1, 2):
        peer.task(taskid, "date +%s.%N; sleep 1; date +%s.%N", resources=one_core)
    peer.task(3, "date +%s.%N", resources={"cores": "2.000", "memory": 100, "disk": 10, "gpus": 0})
    results = {r.taskid: r for r in peer.results(count=3)}
    spans = {tid: [float(x) for x in r.output.split()] for tid, r in results.items()}
    assert spans[1][0] < spans[2][1] and spans[2][0] < spans[1][1], "tasks 1 and 2 overlapped"
    assert spans[3][0] >= max(spans[1][1], spans[2][1]) - 0.05, "the 2-core task waited for both cores"
    assert "info tasks_running 2" in peer.lines_seen
    assert all(r.status == 0 and r.exit_code == 0 for r in results.values())


def test_limits_signals_and_forsaking(manager, processes, tmp_path):
    proc, peer = connect(manager, processes, tmp_path, "-t", "30")
    peer.handshake()
    small = {"cores": "1.000", "memory": 10, "disk": 10, "gpus": 0}
    peer.task(1, "sleep 30", resources=small, extra=["wall_time 0.500000"])
    peer.task(2, "sleep 30", resources=small, extra=[f"end_time {time.time() + 0.5:.6f}"])
    peer.task(3, "kill -9 $$", resources=small)
    peer.task(4, "true", resources={"cores": "64.000", "memory": 10, "disk": 10, "gpus": 0})
    peer.task(5, "head -c 3000000 /dev/zero > big", resources={"cores": "0.000", "memory": 10, "disk": 1, "gpus": 0})
    started = time.monotonic()
    results = {r.taskid: r for r in peer.results(count=5)}
    assert time.monotonic() - started < 10
    assert (results[1].status, results[1].exit_code) == (56, 9)
    assert (results[2].status, results[2].exit_code) == (24, 9)
    assert (results[3].status, results[3].exit_code) == (0, 9), "a signal is reported as exit code, status 0"
    assert results[4].status == 40
    assert (results[5].status, results[5].exit_code) == (16, 0), "the sandbox outgrew its disk request"
    assert "resource tag 4" in peer.lines_seen, "resources are re-sent after forsaking"
    assert results[1].time_us >= 400_000


def test_missing_input_is_reported_not_fatal(manager, processes, tmp_path):
    proc, peer = connect(manager, processes, tmp_path, "-t", "30")
    peer.handshake()
    peer.task(1, "cat x", inputs=[("file-0-never-sent", "x", 0)], resources={"cores": 1, "memory": 1, "disk": 1})
    (result,) = peer.results()
    assert result.status == 1 and b"never sent" in result.output
    peer.send(b"check\n")
    assert peer.read_until(lambda line: line == "alive")


@pytest.mark.parametrize(
    "garbage, reason",
    [
        (b"hello there\n", "unrecognized message from the manager: 'hello there'"),
        (b"put ../escape 3 0644\nabc", "leaves its directory"),
        (b"task 5\ncmd 4\ntruewhat is this\n", "task 5: unexpected line"),
        (b"x" * 5000 + b"\n", "longer than 4095"),
    ],
)
def test_malformed_input_closes_with_a_logged_reason_then_reconnects(manager, processes, tmp_path, garbage, reason):
    proc, peer = connect(manager, processes, tmp_path, "-t", "30", "-i", "0.2")
    peer.handshake()
    peer.send(garbage)
    assert peer.closed_by_worker()
    again = manager.accept()
    assert again.handshake()[0].startswith("workqueue 9")
    text = log_of(proc)
    assert f"bad message from manager 127.0.0.1:{manager.port}" in text and reason in text
    assert "Traceback" not in text
    again.send(b"exit\n")
    assert proc.wait(timeout=15) == 0


def test_release_reconnects_with_a_wiped_cache(manager, processes, tmp_path):
    proc, peer = connect(manager, processes, tmp_path, "-t", "30")
    peer.handshake()
    peer.put("file-0-x", b"data")
    peer.send(b"release\n")
    assert peer.closed_by_worker()
    again = manager.accept(timeout=5)
    again.handshake()
    assert again.get("file-0-x") == [("missing file-0-x 2", None)]
    again.close()
    assert manager.accept(timeout=10).handshake(), "a lost manager is retried"


def test_worker_starts_before_the_manager_and_idles_out(processes, tmp_path):
    from tests.support import free_port

    port = free_port()
    proc = start_worker(processes, tmp_path, "-t", "3", "-i", "0.2", "-b", "0.5", "127.0.0.1", str(port))
    time.sleep(1.0)
    manager = FakeManager(port)
    try:
        peer = manager.accept(timeout=10)
        peer.handshake()
        started = time.monotonic()
        assert peer.read_until(lambda line: line.startswith("info idle-disconnecting"), timeout=10)
        assert peer.closed_by_worker()
        assert proc.wait(timeout=10) == 0
        assert 2.5 < time.monotonic() - started < 8
    finally:
        manager.close()


def test_connect_timeout_gives_up(processes, tmp_path):
    from tests.support import free_port

    proc = start_worker(processes, tmp_path, "-t", "1.5", "-i", "0.2", "127.0.0.1", str(free_port()))
    assert proc.wait(timeout=15) == 0
    assert "could not connect to a manager after 1.5 s" in log_of(proc)


def test_single_shot_exits_when_the_manager_goes_away(manager, processes, tmp_path):
    proc, peer = connect(manager, processes, tmp_path, "--single-shot")
    peer.handshake()
    peer.close()
    assert proc.wait(timeout=15) == 0


@pytest.mark.parametrize("worker_pw, manager_pw, outcome", [
    ("secret\n", "secret\n", "ok"),
    ("secret\n", "other\n", "wrong password"),
    ("secret\n", None, "probably has no password"),
    (None, "secret\n", "requires a password"),
])  # fmt: skip
def test_passwords(manager, processes, tmp_path, worker_pw, manager_pw, outcome):
    args = ["-t", "30", "-i", "5"]
    if worker_pw is not None:
        (tmp_path / "worker.pw").write_text(worker_pw)
        args += ["-P", str(tmp_path / "worker.pw")]
    proc, peer = connect(manager, processes, tmp_path, *args)
    if manager_pw is None:
        assert peer.read_line() == "auth password sha1"  # the C manager just hangs up
        peer.close()
    elif outcome == "ok":
        assert peer.authenticate(manager_pw.encode())
        assert peer.handshake()[0].startswith("workqueue 9")
        peer.task(1, "echo authenticated", resources={"cores": 1, "memory": 1, "disk": 1})
        assert peer.results()[0].output == b"authenticated\n"
        return
    elif worker_pw is None:
        assert peer.read_line().startswith("workqueue 9")
        peer.send(b"auth password sha1\n")
        assert peer.closed_by_worker()
    else:
        assert not peer.authenticate(manager_pw.encode())
        assert peer.closed_by_worker()
    wait_until(lambda: outcome in log_of(proc), 10, f"the worker to say {outcome!r}")


def test_sigterm_kills_tasks_and_removes_the_workspace(manager, processes, tmp_path):
    proc, peer = connect(manager, processes, tmp_path, "-t", "30")
    peer.handshake()
    peer.task(1, "sleep 60 & echo $! > ../child.pid; wait", resources={"cores": 1, "memory": 1, "disk": 1})
    pid_file = wait_until(lambda: next((tmp_path / "work").glob("worker-*/child.pid"), None), 10, "the task")
    wait_until(lambda: pid_file.read_text().strip(), 5, "the child pid")
    child = int(pid_file.read_text())
    proc.send_signal(signal.SIGTERM)
    assert peer.read_until(lambda line: line.startswith("info vacating")) == "info vacating SIGTERM"
    assert proc.wait(timeout=15) == 0
    wait_until(lambda: not _alive(child), 5, "the task's child to die")
    assert not pid_file.parent.exists()


def test_sigkilled_worker_takes_its_task_shell_with_it(manager, processes, tmp_path):
    proc, peer = connect(manager, processes, tmp_path, "-t", "30")
    peer.handshake()
    peer.task(1, "echo $$ > ../shell.pid; exec sleep 60", resources={"cores": 1, "memory": 1, "disk": 1})
    pid_file = wait_until(lambda: next((tmp_path / "work").glob("worker-*/shell.pid"), None), 10, "the task")
    wait_until(lambda: pid_file.read_text().strip(), 5, "the shell pid")
    shell = int(pid_file.read_text())
    proc.kill()
    proc.wait(timeout=10)
    assert peer.closed_by_worker()
    wait_until(lambda: not _alive(shell), 5, "the task shell to die with its worker")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
