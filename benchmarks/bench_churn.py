"""Churn: the example analysis on real workers that are SIGKILLed and replaced while they compute.

Usage (``make bench`` runs it with the defaults):

    python benchmarks/bench_churn.py [--scenario heavy,light,pool] [--chunks N] [--workers N]
                                     [--kill-every LOW[-HIGH]] [--replace K] [--cap S] [--min-chunks N]
                                     [--seed N]

Each run starts ``coffea_wq.WorkQueueExecutor(port=P, local_workers=0)`` in a fresh Python
process, serving a pool of real ``coffea-wq worker`` processes (one core each, each leading its own
process group) that this script starts on 127.0.0.1 (``benchmarks/churn.py``). Once the
processing call begins, a thread SIGKILLs ``--replace`` random workers' process groups (with their
zygotes and warm slots, as a batch system's job kill would) every ``--kill-every`` seconds (uniform
between LOW and HIGH) and starts a fresh worker in each place (with ``--min-chunks N``, only
workers that have started N chunks are killed: on a loaded machine, workers that die before
their start-up is over make no run progress, with or without reduction). The processor is the example's
TopEFTLikeProcessor over the bundled sample (analysis_examples/data/sample, 15,000 events) cut
into ``--chunks`` chunks, wrapped so that every chunk execution appends a line to a file: the
executions are counted by the processor itself, killed ones included. Scenarios (defaults):

* heavy: 300 chunks, 4 workers, a kill every 0.5-1 s; run with reduction on (the default option)
  and with ``reduction=False``. Targets: reduction on finishes, equal to Iterative, wall time
  <= 1.5x reduction off's.
* light: 600 chunks, 8 workers, one replaced every 2.5 s. Target: executions <= 1.25x chunks.
* pool: 2,000 chunks (2,001: coffea's ``maxchunks`` per dataset), 16 workers, a third of them
  replaced every 60 s. Targets: executions <= 1.1x chunks; no 30-s interval in which chunks were
  left and a worker was idle (the manager's ``workers_idle``, read once a second during the
  processing call).

Each run has a wall-clock cap (``--cap``, default per scenario): past it the run is stopped softly
(a SIGINT, the executor's first Ctrl-C), the line says "did not finish in N s", and every process
is stopped. Prints per run: wall time, kills, the median lifetime of a killed worker, executions
and executions / chunks, chunks left unprocessed, equal to Iterative (yes/no, compared bin by
bin), the longest idle interval; then each scenario's ratios against its targets (printed, not
asserted). Exit status 1 only when a finished run's output differs from Iterative's.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path[:0] = [str(HERE), str(REPO)]  # churn, bench_e2e, analysis_examples
os.environ.setdefault("PYTHONWARNINGS", "ignore::RuntimeWarning")  # NanoAOD cross-reference chatter
warnings.filterwarnings("ignore", category=RuntimeWarning)

import churn  # noqa: E402
from bench_e2e import Plan, chunks_of, plan_for  # noqa: E402
from coffea import processor  # noqa: E402
from coffea.nanoevents import NanoAODSchema  # noqa: E402

from analysis_examples.topeft.cfg import fileset_from_samples, read_cfg  # noqa: E402
from analysis_examples.topeft.compare import assert_outputs_equal  # noqa: E402
from analysis_examples.topeft.processor import TopEFTLikeProcessor  # noqa: E402

SAMPLE_CFG = REPO / "analysis_examples" / "data" / "sample" / "samples.cfg"
IDLE_TARGET_S = 30.0
STOP_GRACE_S = 30.0  # after the soft stop, before the abort
BACKSTOP_S = 120.0  # after the abort, before the run's process is killed


@dataclass(frozen=True)
class Scenario:
    """One churn setting, the reduction settings it runs, and its targets (None: not a target of it)."""

    name: str
    chunks: int
    workers: int
    kill_every: tuple[float, float]
    replace: int
    cap_s: float
    reductions: tuple[bool, ...] = (True,)
    max_executions_ratio: float | None = None
    max_time_ratio: float | None = None
    idle_target: bool = False
    replace_a_third: bool = False  # with --workers, ``replace`` follows the pool's size


SCENARIOS = {
    "heavy": Scenario("heavy", 300, 4, (0.5, 1.0), 1, 300.0, (True, False), max_time_ratio=1.5),
    "light": Scenario("light", 600, 8, (2.5, 2.5), 1, 600.0, max_executions_ratio=1.25),
    "pool": Scenario("pool", 2000, 16, (60.0, 60.0), 5, 1800.0, max_executions_ratio=1.1, idle_target=True,
                     replace_a_third=True),
}


@dataclass
class RunResult:
    """One run (one scenario, one reduction setting), as the run's process and this one saw it."""

    scenario: str
    reduction: bool
    chunks: int
    wall_s: float = 0.0
    finished: bool = False
    aborted: bool = False
    unprocessed: int = 0
    accumulated: int = 0
    partials_lost: int = 0
    kills: int = 0
    median_lifetime_s: float = 0.0
    executions: int = 0
    equal: bool | None = None
    difference: str = ""
    idle_s: float = 0.0
    idle_waiting_s: float = 0.0
    samples: list[dict] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.executions / self.chunks if self.chunks else 0.0


