"""Run the topEFT-like example on a Work Queue (or locally), topcoffea style.

Usage (from the repository root)::

    python analysis_examples/topeft/work_queue_run.py analysis_examples/topeft/cfg/demo.cfg --local-workers 2
    python analysis_examples/topeft/work_queue_run.py CFG --pretend
    python analysis_examples/topeft/work_queue_run.py CFG --executor futures --workers 2 -s 2000 -o test
    python analysis_examples/topeft/work_queue_run.py CFG --local-workers 2 --dashboard --plots plots

CFG is a topcoffea cfg (JSON sample files / ROOT files per line, ``#`` comments, prefix lines) or a
comma-separated list of JSON sample files / ROOT files. Writes ``<outpath>/<outname>.pkl.gz``
(gzip'ed cloudpickle, as topcoffea does) and prints events/s and a summary of the histograms;
``--plots DIR`` also writes one PNG per histogram (plots.py) and prints their paths, and
``--dashboard`` serves the run's live dashboard (docs/dashboard.md).
With ``--executor work_queue`` (the default) workers are either started here (``--local-workers N``)
or started by you: ``coffea-wq worker -M <manager-name>`` or ``work_queue_worker -M <manager-name>``.
"""

from __future__ import annotations

import argparse
import getpass
import gzip
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

if not __package__:  # run as a script: make `analysis_examples` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import cloudpickle  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

import analysis_examples.topeft.processor as processor_module  # noqa: E402
from analysis_examples.topeft.cfg import CfgError, SampleSpec, fileset_from_samples, read_inputs  # noqa: E402
from analysis_examples.topeft.plots import write_plots  # noqa: E402
from analysis_examples.topeft.summary import print_summary, total_events  # noqa: E402

EXECUTORS = ("work_queue", "futures", "iterative")
# NanoAODSchema warns about every cross-reference whose collection a file lacks (the synthetic
# files carry Electron/Muon/Jet only). The environment variable reaches the worker processes too.
QUIET_CROSSREF_WARNINGS = "ignore:Missing cross-reference:RuntimeWarning"


class RunError(RuntimeError):
    """The analysis could not run (bad option, unreadable input, failed executor)."""


@dataclass
class RunResult:
    """What one run produced."""

    output: dict
    elapsed: float
    n_events: int
    outfile: Path | None


