"""The manager at scale: thousands of simulated workers (benchmarks/swarm.py), then real workers against CCTools.

Part 1, for each worker count (default 1,000, 5,000 and 10,000), in a fresh process: coffea-wq's
manager on loopback and a swarm of simulated 1-core workers. The queue is kept full of 1-s tasks
(``sleep 1`` with one small cached input; the swarm's workers "run" them on a timer). After a
warm-up, over a window of ``--seconds``:

- sustained tasks/s (results returned by ``wait``),
- the manager process's CPU seconds per 1,000 tasks (its loop thread and the thread that submits
  and waits, together),
- its resident memory (RSS) at the end of the window,
- how long a ``queue_status`` query of its port takes to answer (the slowest of one a second;
  ``worker_status`` too, and Debian's ``work_queue_status`` binary once, for reference),
- workers dropped: connections the manager closed without releasing them (seen by the swarm) and
  workers the manager counts as lost.

Targets: >= 1,000 tasks/s (with 1,000 1-core workers and 1-s tasks the ceiling itself is 1,000/s, so
there the target is 90% of it), RSS <= 1.5 GB, status <= 0.5 s, 0 dropped.

Part 2 (``bench_dispatch.py --workers 64,200``): manager CPU per task with 64 and 200 real
``work_queue_worker`` processes, against CCTools' C manager in the same run, and the time to submit
6,000 tasks with 200 workers connected.

    python benchmarks/bench_manager_scale.py [--workers 1000,5000,10000] [--seconds 20] [--processes 4]
                                             [--real-workers 64,200] [--no-real]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

TARGET_TASKS_PER_S = 1000.0
TARGET_RSS_MB = 1536.0
TARGET_STATUS_S = 0.5
TASK_SECONDS = 1.0


def status_query(port: int, kind: str = "queue_status", timeout: float = 30.0) -> tuple[float, int]:
    """Seconds to get the whole answer to one status request, and its size in bytes."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(kind.encode() + b"\n")
        size = 0
        while chunk := sock.recv(1 << 16):
            size += len(chunk)
    return time.monotonic() - start, size


def rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class StatusProbe:
    """Another process (as a real ``work_queue_status`` is) that asks ``queue_status`` once a second
    until stopped; ``stop()`` returns the seconds each answer took."""

    def __init__(self, port: int) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--probe", str(port)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)

    def stop(self) -> tuple[list[float], int]:
        out, _ = self.proc.communicate("", timeout=120)
        found = json.loads(out.strip().splitlines()[-1])
        return found["times"], found["errors"]


def probe_main(port: int) -> None:
    times, errors = [], 0
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    while not stop.wait(1.0):
        try:
            times.append(status_query(port)[0])
        except OSError:
            errors += 1
    print(json.dumps({"times": times, "errors": errors}), flush=True)


def one_scale(workers: int, seconds: float, processes: int, warmup: float) -> dict:
    """Entry point in a fresh process: the manager with ``workers`` simulated workers."""
    from swarm import Swarm, SwarmConfig, raise_fd_limit

    import coffea_wq.work_queue as wq

    raise_fd_limit(workers + 2048)
    workdir = tempfile.mkdtemp(prefix="bench-scale-")
    os.chdir(workdir)
    Path("input.txt").write_text("small input\n")
    q = wq.WorkQueue(port=0, host="127.0.0.1")
    swarm = Swarm(SwarmConfig("127.0.0.1", q.port, workers=workers, processes=processes)).start()
    result: dict = {"workers": workers}
    try:
        start = time.monotonic()
        swarm.wait_connected(timeout=300)
        while q.stats.workers_connected < workers:
            if time.monotonic() - start > 300:
                raise SystemExit(f"the manager saw {q.stats.workers_connected} of {workers} workers after 300 s")
            time.sleep(0.1)
        result["connect_seconds"] = time.monotonic() - start
        result["rss_idle_mb"] = rss_mb()

        def submit_one() -> None:
            t = wq.Task(f"sleep {TASK_SECONDS:g}")
            t.specify_input_file("input.txt", "input.txt", cache=True)
            t.specify_cores(1)
            q.submit(t)

        keep_waiting = 2 * workers  # always more tasks than workers
        submitted = done = failed = 0
        probe = None
        begin = time.monotonic()
        window_start = begin + warmup
        window_end = window_start + seconds
        counted = 0
        cpu_at_start = None
        while time.monotonic() < window_end:
            while submitted - done < keep_waiting:
                submit_one()
                submitted += 1
            t = q.wait(0.05)
            while t is not None:
                done += 1
                failed += t.result != 0 or t.return_status != 0
                if cpu_at_start is not None:
                    counted += 1
                t = q.wait(0)
            if cpu_at_start is None and time.monotonic() >= window_start:
                cpu_at_start, window_start = cpu_seconds(), time.monotonic()
                probe = StatusProbe(q.port)
        window = time.monotonic() - window_start
        cpu = cpu_seconds() - (cpu_at_start or 0.0)
        times, errors = probe.stop() if probe is not None else ([], 0)
        result["rss_mb"] = rss_mb()
        result["tasks_per_second"] = counted / window
        result["cpu_s_per_1000"] = 1000 * cpu / counted if counted else float("nan")
        result["cpu_share"] = cpu / window
        result["failed"] = failed
        result["status_max_s"] = max(times, default=float("nan"))
        result["status_errors"] = errors
        result["worker_status_s"], result["worker_status_bytes"] = status_query(q.port, "worker_status")
        binary = shutil.which("work_queue_status")
        if binary:
            started = time.monotonic()
            run = subprocess.run([binary, "127.0.0.1", str(q.port)], capture_output=True, timeout=60)
            result["wq_status_binary_s"] = time.monotonic() - started if run.returncode == 0 else None
        stats = q.stats
        result["manager_workers_lost"] = stats.workers_lost
        result["manager_workers_connected"] = stats.workers_connected
        swarm_stats = swarm.stats()
        result["swarm_dropped"] = swarm_stats.dropped
        result["swarm_protocol_errors"] = swarm_stats.protocol_errors
    finally:
        swarm.stop()
        q.shutdown()
        os.chdir("/")
        shutil.rmtree(workdir, ignore_errors=True)
    return result


