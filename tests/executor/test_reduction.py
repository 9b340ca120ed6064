"""Reduction on workers (docs/reduction.md) end to end: real managers, real coffea-wq workers, real chunks.

The processor is the big-histogram one of ``benchmarks/bench_big_outputs.py`` at 1 MiB per chunk:
integer weights, so every bin of the merged output must equal IterativeExecutor's exactly.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cloudpickle
import numpy as np
import psutil
import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

import coffea_wq
from tests import support
from tests.executor import helpers

sys.path.insert(0, str(support.REPO / "benchmarks"))
import big_hist_processor  # noqa: E402
from big_hist_processor import BigHistProcessor  # noqa: E402

from analysis_examples.topeft.cfg import fileset_from_samples, read_cfg  # noqa: E402

cloudpickle.register_pickle_by_value(big_hist_processor)
cloudpickle.register_pickle_by_value(sys.modules[__name__])

SAMPLE_CFG = support.REPO / "analysis_examples" / "data" / "sample" / "samples.cfg"
CHUNKSIZE = 1000  # the bundled sample: 6 files of 2,500 events, 18 chunks


class SlowBigHist(BigHistProcessor):
    """1 MiB per chunk, ``sleep`` s per chunk, and the slot's pid appended to ``progress`` (on the worker)."""

    def __init__(self, progress: str = "", sleep: float = 0.0) -> None:
        super().__init__(1)
        self.progress, self.sleep = progress, sleep

    def process(self, events) -> dict:
        out = super().process(events)
        time.sleep(self.sleep)
        if self.progress:
            with open(self.progress, "a") as f:
                f.write(f"{os.getpid()}\n")
        return out


def fileset() -> dict:
    return fileset_from_samples(read_cfg(SAMPLE_CFG))


def run(executor, proc=None) -> dict:
    runner = processor.Runner(executor=executor, chunksize=CHUNKSIZE, schema=NanoAODSchema, metadata_cache={})
    return runner(fileset(), proc or SlowBigHist(), treename="Events")


@pytest.fixture(scope="module")
def reference() -> dict:
    return run(processor.IterativeExecutor(status=False))


def assert_equal_outputs(reference: dict, out: dict) -> None:
    assert (out["chunks"], out["events"]) == (reference["chunks"], reference["events"])
    for what in ("values", "variances"):
        np.testing.assert_array_equal(getattr(out["big"], what)(flow=True), getattr(reference["big"], what)(flow=True))


def assert_each_chunk_once(report, chunks: int) -> None:
    counted = collections.Counter((i.filename, i.entrystart, i.entrystop) for i in report.accumulated)
    assert len(report.accumulated) == chunks and max(counted.values()) == 1, counted.most_common(3)
    assert not report.unprocessed and not report.skipped


@pytest.mark.slow
def test_two_local_workers_merge_on_the_workers_and_equal_iterative(tmp_path, reference):
    out = run(coffea_wq.WorkQueueExecutor(local_workers=2, status=False, filepath=str(tmp_path)))
    assert_equal_outputs(reference, out)
    report = coffea_wq.last_report("Processing")
    assert_each_chunk_once(report, reference["chunks"])
    assert report.partials_returned >= 1 and report.partials_lost == 0
    assert report.merged_in_process <= 2 + coffea_wq.WorkQueueExecutor().treereduction, report


@pytest.mark.slow
def test_reduction_off_merges_every_chunk_here(tmp_path, reference):
    out = run(coffea_wq.WorkQueueExecutor(local_workers=2, status=False, filepath=str(tmp_path), reduction=False))
    assert_equal_outputs(reference, out)
    report = coffea_wq.last_report("Processing")
    assert_each_chunk_once(report, reference["chunks"])
    assert report.merged_in_process == reference["chunks"] and report.partials_returned == 0


