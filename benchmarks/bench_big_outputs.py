"""Big outputs: every chunk returns one big histogram; coffea-wq vs Iterative, Futures, Dask and Parsl.

Usage (``make bench`` runs it with the defaults):

    python benchmarks/bench_big_outputs.py [--mb 8,64] [--chunks 48] [--workers 2]

``big_hist_processor.BigHistProcessor`` runs over the bundled sample (analysis_examples/data/sample)
cut into ``--chunks`` chunks; each chunk fills and returns one ``hist.Hist`` of ``--mb`` MiB (3
regular axes, ``Weight`` storage). Executors: IterativeExecutor, FuturesExecutor(workers=W),
DaskExecutor on a LocalCluster and ParslExecutor on a HighThroughputExecutor, W single-core
workers each (``peer_executors.py``: their clusters start before the timed call), and coffea-wq
with W local workers. Each run is a fresh Python process, so that its peak RSS is its own:
``peak RSS`` is that process's ``ru_maxrss`` (the user's process only: Futures' pool processes and
coffea-wq's local workers are its children and are not counted), and ``growth`` is the peak minus
the RSS just before the Runner was called, also given as a multiple of one result's size (what the
merge held at once; the final output itself is one result). Outputs are checked equal to
IterativeExecutor's, bin by bin. Prints wall time, the ratios coffea-wq / Futures, coffea-wq /
Iterative and the best of Futures, Dask and Parsl / coffea-wq, with the targets (printed, not
asserted; for 64 MiB): coffea-wq <= 0.5x Futures' wall time and <= 1.3x Iterative's, growth <= 3
results, and >= 1.5x as fast as the best of Futures, Dask and Parsl.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]  # big_hist_processor, analysis_examples
os.environ.setdefault("PYTHONWARNINGS", "ignore::RuntimeWarning")  # NanoAOD cross-reference chatter
warnings.filterwarnings("ignore", category=RuntimeWarning)

import numpy as np  # noqa: E402
import psutil  # noqa: E402
from big_hist_processor import BigHistProcessor, bins_per_axis, histogram_bytes  # noqa: E402
from coffea import processor  # noqa: E402
from coffea.nanoevents import NanoAODSchema  # noqa: E402
from peer_executors import PEERS, missing, peer_executor  # noqa: E402

import coffea_wq  # noqa: E402
from analysis_examples.topeft.cfg import fileset_from_samples, read_cfg  # noqa: E402

SAMPLE_CFG = REPO / "analysis_examples" / "data" / "sample" / "samples.cfg"
EXECUTORS = ("iterative", *PEERS, "coffea-wq")
TARGET_WALL_VS_FUTURES = 0.5
TARGET_WALL_VS_ITERATIVE = 1.3
TARGET_GROWTH_RESULTS = 3.0
TARGET_SPEED_VS_BEST_PEER = 1.5
RUN_TIMEOUT_S = 1800


@dataclass
class Measurement:
    """One executor's run, as its own process reports it (sizes in bytes)."""

    executor: str
    wall_s: float
    rss_before: int
    peak_rss: int
    chunks: int
    events: int

    @property
    def growth(self) -> int:
        return max(0, self.peak_rss - self.rss_before)


def fileset() -> dict:
    return fileset_from_samples(read_cfg(SAMPLE_CFG))


def chunksize_for(chunks: int) -> int:
    """The chunk size that cuts the bundled sample into about ``chunks`` chunks (coffea's rounding)."""
    total = sum(spec.n_events or 0 for spec in read_cfg(SAMPLE_CFG).values())
    return max(1, math.ceil(total / chunks))


def count_chunks(chunksize: int) -> int:
    runner = processor.Runner(executor=processor.IterativeExecutor(status=False), chunksize=chunksize,
                              schema=NanoAODSchema, metadata_cache={})
    return sum(1 for _ in runner.preprocess(fileset(), treename="Events"))


def run_child(name: str, megabytes: float, chunksize: int, workers: int, out_path: Path) -> Measurement:
    """One run in this (fresh) process; the output is pickled to ``out_path`` for the comparison."""
    if name == "iterative":
        return _timed_run(name, processor.IterativeExecutor(status=False), megabytes, chunksize, out_path)
    if name in PEERS:
        with peer_executor(name, workers) as executor:
            return _timed_run(name, executor, megabytes, chunksize, out_path)
    return _timed_run(name, coffea_wq.WorkQueueExecutor(local_workers=workers, status=False, compression=1),
                      megabytes, chunksize, out_path)


def _timed_run(name: str, executor: processor.executor.ExecutorBase, megabytes: float, chunksize: int,
               out_path: Path) -> Measurement:
    runner = processor.Runner(executor=executor, chunksize=chunksize, schema=NanoAODSchema, metadata_cache={})
    files, proc = fileset(), BigHistProcessor(megabytes)
    gc.collect()
    rss_before = psutil.Process().memory_info().rss
    start = time.perf_counter()
    out = runner(files, proc, treename="Events")
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    with open(out_path, "wb") as f:
        pickle.dump(out, f, protocol=pickle.HIGHEST_PROTOCOL)
    return Measurement(name, wall, rss_before, peak, out["chunks"], out["events"])


