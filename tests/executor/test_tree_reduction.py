"""Accumulation tasks end to end (docs/reduction.md, section 3): real managers, real workers, real chunks.

* only CCTools' ``work_queue_worker``s: the per-chunk big histograms are added by accumulation
  tasks, the output equals IterativeExecutor's bin by bin, and this process merged fewer than
  ``workers + treereduction`` results;
* a mixed pool (two coffea-wq workers and one real ``work_queue_worker``): the same;
* a rogue worker's result (a pickle that would run ``os.system``) reaches an accumulation task,
  is refused there, its chunk runs again and the output is still equal;
* accumulation tasks that fail for good (a result type that cannot be added in them) are
  retried, then their inputs are merged in this process: nothing is lost;
* a run stopped by a failed chunk merges the results still waiting; a worker SIGKILLed while it
  runs an accumulation task costs nothing (the manager requeues the task); ``checkpoint_dir``
  stores results that wait; CCTools' own manager runs accumulation tasks too;
* partials of warm slots (records read without their values): big ones wait and a last task adds
  them, so this process loads one result; small ones are merged at once, no extra task; a failed
  last task falls back to merging here; a rogue partial is refused in an accumulation task and
  its worker blamed; ``checkpoint_dir`` keeps each waiting partial as one bundle; a run stopped
  by a failed chunk merges the big partials still waiting.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import pickle
import sys
import threading
from pathlib import Path

import cloudpickle
import lz4.frame
import numpy as np
import psutil
import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

import coffea_wq
from coffea_wq.executor import TaskFailedError, last_report
from coffea_wq.executor.tasks import accumulation, task_script
from coffea_wq.worker.warm_contract import CHUNK_ENV
from tests import support
from tests.executor import flaky_sum, helpers, nano
from tests.executor.test_trust import WritesAFile, _rogue

pytestmark = pytest.mark.slow

WORKERS = 2
FAN_IN = 3
BIG_MIB = 1
SMALL_CHUNKS = 300  # 17 chunks of the test fileset


@pytest.fixture(scope="module")
def big_hist():
    """benchmarks/big_hist_processor.py, sent by value so that workers need not import it."""
    sys.path.insert(0, str(support.REPO / "benchmarks"))
    try:
        module = importlib.import_module("big_hist_processor")
    finally:
        sys.path.remove(str(support.REPO / "benchmarks"))
    # left registered: test_reduction.py registers the same module when it is imported, and its
    # tests may run after this module's
    cloudpickle.register_pickle_by_value(module)
    return module


@pytest.fixture(scope="module")
def fileset(tmp_path_factory):
    return helpers.make_fileset(tmp_path_factory.mktemp("nano"))


def _run_big(executor, fileset, big_hist, chunksize: int = helpers.CHUNKSIZE) -> dict:
    runner = processor.Runner(executor=executor, chunksize=chunksize, schema=NanoAODSchema)
    return runner(fileset, big_hist.BigHistProcessor(BIG_MIB), treename="Events")


@pytest.fixture(scope="module")
def big_reference(fileset, big_hist):
    return {size: _run_big(processor.IterativeExecutor(status=False), fileset, big_hist, size)
            for size in (helpers.CHUNKSIZE, SMALL_CHUNKS)}


def _assert_same_big(reference: dict, out: dict) -> None:
    assert (out["chunks"], out["events"]) == (reference["chunks"], reference["events"])
    for field in ("value", "variance"):
        np.testing.assert_array_equal(out["big"].view(flow=True)[field], reference["big"].view(flow=True)[field])


def _assert_tree_did_the_merging(chunks: int, workers: int) -> None:
    report = last_report("Processing")
    assert report.failed == [] and report.duplicates_ignored == 0
    assert len(report.accumulated) == chunks
    assert report.accumulation_tasks >= 1
    assert report.merged_in_process <= workers + FAN_IN, report


@support.requires_cctools
def test_cctools_workers_results_are_added_by_accumulation_tasks(fileset, big_hist, big_reference, tmp_path):
    executor = coffea_wq.WorkQueueExecutor(local_workers=WORKERS, local_worker_kind="cctools", treereduction=FAN_IN,
                                           status=False, filepath=str(tmp_path))
    out = _run_big(executor, fileset, big_hist)
    _assert_same_big(big_reference[helpers.CHUNKSIZE], out)
    _assert_tree_did_the_merging(out["chunks"], WORKERS)


@support.requires_cctools
def test_a_mixed_pool_with_a_real_work_queue_worker_gives_the_same_output(fileset, big_hist, big_reference, processes,
                                                                          tmp_path):
    password = tmp_path / "pool.password"
    password.write_text("mixed-pool-secret")
    password.chmod(0o600)
    started = []

    def add_cctools_worker(queue):  # once, when the first call opens the manager
        if not started:
            argv = helpers.worker_argv("cctools", queue.port, tmp_path / "cctools-worker")
            started.append(processes.start(argv[:1] + ["-P", str(password)] + argv[1:],
                                           env=helpers.worker_environment()))

    executor = coffea_wq.WorkQueueExecutor(local_workers=WORKERS, local_worker_kind="coffea-wq", port=0,
                                           manager_host=support.LOOPBACK, password_file=str(password),
                                           treereduction=FAN_IN, status=False, filepath=str(tmp_path),
                                           custom_init=add_cctools_worker)
    out = _run_big(executor, fileset, big_hist, SMALL_CHUNKS)
    _assert_same_big(big_reference[SMALL_CHUNKS], out)
    report = last_report("Processing")
    assert report.failed == [] and len(report.accumulated) == out["chunks"]
    assert report.merged_in_process <= WORKERS + 1 + FAN_IN, report


def test_a_rogue_result_is_refused_inside_an_accumulation_task(fileset, processes, tmp_path, caplog, monkeypatch):
    # small results are screened for refused globals when they arrive: screen none, so that the
    # rogue's result waits for an accumulation task like a big one would
    monkeypatch.setattr(accumulation, "SCREEN_BYTES", -1)
    reference = helpers.iterative_output(fileset)
    marker = tmp_path / "pwned"
    errors: list = []
    threads: list[threading.Thread] = []

    def start_rogue(queue):
        thread = threading.Thread(target=_rogue, args=(queue.port, marker, processes, tmp_path, errors), daemon=True)
        thread.start()
        threads.append(thread)

    # fan-in 2: the rogue's tiny result is among the two smallest of the first three that wait
    report = _run_refusing_the_rogue(fileset, reference, tmp_path, caplog, start_rogue, threads, errors, marker,
                                     warm_python=False)  # cold tasks: the honest results wait too
    assert report.failed == [] and report.accumulation_tasks >= 1
    assert sorted(report.accumulated, key=repr) == sorted(helpers.all_chunks(fileset), key=repr)


def test_failed_accumulation_tasks_fall_back_to_this_process_and_lose_nothing(fileset, tmp_path, caplog):
    executor = coffea_wq.WorkQueueExecutor(local_workers=WORKERS, treereduction=2, retries=1, status=False,
                                           filepath=str(tmp_path), allowed_result_modules=[flaky_sum.__name__],
                                           warm_python=False)  # cold tasks: their results go to the tree
    runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema)
    with caplog.at_level(logging.WARNING, logger="coffea_wq.executor.tasks.accumulation"):
        out = runner(fileset, flaky_sum.TallyProcessor(), treename="Events")
    chunks = len(helpers.all_chunks(fileset))
    assert out["events"].n == 5000 and out["chunks"] == chunks
    report = last_report("Processing")
    assert report.accumulation_tasks == 0 and report.failed == []
    assert report.merged_in_process == chunks and len(report.accumulated) == chunks
    assert "retry 1 of 1" in caplog.text and "merged in this process instead" in caplog.text
    assert "Tally refuses to be added" in caplog.text


def test_checkpoint_dir_keeps_results_that_wait_for_the_tree(fileset, big_hist, big_reference, tmp_path):
    store = tmp_path / "checkpoints"
    executor = coffea_wq.WorkQueueExecutor(local_workers=WORKERS, treereduction=FAN_IN, status=False,
                                           filepath=str(tmp_path), checkpoint_dir=str(store),
                                           warm_python=False)  # cold tasks: their results go to the tree
    first = _run_big(executor, fileset, big_hist)
    stored = sorted(p.name for p in Path(store).rglob("*.lz4"))
    assert len(stored) == first["chunks"]
    rerun = _run_big(executor, fileset, big_hist)
    _assert_same_big(big_reference[helpers.CHUNKSIZE], first)
    _assert_same_big(big_reference[helpers.CHUNKSIZE], rerun)
    report = last_report("Processing")
    assert len(report.restored) == first["chunks"] and report.tasks_submitted == 0


@support.requires_cctools
def test_a_run_that_stops_on_a_failure_merges_the_results_still_waiting(fileset, tmp_path):
    proc = nano.LeptonJetProcessor(fail_on=("dylike_b1.root", 0))
    executor = coffea_wq.WorkQueueExecutor(local_workers=WORKERS, local_worker_kind="cctools", treereduction=2,
                                           retries=0, status=False, filepath=str(tmp_path))
    runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema,
                              metadata_cache={})
    with pytest.raises(TaskFailedError) as info:
        runner(fileset, proc, treename="Events")
    report = last_report("Processing")
    accumulated, unprocessed = set(report.accumulated), set(report.unprocessed)
    assert accumulated and not accumulated & unprocessed
    assert accumulated | unprocessed == helpers.all_chunks(fileset)  # nothing that came back was dropped
    partial = info.value.partial_output
    assert sum(v["all"] for v in partial["cutflow"].values()) == sum(c.entrystop - c.entrystart for c in accumulated)


@support.requires_cctools_python
def test_accumulation_tasks_also_run_under_cctools_own_manager(fileset, big_hist, big_reference, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setenv("COFFEA_WQ_MANAGER", "cctools")
    executor = coffea_wq.WorkQueueExecutor(local_workers=WORKERS, treereduction=FAN_IN, status=False,
                                           filepath=str(tmp_path))
    out = _run_big(executor, fileset, big_hist)
    _assert_same_big(big_reference[helpers.CHUNKSIZE], out)
    _assert_tree_did_the_merging(out["chunks"], WORKERS)


def _kill_the_worker_of_an_accumulation_task(killed: list, stop: threading.Event) -> None:
    """SIGKILL the first worker seen running an accumulation task (and that task), then return."""
    me = psutil.Process()
    while not stop.wait(0.2):
        for proc in me.children(recursive=True):
            try:
                command = proc.cmdline()
                if not any(word.startswith(accumulation.PAYLOAD_PREFIX) for word in command):
                    continue
                worker = next(p for p in proc.parents() if "worker" in " ".join(p.cmdline()))
                family = [worker, *worker.children(recursive=True)]
            except (psutil.Error, StopIteration):
                continue
            for member in family:
                with contextlib.suppress(psutil.Error):
                    member.kill()
            killed.append(" ".join(command))
            return


@support.requires_cctools
def test_an_accumulation_task_whose_worker_is_killed_is_requeued(fileset, tmp_path):
    killed: list[str] = []
    stop = threading.Event()
    killer = threading.Thread(target=_kill_the_worker_of_an_accumulation_task, args=(killed, stop), daemon=True)
    # fan-in 4: the 7 results are added at the end by two tasks side by side, one of which loses its worker
    executor = coffea_wq.WorkQueueExecutor(local_workers=WORKERS, local_worker_kind="cctools", treereduction=4,
                                           status=False, filepath=str(tmp_path),
                                           allowed_result_modules=[flaky_sum.__name__])
    runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema)
    killer.start()
    try:
        out = runner(fileset, flaky_sum.TallyProcessor(slow=True), treename="Events")
    finally:
        stop.set()
        killer.join(10)
    assert killed, "no accumulation task was seen running"
    chunks = len(helpers.all_chunks(fileset))
    assert out["events"].n == 5000 and out["chunks"] == chunks
    report = last_report("Processing")
    assert report.accumulation_tasks >= 1 and report.failed == [] and len(report.accumulated) == chunks
    assert report.merged_in_process < 4  # fewer than the fan-in were left for this process


def test_reduction_off_merges_every_result_here_as_it_arrives(fileset, tmp_path):
    executor = coffea_wq.WorkQueueExecutor(local_workers=WORKERS, treereduction=2, reduction=False, status=False,
                                           filepath=str(tmp_path), warm_python=False)
    runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema)
    out = runner(fileset, nano.LeptonJetProcessor(), treename="Events")
    nano.assert_same_histograms(helpers.iterative_output(fileset), out)
    report = last_report("Processing")
    chunks = len(helpers.all_chunks(fileset))
    assert report.accumulation_tasks == 0 and report.merged_in_process == chunks == len(report.accumulated)


# ------------------------------------------------------------------ partials of warm slots (docs/reduction.md, 2-3)
def _bundled_chunks(store: Path) -> list[int]:
    """The chunks each checkpoint bundle names."""
    return [len(json.loads(m.read_text())["chunks"]) for m in store.glob("*/bundles/*.json")]


def test_big_partials_wait_and_a_last_task_adds_them_so_this_process_loads_one(fileset, big_hist, big_reference,
                                                                                tmp_path, monkeypatch):
    # 1 MiB histograms compress below the real threshold: here every partial counts as big
    monkeypatch.setattr(accumulation, "BIG_RESULT_BYTES", 1)
    store = tmp_path / "checkpoints"
    executor = coffea_wq.WorkQueueExecutor(local_workers=WORKERS, treereduction=FAN_IN, chunks_per_accum=2,
                                           status=False, filepath=str(tmp_path), checkpoint_dir=str(store))
    out = _run_big(executor, fileset, big_hist)
    _assert_same_big(big_reference[helpers.CHUNKSIZE], out)
    report = last_report("Processing")
    chunks = out["chunks"]
    assert report.failed == [] and report.duplicates_ignored == 0 and len(report.accumulated) == chunks
    assert report.partials_returned >= 4 and report.partials_lost == 0, report  # 7 chunks, at most 2 a partial
    assert report.merged_in_process == 1 and report.accumulation_tasks >= 1, report
    bundled = _bundled_chunks(store)  # one bundle per partial, every chunk in one
    assert sum(bundled) == chunks and len(bundled) == report.partials_returned
    rerun = _run_big(executor, fileset, big_hist)  # every chunk from the bundles, no task
    _assert_same_big(big_reference[helpers.CHUNKSIZE], rerun)
    report = last_report("Processing")
    assert len(report.restored) == chunks and report.tasks_submitted == 0


def test_small_partials_are_merged_here_without_an_extra_task(fileset, tmp_path):
    executor = coffea_wq.WorkQueueExecutor(local_workers=WORKERS, treereduction=FAN_IN, chunks_per_accum=2,
                                           status=False, filepath=str(tmp_path))
    runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema)
    out = runner(fileset, nano.LeptonJetProcessor(), treename="Events")
    nano.assert_same_histograms(helpers.iterative_output(fileset), out)
    report = last_report("Processing")
    assert report.partials_returned >= 4 and report.accumulation_tasks == 0, report
    assert report.merged_in_process == report.partials_returned, report


def test_a_failed_last_task_falls_back_to_merging_the_partials_here(fileset, tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(accumulation, "BIG_RESULT_BYTES", 1)  # every partial waits for an accumulation task
    executor = coffea_wq.WorkQueueExecutor(local_workers=WORKERS, treereduction=FAN_IN, chunks_per_accum=2,
                                           retries=1, status=False, filepath=str(tmp_path),
                                           allowed_result_modules=[flaky_sum.__name__])
    runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema)
    with caplog.at_level(logging.WARNING, logger="coffea_wq.executor.tasks.accumulation"):
        out = runner(fileset, flaky_sum.TallyProcessor(), treename="Events")  # Tally cannot be added in those
    chunks = len(helpers.all_chunks(fileset))
    assert out["events"].n == 5000 and out["chunks"] == chunks
    report = last_report("Processing")
    assert report.accumulation_tasks == 0 and report.failed == [] and len(report.accumulated) == chunks
    assert report.partials_returned >= 4 and report.merged_in_process == report.partials_returned, report
    assert "retry 1 of 1" in caplog.text and "merged in this process instead" in caplog.text


def _rogue_partial(marker: Path):
    """A rogue's answer to a chunk task: a partial record for that chunk whose value runs a command."""
    def answer(task) -> bytes:
        key = int(next(e.split("=", 1)[1] for e in task.env if e.startswith(f"{CHUNK_ENV}=")))
        head = {"version": task_script.RECORD_VERSION, "status": "partial", "partial": "roguetoken/1/0",
                "keys": [key], task_script.VALUE_FOLLOWS: True}
        return lz4.frame.compress(pickle.dumps(head) + pickle.dumps(WritesAFile(marker)))
    return answer