def slots_of(worker_pid: int, progress: Path) -> list[int]:
    """The chunks (by the pid of the slot that ran them) that a worker's slots finished so far."""
    lines = progress.read_text().split() if progress.exists() else []
    found = []
    for pid in map(int, lines):
        try:
            if worker_pid in (p.pid for p in psutil.Process(pid).parents()):
                found.append(pid)
        except psutil.NoSuchProcess:
            pass
    return found


@pytest.mark.slow
def test_a_worker_killed_while_it_holds_a_partial_costs_only_its_chunks(tmp_path, reference, processes):
    port = support.free_port()
    progress = tmp_path / "progress"
    log = open(tmp_path / "remote.log", "wb")  # noqa: SIM115 (the child keeps its own descriptor)
    with log:
        remote = processes.start(helpers.worker_argv("coffea-wq", port, tmp_path / "remote"),
                                 env=helpers.worker_environment(), stdout=log, stderr=subprocess.STDOUT)
    killed, watching = [], []

    def kill_after_two_chunks(queue):
        if watching:  # called for preprocessing and processing: one watcher
            return
        watching.append(True)

        def watch():
            deadline = time.monotonic() + 120
            while len(slots_of(remote.pid, progress)) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            if len(slots_of(remote.pid, progress)) >= 2:  # its slot holds at least those two chunks
                os.kill(remote.pid, signal.SIGKILL)
                killed.append(time.monotonic())

        threading.Thread(target=watch, daemon=True).start()

    executor = coffea_wq.WorkQueueExecutor(local_workers=1, port=port, status=False, filepath=str(tmp_path),
                                           custom_init=kill_after_two_chunks)
    out = run(executor, SlowBigHist(str(progress), sleep=0.4))
    assert killed, f"the remote worker never finished two chunks:\n{(tmp_path / 'remote.log').read_text()}"
    assert remote.wait(timeout=10) == -signal.SIGKILL
    assert_equal_outputs(reference, out)
    report = coffea_wq.last_report("Processing")
    assert_each_chunk_once(report, reference["chunks"])
    assert report.partials_lost >= 1 and report.partials_returned >= 1, report


@pytest.mark.slow
@support.requires_cctools
def test_a_mixed_pool_with_a_real_work_queue_worker_equals_iterative(tmp_path, reference, processes):
    port = support.free_port()
    processes.start(helpers.worker_argv("cctools", port, tmp_path / "cctools"), env=helpers.worker_environment())
    out = run(coffea_wq.WorkQueueExecutor(local_workers=1, port=port, status=False, filepath=str(tmp_path)),
              SlowBigHist(sleep=0.2))
    assert_equal_outputs(reference, out)
    report = coffea_wq.last_report("Processing")
    assert_each_chunk_once(report, reference["chunks"])
    # the coffea-wq worker's chunks came back as partials, the real worker's one by one; 1 MiB
    # partials are about the size where they wait for an accumulation task (docs/reduction.md, 3)
    assert report.partials_returned >= 1 and report.merged_in_process >= 1


def test_the_reduction_options_are_real_and_checked():
    import warnings

    from coffea_wq.executor.compat import split_executor_args
    from coffea_wq.executor.errors import ExecutorConfigError
    from coffea_wq.executor.options import reduce_settings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "not implemented yet" warning any more
        executor = coffea_wq.WorkQueueExecutor(chunks_per_accum=3, accum_interval=10, chunks_accum_in_mem=5)
    assert reduce_settings(executor) == {"every": 3, "seconds": 10.0}
    assert split_executor_args({"chunks-per-accum": 5, "accum-interval": 30, "reduction": False})[0] == \
        {"chunks_per_accum": 5, "accum_interval": 30, "reduction": False}
    for bad in ({"chunks_per_accum": 0}, {"accum_interval": -1}, {"reduction": "yes"}, {"chunks_accum_in_mem": 0}):
        with pytest.raises(ExecutorConfigError, match=next(iter(bad))):
            coffea_wq.WorkQueueExecutor(**bad)
