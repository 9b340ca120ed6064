"""Fixtures of the factory tests: a local Slurm cluster and a Grid Engine cell, started (and stopped)
by the tests."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from tests.factory.daemons import process_alive, remove_cluster_files
from tests.factory.sge_cluster import MISSING_BINARIES as SGE_MISSING
from tests.factory.sge_cluster import start_sge_cell, stop_sge_cell
from tests.factory.slurm_cluster import MISSING_BINARIES, start_slurm_cluster, stop_slurm_cluster
from tests.support import skip_not_installed

Cluster = TypeVar("Cluster")


@contextlib.contextmanager
def running(name: str, what: str, start: Callable[[Path], Cluster],
            stop: Callable[[Cluster], list[str]]) -> Iterator[Cluster]:
    """A cluster started in a fresh directory; at teardown no job, no daemon and no job process may be left.

    The directory is made with ``tempfile`` rather than ``tmp_path``: munged refuses a socket whose
    parent directories are not reachable by every user, and pytest's base temp is 0700.
    """
    root = Path(tempfile.mkdtemp(prefix=f"coffea-wq-{name}-"))
    try:
        cluster = start(root)
        try:
            yield cluster
        finally:
            problems = stop(cluster)
            alive = [pid for pid in cluster.daemon_pids() if process_alive(pid)]
            assert not alive, f"{what} daemons still running after teardown: {alive}"
            assert not problems, "; ".join(problems)
    finally:
        remove_cluster_files(root)


@pytest.fixture
def slurm_cluster():
    """A one-node Slurm on localhost (tests/factory/slurm_cluster.py)."""
    if MISSING_BINARIES:
        skip_not_installed(f"Slurm/munge ({', '.join(MISSING_BINARIES)})", "slurm-wlm")
    with running("slurm", "Slurm/munge", start_slurm_cluster, stop_slurm_cluster) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def sge_cell():
    """A one-host Grid Engine cell (tests/factory/sge_cluster.py), shared by a module's tests: its
    daemons take seconds to start and about ten to stop."""
    if SGE_MISSING:
        skip_not_installed(f"Grid Engine ({', '.join(SGE_MISSING)})", "gridengine-master")
    with running("sge", "Grid Engine", start_sge_cell, stop_sge_cell) as cell:
        yield cell