def test_a_rogue_partial_is_refused_in_an_accumulation_task_and_its_worker_blamed(fileset, processes, tmp_path,
                                                                                  caplog, monkeypatch):
    monkeypatch.setattr(accumulation, "BIG_RESULT_BYTES", 1)  # the rogue's tiny partial waits like a big one
    reference = helpers.iterative_output(fileset)
    marker = tmp_path / "pwned"
    errors: list = []
    threads: list[threading.Thread] = []

    def start_rogue(queue):
        thread = threading.Thread(target=_rogue, args=(queue.port, marker, processes, tmp_path, errors,
                                                       _rogue_partial(marker)), daemon=True)
        thread.start()
        threads.append(thread)

    # fan-in 2 and a partial per chunk: the rogue's partial is among the two smallest of the first three
    report = _run_refusing_the_rogue(fileset, reference, tmp_path, caplog, start_rogue, threads, errors, marker,
                                     chunks_per_accum=1)
    assert report.failed == [] and report.duplicates_ignored == 0
    assert sorted(report.accumulated, key=repr) == sorted(helpers.all_chunks(fileset), key=repr)


def test_a_stopped_run_merges_the_big_partials_still_waiting(fileset, tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(accumulation, "BIG_RESULT_BYTES", 1)  # every partial waits: the stop must merge them
    proc = nano.LeptonJetProcessor(fail_on=("dylike_b1.root", 0))
    executor = coffea_wq.WorkQueueExecutor(local_workers=WORKERS, treereduction=FAN_IN, retries=0, status=False,
                                           filepath=str(tmp_path))
    runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema,
                              metadata_cache={})
    with caplog.at_level(logging.ERROR, logger="coffea_wq.executor.tasks.accumulation"), \
            pytest.raises(TaskFailedError) as info:
        runner(fileset, proc, treename="Events")
    assert "cannot be used" not in caplog.text  # each waiting partial was read and merged, none redone
    report = last_report("Processing")
    accumulated, unprocessed = set(report.accumulated), set(report.unprocessed)
    assert accumulated and not accumulated & unprocessed and report.partials_returned >= 1, report
    assert report.merged_in_process >= 1 and report.refused == []
    assert accumulated | unprocessed == helpers.all_chunks(fileset)  # nothing that came back was dropped
    partial = info.value.partial_output
    assert sum(v["all"] for v in partial["cutflow"].values()) == sum(c.entrystop - c.entrystart for c in accumulated)


def _run_refusing_the_rogue(fileset, reference, tmp_path, caplog, start_rogue, threads, errors, marker, **options):
    """A run with fan-in 2 that ``start_rogue`` joins: its pickle is refused on a worker, it is
    blamed, nothing it sent ran, and the output equals Iterative's; the run's report."""
    executor = coffea_wq.WorkQueueExecutor(port=0, manager_host=support.LOOPBACK, local_workers=0, status=False,
                                           treereduction=2, filepath=str(tmp_path), custom_init=start_rogue,
                                           **options)
    runner = processor.Runner(executor=executor, pre_executor=processor.IterativeExecutor(status=False),
                              chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema, metadata_cache={})
    with caplog.at_level(logging.ERROR, logger="coffea_wq.executor.tasks.accumulation"):
        out = runner(fileset, nano.LeptonJetProcessor(), treename="Events")
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert not marker.exists(), "the rogue worker's pickle ran code"
    report = last_report("Processing")
    assert len(report.refused) == 1 and report.refused[0].startswith("posix.system from rogue (127.0.0.1:")
    assert "input in-" in caplog.text and "refused to build posix.system" in caplog.text  # refused on a worker
    nano.assert_same_histograms(reference, out)
    return report
