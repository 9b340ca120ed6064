"""End-to-end events/s of the example analysis: coffea-wq vs the compute limit and every executor a user could pick.

Usage (``make bench`` runs it with the defaults):

    python benchmarks/bench_e2e.py [--events 1000000] [--chunksizes 100000,10000,20] [--max-chunks 10002]
                                   [--workers 2] [--reps 1] [--executors iterative,coffea-wq]

The example's TopEFTLikeProcessor runs over the generated NanoAOD sample (``make data``; made
here when missing) with ``--workers`` single-core workers for each executor: IterativeExecutor
(one process), FuturesExecutor, DaskExecutor on a ``distributed.LocalCluster`` and
ParslExecutor on Parsl's HighThroughputExecutor (``peer_executors.py``; their clusters start
before the timed call), and coffea-wq with as many local workers, at each chunk size, all in
this one run. Every run starts with an empty metadata cache, so each pays its own
preprocessing. Outputs are checked equal to IterativeExecutor's.

The compute limit: the events/s the cores would reach doing nothing but the user's
``process()``, events / (sum of process() seconds / workers), the sum taken from the coffea-wq
run's breakdown (docs/executor.md, section 10; its reads apart); ``+reads`` is the same with the
uproot reads process() makes (NanoEvents read lazily) counted in. ``wq-nophases`` is coffea-wq
with the workers' phase clock off (``COFFEA_WQ_PHASES=0``): ``phases cost`` is how much slower
the run with it on is.

Events per chunk size: the whole sample, unless that makes more than ``--max-chunks`` chunks;
then coffea's ``maxchunks`` takes the first ``--max-chunks / datasets`` chunks of each dataset
(the default, 10,002 chunks of 20 events = ~200k events, is the case of >= 10,000
tiny chunks, where per-task overhead dominates). The chunks and events of each chunk size are
printed before its runs.

Prints events/s per executor, then per chunk size: the compute limit and coffea-wq / compute
limit, the older ``2 x Iter`` limit (``--workers`` x Iterative's events/s, which counts
Iterative's own per-chunk overhead) and coffea-wq / that, coffea-wq / the best of Futures, Dask
and Parsl, coffea-wq / Futures and / Iterative, and the phases' cost; ``wq+monitor`` is coffea-wq
with every task monitored (``resource_monitor="watchdog"``, as the topcoffea settings have it),
reported against Futures. Targets, printed and not asserted: coffea-wq >= 0.9x the compute limit
at 100k and 10k; >= 1.5x the best of Futures, Dask and Parsl at every chunk size; the phases
cost <= 1% of the run; and the older ones: >= 0.9x 2 x Iterative at 100k and 10k, >= 0.8x at
20; >= 1.0x Futures at 100k, >= 0.9x at 10k.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
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
from benchmarks.peer_executors import PEERS, missing, peer_executor  # noqa: E402

DATA_DIR = REPO / "analysis_examples" / "data" / "generated"
FUTURES_TARGETS = {100_000: 1.0, 10_000: 0.9}  # coffea-wq / FuturesExecutor
LIMIT_TARGETS = {100_000: 0.9, 10_000: 0.9, 20: 0.8}  # coffea-wq / (workers x Iterative)
COMPUTE_TARGETS = {100_000: 0.9, 10_000: 0.9}  # coffea-wq / compute limit
PEER_TARGET = 1.5  # coffea-wq / the best of Futures, Dask, Parsl, at every chunk size
PHASES_COST_TARGET = 0.01  # the breakdown's cost: at most 1% of a run's time
# iterative first: the reference
EXECUTORS = ("iterative", *PEERS, "coffea-wq", "wq-nophases", "wq+monitor")


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


@contextlib.contextmanager
def executor_for(name: str, workers: int):
    """The executor ``name`` with ``workers`` workers (a peer's cluster runs while it is used)."""
    if name == "iterative":
        yield processor.IterativeExecutor(status=False)
    elif name in PEERS:
        with peer_executor(name, workers) as executor:
            yield executor
    elif name == "wq+monitor":  # the topcoffea settings: every task measured, limits enforced
        yield coffea_wq.WorkQueueExecutor(local_workers=workers, status=False, compression=1,
                                          resource_monitor="watchdog")
    elif name == "wq-nophases":  # the workers' phase clock off: what the breakdown costs
        os.environ["COFFEA_WQ_PHASES"] = "0"  # local workers inherit it, their tasks too
        try:
            yield coffea_wq.WorkQueueExecutor(local_workers=workers, status=False, compression=1)
        finally:
            del os.environ["COFFEA_WQ_PHASES"]
    else:
        yield coffea_wq.WorkQueueExecutor(local_workers=workers, status=False, compression=1)


@dataclass
class Plan:
    """What one chunk size runs over: ``maxchunks`` (per dataset, None for all), and what that makes."""

    chunksize: int
    maxchunks: int | None
    chunks: int
    events: int


def chunks_of(fileset: dict, chunksize: int, maxchunks: int | None) -> tuple[int, int]:
    """(chunks, events) coffea cuts ``fileset`` into at ``chunksize``, from the files' metadata."""
    runner = processor.Runner(executor=processor.IterativeExecutor(status=False), chunksize=chunksize,
                              maxchunks=maxchunks, schema=NanoAODSchema, metadata_cache={})
    items = list(runner.preprocess(fileset, treename="Events"))
    return len(items), sum(item.entrystop - item.entrystart for item in items)


def plan_for(fileset: dict, chunksize: int, max_chunks: int) -> Plan:
    """The whole sample, or the first ``max_chunks`` chunks (split evenly over datasets) when it has more."""
    chunks, events = chunks_of(fileset, chunksize, None)
    if chunks <= max_chunks:
        return Plan(chunksize, None, chunks, events)
    per_dataset = math.ceil(max_chunks / len(fileset))
    return Plan(chunksize, per_dataset, *chunks_of(fileset, chunksize, per_dataset))


def run_once(name: str, fileset: dict, plan: Plan, workers: int) -> tuple[float, dict]:
    with executor_for(name, workers) as executor:
        runner = processor.Runner(executor=executor, chunksize=plan.chunksize, maxchunks=plan.maxchunks,
                                  schema=NanoAODSchema, metadata_cache={})
        start = time.perf_counter()
        out = runner(fileset, TopEFTLikeProcessor(), treename="Events")
        return time.perf_counter() - start, out


def print_breakdown() -> None:
    """Where the last coffea-wq call's time went: its advice and each phase's share of task time."""
    breakdown = coffea_wq.last_report("Processing").breakdown
    shares = ", ".join(f"{name} {share:.0%}" for name, share in
                       sorted(breakdown.shares().items(), key=lambda kv: -kv[1]) if share >= 0.005)
    print(f"{'':>10} where the time went: {breakdown.advice()} ({shares})", flush=True)


def process_seconds(with_reads: bool = False) -> float:
    """Seconds the last coffea-wq call's chunks spent in the user's process() (its breakdown), its
    uproot reads apart or (``with_reads``) included."""
    seconds = coffea_wq.last_report("Processing").breakdown.total.seconds
    return seconds.get("process", 0.0) + (seconds.get("read", 0.0) if with_reads else 0.0)


def measure(fileset: dict, plan: Plan, workers: int, reps: int, failures: list[str],
            executors: tuple[str, ...] = EXECUTORS) -> dict[str, float]:
    """Best events/s of each executor at one chunk size; differences from Iterative go to ``failures``.

    Repetitions take turns (every executor once, then again), so that a load that comes and goes
    on the machine weighs on each alike (the phases' cost is a comparison of two close figures).
    """
    print(f"chunksize {plan.chunksize:,}: {plan.chunks:,} chunks, {plan.events:,} events"
          + ("" if plan.maxchunks is None else f" (maxchunks={plan.maxchunks:,} per dataset)"), flush=True)
    rates: dict[str, float] = {}
    reference = None
    for name in [n for n in executors if missing(n)]:
        print(f"skipped {missing(name)}", flush=True)
    for rep in range(reps):
        for name in [n for n in executors if not missing(n)]:
            wall, out = run_once(name, fileset, plan, workers)
            events = sum(out["nevents"].values())
            if name == "coffea-wq" and events / wall > rates.get(name, 0.0) and process_seconds() > 0:
                rates["compute-limit"] = events / (process_seconds() / workers)
                rates["compute+read"] = events / (process_seconds(with_reads=True) / workers)
            rates[name] = max(rates.get(name, 0.0), events / wall)
            print(f"{name:>10} {plan.chunksize:>9} {rep:>3} {events:>9} {wall:>7.2f} {events / wall:>10,.0f}",
                  flush=True)
            if name == "coffea-wq":
                print_breakdown()
            if events != plan.events:
                failures.append(f"{name} at chunksize {plan.chunksize} processed {events} events, not {plan.events}")
            if reference is None:
                reference = out
                continue
            try:
                assert_outputs_equal(reference, out)
            except AssertionError as exc:
                failures.append(f"{name} at chunksize {plan.chunksize} differs from iterative: {exc}")
    return rates


def chosen_executors(spec: str) -> tuple[str, ...]:
    """The executors ``--executors`` names, in :data:`EXECUTORS` order, always with iterative and coffea-wq."""
    names = {name.strip() for name in spec.split(",") if name.strip()}
    unknown = names - set(EXECUTORS)
    if unknown:
        raise SystemExit(f"--executors: unknown {', '.join(sorted(unknown))} (known: {', '.join(EXECUTORS)})")
    names |= {"iterative", "coffea-wq"}
    return tuple(name for name in EXECUTORS if name in names)


def _against(value: float, target: float | None) -> str:
    """``value`` and, when there is one, its target and whether it is met, in two columns."""
    verdict = "" if target is None else f">= {target:.1f} {'met' if value >= target else 'MISSED'}"
    return f"{value:>9.2f}x {verdict:>13}"


def _ratio(rates: dict[str, float], top: str, bottom: str, target: float | None = None) -> str:
    """``top`` / ``bottom`` as :func:`_against` prints it, or a dash when either did not run."""
    if top not in rates or bottom not in rates:
        return f"{'-':>10} {'':>13}"
    return _against(rates[top] / rates[bottom], target)


def print_ratios(plans: list[Plan], rates: dict[int, dict[str, float]], workers: int) -> None:
    print(f"\nratios (best events/s; compute limit = events / (sum of process() s / {workers} workers); "
          f"2 x Iter = {workers} x Iterative at the same chunk size):", flush=True)
    print(f"{'chunksize':>9} {'chunks':>7} {'coffea-wq':>10} {'compute':>10} {'wq/compute':>10} {'target':>13} "
          f"{'+reads':>10} {'wq/+reads':>10} "
          f"{'2 x Iter':>10} {'wq/2xIter':>10} {'target':>13} {'best peer':>16} {'wq/best':>10} {'target':>13} "
          f"{'wq/Futures':>10} {'target':>13} {'wq/Iter':>10} {'phases cost':>11} {'target':>13} "
          f"{'monitor/Futures':>15}", flush=True)
    for plan in plans:
        r = rates[plan.chunksize]
        wq, limit = r["coffea-wq"], workers * r["iterative"]
        compute = _ratio(r, "coffea-wq", "compute-limit", COMPUTE_TARGETS.get(plan.chunksize))
        peers = [p for p in PEERS if p in r]
        best = max(peers, key=lambda p: r[p]) if peers else None
        best_text = f"{best} {r[best]:,.0f}" if best else "-"
        vs_best = _ratio(r, "coffea-wq", best, PEER_TARGET) if best else _ratio(r, "coffea-wq", "-")
        cost = (f"{r['wq-nophases'] / wq - 1:>10.1%} {_verdict(r['wq-nophases'] / wq - 1, PHASES_COST_TARGET)}"
                if "wq-nophases" in r else f"{'-':>11} {'':>13}")
        monitor = (f"{r['wq+monitor'] / r['futures']:>14.2f}x" if {"wq+monitor", "futures"} <= r.keys()
                   else f"{'-':>15}")
        with_reads = _ratio(r, "coffea-wq", "compute+read").rstrip()
        print(f"{plan.chunksize:>9,} {plan.chunks:>7,} {wq:>10,.0f} {r.get('compute-limit', 0):>10,.0f} {compute} "
              f"{r.get('compute+read', 0):>10,.0f} {with_reads} "
              f"{limit:>10,.0f} {_against(wq / limit, LIMIT_TARGETS.get(plan.chunksize))} {best_text:>16} "
              f"{vs_best} {_ratio(r, 'coffea-wq', 'futures', FUTURES_TARGETS.get(plan.chunksize))} "
              f"{wq / r['iterative']:>9.2f}x {cost} {monitor}", flush=True)


def _verdict(cost: float, target: float) -> str:
    return f"{'<= ' + format(target, '.0%'):>8} {'met' if cost <= target else 'MISSED':>4}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=int(os.environ.get("BENCH_EVENTS", 1_000_000)))
    parser.add_argument("--chunksizes", default="100000,10000,20")
    parser.add_argument("--max-chunks", type=int, default=10_002,
                        help="at most this many chunks per chunk size (split evenly over datasets)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--executors", default=",".join(EXECUTORS),
                        help="which executors to run, comma-separated; iterative and coffea-wq are always run "
                             "(the limit and the figure it is compared with)")
    args = parser.parse_args()
    executors = chosen_executors(args.executors)

    fileset = fileset_from_samples(read_cfg(ensure_data(args.events, args.data_dir)))
    plans = [plan_for(fileset, int(c), args.max_chunks) for c in args.chunksizes.split(",")]
    rates: dict[int, dict[str, float]] = {}
    failures: list[str] = []
    print(f"{'executor':>10} {'chunksize':>9} {'rep':>3} {'events':>9} {'wall s':>7} {'events/s':>10}", flush=True)
    for plan in plans:
        rates[plan.chunksize] = measure(fileset, plan, args.workers, args.reps, failures, executors)
    print_ratios(plans, rates, args.workers)
    for failure in failures:
        print(f"ERROR: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
