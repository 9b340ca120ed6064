"""Dispatch throughput: coffea-wq's Python manager against CCTools' C manager, with the same two workers.

Two real ``work_queue_worker`` processes (2 cores each) are started once, pointed at one loopback
port. First CCTools' manager (Debian's ``work_queue`` module under /usr/bin/python3) listens there
and runs N trivial tasks (``/bin/true`` with one small cached input file); when it exits, the same
two workers reconnect to coffea-wq's manager on the same port, which runs the same N tasks. Each
side is timed from the first submit to the last result, once both workers are connected.

Then, in a fresh process, the coffea-wq manager's resident memory with 100,000 tasks queued and no
workers.

    python benchmarks/bench_dispatch.py [--tasks 2000] [--queued 100000]

Targets: coffea-wq/C throughput ratio >= 1.0; RSS with 100,000 queued tasks <= 300 MB.
Runs the C side under /usr/bin/python3, so this file only imports the standard library at the top.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

SYSTEM_PYTHON = "/usr/bin/python3"
TARGET_RATIO = 1.0
TARGET_RSS_MB = 300.0


# ------------------------------------------------------------------------------ the task loop (both sides)
def run_tasks(wq, port: int, count: int, workdir: str, host: str | None) -> dict:
    """Run ``count`` trivial tasks on ``port`` with module ``wq``; returns timing as a dict."""
    os.chdir(workdir)
    with open("input.txt", "w") as handle:
        handle.write("small input\n")
    kwargs = {"port": port}
    if host is not None:
        kwargs["host"] = host
    q = wq.WorkQueue(**kwargs)
    deadline = time.time() + 60
    while q.stats.workers_connected < 2:
        if time.time() > deadline:
            raise SystemExit("the two workers did not connect within 60 s")
        q.wait(1)  # the C manager only accepts workers inside wait()
    start = time.time()
    for _ in range(count):
        t = wq.Task("/bin/true")
        t.specify_input_file("input.txt", "input.txt", cache=True)
        t.specify_cores(1)
        t.specify_memory(10)
        t.specify_disk(10)
        q.submit(t)
    done = failed = 0
    while done < count and time.time() - start < 600:
        t = q.wait(5)
        if t is not None:
            done += 1
            failed += t.result != 0 or t.return_status != 0
    elapsed = time.time() - start
    result = {"tasks": done, "failed": failed, "seconds": elapsed, "tasks_per_second": done / elapsed}
    if hasattr(q, "shutdown"):
        q.shutdown()
    else:
        del q
    return result


def cctools_side(port: int, count: int, workdir: str) -> None:
    """Entry point under /usr/bin/python3 with Debian's work_queue module."""
    import work_queue

    print(json.dumps(run_tasks(work_queue, port, count, workdir, None)), flush=True)


def coffea_wq_side(port: int, count: int, workdir: str) -> dict:
    import coffea_wq.work_queue as ours

    return run_tasks(ours, port, count, workdir, "127.0.0.1")


# ------------------------------------------------------------------------------ memory with a big queue
def queued_rss(count: int) -> None:
    """Entry point in a fresh process: RSS of a manager holding ``count`` tasks and no workers."""
    import resource

    import coffea_wq.work_queue as ours

    workdir = tempfile.mkdtemp(prefix="bench-rss-")
    path = os.path.join(workdir, "input.txt")
    with open(path, "w") as handle:
        handle.write("small input\n")
    q = ours.WorkQueue(port=0, host="127.0.0.1")
    for _ in range(count):
        t = ours.Task("/bin/true")
        t.specify_input_file(path, "input.txt", cache=True)
        t.specify_cores(1)
        q.submit(t)
    assert q.stats.tasks_waiting == count
    with open(f"/proc/{os.getpid()}/status") as status:
        rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    q.shutdown()
    shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps({"queued": count, "rss_mb": rss_kb / 1024, "peak_rss_mb": peak_kb / 1024}), flush=True)