# ------------------------------------------------------------------------------------- the run's process
def run_child(config: dict) -> dict:
    """One executor run in this (fresh) process; writes markers, the output and the report to ``workdir``."""
    import cloudpickle

    import coffea_wq
    from coffea_wq.executor import RunInterrupted, last_report

    cloudpickle.register_pickle_by_value(churn)  # the counting wrapper travels with the processor
    workdir = Path(config["workdir"])
    proc = churn.CountingProcessor(TopEFTLikeProcessor(), workdir / "executions.log")
    calls: list = []
    samplers: list[churn.StatusSampler] = []

    def on_call(queue) -> None:  # before each call submits: preprocessing, then processing
        calls.append(queue)
        (workdir / ("manager" if len(calls) == 1 else "processing")).touch()
        if len(calls) == 2:
            samplers.append(churn.StatusSampler(lambda: queue.stats))
            samplers[0].start()

    executor = coffea_wq.WorkQueueExecutor(port=config["port"], manager_host=churn.LOOPBACK, local_workers=0,
                                           status=False, reduction=config["reduction"], custom_init=on_call)
    runner = processor.Runner(executor=executor, chunksize=config["chunksize"], maxchunks=config["maxchunks"],
                              schema=NanoAODSchema, metadata_cache={})
    out, aborted = None, False
    start = time.perf_counter()
    with churn.StopAfter(config["cap_s"], grace=STOP_GRACE_S) as stop:
        try:
            out = runner(fileset(), proc, treename="Events")
        except KeyboardInterrupt:
            aborted = True
        except RunInterrupted:  # stopped with nothing accumulated: the executor raises it
            pass
    wall = time.perf_counter() - start
    for sampler in samplers:
        sampler.stop()
    report = last_report("Processing")
    unprocessed = len(report.unprocessed) if report is not None else config["chunks"]
    if out is not None:
        with open(workdir / "out.pickle", "wb") as f:
            pickle.dump(out, f, protocol=pickle.HIGHEST_PROTOCOL)
    return {"wall_s": wall, "aborted": aborted, "stopped": stop.fired > 0, "unprocessed": unprocessed,
            "accumulated": len(report.accumulated) if report is not None else 0,
            "partials_lost": report.partials_lost if report is not None else 0,
            "samples": [asdict(s) for s in (samplers[0].samples if samplers else [])]}


# ------------------------------------------------------------------------------------- this process
def fileset() -> dict:
    return fileset_from_samples(read_cfg(SAMPLE_CFG))


def plan_chunks(chunks: int) -> Plan:
    """At least ``chunks`` chunks of the bundled sample: the largest chunk size that makes as many (coffea
    rounds each file's chunks), and past ``chunks`` the first ones of each dataset (``bench_e2e.plan_for``)."""
    total = sum(spec.n_events or 0 for spec in read_cfg(SAMPLE_CFG).values())
    chunksize = max(1, total // chunks)
    while chunksize > 1 and chunks_of(fileset(), chunksize, None)[0] < chunks:
        chunksize -= 1
    return plan_for(fileset(), chunksize, chunks)


def iterative_output(plan: Plan) -> dict:
    runner = processor.Runner(executor=processor.IterativeExecutor(status=False), chunksize=plan.chunksize,
                              maxchunks=plan.maxchunks, schema=NanoAODSchema, metadata_cache={})
    return runner(fileset(), TopEFTLikeProcessor(), treename="Events")


def worker_environment() -> dict[str, str]:
    """Tasks run ``python3``: this interpreter, with this checkout's packages first (as local workers get)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([os.path.dirname(sys.executable), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HERE)])
    return env


def _wait_for(path: Path, child: subprocess.Popen, deadline: float) -> bool:
    while not path.exists():
        if child.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _end_child(child: subprocess.Popen, timeout: float) -> None:
    """Wait ``timeout`` s for the run's process, then kill its process group."""
    try:
        child.wait(timeout=max(0.1, timeout))
    except subprocess.TimeoutExpired:
        print(f"  the run's process did not exit {timeout:.0f} s after its cap: killed", flush=True)
        os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)


