"""A task's large stdout goes to a spool file, not memory (docs/manager.md, "Bounded memory").

Three rogue peers (raw sockets, no password) each take a task and answer it with 200 MB of
output. The manager, in a process of its own so that its peak resident size is its alone, stays
far below the 600 MB it would hold if it kept that output in memory, and ``task.output`` still
gives back every byte.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from coffea_wq.manager.stdout import SpoolDirectory, StdoutSpool
from tests.manager.scripted_worker import ScriptedWorker

pytestmark = pytest.mark.slow

PEERS = 3
OUTPUT_MB = 200
PEAK_LIMIT = 300 << 20

MANAGER = """
import sys
import coffea_wq.work_queue as wq

q = wq.WorkQueue(port=0, host="127.0.0.1")
for index in range({peers}):
    task = wq.Task(f"echo {{index}}")
    task.specify_cores(1), task.specify_memory(10), task.specify_disk(10)
    q.submit(task)
print(q.port, flush=True)
done = []
while len(done) < {peers}:
    task = q.wait(120)
    if task is None:
        break
    done.append(task)
status = open("/proc/self/status").read().split("\\n")
print(next(line for line in status if line.startswith("VmHWM")).split()[1], flush=True)
for task in done:
    output = task.output
    print(int(task.result), task.return_status, len(output), output.count("x"), flush=True)
q.shutdown()
"""


def _answer_with_a_large_output(port: int, errors: list) -> None:
    try:
        worker = ScriptedWorker(port, cores=1, memory=100, disk=100, hostname="rogue")
        try:
            task = worker.next_task(60)
            worker.send("info tasks_running 0\navailable_results\n")
            assert worker.read_line(60) == "send_results -1"
            worker.send(f"result 0 0 {OUTPUT_MB << 20} 1000 {task.task_id}\n")
            chunk = b"x" * (1 << 20)
            for _ in range(OUTPUT_MB):
                worker.send(chunk)
            worker.send("end\n")
            worker.read_line(120)  # the manager's kill: the result was taken whole
        finally:
            worker.close()
    except Exception as error:  # reported by the test's thread
        errors.append(error)


def test_rogue_peers_large_stdout_is_spooled_and_read_back(tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # the spool lands here, removed with the test's folder
    manager = subprocess.Popen([sys.executable, "-c", MANAGER.format(peers=PEERS)], stdout=subprocess.PIPE,
                               text=True, env=env)
    try:
        port = int(manager.stdout.readline())
        errors: list = []
        peers = [threading.Thread(target=_answer_with_a_large_output, args=(port, errors)) for _ in range(PEERS)]
        for peer in peers:
            peer.start()
        for peer in peers:
            peer.join(300)
        assert not errors, errors
        out, _ = manager.communicate(timeout=300)
    finally:
        if manager.poll() is None:
            manager.kill()
            manager.wait(10)
    lines = out.split("\n")
    peak = int(lines[0]) << 10
    assert peak < PEAK_LIMIT, f"the manager's peak resident size was {peak >> 20} MB"
    size = OUTPUT_MB << 20
    assert sorted(lines[1:1 + PEERS]) == [f"0 0 {size} {size}"] * PEERS  # SUCCESS, exit 0, every byte back


def test_a_small_output_stays_in_memory_and_a_large_one_is_spooled(tmp_path):
    directory = SpoolDirectory(str(tmp_path))
    small = StdoutSpool(directory, 1, threshold=10)
    small.write(b"hello")
    assert small.finish() == (b"hello", None)
    large = StdoutSpool(directory, 2, threshold=10)
    for piece in (b"0123456", b"789abcdef"):
        large.write(piece)
    head, path = large.finish()
    assert head == b"" and open(path, "rb").read() == b"0123456789abcdef" and large.length == 16
    large.discard()
    assert not os.path.exists(path)
    directory.remove()
    assert not os.listdir(tmp_path)