def report_scale(r: dict) -> bool:
    ceiling = r["workers"] / TASK_SECONDS
    target = min(TARGET_TASKS_PER_S, 0.9 * ceiling)
    dropped = r["swarm_dropped"] + r["manager_workers_lost"]
    checks = {
        "throughput": r["tasks_per_second"] >= target,
        "rss": r["rss_mb"] <= TARGET_RSS_MB,
        "status": r["status_max_s"] <= TARGET_STATUS_S,
        "dropped": dropped == 0 and r["failed"] == 0,
    }
    mark = {True: "OK", False: "MISSED"}
    print(f"{r['workers']:>6} simulated workers (connected in {r['connect_seconds']:.1f} s):")
    print(f"    sustained      {r['tasks_per_second']:8.0f} tasks/s of 1-s tasks (ceiling {ceiling:.0f}; "
          f"target >= {target:.0f})  {mark[checks['throughput']]}")
    print(f"    manager CPU    {r['cpu_s_per_1000']:8.2f} s per 1,000 tasks ({100 * r['cpu_share']:.0f}% of one core)")
    print(f"    RSS            {r['rss_mb']:8.0f} MB (idle with the workers: {r['rss_idle_mb']:.0f} MB; "
          f"target <= {TARGET_RSS_MB:.0f})  {mark[checks['rss']]}")
    binary = r.get("wq_status_binary_s")
    print(f"    queue_status   {r['status_max_s']:8.3f} s, slowest of one a second under load (target <= "
          f"{TARGET_STATUS_S}) {mark[checks['status']]}; worker_status {r['worker_status_s']:.3f} s "
          f"({r['worker_status_bytes'] / 1e6:.1f} MB)" + (f"; work_queue_status binary {binary:.2f} s" if binary else ""))
    print(f"    dropped        {dropped:8d} (swarm saw {r['swarm_dropped']}, manager lost {r['manager_workers_lost']}; "
          f"{r['failed']} tasks failed; target 0)  {mark[checks['dropped']]}")
    return all(checks.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1000,5000,10000")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--real-workers", default="64,200")
    parser.add_argument("--no-real", action="store_true", help="skip the real-worker comparison with CCTools")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--probe", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.probe:
        probe_main(args.probe)
        return 0
    if args.one:
        print(json.dumps(one_scale(args.one, args.seconds, args.processes, args.warmup)), flush=True)
        return 0

    ok = True
    print(f"manager at scale: simulated 1-core workers, 1-s tasks, {args.seconds:g} s window after "
          f"{args.warmup:g} s warm-up; swarm in {args.processes} processes on the same machine")
    for count in (int(n) for n in args.workers.split(",") if n.strip()):
        run = subprocess.run([sys.executable, __file__, "--one", str(count), "--seconds", str(args.seconds),
                              "--warmup", str(args.warmup), "--processes", str(args.processes)],
                             capture_output=True, text=True, timeout=1800)
        if run.returncode != 0:
            print(f"{count} workers: the run failed:\n{run.stderr[-3000:]}")
            ok = False
            continue
        ok = report_scale(json.loads(run.stdout.strip().splitlines()[-1])) and ok
    if not args.no_real:
        rc = subprocess.call([sys.executable, str(HERE / "bench_dispatch.py"), "--workers", args.real_workers,
                              "--queued", "0"])
        ok = ok and rc == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
