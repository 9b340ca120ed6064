"""A file present on one worker's filesystem and absent on another's: its chunks run where it is.

The "blind" worker runs in its own mount namespace with an empty tmpfs over the data folder
(``unshare --mount``), as a node whose mount of the shared storage is missing. Its attempts
fail with ``FileNotFoundError``; the executor sends them to a worker that has not tried
(docs/executor.md, "When things go wrong").
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

import coffea_wq
from tests import support
from tests.executor import helpers, nano

UNSHARE = shutil.which("unshare")


def _can_hide_a_folder(tmp_path) -> bool:
    if UNSHARE is None or os.geteuid() != 0:
        return False
    probe = subprocess.run([UNSHARE, "--mount", "--propagation", "private", "sh", "-c",
                            f"mount -t tmpfs tmpfs {tmp_path}"], capture_output=True, timeout=30)
    return probe.returncode == 0


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_chunks_of_a_file_one_worker_cannot_see_succeed_on_the_worker_that_can(tmp_path, processes):
    if not _can_hide_a_folder(tmp_path):
        support.cannot_run_here("needs root and unshare --mount (util-linux) to hide a folder from one worker")
    data = tmp_path / "data"
    data.mkdir()
    fileset = helpers.make_fileset(data)
    port = support.free_port()
    env = helpers.worker_environment()
    processes.start(helpers.worker_argv("coffea-wq", port, tmp_path / "sees"), env=env)
    blind = helpers.worker_argv("coffea-wq", port, tmp_path / "blind")
    processes.start([UNSHARE, "--mount", "--propagation", "private", "sh", "-c",
                     f'mount -t tmpfs tmpfs "{data}" && exec "$@"', "sh", *blind], env=env)
    def both_workers_joined(queue) -> None:  # else a chunk the blind one failed alone is missing "everywhere"
        support.wait_until(lambda: queue.stats.workers_connected >= 2, 60, "both workers")

    executor = coffea_wq.WorkQueueExecutor(port=port, local_workers=0, status=False, retries=0,
                                           custom_init=both_workers_joined)
    runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema)
    out = runner(fileset, nano.LeptonJetProcessor(), treename="Events")
    nano.assert_same_histograms(helpers.iterative_output(fileset), out)
    reports = [coffea_wq.last_report("Preprocessing"), coffea_wq.last_report("Processing")]
    missing = sum(r.read_retries.get("missing-here", 0) for r in reports)
    # retries=0: without retrying elsewhere the first attempt on the blind worker would fail the run
    assert missing >= 1, [r.read_retries for r in reports]
    assert not any(r.skipped or r.failed for r in reports)