def run_in_fresh_process(name: str, megabytes: float, chunksize: int, workers: int, out_path: Path) -> Measurement:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name, "--mb", str(megabytes),
               "--chunksize", str(chunksize), "--workers", str(workers), "--out", str(out_path)]
    done = subprocess.run(command, cwd=REPO, stdout=subprocess.PIPE, text=True, timeout=RUN_TIMEOUT_S)
    if done.returncode != 0:
        raise RuntimeError(f"{name} at {megabytes} MiB per chunk exited with {done.returncode}")
    return Measurement(**json.loads(done.stdout.strip().splitlines()[-1]))


def output_difference(reference: dict, other: dict) -> str | None:
    """The first difference between two outputs of BigHistProcessor, in words, or None."""
    for key in ("chunks", "events"):
        if reference[key] != other[key]:
            return f"{key}: {reference[key]} != {other[key]}"
    a, b = reference["big"], other["big"]
    if a.axes != b.axes:
        return "the histograms' axes differ"
    for what in ("values", "variances"):
        left, right = getattr(a, what)(flow=True), getattr(b, what)(flow=True)
        unequal = np.argwhere(left != right)
        if len(unequal):
            index = tuple(int(i) for i in unequal[0])
            return f"{len(unequal)} bins' {what} differ, first at flow index {index}: {left[index]} != {right[index]}"
    return None


def check_against(reference_path: Path, path: Path) -> str | None:
    with open(reference_path, "rb") as f:
        reference = pickle.load(f)
    with open(path, "rb") as f:
        other = pickle.load(f)
    return output_difference(reference, other)


def mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB"


def measure_size(megabytes: float, chunks: int, workers: int, tmp: Path) -> tuple[dict[str, Measurement], list[str]]:
    chunksize = chunksize_for(chunks)
    result_bytes = histogram_bytes(bins_per_axis(megabytes))
    print(f"\n{megabytes:g} MiB per chunk: {bins_per_axis(megabytes)}^3 bins + flow = {result_bytes / 2**20:.1f} MiB "
          f"per result; chunksize {chunksize}, {count_chunks(chunksize)} chunks", flush=True)
    print(f"{'executor':>10} {'wall s':>7} {'RSS before':>11} {'peak RSS':>10} {'growth':>10} {'results':>7}",
          flush=True)
    runs: dict[str, Measurement] = {}
    failures = []
    for name in EXECUTORS:
        if missing(name):
            print(f"skipped {missing(name)}", flush=True)
            continue
        out_path = tmp / f"{name}-{megabytes:g}.pickle"
        m = runs[name] = run_in_fresh_process(name, megabytes, chunksize, workers, out_path)
        print(f"{name:>10} {m.wall_s:>7.2f} {mib(m.rss_before):>11} {mib(m.peak_rss):>10} {mib(m.growth):>10} "
              f"{m.growth / result_bytes:>6.1f}x", flush=True)
        if name != "iterative":  # the reference runs first
            found = check_against(tmp / f"iterative-{megabytes:g}.pickle", out_path)
            out_path.unlink()
            if found:
                failures.append(f"{name} at {megabytes:g} MiB per chunk differs from iterative: {found}")
    return runs, failures


def print_ratios(megabytes: float, runs: dict[str, Measurement]) -> None:
    wq = runs["coffea-wq"]
    vs_futures = wq.wall_s / runs["futures"].wall_s
    vs_iterative = wq.wall_s / runs["iterative"].wall_s
    growth = wq.growth / histogram_bytes(bins_per_axis(megabytes))

    def verdict(value: float, target: float) -> str:
        return f"target <= {target:g}: {'met' if value <= target else 'MISSED'}"

    best = min((p for p in PEERS if p in runs), key=lambda p: runs[p].wall_s)  # futures always runs
    speed = runs[best].wall_s / wq.wall_s
    print(f"  {megabytes:g} MiB: coffea-wq wall / Futures = {vs_futures:.2f}x "
          f"({verdict(vs_futures, TARGET_WALL_VS_FUTURES)}), coffea-wq wall / Iterative = {vs_iterative:.2f}x "
          f"({verdict(vs_iterative, TARGET_WALL_VS_ITERATIVE)}), coffea-wq RSS growth = {growth:.1f} results "
          f"({verdict(growth, TARGET_GROWTH_RESULTS)}), coffea-wq speed / best of Futures, Dask, Parsl ({best}) "
          f"= {speed:.2f}x (target >= {TARGET_SPEED_VS_BEST_PEER:g}: "
          f"{'met' if speed >= TARGET_SPEED_VS_BEST_PEER else 'MISSED'})", flush=True)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", default="8,64", help="MiB per chunk's histogram, comma-separated")
    parser.add_argument("--chunks", type=int, default=48, help="chunks to cut the bundled sample into")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--child", choices=EXECUTORS, help=argparse.SUPPRESS)  # one run, in its own process
    parser.add_argument("--chunksize", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.child:
        m = run_child(args.child, float(args.mb), args.chunksize, args.workers, args.out)
        print(json.dumps(asdict(m)), flush=True)
        return 0
    sizes = [float(mb) for mb in args.mb.split(",")]
    results, failures = {}, []
    with tempfile.TemporaryDirectory(prefix="bench-big-outputs-") as tmp:
        for megabytes in sizes:
            results[megabytes], found = measure_size(megabytes, args.chunks, args.workers, Path(tmp))
            failures += found
    print("\nratios (coffea-wq with "
          f"{args.workers} local workers vs FuturesExecutor(workers={args.workers}) and IterativeExecutor):",
          flush=True)
    for megabytes in sizes:
        print_ratios(megabytes, results[megabytes])
    for failure in failures:
        print(f"ERROR: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
