"""Dispatch throughput: coffea-wq's Python manager against CCTools' C manager, with the same two workers.

Two real ``work_queue_worker`` processes (2 cores each) are started once, pointed at one loopback
port. First CCTools' manager (Debian's ``work_queue`` module under /usr/bin/python3) listens there
and runs N trivial tasks (``/bin/true`` with one small cached input file); when it exits, the same
two workers reconnect to coffea-wq's manager on the same port, which runs the same N tasks. Each
side is timed from the first submit to the last result, once both workers are connected.

Then, in a fresh process, the coffea-wq manager's resident memory with 100,000 tasks queued and no
workers.

    python benchmarks/bench_dispatch.py [--tasks 2000] [--queued 100000]
    python benchmarks/bench_dispatch.py --workers 64,200

Targets: coffea-wq/C throughput ratio >= 1.0; RSS with 100,000 queued tasks <= 300 MB.

With ``--workers 64,200`` (run by bench_manager_scale.py): that many 1-core real workers, 30 tasks per
worker, each manager's process CPU (user + system, from the first submit to the last result) per
task; target: ours <= 1/3 of C's. With 200 workers, the submits' time scaled to 6,000 tasks; target
<= 0.5 s.
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
TARGET_CPU_RATIO = 1 / 3  # --workers: the manager process's CPU per task against the C manager's
TASKS_PER_WORKER = 30
SUBMIT_WORKERS, SUBMIT_TASKS, TARGET_SUBMIT_S = 200, 6000, 0.5  # 6,000 submits with 200 workers connected


# ------------------------------------------------------------------------------ the task loop (both sides)
def run_tasks(wq, port: int, count: int, workdir: str, host: str | None, workers: int = 2) -> dict:
    """Run ``count`` trivial tasks on ``port`` with module ``wq`` once ``workers`` are connected;
    returns timing, the time the submits took and the process's CPU seconds (rusage) as a dict."""
    import resource

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime

    os.chdir(workdir)
    with open("input.txt", "w") as handle:
        handle.write("small input\n")
    kwargs = {"port": port}
    if host is not None:
        kwargs["host"] = host
    q = wq.WorkQueue(**kwargs)
    deadline = time.time() + 60
    deadline = time.time() + 60 + workers / 2
    while q.stats.workers_connected < workers:
        if time.time() > deadline:
            raise SystemExit(f"{q.stats.workers_connected} of {workers} workers connected in time")
        q.wait(1)  # the C manager only accepts workers inside wait()
    cpu_at_start = cpu()
    start = time.time()
    for _ in range(count):
        t = wq.Task("/bin/true")
        t.specify_input_file("input.txt", "input.txt", cache=True)
        t.specify_cores(1)
        t.specify_memory(10)
        t.specify_disk(10)
        q.submit(t)
    submit_seconds = time.time() - start
    done = failed = 0
    while done < count and time.time() - start < 600:
        t = q.wait(5)
        if t is not None:
            done += 1
            failed += t.result != 0 or t.return_status != 0
    elapsed = time.time() - start
    result = {"tasks": done, "failed": failed, "seconds": elapsed, "tasks_per_second": done / elapsed,
              "submit_seconds": submit_seconds, "cpu_seconds": cpu() - cpu_at_start}
    if hasattr(q, "shutdown"):
        q.shutdown()
    else:
        del q
    return result


def cctools_side(port: int, count: int, workdir: str, workers: int = 2) -> None:
    """Entry point under /usr/bin/python3 with Debian's work_queue module."""
    import work_queue

    print(json.dumps(run_tasks(work_queue, port, count, workdir, None, workers)), flush=True)


def coffea_wq_side(port: int, count: int, workdir: str, workers: int = 2) -> dict:
    import coffea_wq.work_queue as ours

    return run_tasks(ours, port, count, workdir, "127.0.0.1", workers)


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


def start_workers(port: int, root: str, count: int = 2, cores: int = 2) -> list[subprocess.Popen]:
    worker = shutil.which("work_queue_worker")
    if worker is None:
        raise SystemExit("work_queue_worker is not installed (Debian's coop-computing-tools)")
    procs = []
    for n in range(count):
        workdir = os.path.join(root, f"worker{n}")
        os.makedirs(workdir)
        argv = [worker, "-t", "120", "-i", "0.2", "-b", "1", "--cores", str(cores), "--memory", "1000",
                "--disk", "2000", "-s", workdir, "127.0.0.1", str(port)]
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