def parse_port(text: str) -> int | list[int]:
    """``"9123"`` -> 9123, ``"9123-9130"`` -> [9123, 9130] (inclusive range, as topcoffea's --port).

    Example:
        >>> parse_port("9123-9130"), parse_port("0")
        ([9123, 9130], 0)
    """
    parts = text.split("-")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        raise argparse.ArgumentTypeError(f"port {text!r} is not a number nor a range MIN-MAX") from None
    if len(numbers) > 2 or any(not 0 <= n <= 65535 for n in numbers) or (len(numbers) == 2 and numbers[0] > numbers[1]):
        raise argparse.ArgumentTypeError(f"port {text!r} must be N or MIN-MAX with 0 <= MIN <= MAX <= 65535")
    return numbers[0] if len(numbers) == 1 else numbers


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="work_queue_run.py",
                                     description="Run the topEFT-like example processor (coffea-wq).")
    parser.add_argument("inputs", metavar="CFG",
                        help="cfg file, or comma-separated JSON sample files / ROOT files")
    parser.add_argument("--prefix", "-r", default="", help="prefix (redirector) for the files of JSON samples")
    parser.add_argument("--pretend", action="store_true", help="print the samples and the chunk plan, then exit")
    parser.add_argument("--chunksize", "-s", type=_positive_int, default=100_000, help="events per chunk (100000)")
    parser.add_argument("--nchunks", "-c", type=_positive_int, default=None, help="at most N chunks per dataset")
    parser.add_argument("--outname", "-o", default="plotsTopEFT", help="output name (plotsTopEFT)")
    parser.add_argument("--outpath", "-p", default="histos", help="output directory (histos)")
    parser.add_argument("--treename", default="Events", help="tree of samples that do not name theirs (Events)")
    parser.add_argument("--executor", choices=EXECUTORS, default="work_queue", help="where chunks run (work_queue)")
    parser.add_argument("--workers", type=_positive_int, default=2, help="processes of --executor futures (2)")
    wq = parser.add_argument_group("work_queue executor")
    wq.add_argument("--port", type=parse_port, default=None,
                    help="manager port or inclusive range MIN-MAX (default 9123-9130; with --local-workers "
                         "and no --manager-name: a free port on 127.0.0.1 only); 0: any free port")
    wq.add_argument("--manager-name", default=None,
                    help="name advertised to the catalog for workers started with -M NAME "
                         "(default: $USER-workqueue-coffea, or none with --local-workers)")
    wq.add_argument("--local-workers", type=int, default=0, metavar="N",
                    help="start N coffea-wq workers on this machine (0: you start workers)")
    wq.add_argument("--cores", type=int, default=None, help="cores per task (default: a whole worker)")
    wq.add_argument("--memory", type=int, default=None, help="memory per task, MB")
    wq.add_argument("--disk", type=int, default=None, help="disk per task, MB")
    wq.add_argument("--resource-monitor", choices=("off", "measure", "watchdog"), default="off")
    wq.add_argument("--resources-mode", choices=("fixed", "max-seen", "max-throughput", "min-waste"),
                    default="fixed")
    wq.add_argument("--retries", type=int, default=5, help="resubmissions of a failing task (5)")
    wq.add_argument("--environment-file", default=None, help="packed Python environment for the tasks")
    wq.add_argument("--extra-input-file", action="append", default=[], dest="extra_input_files",
                    help="a file every task gets (repeatable)")
    wq.add_argument("--password-file", default=None, help="shared secret the workers must prove")
    wq.add_argument("--logdir", default=None,
                    help="write the manager's debug.log, tr.log (transactions) and stats.log here")
    wq.add_argument("--dashboard", nargs="?", const=True, default=None, type=int, metavar="PORT",
                    help="serve a live dashboard of the run (any free port, or PORT); its address is printed")
    wq.add_argument("--dashboard-host", default=None,
                    help="address the dashboard is served on (default 127.0.0.1; 0.0.0.0: every interface)")
    parser.add_argument("--plots", metavar="DIR", default=None,
                        help="write one PNG per histogram into DIR (mplhep's CMS style) and print their paths")
    parser.add_argument("--verbose", action="store_true", help="a line per task")
    parser.add_argument("--no-status", dest="status", action="store_false", help="no progress bars")
    return parser


def work_queue_executor_args(args: argparse.Namespace, schema) -> dict:
    """The topcoffea-style ``executor_args`` for ``coffea_wq.run_uproot_job``."""
    manager_name = args.manager_name
    if manager_name is None and args.local_workers == 0:
        manager_name = f"{getpass.getuser()}-workqueue-coffea"
    executor_args = {
        "schema": schema,
        "skipbadfiles": False,
        "local-workers": args.local_workers,
        "extra-input-files": list(args.extra_input_files),
        "retries": args.retries,
        "compression": 9,
        "resource-monitor": args.resource_monitor,
        "resources-mode": args.resources_mode,
        "verbose": args.verbose,
        "status": args.status,
    }
    optional = {"master-name": manager_name or None, "port": default_port(args, manager_name), "cores": args.cores, "memory": args.memory,
                "disk": args.disk, "environment-file": args.environment_file,
                "password-file": args.password_file, "dashboard": args.dashboard,
                "dashboard-host": args.dashboard_host}
    executor_args.update({key: value for key, value in optional.items() if value is not None})
    if args.logdir:
        logdir = Path(args.logdir)
        logdir.mkdir(parents=True, exist_ok=True)
        executor_args.update({"debug-log": str(logdir / "debug.log"),
                              "transactions-log": str(logdir / "tr.log"),
                              "stats-log": str(logdir / "stats.log")})
    return executor_args


