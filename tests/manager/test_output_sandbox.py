"""Names in a worker's ``get`` reply never reach outside the output they answer (docs/manager.md, "Sandbox")."""

from __future__ import annotations

import logging
import os
import subprocess

import pytest

import coffea_wq.work_queue as wq
from coffea_wq.manager.outputs import OutputWriter, RefusedName
from tests.manager.scripted_worker import ScriptedWorker
from tests.support import LOOPBACK, coffea_wq_command

CACHED = "file-1-abc-out.txt"


def _writer(tmp_path, name="out") -> OutputWriter:
    return OutputWriter(str(tmp_path / "staging" / name), CACHED)


@pytest.mark.parametrize("name", [
    f"{CACHED}/../../x",        # climbs out of the output
    f"{CACHED}/../x",
    f"{CACHED}x",               # shares the prefix only
    "/etc/passwd",              # absolute
    f"{CACHED}/./a",
    f"{CACHED}//a",
    f"{CACHED}/a\0b",
    "file-1-other",
])
def test_names_outside_the_output_are_refused(tmp_path, name):
    (tmp_path / "staging").mkdir()
    writer = _writer(tmp_path)
    writer.make_directory(CACHED)
    with pytest.raises(RefusedName):
        writer.start_file(name)
    with pytest.raises(RefusedName):
        writer.make_directory(name)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["out", "staging"]


def test_a_file_reply_cannot_make_the_output_a_directory(tmp_path):
    writer = _writer(tmp_path)
    with pytest.raises(RefusedName, match="did not announce"):
        writer.start_file(f"{CACHED}/inner")  # no 'dir' first: out-0.lz4 would become a directory
    assert not (tmp_path / "staging" / "out").exists()


def test_a_directory_reply_never_replaces_a_file(tmp_path):
    (tmp_path / "staging").mkdir()
    (tmp_path / "staging" / "out").write_bytes(b"placeholder")
    with pytest.raises(RefusedName, match="into a directory"):
        _writer(tmp_path).make_directory(CACHED)
    assert (tmp_path / "staging" / "out").read_bytes() == b"placeholder"


def test_symlinks_inside_the_output_that_leave_are_not_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    writer = _writer(tmp_path)
    writer.make_directory(CACHED)
    os.symlink(outside, tmp_path / "staging" / "out" / "link")  # planted by someone else on this host
    writer._directories.add("link")  # even if the reply had announced it
    with pytest.raises(RefusedName, match="outside the output"):
        writer.start_file(f"{CACHED}/link/f")
    os.symlink(outside / "target", tmp_path / "staging" / "out" / "last")
    with pytest.raises(RefusedName, match="symlink"):
        writer.start_file(f"{CACHED}/last")
    with pytest.raises(RefusedName, match="into a directory"):
        writer.make_directory(f"{CACHED}/last")
    assert list(outside.iterdir()) == []


def test_an_honest_directory_tree_is_written(tmp_path):
    writer = _writer(tmp_path)
    writer.make_directory(CACHED)
    writer.make_directory(f"{CACHED}/sub")
    writer.start_file(f"{CACHED}/sub/a.txt")
    writer.write(b"hello", last=True)
    writer.start_file(f"{CACHED}/b.txt")
    writer.write(b"", last=True)
    assert (tmp_path / "staging" / "out" / "sub" / "a.txt").read_bytes() == b"hello"
    assert (tmp_path / "staging" / "out" / "b.txt").read_bytes() == b""


def _rogue_takes_the_task(port: int) -> tuple[ScriptedWorker, str]:
    rogue = ScriptedWorker(port, hostname="rogue")
    task = rogue.next_task()
    rogue.finish(task.task_id, b"done\n")
    get = rogue.read_line()
    assert get.startswith("get "), get
    return rogue, get.split()[1]


def test_rogue_names_drop_the_worker_and_the_task_completes_elsewhere(processes, tmp_path, caplog):
    """A real manager: the rogue's hostile reply is refused (the log names it and the name), the task
    goes back to the queue and an honest ``coffea-wq worker`` completes it."""
    staging = tmp_path / "staging"
    staging.mkdir()
    victim = tmp_path / "victim"
    caplog.set_level(logging.WARNING, logger="coffea_wq.manager")
    with wq.WorkQueue(port=0, host=LOOPBACK) as q:
        task = wq.Task("echo honest > out.txt")
        task.specify_output_file(str(staging / "out.txt"), "out.txt", cache=False)
        task.specify_cores(1), task.specify_memory(50), task.specify_disk(50)
        q.submit(task)
        rogue, cached = _rogue_takes_the_task(q.port)
        try:
            rogue.send(f"dir {cached} 0\nfile {cached}/../../victim 5\nowned".encode())
            with pytest.raises((EOFError, ConnectionError)):
                for _ in range(100):
                    rogue.read_line(timeout=10)  # the manager hangs up on it
        finally:
            rogue.close()
        processes.start(coffea_wq_command("worker", "--cores", "1", "--memory", "500", "--disk", "500",
                                          "-s", str(tmp_path / "w"), "-t", "60", LOOPBACK, str(q.port)),
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        done = q.wait(60)
    assert done is not None and done.result == wq.WORK_QUEUE_RESULT_SUCCESS, done and done.result_str
    assert (staging / "out.txt").read_text() == "honest\n"
    assert not victim.exists() and not (tmp_path / "victim").exists()
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert refused and "rogue" in refused[0] and "../../victim" in refused[0], refused


def test_an_aborted_reply_leaves_nothing_at_the_output(tmp_path):
    writer = _writer(tmp_path)
    writer.make_directory(CACHED)
    writer.start_file(f"{CACHED}/partial")
    writer.write(b"half", last=False)
    writer.abort()
    assert not (tmp_path / "staging" / "out").exists()
    untouched = _writer(tmp_path, "kept")
    (tmp_path / "staging" / "kept").write_bytes(b"earlier")
    untouched.abort()  # a reply that wrote nothing removes nothing
    assert (tmp_path / "staging" / "kept").read_bytes() == b"earlier"
