"""A real CCTools Work Queue manager for the factory tests (run with Debian's /usr/bin/python3).

Usage: python3 cctools_manager.py NAME [CATALOG_HOST:PORT [COUNT SECONDS]]
COUNT tasks given here are queued before the first catalog update (which CCTools sends at the
first ``wait``; the next one comes only a minute later). Prints ``port N`` once listening, then ``done ID RESULT`` per finished task. Reads commands on
stdin: ``submit COUNT SECONDS`` queues COUNT ``sleep SECONDS`` tasks of one core; ``quit`` (or
EOF) ends it. It calls ``wait`` all the time so that status queries are answered.
"""

import os
import queue
import sys
import threading
import time

import work_queue as wq


def read_commands(commands):
    for line in sys.stdin:
        commands.put(line.split())
    commands.put(["quit"])


def submit(q, count, seconds):
    for _ in range(int(count)):
        task = wq.Task(f"sleep {seconds}")
        task.specify_cores(1)
        q.submit(task)


def main():
    name = sys.argv[1]
    if len(sys.argv) > 2:
        # Read when the queue is created: so its first catalog update (at once, not after 60 s)
        # goes to our catalog.
        host, port = sys.argv[2].rsplit(":", 1)
        os.environ["CATALOG_HOST"], os.environ["CATALOG_PORT"] = host, port
    q = wq.WorkQueue(port=0, name=name)
    if len(sys.argv) > 2:
        q.specify_catalog_server(host, int(port))
    if len(sys.argv) > 4:
        submit(q, sys.argv[3], sys.argv[4])
    print("port", q.port, flush=True)
    commands = queue.Queue()
    threading.Thread(target=read_commands, args=(commands,), daemon=True).start()
    deadline = time.time() + 600
    while time.time() < deadline:
        try:
            command = commands.get_nowait()
        except queue.Empty:
            command = None
        if command and command[0] == "quit":
            break
        if command and command[0] == "submit":
            submit(q, command[1], command[2])
        task = q.wait(1)
        if task:
            print("done", task.id, task.result, flush=True)
    q.shutdown_workers(0)


if __name__ == "__main__":
    main()