def default_port(args: argparse.Namespace, manager_name: str | None) -> int | list[int] | None:
    """``--port``, else topcoffea's 9123-9130 when workers come from outside; None (the executor's
    choice: a free port on 127.0.0.1 behind a password made for the run) when only local workers serve it.

        >>> default_port(argparse.Namespace(port=None, local_workers=2), None) is None
        True
        >>> default_port(argparse.Namespace(port=None, local_workers=0), "me-wq")
        [9123, 9130]
    """
    if args.port is not None:
        return args.port
    if args.local_workers > 0 and not manager_name:
        return None
    return [9123, 9130]


def quiet_crossref_warnings() -> None:
    """Silence NanoAODSchema's missing cross-reference warnings here and in child processes."""
    warnings.filterwarnings("ignore", message="Missing cross-reference")
    current = os.environ.get("PYTHONWARNINGS", "")
    if QUIET_CROSSREF_WARNINGS not in current.split(","):
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [current, QUIET_CROSSREF_WARNINGS]))


def make_processor():
    """The processor; pickled by value so workers need not have ``analysis_examples`` installed."""
    cloudpickle.register_pickle_by_value(processor_module)
    return processor_module.TopEFTLikeProcessor()


def run_processor(args: argparse.Namespace, fileset: dict, console: Console) -> dict:
    """Run the processor on ``fileset`` with the executor ``args.executor``; return the output."""
    from coffea import processor
    from coffea.nanoevents import NanoAODSchema

    processor_instance = make_processor()
    if args.executor == "work_queue":
        try:
            import coffea_wq
            run_uproot_job, executor = coffea_wq.run_uproot_job, coffea_wq.work_queue_executor
        except (ImportError, AttributeError) as err:
            raise RunError(f"the work_queue executor is not available ({err}); "
                           "use --executor futures or --executor iterative") from None
        executor_args = work_queue_executor_args(args, NanoAODSchema)
        if args.local_workers == 0:
            name = executor_args.get("master-name")
            how = f"-M {name}" if name else "<this host> <port>"
            console.print(f"waiting for workers: start them with [bold]coffea-wq worker {how}[/bold] "
                          f"(or CCTools' work_queue_worker {how})")
        return run_uproot_job(fileset, args.treename, processor_instance, executor=executor,
                              executor_args=executor_args,
                              chunksize=args.chunksize, maxchunks=args.nchunks)
    if args.executor == "futures":
        executor = processor.FuturesExecutor(workers=args.workers, status=args.status)
    else:
        executor = processor.IterativeExecutor(status=args.status)
    runner = processor.Runner(executor=executor, chunksize=args.chunksize, maxchunks=args.nchunks,
                              schema=NanoAODSchema, skipbadfiles=False)
    return runner(fileset, processor_instance, treename=args.treename)


def write_output(output: dict, outpath: str | os.PathLike, outname: str) -> Path:
    """``<outpath>/<outname>.pkl.gz``: the output, cloudpickled and gzipped (topcoffea's format).

    Read it back with ``cloudpickle.load(gzip.open(path))`` (or ``pickle``).
    """
    directory = Path(outpath)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{outname}.pkl.gz"
    with gzip.open(path, "wb") as stream:
        cloudpickle.dump(output, stream)
    return path


def load_output(path: str | os.PathLike) -> dict:
    """Read an output written by :func:`write_output`."""
    with gzip.open(path, "rb") as stream:
        return cloudpickle.load(stream)


def samples_table(samples: dict[str, SampleSpec]) -> Table:
    """topcoffea's per-sample printout as a table."""
    table = Table(title="Samples", title_justify="left")
    for column in ("sample", "data", "year", "xsec [pb]", "tree", "nEvents", "SumWeights", "files", "from"):
        table.add_column(column)
    for name, spec in samples.items():
        table.add_row(name, "yes" if spec.is_data else "no", spec.year or "",
                      "" if spec.xsec is None else f"{spec.xsec:g}", spec.treename or "", _count(spec.n_events),
                      "" if spec.sum_of_weights is None else f"{spec.sum_of_weights:.6g}",
                      str(len(spec.files)), Path(spec.origin).name)
    return table


