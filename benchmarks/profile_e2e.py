"""CPU time per chunk of the example analysis, by process: the user's, the workers', their zygotes' and slots'.

Usage:

    python benchmarks/profile_e2e.py [--executor coffea-wq|iterative] [--chunksize 20] [--maxchunks 25]
                                     [--workers 2] [--fresh-workers]

Wall time on a shared machine says more about the other users than about coffea-wq; CPU time
per chunk, split by process, says where a task's cost goes (docs/executor.md, "Where the time
goes"). A thread of this process reads ``/proc`` every 0.2 s and keeps, for every process below
this one, its largest CPU time (user + system), classed by depth: the local workers, their warm
Python zygotes, and the zygotes' slots (which run the tasks). A slot that exits between two
reads loses at most 0.2 s. This process's own figure is ``getrusage`` less the reading thread's.
Linux only. Runs over the generated sample (``make data``).
"""

from __future__ import annotations

import argparse
import collections
import os
import resource
import sys
import threading
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
warnings.filterwarnings("ignore", category=RuntimeWarning)  # NanoAOD cross-reference chatter

from coffea import processor  # noqa: E402
from coffea.nanoevents import NanoAODSchema  # noqa: E402

import coffea_wq  # noqa: E402
from analysis_examples.topeft.cfg import fileset_from_samples, read_cfg  # noqa: E402
from analysis_examples.topeft.processor import TopEFTLikeProcessor  # noqa: E402

KINDS = ("user", "worker", "zygote", "slot")
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def kind_at_depth(depth: int) -> str:
    """What a process ``depth`` generations below the user's process is (0: the user's own).

    Example:
        >>> [kind_at_depth(d) for d in range(5)]
        ['user', 'worker', 'zygote', 'slot', 'slot']
    """
    return KINDS[min(depth, len(KINDS) - 1)]


def descendants(root: int, parents: dict[int, int]) -> dict[int, int]:
    """pid -> generations below ``root``, for every process below it in ``parents`` (pid -> ppid).

    Example:
        >>> descendants(1, {2: 1, 3: 2, 4: 3, 5: 99})
        {2: 1, 3: 2, 4: 3}
    """
    depth: dict[int, int] = {root: 0}
    changed = True
    while changed:
        changed = False
        for pid, ppid in parents.items():
            if pid not in depth and ppid in depth:
                depth[pid] = depth[ppid] + 1
                changed = True
    del depth[root]
    return depth


def _proc_table() -> dict[int, tuple[int, float]]:
    """pid -> (ppid, CPU seconds) of every process now."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        table[int(name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK)
    return table


class CpuByProcess:
    """Reads /proc in a thread; ``per_kind()``: CPU seconds and process count of each kind below us."""

    def __init__(self, interval: float = 0.2):
        self.interval = interval
        self.seen: dict[int, tuple[str, float]] = {}
        self.reader_cpu = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            table = _proc_table()
            for pid, depth in descendants(os.getpid(), {p: v[0] for p, v in table.items()}).items():
                _kind, old = self.seen.get(pid, ("", 0.0))
                self.seen[pid] = (kind_at_depth(depth), max(old, table[pid][1]))
            self.reader_cpu = time.thread_time()
            self._stop.wait(self.interval)

    def __enter__(self) -> CpuByProcess:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def per_kind(self) -> dict[str, tuple[float, int]]:
        cpu: dict[str, float] = collections.Counter()
        count: dict[str, int] = collections.Counter()
        for kind, seconds in self.seen.values():
            cpu[kind] += seconds
            count[kind] += 1
        return {kind: (cpu[kind], count[kind]) for kind in KINDS[1:] if count[kind]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executor", choices=("coffea-wq", "iterative"), default="coffea-wq")
    parser.add_argument("--chunksize", type=int, default=20)
    parser.add_argument("--maxchunks", type=int, default=25, help="per dataset; 0 for all")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fresh-workers", action="store_true",
                        help="start local workers as new processes (fork_local_workers=False), to compare")
    parser.add_argument("--data-dir", type=Path, default=REPO / "analysis_examples" / "data" / "generated")
    args = parser.parse_args()

    fileset = fileset_from_samples(read_cfg(args.data_dir / "samples.cfg"))
    maxchunks = args.maxchunks or None
    executor = (processor.IterativeExecutor(status=False) if args.executor == "iterative"
                else coffea_wq.WorkQueueExecutor(local_workers=args.workers, status=False, compression=1,
                                                 fork_local_workers=not args.fresh_workers))
    runner = processor.Runner(executor=executor, chunksize=args.chunksize, maxchunks=maxchunks,
                              schema=NanoAODSchema, metadata_cache={})
    with CpuByProcess() as meter:
        before = resource.getrusage(resource.RUSAGE_SELF)
        start = time.perf_counter()
        out = runner(fileset, TopEFTLikeProcessor(), treename="Events")
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_SELF)
    chunks = len(list(processor.Runner(executor=processor.IterativeExecutor(status=False), chunksize=args.chunksize,
                                       maxchunks=maxchunks, schema=NanoAODSchema,
                                       metadata_cache={}).preprocess(fileset, treename="Events")))
    own = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime - meter.reader_cpu
    rows = {"user": (own, 1), **meter.per_kind()}
    events = sum(out["nevents"].values())
    print(f"{args.executor}, chunksize {args.chunksize:,}: {chunks:,} chunks, {events:,} events, wall {wall:.2f} s, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'process':>8} {'count':>5} {'CPU s':>8} {'ms/chunk':>9}")
    for kind, (seconds, count) in rows.items():
        print(f"{kind:>8} {count:>5} {seconds:>8.2f} {1000 * seconds / chunks:>9.1f}")
    total = sum(seconds for seconds, _ in rows.values())
    print(f"{'total':>8} {'':>5} {total:>8.2f} {1000 * total / chunks:>9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
