"""Automatic resource labeling vs whole-worker tasks: makespan of a bimodal workload on a 1 GB worker.

The workload: 48 tasks that each hold memory for 2 s, most ~100 MB and every twelfth ~600 MB, on one
coffea-wq worker with 4 cores, 1000 MB of memory and 1000 MB of disk. The tasks declare nothing; every
sizing decision is the coffea-wq manager's own, driven only through its public API:

* whole-worker: ``specify_category_mode(..., FIXED)``: undeclared tasks take the whole worker and run one
  at a time (monitoring in measure mode, only to record when each task ran);
* auto: ``specify_category_mode(..., MAX_THROUGHPUT)`` with ``enable_monitoring(watchdog=True)`` and
  ``tune("category-steady-n-tasks", 3)`` (coffea's value): the first tasks run whole while their peaks
  are measured, then the category's learned first allocation packs several per worker; a large task
  exhausts it, is killed by the watchdog and retried by the manager at the maximum (the whole worker).

Prints both makespans, the most tasks seen running at once, the manager's exhausted attempts, and the
ratio auto / whole-worker (target <= 0.5). Run: ``python benchmarks/bench_resources.py``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import coffea_wq.work_queue as wq

TASKS = 48
LARGE_EVERY = 12
SMALL_MB, LARGE_MB = 100, 600
HOLD_S = 2.0
STEADY_N_TASKS = 3
TARGET_RATIO = 0.5
CATEGORY = "processing"
TIMEOUT_S = 300


@dataclass
class RunResult:
    makespan_s: float
    most_at_once: int
    exhausted_attempts: int


def workload() -> list[int]:
    """Memory (MB) each task holds: most small, every twelfth large."""
    return [LARGE_MB if i % LARGE_EVERY == LARGE_EVERY - 1 else SMALL_MB for i in range(TASKS)]


def start_worker(port: int, workdir: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "coffea_wq", "worker", "--cores", "4", "--memory", "1000", "--disk", "1000",
         "-s", str(workdir), "-t", "120", "127.0.0.1", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


def run(auto: bool, workdir: Path) -> RunResult:
    """One mode from an empty queue to the last result, on a fresh manager and worker."""
    with wq.WorkQueue(port=0, host="127.0.0.1") as q:
        q.enable_monitoring(watchdog=auto)
        q.tune("category-steady-n-tasks", STEADY_N_TASKS)
        mode = wq.WORK_QUEUE_ALLOCATION_MODE_MAX_THROUGHPUT if auto else wq.WORK_QUEUE_ALLOCATION_MODE_FIXED
        q.specify_category_mode(CATEGORY, mode)
        worker = start_worker(q.port, workdir)
        try:
            if not q.wait_for_workers(1, 60):
                raise RuntimeError("the worker did not connect in 60 s")
            return submit_and_wait(q)
        finally:
            worker.terminate()
            worker.wait(timeout=30)


def submit_and_wait(q: wq.WorkQueue) -> RunResult:
    start = time.monotonic()
    for index, megabytes in enumerate(workload()):
        t = wq.Task(f"python3 -c 'import time; b = bytearray({megabytes} * 2**20); time.sleep({HOLD_S})'")
        t.specify_category(CATEGORY)
        t.specify_tag(str(index))
        q.submit(t)
    intervals: list[tuple[float, float]] = []
    exhausted = 0
    while not q.empty():
        t = q.wait(5)
        if time.monotonic() - start > TIMEOUT_S:
            raise RuntimeError(f"the workload did not finish in {TIMEOUT_S} s")
        if t is None:
            continue
        if t.result != wq.WORK_QUEUE_RESULT_SUCCESS or t.return_status != 0:
            raise RuntimeError(f"task {t.tag} failed: {t.result_str} {t.exhaustion_message} {t.output}")
        intervals.append((t.resources_measured.start, t.resources_measured.end))
        exhausted += t.exhausted_attempts
    return RunResult(time.monotonic() - start, most_at_once(intervals), exhausted)


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def main() -> int:
    results: dict[str, RunResult] = {}
    with tempfile.TemporaryDirectory(prefix="bench-resources-") as tmp:
        for label, auto in (("whole-worker", False), ("auto (max-throughput)", True)):
            workdir = Path(tmp) / ("auto" if auto else "whole")
            workdir.mkdir()
            results[label] = r = run(auto, workdir)
            print(f"{label:>24}: makespan {r.makespan_s:6.1f} s, at most {r.most_at_once} at once, "
                  f"{r.exhausted_attempts} exhausted attempts retried at the maximum", flush=True)
    ratio = results["auto (max-throughput)"].makespan_s / results["whole-worker"].makespan_s
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    print(f"makespan ratio auto / whole-worker = {ratio:.2f} ({verdict} the target <= {TARGET_RATIO})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
