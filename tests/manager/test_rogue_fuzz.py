"""A live manager fed mutated worker streams by several rogue connections while an honest worker runs
its tasks: every task completes with the right output, and the manager never trips over itself."""

from __future__ import annotations

import logging
import random
import socket
import subprocess
import threading
import time

import coffea_wq.work_queue as wq
from tests.protocol import fuzzing
from tests.support import LOOPBACK, coffea_wq_command

ROGUES = 4
TASKS = 20


def _rogue(port: int, seed: int, stop: threading.Event, sent: list[int]) -> None:
    """Connects again and again, each time sending one mutated transcript in random pieces."""
    rng = random.Random(seed)
    seeds = fuzzing.seeds("W->M")
    while not stop.is_set():
        lines = fuzzing.mutate_stream(rng, rng.choice(seeds), seeds, to_worker=False)
        try:
            with socket.create_connection((LOOPBACK, port), timeout=2) as sock:
                for piece in fuzzing.chunks(rng, b"".join(lines)):
                    sock.sendall(piece)
                sent.append(len(lines))
                sock.settimeout(rng.choice((0.01, 0.2)))
                try:
                    while sock.recv(65536):  # read what the manager says (tasks, gets) until it hangs up
                        pass
                except OSError:
                    pass
        except OSError:
            time.sleep(0.01)


def test_mutated_streams_from_rogues_during_a_run(processes, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="coffea_wq.manager")
    stop = threading.Event()
    sent: list[int] = []
    with wq.WorkQueue(port=0, host=LOOPBACK) as q:
        rogues = [threading.Thread(target=_rogue, args=(q.port, seed, stop, sent), daemon=True)
                  for seed in range(ROGUES)]
        for thread in rogues:
            thread.start()
        try:
            for i in range(TASKS):
                task = wq.Task(f"echo task-{i} > out.txt")
                task.specify_output_file(str(tmp_path / f"out-{i}.txt"), "out.txt", cache=False)
                task.specify_cores(1), task.specify_memory(50), task.specify_disk(50)
                task.specify_tag(str(i))
                q.submit(task)
            time.sleep(1.0)  # the rogues go first: they take tasks, half-answer, hang up
            processes.start(coffea_wq_command("worker", "--cores", "2", "--memory", "500", "--disk", "500",
                                              "-s", str(tmp_path / "w"), "-t", "60", LOOPBACK, str(q.port)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            done = {}
            deadline = time.monotonic() + 120
            while len(done) < TASKS and time.monotonic() < deadline:
                task = q.wait(5)
                if task is not None:
                    done[task.tag] = task
        finally:
            stop.set()
            for thread in rogues:
                thread.join(10)
    assert sum(sent) > 500, f"the rogues sent only {sum(sent)} messages"
    assert sorted(done, key=int) == [str(i) for i in range(TASKS)]
    for tag, task in done.items():
        assert task.result == wq.WORK_QUEUE_RESULT_SUCCESS, (tag, task.result_str)
        assert (tmp_path / f"out-{tag}.txt").read_text() == f"task-{tag}\n"
    tripped = [r.getMessage() for r in caplog.records if "internal error" in r.getMessage()
               or "loop error" in r.getMessage()]
    assert tripped == []
