"""A CCTools Work Queue manager (Debian's ``work_queue`` under /usr/bin/python3) with sleeping tasks.

Prints ``PORT <n>``, runs ``--tasks`` tasks of category ``sleepers`` (``sleep --seconds``), prints
``DONE <n>`` once every task came back, then keeps the manager answering until its standard input closes,
so that a dashboard can look at the finished queue. Standard library and ``work_queue`` only.
"""

import argparse
import select
import sys

import work_queue as wq


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    q = wq.WorkQueue(port=0)
    print(f"PORT {q.port}", flush=True)
    for n in range(args.tasks):
        t = wq.Task(f"sleep {args.seconds}; echo task {n}")
        t.specify_category("sleepers")
        t.specify_cores(1)
        t.specify_memory(100)
        t.specify_disk(100)
        q.submit(t)
    done = 0
    while done < args.tasks:
        if q.wait(1):
            done += 1
    print(f"DONE {done}", flush=True)
    # the C manager answers status queries only inside wait(): keep waiting until stdin closes
    while not select.select([sys.stdin], [], [], 0)[0]:
        q.wait(1)


if __name__ == "__main__":
    main()
