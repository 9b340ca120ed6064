"""Runs reading from a real XRootD server through a proxy that breaks connections, and from a dead one.

The server is Debian's ``xrootd`` on 127.0.0.1 (tests/storage/xrootd_server.py); the proxy
(fault_proxy.py) resets some connections as the server starts to answer or mid-read, and stalls
others past the client's timeout. The XRootD client recovers from a reset mid-read by itself
(it reconnects and reissues the read); resets and stalls while a connection is opened reach the
task as ``OSError``s, which the executor must retry (docs/executor.md, "When things go wrong").
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

import coffea_wq
from coffea_wq.executor.errors import TaskFailedError
from tests.executor import nano
from tests.executor.helpers import CHUNKSIZE, iterative_output, make_fileset
from tests.storage.fault_proxy import Fate, FaultProxy
from tests.storage.xrootd_server import FAST_CLIENT_ENV, XROOTD, XRootDServer
from tests.support import needs_system

pytestmark = [needs_system(XROOTD is None, "xrootd", "xrootd-server"), pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("fsspec_xrootd") is None,
                                 reason="fsspec-xrootd is not installed (pip install -e .[test])")]


@pytest.fixture(scope="module")
def client_env():
    """The XRootD client's waits in seconds, for the workers this module starts (they inherit it)."""
    saved = {name: os.environ.get(name) for name in FAST_CLIENT_ENV}
    os.environ.update(FAST_CLIENT_ENV)
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def local_files(tmp_path_factory):
    return make_fileset(tmp_path_factory.mktemp("xrootd-files"))


@pytest.fixture
def server(local_files, client_env):
    served = XRootDServer([Path(p) for files in local_files.values() for p in files])
    yield served
    served.remove()


def _remote(local_files: dict, server: XRootDServer, port: int | None = None) -> dict:
    return {dataset: [server.url(Path(p).name, port) for p in files] for dataset, files in local_files.items()}


def _runner(tmp_path: Path, **options) -> processor.Runner:
    executor = coffea_wq.WorkQueueExecutor(local_workers=2, status=False, retries=1, filepath=str(tmp_path))
    return processor.Runner(executor=executor, chunksize=CHUNKSIZE, schema=NanoAODSchema, xrootdtimeout=5, **options)


@pytest.mark.timeout(240)
def test_resets_and_stalls_are_retried_and_the_output_equals_iteratives(tmp_path, local_files, server):
    plan = [(Fate.RESET, 0), (Fate.STALL, 100), (Fate.RESET, 20000), (Fate.RESET, 0), (Fate.STALL, 100),
            (Fate.RESET, 50000)]
    proxy = FaultProxy(("127.0.0.1", server.port), plan).start()
    try:
        out = _runner(tmp_path)(_remote(local_files, server, proxy.port), nano.LeptonJetProcessor(),
                                treename="Events")
    finally:
        proxy.stop()
    nano.assert_same_histograms(out, iterative_output(local_files))
    reports = [coffea_wq.last_report("Preprocessing"), coffea_wq.last_report("Processing")]
    transient = sum(r.read_retries.get("transient", 0) for r in reports)
    assert transient >= 2, ([r.read_retries for r in reports], proxy.fates)  # the opens reset or stalled
    assert sum(r.retried for r in reports) == transient  # no other kind of failure
    assert proxy.broken >= 4 and not any(r.skipped for r in reports)


@pytest.mark.timeout(240)
def test_a_server_gone_for_good_fails_the_run_naming_the_file_or_skips_and_lists_every_chunk(tmp_path, local_files,
                                                                                            server):
    cache: dict = {}
    fileset = _remote(local_files, server)
    chunks = list(_runner(tmp_path, metadata_cache=cache).preprocess(fileset, treename="Events"))
    assert len(chunks) == 7 and len(cache) == 3  # preprocessed while the server was up
    server.stop()
    with pytest.raises(TaskFailedError) as info:
        _runner(tmp_path, metadata_cache=cache)(fileset, nano.LeptonJetProcessor(), treename="Events")
    failed = info.value
    assert failed.filename in fileset[failed.dataset] and failed.attempts >= 2
    assert "[transient]" not in str(failed) and failed.entrystop is not None
    with pytest.raises(ValueError, match="No chunks returned results"):  # coffea's words: every chunk skipped
        _runner(tmp_path, metadata_cache=cache, skipbadfiles=True)(fileset, nano.LeptonJetProcessor(),
                                                                   treename="Events")
    report = coffea_wq.last_report("Processing")
    assert len(report.skipped) == 7 and len(report.bad_files) == 7
    for line in report.bad_files:
        assert "root://" in line and "entries [" in line and "OSError" in line, line
    assert report.read_retries.get("transient", 0) >= 7  # each chunk was retried before it was skipped
