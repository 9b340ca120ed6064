"""Failures: a processor that raises, missing and corrupt files, a worker killed in the middle of a run."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

import coffea_wq
from coffea_wq.executor import last_report
from coffea_wq.executor.errors import TaskFailedError
from tests import support
from tests.executor import helpers, nano

pytestmark = pytest.mark.slow


def _runner(executor, **options):
    return processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema,
                            metadata_cache={}, **options)


def test_processor_error_names_dataset_file_range_and_remote_traceback(fileset):
    proc = nano.LeptonJetProcessor(fail_on=("ttlike_a2.root", 700))
    executor = coffea_wq.WorkQueueExecutor(local_workers=2, status=False, retries=1)
    with pytest.raises(TaskFailedError) as info:
        _runner(executor)(fileset, proc, treename="Events")
    err = info.value
    assert (err.dataset, os.path.basename(err.filename), err.entrystart, err.entrystop) == \
        ("ttlike", "ttlike_a2.root", 700, 1400)
    text = str(err)
    assert "dataset 'ttlike'" in text and "ttlike_a2.root" in text and "entries [700, 1400)" in text
    assert "after 2 attempt(s)" in text  # one try and one retry
    assert "--- remote traceback ---" in text and "deliberate failure in ttlike_a2.root at entry 700" in text
    assert 'in process' in err.remote_traceback  # the processor's own frame, as printed on the worker
    report = last_report("Processing")
    assert report.retried == 1 and len(report.failed) == 1
    # Runner hands back what was accumulated before the run stopped
    partial = err.partial_output
    assert sum(v["all"] for v in partial["cutflow"].values()) == 700 * len(report.accumulated) - \
        sum(700 - (c.entrystop - c.entrystart) for c in report.accumulated)


def test_use_result_type_gives_err_with_the_partial_output(fileset):
    proc = nano.LeptonJetProcessor(fail_on=("dylike_b1.root", 0))
    executor = coffea_wq.WorkQueueExecutor(local_workers=2, status=False, retries=0)
    result = _runner(executor, skipbadfiles=(ValueError,), use_result_type=True)(fileset, proc, treename="Events")
    assert isinstance(result, processor.Err)
    assert isinstance(result.exception, TaskFailedError) and "dylike_b1.root" in str(result.exception)
    assert result.value is not None and "cutflow" in result.value  # whatever finished before the stop


def test_missing_file_is_named(fileset, tmp_path):
    broken = {"ttlike": [fileset["ttlike"][0], str(tmp_path / "missing.root")]}
    executor = coffea_wq.WorkQueueExecutor(local_workers=1, status=False, retries=0)
    with pytest.raises(TaskFailedError, match="missing.root") as info:
        _runner(executor)(broken, nano.LeptonJetProcessor(), treename="Events")
    assert "FileNotFoundError" in info.value.remote_traceback


def test_corrupt_file_is_named(fileset, tmp_path):
    corrupt = tmp_path / "corrupt.root"
    corrupt.write_bytes(b"this is not a ROOT file" * 100)
    executor = coffea_wq.WorkQueueExecutor(local_workers=1, status=False, retries=0)
    with pytest.raises(TaskFailedError, match="corrupt.root"):
        _runner(executor)({"ttlike": [str(corrupt)]}, nano.LeptonJetProcessor(), treename="Events")


def test_skipbadfiles_skips_and_lists_the_bad_file(fileset, tmp_path):
    good = {"ttlike": fileset["ttlike"]}
    broken = {"ttlike": [*fileset["ttlike"], str(tmp_path / "missing.root")]}
    executor = coffea_wq.WorkQueueExecutor(local_workers=2, status=False, retries=0)
    out = _runner(executor, skipbadfiles=True)(broken, nano.LeptonJetProcessor(), treename="Events")
    nano.assert_same_histograms(helpers.iterative_output(good), out)
    skipped = last_report("Preprocessing").skipped
    assert [os.path.basename(s.filename) for s in skipped] == ["missing.root"]


def test_worker_killed_mid_run_changes_nothing(fileset, processes, tmp_path):
    port = support.free_port()
    kind = "coffea-wq"
    env = helpers.worker_environment()
    workers = [processes.start(helpers.worker_argv(kind, port, tmp_path / f"w{i}"), env=env) for i in range(2)]
    killed = threading.Event()
    killed_at = []

    def kill_first_worker():
        os.killpg(workers[0].pid, signal.SIGKILL)  # the worker and the task it runs
        killed_at.append(time.monotonic())
        killed.set()

    calls = []

    def start_kill_timer(queue):  # custom_init runs at the start of each call: kill during processing
        calls.append(queue)
        if len(calls) == 2:
            timer = threading.Timer(1.5, kill_first_worker)
            timer.daemon = True
            timer.start()

    # 7 chunks of >= 1 s on 2 workers: >= 3.5 s of processing, so the kill at 1.5 s lands mid-run
    proc = nano.LeptonJetProcessor(sleep=1.0)
    executor = coffea_wq.WorkQueueExecutor(port=port, local_workers=0, status=False, custom_init=start_kill_timer)
    out = _runner(executor)(fileset, proc, treename="Events")
    finished_at = time.monotonic()
    assert killed.is_set() and workers[0].poll() is not None and workers[1].poll() is None
    assert finished_at - killed_at[0] > 1.0  # the run went on without the killed worker
    nano.assert_same_histograms(helpers.iterative_output(fileset), out)
    report = last_report("Processing")
    assert report.duplicates_ignored == 0 and report.retried == 0 and report.failed == []
    assert sorted(report.accumulated, key=repr) == sorted(helpers.all_chunks(fileset), key=repr)
    assert len(report.accumulated) == len(set(report.accumulated))  # none twice