def run_scenario_once(scenario: Scenario, plan: Plan, reduction: bool, seed: int, tmp: Path,
                      min_chunks: int = 0) -> RunResult:
    """One run: the executor in a fresh process, the churning pool here; everything stopped at the end."""
    workdir = tmp / f"{scenario.name}-{'on' if reduction else 'off'}"
    workdir.mkdir()
    port = _free_port()
    config = {"port": port, "reduction": reduction, "chunksize": plan.chunksize, "maxchunks": plan.maxchunks,
              "chunks": plan.chunks, "cap_s": scenario.cap_s, "workdir": str(workdir)}
    child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(config)],
                             cwd=REPO, stdout=subprocess.PIPE, text=True, start_new_session=True)
    result = RunResult(scenario.name, reduction, plan.chunks)
    deadline = time.monotonic() + scenario.cap_s + STOP_GRACE_S + BACKSTOP_S
    pool = churn.ChurnPool(port, ["coffea-wq"] * scenario.workers, workdir / "workers", env=worker_environment(),
                           seed=seed, executions_log=workdir / "executions.log")
    try:
        if _wait_for(workdir / "manager", child, deadline):
            pool.start()
            if _wait_for(workdir / "processing", child, deadline):
                pool.start_churning(churn.ChurnSchedule(scenario.kill_every, scenario.replace, min_chunks))
        _end_child(child, deadline - time.monotonic())
    finally:
        pool.stop()
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(timeout=30)
    stdout = child.stdout.read() if child.stdout else ""
    result.kills = pool.kills
    result.median_lifetime_s = statistics.median(pool.lifetimes()) if pool.kills else 0.0
    result.executions = sum(churn.read_executions(workdir / "executions.log").values())
    lines = stdout.strip().splitlines()
    if child.returncode != 0 or not lines:
        result.wall_s, result.unprocessed, result.aborted = scenario.cap_s, plan.chunks, True  # killed or crashed
        return result
    reported = json.loads(lines[-1])
    result.wall_s, result.aborted = reported["wall_s"], reported["aborted"]
    result.unprocessed, result.accumulated = reported["unprocessed"], reported["accumulated"]
    result.partials_lost, result.samples = reported["partials_lost"], reported["samples"]
    result.finished = not reported["stopped"] and not result.aborted and result.unprocessed == 0
    samples = [churn.StatusSample(**s) for s in result.samples]
    result.idle_s = churn.longest_idle_interval(samples)
    result.idle_waiting_s = churn.longest_idle_interval(samples, waiting_only=True)
    return result


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((churn.LOOPBACK, 0))
        return s.getsockname()[1]


def check_output(result: RunResult, reference: dict, workdir: Path) -> None:
    if not result.finished:
        return
    with open(workdir / "out.pickle", "rb") as f:
        out = pickle.load(f)
    try:
        assert_outputs_equal(reference, out)
        result.equal = True
    except AssertionError as exc:
        result.equal, result.difference = False, str(exc)


HEADER = (f"{'scenario':>8} {'reduction':>9} {'chunks':>6} {'workers':>7} {'kills':>5} {'lifetime':>8} "
          f"{'wall s':>7} {'finished':>8} {'executions':>10} {'exec/chunk':>10} {'equal':>5} {'idle s':>6} "
          f"{'idle+waiting s':>14}")


def print_run(scenario: Scenario, r: RunResult) -> None:
    equal = {True: "yes", False: "NO", None: "-"}[r.equal]
    print(f"{r.scenario:>8} {'on' if r.reduction else 'off':>9} {r.chunks:>6} {scenario.workers:>7} {r.kills:>5} "
          f"{r.median_lifetime_s:>7.1f}s {r.wall_s:>7.1f} {'yes' if r.finished else 'NO':>8} {r.executions:>10} "
          f"{r.ratio:>9.2f}x {equal:>5} {r.idle_s:>6.0f} {r.idle_waiting_s:>14.0f}", flush=True)
    if not r.finished:
        print(f"{'':>8} did not finish in {scenario.cap_s:.0f} s: {r.unprocessed} of {r.chunks} chunks left "
              f"unprocessed, {r.partials_lost} partials lost" + ("; aborted by the second SIGINT" if r.aborted else ""),
              flush=True)


