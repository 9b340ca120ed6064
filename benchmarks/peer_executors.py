"""The executors a coffea user could pick instead of coffea-wq, set up as a user would on one machine.

* ``futures``: coffea's ``FuturesExecutor(workers=W)`` (a process pool);
* ``dask``: coffea's ``DaskExecutor`` on a ``distributed.LocalCluster`` of W worker processes,
  one thread each (the GIL-bound processor gets one core per process, as our workers have);
* ``parsl``: coffea's ``ParslExecutor`` on Parsl's ``HighThroughputExecutor`` with a
  ``LocalProvider`` (one block of W workers, one core each), listening on 127.0.0.1.

Each is a context manager that starts the cluster before and stops it after, so the benchmarks
time the executor's calls alone (the clusters' start-up is not counted; coffea-wq's local workers
start inside its call, and are counted). Dask and Parsl come with the ``bench`` extra (setup.cfg).

Parsl needs both its ``interchange.py`` and its ``process_worker_pool.py`` commands on ``PATH``;
they are installed beside the venv's python, which a script run as ``.venv/bin/python`` does not
put on ``PATH``. Without the interchange, ``parsl.load`` fails; with the interchange alone, the
LocalProvider's block script fails with ``process_worker_pool.py: command not found`` (in
``runinfo/*/submit_scripts/*.err``), no worker ever connects and every task waits forever (and a
killed run leaves its interchange process behind). Here the venv's ``bin`` goes first on ``PATH``.
The interchange listens on 127.0.0.1 only (the benchmarks use no other address).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from coffea import processor

REPO = Path(__file__).resolve().parent.parent
PEERS = ("futures", "dask", "parsl")


def missing(name: str) -> str | None:
    """Why peer ``name`` cannot run here (its package is not installed), or None."""
    package = {"dask": "distributed", "parsl": "parsl"}.get(name)
    if package and importlib.util.find_spec(package) is None:
        return f"{name}: {package} is not installed (make bench installs the bench extra of setup.cfg)"
    return None


def _children_find_the_repo() -> None:
    """Worker processes of Dask and Parsl unpickle the processor by module name: put the repo (and
    the benchmarks folder) on their ``PYTHONPATH``, as this script has them on ``sys.path``."""
    paths = [str(REPO), str(REPO / "benchmarks")]
    current = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join([*paths, *([current] if current else [])])


@contextlib.contextmanager
def peer_executor(name: str, workers: int) -> Iterator[processor.executor.ExecutorBase]:
    """The executor ``name`` (one of :data:`PEERS`) with ``workers`` single-core workers, while it lasts."""
    if name == "futures":
        yield processor.FuturesExecutor(workers=workers, status=False)
    elif name == "dask":
        yield from _dask(workers)
    elif name == "parsl":
        yield from _parsl(workers)
    else:
        raise ValueError(f"unknown peer executor {name!r} (known: {', '.join(PEERS)})")


def _dask(workers: int) -> Iterator[processor.executor.ExecutorBase]:
    from distributed import Client, LocalCluster

    _children_find_the_repo()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=40) as cluster, Client(cluster) as client:
        yield processor.DaskExecutor(client=client, status=False)


def _parsl(workers: int) -> Iterator[processor.executor.ExecutorBase]:
    import parsl
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor
    from parsl.providers import LocalProvider

    _children_find_the_repo()
    bin_dir = os.path.dirname(sys.executable)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    with tempfile.TemporaryDirectory(prefix="bench-parsl-") as run_dir:
        htex = HighThroughputExecutor(
            label="htex", address="127.0.0.1", max_workers_per_node=workers, cores_per_worker=1,
            worker_logdir_root=run_dir, provider=LocalProvider(init_blocks=1, min_blocks=1, max_blocks=1))
        parsl.load(Config(executors=[htex], run_dir=run_dir, strategy="none"))
        try:
            yield processor.ParslExecutor(status=False)  # the loaded DataFlowKernel: one for every call
        finally:
            parsl.dfk().cleanup()
            parsl.clear()