def compare(count: int, cores: int, tasks: int) -> tuple[dict | None, dict]:
    """``count`` real workers of ``cores`` cores run ``tasks`` tasks for CCTools' manager, then ours."""
    root = tempfile.mkdtemp(prefix="bench-dispatch-")
    port = free_port()
    workers = start_workers(port, root, count, cores)
    try:
        c_dir, py_dir = os.path.join(root, "cctools"), os.path.join(root, "coffea-wq")
        os.makedirs(c_dir)
        os.makedirs(py_dir)
        have_c = os.path.exists(SYSTEM_PYTHON) and subprocess.run(
            [SYSTEM_PYTHON, "-c", "import work_queue"], capture_output=True).returncode == 0
        c_result = None
        if have_c:
            run = subprocess.run([SYSTEM_PYTHON, os.path.abspath(__file__), "--cctools-run", str(port),
                                  str(tasks), c_dir, str(count)], capture_output=True, text=True, timeout=900)
            if run.returncode != 0:
                raise SystemExit(f"CCTools' side failed: {run.stderr[-2000:]}")
            c_result = json.loads(run.stdout.strip().splitlines()[-1])
        py_result = coffea_wq_side(port, tasks, py_dir, count)
    finally:
        stop(workers)
        os.chdir(os.path.dirname(root))
        shutil.rmtree(root, ignore_errors=True)
    return c_result, py_result


def report_many_workers(count: int, tasks: int, c_result: dict | None, py_result: dict) -> bool:
    """CPU per task against CCTools' (target <= 1/3), and the submit time with many workers connected."""
    ours = 1000 * py_result["cpu_seconds"] / max(1, py_result["tasks"])
    ok = py_result["failed"] == 0 and py_result["tasks"] == tasks
    print(f"{count} real workers x 1 core, {tasks} tasks of /bin/true with one cached input:")
    print(f"  coffea-wq manager : {py_result['tasks_per_second']:7.1f} tasks/s, CPU {ours:.3f} ms per task, "
          f"{tasks} submits in {py_result['submit_seconds']:.2f} s ({py_result['failed']} failed)")
    if c_result:
        theirs = 1000 * c_result["cpu_seconds"] / max(1, c_result["tasks"])
        ratio = ours / theirs if theirs else float("inf")
        print(f"  CCTools C manager : {c_result['tasks_per_second']:7.1f} tasks/s, CPU {theirs:.3f} ms per task, "
              f"{tasks} submits in {c_result['submit_seconds']:.2f} s")
        print(f"  CPU per task coffea-wq / C: {ratio:.2f}x (target <= {TARGET_CPU_RATIO:.2f}x) "
              f"{'OK' if ratio <= TARGET_CPU_RATIO else 'ABOVE TARGET'}; throughput "
              f"{py_result['tasks_per_second'] / c_result['tasks_per_second']:.2f}x")
        ok = ok and ratio <= TARGET_CPU_RATIO
    if count >= SUBMIT_WORKERS:
        per_6000 = py_result["submit_seconds"] * SUBMIT_TASKS / tasks
        print(f"  {SUBMIT_TASKS} submits with {count} workers connected: {per_6000:.2f} s "
              f"(target <= {TARGET_SUBMIT_S} s) {'OK' if per_6000 <= TARGET_SUBMIT_S else 'ABOVE TARGET'}")
        ok = ok and per_6000 <= TARGET_SUBMIT_S
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--queued", type=int, default=100_000)
    parser.add_argument("--workers", help="e.g. 64,200: that many 1-core real workers each, "
                                          f"{TASKS_PER_WORKER} tasks per worker, CPU per task against C")
    parser.add_argument("--cctools-run", nargs="+", metavar="PORT COUNT WORKDIR [WORKERS]", help=argparse.SUPPRESS)
    parser.add_argument("--rss-run", type=int, metavar="COUNT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cctools_run:
        port, count, workdir, *rest = args.cctools_run
        cctools_side(int(port), int(count), workdir, int(rest[0]) if rest else 2)
        return 0
    if args.rss_run:
        queued_rss(args.rss_run)
        return 0

    if args.workers:
        ok = True
        for count in (int(n) for n in args.workers.split(",") if n.strip()):
            tasks = TASKS_PER_WORKER * count
            ok = report_many_workers(count, tasks, *compare(count, 1, tasks)) and ok
        return 0 if ok else 1

    c_result, py_result = compare(2, 2, args.tasks)
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
    if args.queued <= 0:
        return 0 if ok else 1
    rss = subprocess.run([sys.executable, os.path.abspath(__file__), "--rss-run", str(args.queued)],
                         capture_output=True, text=True, timeout=900)
    rss_result = json.loads(rss.stdout.strip().splitlines()[-1]) if rss.returncode == 0 else None
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
