"""`make demo`: the topEFT-like example on the bundled sample, with 2 local Work Queue workers.

Runs ``work_queue_run.py analysis_examples/topeft/cfg/demo.cfg --local-workers 2`` (the
executor starts two ``coffea-wq worker`` processes on 127.0.0.1 and stops them at the end), writes
``outputs/demo/topeft_demo.pkl.gz`` and one PNG per histogram (``outputs/demo/<name>.png``), and
prints events/s, the histogram summary and the plots' paths. Extra options go to
``work_queue_run.py``, e.g. ``--dashboard`` to watch the run in the browser.

    .venv/bin/python analysis_examples/demo.py                      # Work Queue, 2 local workers
    .venv/bin/python analysis_examples/demo.py --executor futures   # coffea's FuturesExecutor instead

``--executor auto`` (the default) uses Work Queue when ``coffea_wq.run_uproot_job`` is importable
and says so when it falls back to the futures executor.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from analysis_examples.topeft import work_queue_run  # noqa: E402

DEMO_CFG = REPO / "analysis_examples" / "topeft" / "cfg" / "demo.cfg"
DEMO_OUTPATH = REPO / "outputs" / "demo"
DEMO_OUTNAME = "topeft_demo"
DEMO_CHUNKSIZE = 1250  # 12 chunks of the 15,000 bundled events
DEMO_WORKERS = 2


def work_queue_available() -> bool:
    """Whether coffea-wq's topcoffea-style entry point can be imported."""
    try:
        import coffea_wq

        return callable(coffea_wq.run_uproot_job) and coffea_wq.work_queue_executor is not None
    except (ImportError, AttributeError):
        return False


def demo_argv(executor: str, outpath: Path = DEMO_OUTPATH, extra: list[str] | None = None) -> list[str]:
    """The ``work_queue_run.py`` command line the demo runs."""
    argv = [str(DEMO_CFG), "--executor", executor, "--chunksize", str(DEMO_CHUNKSIZE),
            "--outpath", str(outpath), "--outname", DEMO_OUTNAME, "--plots", str(outpath)]
    if executor == "work_queue":
        argv += ["--local-workers", str(DEMO_WORKERS)]
    elif executor == "futures":
        argv += ["--workers", str(DEMO_WORKERS)]
    return argv + list(extra or [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo.py", description=__doc__.splitlines()[0])
    parser.add_argument("--executor", choices=("auto", *work_queue_run.EXECUTORS), default="auto")
    parser.add_argument("--outpath", type=Path, default=DEMO_OUTPATH)
    args, extra = parser.parse_known_args(argv)
    executor = args.executor
    if executor == "auto":
        executor = "work_queue" if work_queue_available() else "futures"
        if executor == "futures":
            print("demo: coffea_wq.run_uproot_job is not available yet; using coffea's FuturesExecutor "
                  f"with {DEMO_WORKERS} workers")
    print(f"demo: {executor} executor on {DEMO_CFG.relative_to(REPO)}")
    return work_queue_run.main(demo_argv(executor, args.outpath, extra))


if __name__ == "__main__":
    sys.exit(main())
