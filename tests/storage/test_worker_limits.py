"""A worker whose disk fills up, and a task that runs out of memory under ``ulimit -v``.

Disk: one worker works on a 40 MB tmpfs (root needed to mount it), the other on the ordinary disk;
every chunk writes ~56 MB into its sandbox. On the small worker the write fails with ENOSPC: the
chunk is retried on the other worker, named "disk full on worker ...", and the small worker, its
sandbox removed, stays connected and empty. Memory: one worker under ``ulimit -v``; a chunk that
allocates past it raises MemoryError, which the executor treats like resource exhaustion: the
chunk is split (docs/resources.md) and the halves fit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

import coffea_wq
from tests import support
from tests.executor import helpers, nano


class WhereItRan(nano.LeptonJetProcessor):
    """Also counts the chunks that succeeded in each worker's workspace (small tmpfs or ordinary disk)."""

    def process(self, events):
        out = super().process(events)
        out["where"] = {"small" if f"{os.sep}small{os.sep}" in os.getcwd() else "big": 1}
        return out


def _mount_tmpfs(path: Path, size_mb: int) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        support.cannot_run_here("mounting a small tmpfs as a worker's workspace needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(path)],
                          capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        support.cannot_run_here(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_task_that_fills_a_workers_disk_runs_elsewhere_and_the_worker_keeps_serving(tmp_path, processes):
    fileset = helpers.make_fileset(tmp_path)
    small = tmp_path / "small"
    _mount_tmpfs(small, 40)
    try:
        port = support.free_port()
        env = helpers.worker_environment()
        processes.start(helpers.worker_argv("coffea-wq", port, small / "w"), env=env)
        processes.start(helpers.worker_argv("coffea-wq", port, tmp_path / "big"), env=env)
        # the chunks of ttlike_a1 (700 events x 80 kB) write 56 MB into their sandbox; the others nothing
        hog = WhereItRan(hog=("ttlike_a1.root", 0, 10**9, 80_000, "disk"))
        executor = coffea_wq.WorkQueueExecutor(port=port, local_workers=0, status=False, retries=0)
        runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema)
        out = runner(fileset, hog, treename="Events")
        where = out.pop("where")
        nano.assert_same_histograms(helpers.iterative_output(fileset), out)
        report = coffea_wq.last_report("Processing")
        assert report.read_retries.get("disk-full", 0) >= 1, report.read_retries
        assert where["small"] >= 1 and where["small"] + where["big"] == 7  # the small worker served too
    finally:
        processes.stop_all()
        subprocess.run(["umount", "-l", str(small)], capture_output=True, timeout=30)


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_chunk_allocating_past_ulimit_v_is_split_and_the_run_completes(tmp_path, processes):
    fileset = helpers.make_fileset(tmp_path)
    port = support.free_port()
    limited = helpers.worker_argv("coffea-wq", port, tmp_path / "limited")
    # 1.5 GB of address space: a slot (~0.6 GB) and half a chunk's ballast fit, a whole chunk's does not
    processes.start(["sh", "-c", 'ulimit -v 1500000 && exec "$@"', "sh", *limited], env=helpers.worker_environment())
    hog = nano.LeptonJetProcessor(hog=("ttlike_a1.root", 0, 700, 2_000_000, "memory"))  # 1.4 GB at 700 events
    executor = coffea_wq.WorkQueueExecutor(port=port, local_workers=0, status=False, retries=0)
    runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema)
    out = runner(fileset, hog, treename="Events")
    nano.assert_same_histograms(helpers.iterative_output(fileset), out)
    report = coffea_wq.last_report("Processing")
    assert [(item.entrystart, item.entrystop) for item, _ in report.split] == [(0, 700)]
    assert not report.failed
