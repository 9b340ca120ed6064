"""Fixtures of the factory tests: a local Slurm cluster and a Grid Engine cell, started (and stopped)
by the tests."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from tests.factory.sge_cluster import MISSING_BINARIES as SGE_MISSING
from tests.factory.sge_cluster import start_sge_cell, stop_sge_cell
from tests.factory.slurm_cluster import (
    MISSING_BINARIES,
    process_alive,
    remove_cluster_files,
    start_slurm_cluster,
    stop_slurm_cluster,
)


@pytest.fixture
def slurm_cluster():
    """A one-node Slurm on localhost; at teardown no job and no daemon may be left.

    Its directory is made with ``tempfile`` rather than ``tmp_path``: munged refuses a socket
    whose parent directories are not reachable by every user, and pytest's base temp is 0700.
    """
    if MISSING_BINARIES:
        pytest.skip(f"Slurm/munge not installed ({', '.join(MISSING_BINARIES)} missing); "
                    "make test installs slurm-wlm and munge")
    root = Path(tempfile.mkdtemp(prefix="coffea-wq-slurm-"))
    cluster = start_slurm_cluster(root)
    try:
        yield cluster
    finally:
        problems = stop_slurm_cluster(cluster)
        alive = [pid for pid in cluster.daemon_pids() if process_alive(pid)]
        assert not alive, f"Slurm/munge daemons still running after teardown: {alive}"
        assert not problems, "; ".join(problems)
        remove_cluster_files(root)



@pytest.fixture(scope="module")
def sge_cell():
    """A one-host Grid Engine cell (tests/factory/sge_cluster.py), shared by a module's tests: its
    daemons take seconds to start and about ten to stop. At teardown no job, no daemon and no job
    process may be left."""
    if SGE_MISSING:
        pytest.skip(f"Grid Engine not installed ({', '.join(SGE_MISSING)} missing); make test installs "
                    "gridengine-master, gridengine-exec and gridengine-client")
    root = Path(tempfile.mkdtemp(prefix="coffea-wq-sge-"))
    try:
        cell = start_sge_cell(root)
        try:
            yield cell
        finally:
            problems = stop_sge_cell(cell)
            alive = [pid for pid in cell.daemon_pids() if process_alive(pid)]
            assert not alive, f"Grid Engine daemons still running after teardown: {alive}"
            assert not problems, "; ".join(problems)
    finally:
        remove_cluster_files(root)
