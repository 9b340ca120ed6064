"""End-to-end events/s of the example analysis: coffea-wq vs FuturesExecutor and IterativeExecutor.

Usage (``make bench`` runs it with the defaults):

    python benchmarks/bench_e2e.py [--events 1000000] [--chunksizes 100000,10000] [--workers 2] [--reps 1]

The example's TopEFTLikeProcessor runs over the generated NanoAOD sample (``make data``; made
here when missing) with ``--workers`` processes for FuturesExecutor and as many local workers
for coffea-wq, at each chunk size, all in this one run. Every run starts with an empty metadata
cache, so each pays its own preprocessing. Outputs are checked equal to IterativeExecutor's.
Prints events/s per executor and the ratios coffea-wq / Futures and coffea-wq / Iterative;
``wq+monitor`` is coffea-wq with every task monitored (``resource_monitor="watchdog"``, as the
topcoffea settings have it), reported against Futures too.
Targets (issue 4): >= 1.0x Futures at 100k, >= 0.9x at 10k.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("PYTHONWARNINGS", "ignore::RuntimeWarning")  # NanoAOD cross-reference chatter
warnings.filterwarnings("ignore", category=RuntimeWarning)

from coffea import processor  # noqa: E402
from coffea.nanoevents import NanoAODSchema  # noqa: E402

import coffea_wq  # noqa: E402
from analysis_examples.topeft.cfg import fileset_from_samples, read_cfg  # noqa: E402
from analysis_examples.topeft.compare import assert_outputs_equal  # noqa: E402
from analysis_examples.topeft.processor import TopEFTLikeProcessor  # noqa: E402

DATA_DIR = REPO / "analysis_examples" / "data" / "generated"
TARGETS = {100_000: 1.0, 10_000: 0.9}


def ensure_data(events: int, data_dir: Path) -> Path:
    """The generated sample's cfg, generating ``events`` events first when it is missing or smaller."""
    cfg = data_dir / "samples.cfg"
    if cfg.exists() and _total_events(cfg) >= events:
        return cfg
    print(f"generating {events:,} events into {data_dir} ...", flush=True)
    subprocess.run([sys.executable, "-m", "analysis_examples.data.generate", "--events", str(events),
                    "--out", str(data_dir)], cwd=REPO, check=True)
    return cfg


def _total_events(cfg: Path) -> int:
    return sum(spec.n_events or 0 for spec in read_cfg(cfg).values())


def make_executor(name: str, workers: int) -> processor.executor.ExecutorBase:
    if name == "iterative":
        return processor.IterativeExecutor(status=False)
    if name == "futures":
        return processor.FuturesExecutor(workers=workers, status=False)
    if name == "wq+monitor":  # the topcoffea settings: every task measured, limits enforced
        return coffea_wq.WorkQueueExecutor(local_workers=workers, status=False, compression=1,
                                           resource_monitor="watchdog")
    return coffea_wq.WorkQueueExecutor(local_workers=workers, status=False, compression=1)


def run_once(name: str, fileset: dict, chunksize: int, workers: int) -> tuple[float, dict]:
    runner = processor.Runner(executor=make_executor(name, workers), chunksize=chunksize, schema=NanoAODSchema,
                              metadata_cache={})
    start = time.perf_counter()
    out = runner(fileset, TopEFTLikeProcessor(), treename="Events")
    return time.perf_counter() - start, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", 1_000_000)))
    parser.add_argument("--chunksizes", default="100000,10000")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    args = parser.parse_args()

    fileset = fileset_from_samples(read_cfg(ensure_data(args.events, args.data_dir)))
    executors = ["iterative", "futures", "coffea-wq", "wq+monitor"]
    rates: dict[tuple[str, int], float] = {}
    failures = []
    print(f"{'executor':>10} {'chunksize':>9} {'rep':>3} {'events':>9} {'wall s':>7} {'events/s':>10}", flush=True)
    for chunksize in (int(c) for c in args.chunksizes.split(",")):
        reference = None
        for name in executors:
            best = 0.0
            for rep in range(args.reps):
                wall, out = run_once(name, fileset, chunksize, args.workers)
                events = sum(out["nevents"].values())
                best = max(best, events / wall)
                print(f"{name:>10} {chunksize:>9} {rep:>3} {events:>9} {wall:>7.2f} {events / wall:>10,.0f}", flush=True)
                if reference is None:
                    reference = out
                else:
                    try:
                        assert_outputs_equal(reference, out)
                    except AssertionError as exc:
                        failures.append(f"{name} at chunksize {chunksize} differs from iterative: {exc}")
            rates[(name, chunksize)] = best
    print("\nratios (best events/s):", flush=True)
    for chunksize in (int(c) for c in args.chunksizes.split(",")):
        wq = rates[("coffea-wq", chunksize)]
        vs_futures = wq / rates[("futures", chunksize)]
        vs_iterative = wq / rates[("iterative", chunksize)]
        target = TARGETS.get(chunksize)
        verdict = "" if target is None else f"  (target >= {target:.1f}x: {'met' if vs_futures >= target else 'MISSED'})"
        monitored = rates[("wq+monitor", chunksize)] / rates[("futures", chunksize)]
        print(f"  chunksize {chunksize:>7}: coffea-wq / Futures = {vs_futures:.2f}x, "
              f"coffea-wq / Iterative = {vs_iterative:.2f}x{verdict}; "
              f"with resource_monitor='watchdog': {monitored:.2f}x Futures", flush=True)
    for failure in failures:
        print(f"ERROR: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