def _verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def print_targets(scenario: Scenario, runs: dict[bool, RunResult]) -> None:
    on = runs.get(True)
    lines = []
    if on is not None:
        equal = "- (not finished)" if on.equal is None else f"{'yes' if on.equal else 'NO'} ({_verdict(on.equal)})"
        lines.append(f"reduction on finishes: {'yes' if on.finished else 'no'} ({_verdict(on.finished)}); "
                     f"equal to Iterative: {equal}")
    if scenario.max_time_ratio is not None and on is not None and False in runs:
        off = runs[False]
        ratio = on.wall_s / off.wall_s if off.wall_s else math.inf
        if on.finished and off.finished:
            shown = f"{ratio:.2f}x"
        elif on.finished:
            shown = f"< {ratio:.2f}x (reduction off did not finish)"
        elif off.finished:
            shown = f"> {ratio:.2f}x (reduction on did not finish)"
        else:
            shown = "n/a (neither finished)"
        lines.append(f"time(reduction on) / time(reduction off) = {shown} "
                     f"(target <= {scenario.max_time_ratio:g}x: {_verdict(on.finished and ratio <= scenario.max_time_ratio)})")
    if scenario.max_executions_ratio is not None and on is not None:
        ok = on.finished and on.ratio <= scenario.max_executions_ratio
        lines.append(f"executions / chunks = {on.ratio:.2f}x{'' if on.finished else ' (did not finish)'} "
                     f"(target <= {scenario.max_executions_ratio:g}x: {_verdict(ok)})")
    if scenario.idle_target and on is not None:
        lines.append(f"longest interval with chunks left and a worker idle = {on.idle_s:.0f} s "
                     f"(with tasks waiting too: {on.idle_waiting_s:.0f} s) (target < {IDLE_TARGET_S:.0f} s: "
                     f"{_verdict(on.idle_s < IDLE_TARGET_S)})")
    for line in lines:
        print(f"  {scenario.name}: {line}", flush=True)


def parse_interval(text: str) -> tuple[float, float]:
    """``"0.5-1"`` -> (0.5, 1.0); ``"2.5"`` -> (2.5, 2.5)."""
    low, _, high = text.partition("-")
    try:
        bounds = (float(low), float(high or low))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--kill-every: expected LOW or LOW-HIGH seconds, not {text!r}") from None
    if not 0 < bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"--kill-every: expected 0 < LOW <= HIGH, not {text!r}")
    return bounds


def chosen_scenarios(args: argparse.Namespace) -> list[Scenario]:
    names = [n.strip() for n in args.scenario.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise SystemExit(f"--scenario: unknown {', '.join(unknown)} (known: {', '.join(SCENARIOS)})")
    chosen = []
    for name in names:
        s = SCENARIOS[name]
        workers = args.workers or s.workers
        batch = args.replace or (max(1, round(workers / 3)) if s.replace_a_third else s.replace)
        chosen.append(replace(s, chunks=args.chunks or s.chunks, workers=workers,
                              kill_every=args.kill_every or s.kill_every, replace=min(batch, workers),
                              cap_s=args.cap or s.cap_s))
    return chosen


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="heavy,light,pool", help="comma-separated: heavy, light, pool")
    parser.add_argument("--chunks", type=int, help="chunks to cut the bundled sample into (every scenario)")
    parser.add_argument("--workers", type=int, help="workers in the pool (every scenario)")
    parser.add_argument("--kill-every", type=parse_interval, help="seconds between kills: LOW or LOW-HIGH")
    parser.add_argument("--replace", type=int, help="workers replaced at each kill (pool: a third by default)")
    parser.add_argument("--cap", type=float, help="wall-clock cap of each run, in seconds")
    parser.add_argument("--min-chunks", type=int, default=0,
                        help="kill only workers that have started this many chunks (2: finished one; default 0: "
                             "any worker, as in production; >0 keeps a run progressing on a loaded machine)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the choice of victims and intervals")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # one run, in its own process (JSON config)
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.child:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # a background shell ignores it
        print(json.dumps(run_child(json.loads(args.child))), flush=True)
        return 0
    failures: list[str] = []
    print(f"kills hit {'any worker' if not args.min_chunks else f'only workers that started {args.min_chunks} chunks'}; "
          f"lifetime: median of the killed workers'; idle s: longest interval with chunks left and a worker idle "
          f"(idle+waiting: tasks waiting too)", flush=True)
    print(HEADER, flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-churn-") as tmp:
        for scenario in chosen_scenarios(args):
            plan = plan_chunks(scenario.chunks)
            reference = iterative_output(plan)
            runs = {}
            for reduction in scenario.reductions:
                r = run_scenario_once(replace(scenario, chunks=plan.chunks), plan, reduction, args.seed, Path(tmp),
                                      args.min_chunks)
                check_output(r, reference, Path(tmp) / f"{scenario.name}-{'on' if reduction else 'off'}")
                print_run(scenario, r)
                runs[reduction] = r
                if r.equal is False:
                    failures.append(f"{scenario.name}, reduction {'on' if reduction else 'off'}: output differs "
                                    f"from Iterative: {r.difference}")
            print_targets(scenario, runs)
    for failure in failures:
        print(f"ERROR: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