def _count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def chunk_plan(fileset: dict, args: argparse.Namespace) -> list:
    """The WorkItems coffea's Runner would make (opens every file to count its entries)."""
    from coffea import processor

    runner = processor.Runner(executor=processor.IterativeExecutor(status=False), chunksize=args.chunksize,
                              maxchunks=args.nchunks, skipbadfiles=False)
    try:
        return list(runner.preprocess(fileset, treename=args.treename))
    except Exception as err:  # uproot raises many kinds of errors for unreadable files
        raise RunError(f"cannot read the input files to plan chunks: {err}") from None


def chunk_plan_table(items: list) -> Table:
    table = Table(title="Chunk plan", title_justify="left")
    for column in ("dataset", "file", "chunks", "events", "entry ranges"):
        table.add_column(column)
    per_file: dict[tuple[str, str], list] = {}
    for item in items:
        per_file.setdefault((item.dataset, item.filename), []).append(item)
    for (dataset, filename), chunks in per_file.items():
        ranges = ", ".join(f"{c.entrystart}-{c.entrystop}" for c in chunks[:4]) + (" ..." if len(chunks) > 4 else "")
        table.add_row(dataset, Path(filename).name, str(len(chunks)), f"{sum(c.entrystop - c.entrystart for c in chunks):,}",
                      ranges)
    return table


def pretend(args: argparse.Namespace, samples: dict[str, SampleSpec], console: Console) -> None:
    fileset = fileset_from_samples(samples, args.treename)
    items = chunk_plan(fileset, args)
    console.print(chunk_plan_table(items))
    events = sum(item.entrystop - item.entrystart for item in items)
    console.print(f"{len(items)} chunks, {events:,} events, chunksize {args.chunksize:,}"
                  + (f", at most {args.nchunks} chunks per dataset" if args.nchunks else "")
                  + f"; executor {args.executor}")


def make_console() -> Console:
    """A rich console; 120 columns wide when the output is not a terminal (logs, pipes)."""
    return Console() if sys.stdout.isatty() else Console(width=120)


def run(args: argparse.Namespace, console: Console | None = None) -> RunResult:
    """Read the samples, run (or with ``--pretend`` plan) the analysis, write and summarise the output.

    Raises:
        CfgError: a bad cfg line or sample file.
        RunError: the analysis could not run.
    """
    console = console or make_console()
    quiet_crossref_warnings()
    samples = read_inputs(args.inputs, args.prefix)
    console.print(samples_table(samples))
    if args.pretend:
        pretend(args, samples, console)
        return RunResult({}, 0.0, 0, None)
    fileset = fileset_from_samples(samples, args.treename)
    tic = time.perf_counter()
    try:
        output = run_processor(args, fileset, console)
    except (RunError, KeyboardInterrupt):
        raise
    except Exception as err:  # a failed chunk, an unreadable file: its message names the culprit
        if args.verbose:
            raise
        raise RunError(f"the analysis failed ({type(err).__name__}; --verbose shows the traceback): {err}") from err
    elapsed = time.perf_counter() - tic
    if isinstance(output, tuple):  # (output, metrics) when an executor saves metrics
        output = output[0]
    outfile = write_output(output, args.outpath, args.outname)
    print_summary(output, elapsed=elapsed, console=console)
    console.print(f"Output written to [bold]{outfile}[/bold]")
    if args.plots:
        data = {name for name, spec in samples.items() if spec.is_data}
        for path in write_plots(output, args.plots, data_datasets=data):
            console.print(f"Plot written to {path}", highlight=False, soft_wrap=True)
    return RunResult(output, elapsed, total_events(output), outfile)


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status (2: bad cfg or option, 1: the run failed)."""
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except CfgError as err:
        print(f"work_queue_run.py: error: {err}", file=sys.stderr)
        return 2
    except RunError as err:
        print(f"work_queue_run.py: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
