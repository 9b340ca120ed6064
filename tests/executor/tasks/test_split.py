"""Split on exhaustion: a chunk that exhausts its resources is cut into pieces that add up to the same output."""

from __future__ import annotations

import re

import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

import coffea_wq
from coffea_wq.executor import last_report
from coffea_wq.executor.errors import TaskFailedError
from tests import support
from tests.executor import helpers, nano

pytestmark = pytest.mark.slow

# the first chunk of ttlike_a1.root (700 events) writes 700 x 100 kB = 70 MB into a task that asked
# for 45 MB of disk; halves (35 MB) fit, so exactly one split happens
HOG = ("ttlike_a1.root", 0, 700, 100_000, "disk")


def _run(fileset, **options):
    executor = coffea_wq.WorkQueueExecutor(local_workers=2, status=False, resources_mode="fixed", disk=45,
                                           **options)
    runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema)
    return runner(fileset, nano.LeptonJetProcessor(hog=HOG), treename="Events")


def test_exhausted_chunk_is_split_and_accumulates_to_the_unsplit_output(fileset):
    out = _run(fileset)
    nano.assert_same_histograms(helpers.iterative_output(fileset), out)
    report = last_report("Processing")
    assert len(report.split) == 1
    parent, pieces = report.split[0]
    assert (parent.entrystart, parent.entrystop) == (0, 700)
    assert [(p.entrystart, p.entrystop) for p in pieces] == [(0, 350), (350, 700)]
    assert all(p.filename == parent.filename and p.usermeta == parent.usermeta for p in pieces)
    assert set(pieces) <= set(report.accumulated) and parent not in report.accumulated


def test_without_split_on_exhaustion_the_chunk_fails(fileset):
    with pytest.raises(TaskFailedError, match=r"ttlike_a1.root.*entries \[0, 700\).*RESOURCE"):
        _run(fileset, split_on_exhaustion=False, retries=0)


MEMORY_HOG = ("ttlike_a1.root", 0, 700, 1_000_000, "memory")


@pytest.mark.parametrize("kind", ["coffea-wq", pytest.param("cctools", marks=support.requires_cctools)])
def test_memory_hungry_chunk_is_split_under_our_managers_watchdog(fileset, kind):
    # as below, on coffea-wq's own manager: the shipped monitor kills the 700-event chunk (700 x 1 MB plus the
    # interpreter, over 700 MB) and reports memory exhaustion; its halves fit and add up to the same output
    executor = coffea_wq.WorkQueueExecutor(local_workers=2, local_worker_kind=kind, status=False,
                                           resources_mode="fixed", memory=700, resource_monitor="watchdog")
    runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema)
    out = runner(fileset, nano.LeptonJetProcessor(hog=MEMORY_HOG), treename="Events")
    nano.assert_same_histograms(helpers.iterative_output(fileset), out)
    report = last_report("Processing")
    assert len(report.split) == 1
    parent, pieces = report.split[0]
    assert [(p.entrystart, p.entrystop) for p in pieces] == [(0, 350), (350, 700)]
    assert all(p.usermeta == parent.usermeta and p.fileuuid == parent.fileuuid for p in pieces)


def test_memory_exhaustion_without_split_names_resource_peak_and_limit(fileset):
    executor = coffea_wq.WorkQueueExecutor(local_workers=2, status=False, resources_mode="fixed", memory=700,
                                           resource_monitor="watchdog", split_on_exhaustion=False, retries=3)
    runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema)
    with pytest.raises(TaskFailedError) as info:
        runner(fileset, nano.LeptonJetProcessor(hog=MEMORY_HOG), treename="Events")
    text = str(info.value)
    assert re.search(r"entries \[0, 700\).*RESOURCE_EXHAUSTION: memory exceeded: peak \d+ MB > limit 700 MB", text)
    assert "after 1 attempt(s)" in text  # the same allocation again cannot help: no retries
    assert "split_on_exhaustion is off" in text and "resources_mode='auto'" in text


@support.requires_cctools_python
@support.needs_system(support.REAL_MONITOR is None, "resource_monitor", "coop-computing-tools")
def test_memory_hungry_chunk_is_split_under_the_cctools_watchdog(fileset, monkeypatch):
    # the first chunk of ttlike_a1.root holds 700 x 1 MB on top of the interpreter (~150 MB), over the 700 MB
    # limit the monitor enforces; its halves (350 MB) fit
    monkeypatch.setenv("COFFEA_WQ_MANAGER", "cctools")
    hog = MEMORY_HOG
    executor = coffea_wq.WorkQueueExecutor(local_workers=2, status=False, resources_mode="fixed", memory=700,
                                           resource_monitor="watchdog")
    runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema)
    out = runner(fileset, nano.LeptonJetProcessor(hog=hog), treename="Events")
    nano.assert_same_histograms(helpers.iterative_output(fileset), out)
    report = last_report("Processing")
    assert [(p.entrystart, p.entrystop) for p in report.split[0][1]] == [(0, 350), (350, 700)]
    assert len(report.split) == 1
