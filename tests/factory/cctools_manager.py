"""A real CCTools Work Queue manager for the factory tests (run with Debian's /usr/bin/python3).

Usage: python3 cctools_manager.py NAME [CATALOG_HOST:PORT]
Prints ``port N`` once listening, then ``done ID RESULT`` per finished task. Reads commands on
stdin: ``submit COUNT SECONDS`` queues COUNT ``sleep SECONDS`` tasks of one core; ``quit`` (or
EOF) ends it. It calls ``wait`` all the time so that status queries are answered.
"""

import queue
import sys
import threading
import time

import work_queue as wq


def read_commands(commands):
    for line in sys.stdin:
        commands.put(line.split())
    commands.put(["quit"])


def main():
    name = sys.argv[1]
    q = wq.WorkQueue(port=0, name=name)
    if len(sys.argv) > 2:
        host, port = sys.argv[2].rsplit(":", 1)
        q.specify_catalog_server(host, int(port))
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
            for _ in range(int(command[1])):
                task = wq.Task(f"sleep {command[2]}")
                task.specify_cores(1)
                q.submit(task)
        task = q.wait(1)
        if task:
            print("done", task.id, task.result, flush=True)
    q.shutdown_workers(0)


if __name__ == "__main__":
    main()