# ------------------------------------------------------------------------------ driver
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_workers(port: int, root: str) -> list[subprocess.Popen]:
    worker = shutil.which("work_queue_worker")
    if worker is None:
        raise SystemExit("work_queue_worker is not installed (Debian's coop-computing-tools)")
    procs = []
    for n in range(2):
        workdir = os.path.join(root, f"worker{n}")
        os.makedirs(workdir)
        argv = [worker, "-t", "120", "-i", "0.2", "-b", "1", "--cores", "2", "--memory", "1000", "--disk", "2000",
                "-s", workdir, "127.0.0.1", str(port)]
        procs.append(subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
    return procs


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--cctools-run", nargs=3, metavar=("PORT", "COUNT", "WORKDIR"), help=argparse.SUPPRESS)
    parser.add_argument("--rss-run", type=int, metavar="COUNT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cctools_run:
        port, count, workdir = args.cctools_run
        cctools_side(int(port), int(count), workdir)
        return 0
    if args.rss_run:
        queued_rss(args.rss_run)
        return 0

    root = tempfile.mkdtemp(prefix="bench-dispatch-")
    port = free_port()
    workers = start_workers(port, root)
    try:
        c_dir, py_dir = os.path.join(root, "cctools"), os.path.join(root, "coffea-wq")
        os.makedirs(c_dir)
        os.makedirs(py_dir)
        have_c = os.path.exists(SYSTEM_PYTHON) and subprocess.run(
            [SYSTEM_PYTHON, "-c", "import work_queue"], capture_output=True).returncode == 0
        c_result = None
        if have_c:
            run = subprocess.run([SYSTEM_PYTHON, os.path.abspath(__file__), "--cctools-run", str(port),
                                  str(args.tasks), c_dir], capture_output=True, text=True, timeout=900)
            if run.returncode != 0:
                print(run.stderr[-2000:], file=sys.stderr)
                return 1
            c_result = json.loads(run.stdout.strip().splitlines()[-1])
        py_result = coffea_wq_side(port, args.tasks, py_dir)
    finally:
        stop(workers)
        os.chdir(os.path.dirname(root))
        shutil.rmtree(root, ignore_errors=True)

    rss = subprocess.run([sys.executable, os.path.abspath(__file__), "--rss-run", str(args.queued)],
                         capture_output=True, text=True, timeout=900)
    rss_result = json.loads(rss.stdout.strip().splitlines()[-1]) if rss.returncode == 0 else None

    print(f"dispatch: {args.tasks} tasks of /bin/true with one cached input, two real workers x 2 cores")
    print(f"  coffea-wq manager : {py_result['tasks_per_second']:8.1f} tasks/s "
          f"({py_result['seconds']:.2f} s, {py_result['failed']} failed)")
    ok = py_result["failed"] == 0 and py_result["tasks"] == args.tasks
    if c_result:
        ratio = py_result["tasks_per_second"] / c_result["tasks_per_second"]
        print(f"  CCTools C manager : {c_result['tasks_per_second']:8.1f} tasks/s "
              f"({c_result['seconds']:.2f} s, {c_result['failed']} failed)")
        print(f"  ratio coffea-wq / C: {ratio:.2f}x (target >= {TARGET_RATIO:.1f}x) "
              f"{'OK' if ratio >= TARGET_RATIO else 'BELOW TARGET'}")
        ok = ok and ratio >= TARGET_RATIO
    else:
        print("  CCTools C manager : not available (python3-workqueue missing), no ratio")
    if rss_result:
        print(f"memory: {rss_result['queued']} tasks queued, no workers: RSS {rss_result['rss_mb']:.0f} MB "
              f"(target <= {TARGET_RSS_MB:.0f} MB) {'OK' if rss_result['rss_mb'] <= TARGET_RSS_MB else 'ABOVE TARGET'}")
        ok = ok and rss_result["rss_mb"] <= TARGET_RSS_MB
    else:
        print(f"memory: measurement failed: {rss.stderr[-1000:]}")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
