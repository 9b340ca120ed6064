"""Automatic resource labeling vs whole-worker tasks: makespan of a bimodal workload on a 1 GB worker.

The workload: 48 tasks that each hold memory for 2 s, most ~100 MB and every twelfth ~600 MB, on one
coffea-wq worker with 4 cores, 1000 MB of memory and 1000 MB of disk. Every task runs under the
shipped monitor (``cctools-monitor``), exactly as the manager's monitoring wraps it.

* whole-worker: tasks declare nothing, so each takes the whole worker and they run one at a time;
* auto (max-throughput, coffea's 3 tasks to steady state): the first tasks run whole while their
  peaks are measured; then tasks get the computed first allocation (1 core, 250 MB, 250 MB disk),
  four at a time; a large task exhausts it, is killed by the watchdog and retried at the maximum
  (the whole worker).

The sizing decisions come from ``coffea_wq.resources`` (Category, task_box); the tasks run for real
through the coffea-wq manager. Prints both makespans and the ratio auto / whole-worker (target <= 0.5).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from coffea_wq.resources.allocation import AllocationMode, task_box
from coffea_wq.resources.categories import Category, RequestLabel
from coffea_wq.resources.monitor import Summary
from coffea_wq.resources.types import Resources
from coffea_wq.resources.wrapper import (
    MONITOR_REMOTE_NAME,
    MONITOR_SUMMARY_NAME,
    wrap_command,
    wrapper_script_path,
)
from coffea_wq.work_queue import Task, WorkQueue

WORKER = Resources(cores=4, memory=1000, disk=1000, gpus=0)
TASKS = 48
LARGE_EVERY = 12
HOLD_S = 2.0
TARGET_RATIO = 0.5


@dataclass
class Job:
    index: int
    megabytes: int
    label: RequestLabel = RequestLabel.FIRST
    attempts: int = 0


def workload() -> list[Job]:
    return [Job(i, 600 if i % LARGE_EVERY == LARGE_EVERY - 1 else 100) for i in range(TASKS)]


def make_task(job: Job, box: Resources | None, watchdog: bool, workdir: Path) -> tuple[Task, Path]:
    command = f"python3 -c 'import time; b = bytearray({job.megabytes} * 2**20); time.sleep({HOLD_S})'"
    limits = box or Resources()
    task = Task(wrap_command(command, limits, task_id=job.index, category="processing", watchdog=watchdog))
    if box is not None:
        task.specify_cores(box.cores)
        task.specify_memory(box.memory)
        task.specify_disk(box.disk)
    summary = workdir / f"task-{job.index}-{job.attempts}.summary"
    task.specify_input_file(str(wrapper_script_path(workdir)), MONITOR_REMOTE_NAME, cache=True)
    task.specify_output_file(str(summary), MONITOR_SUMMARY_NAME, cache=False)
    return task, summary


def allocation(category: Category, job: Job) -> Resources | None:
    """The box for the next attempt, or None for an undeclared (whole-worker) task."""
    if category.mode is AllocationMode.FIXED:
        return None
    maximum = category.task_max_resources(Resources(), job.label, WORKER)
    minimum = category.task_min_resources(Resources(), job.label, WORKER)
    return task_box(maximum, WORKER, mode=category.mode, minimum=minimum)


def run(mode: str, workdir: Path) -> tuple[float, int, int]:
    """Makespan (s), most tasks seen running at once, and retries, for one mode."""
    category = Category("processing", mode=AllocationMode.parse(mode), steady_n_tasks=3)
    watchdog = category.mode is not AllocationMode.FIXED
    with WorkQueue(port=0, host="127.0.0.1") as q:
        worker = subprocess.Popen(
            [sys.executable, "-m", "coffea_wq", "worker", "--cores", "4", "--memory", "1000", "--disk", "1000",
             "-s", str(workdir), "-t", "120", "127.0.0.1", str(q.port)],
            start_new_session=True,
        )  # fmt: skip
        try:
            return drive(q, category, watchdog, workdir)
        finally:
            worker.terminate()
            worker.wait(timeout=30)


def drive(q: WorkQueue, category: Category, watchdog: bool, workdir: Path) -> tuple[float, int, int]:
    waiting = workload()
    running: dict[int, tuple[Job, Path]] = {}
    intervals: list[tuple[float, float]] = []
    retries = 0
    start = time.monotonic()
    while waiting or running:
        # Like the manager, size each task when it is dispatched, from the statistics so far.
        while waiting and len(running) < WORKER.cores:
            job = waiting.pop(0)
            task, summary = make_task(job, allocation(category, job), watchdog, workdir)
            running[q.submit(task)] = (job, summary)
        done = q.wait(5)
        if done is None:
            if time.monotonic() - start > 600:
                raise RuntimeError("the workload did not finish in 10 minutes")
            continue
        job, summary_path = running.pop(done.id)
        summary = Summary.read(summary_path)
        res = summary.resources
        intervals.append((res["start"], res["end"]))
        category.accumulate(summary.measured(), summary.exit_type, res["wall_time"], max_worker=WORKER,
                            limits_exceeded=summary.limits_exceeded)  # fmt: skip
        if summary.exhausted and watchdog:
            job.label = category.next_label(job.label, Resources(), summary.measured())
            if job.label is RequestLabel.ERROR:
                raise RuntimeError(f"task {job.index} failed: {summary.exhaustion_message()}")
            job.attempts += 1
            retries += 1
            waiting.insert(0, job)
        elif done.return_status != 0:
            raise RuntimeError(f"task {job.index} failed with status {done.return_status}: {done.output}")
    return time.monotonic() - start, most_at_once(intervals), retries


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-resources-") as tmp:
        results = {}
        for mode in ("fixed", "auto"):
            workdir = Path(tmp) / mode
            workdir.mkdir()
            results[mode] = run(mode, workdir)
            makespan, peak, retries = results[mode]
            label = "whole-worker" if mode == "fixed" else "auto (max-throughput)"
            print(f"{label:>24}: makespan {makespan:6.1f} s, at most {peak} at once, {retries} retries")
    ratio = results["auto"][0] / results["fixed"][0]
    verdict = "meets" if ratio <= TARGET_RATIO else "misses"
    print(f"makespan ratio auto / whole-worker = {ratio:.2f} ({verdict} the target <= {TARGET_RATIO})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
