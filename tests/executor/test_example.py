"""Acceptance on the project's example: TopEFTLikeProcessor over the bundled NanoAOD sample."""

from __future__ import annotations

import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

import coffea_wq
from analysis_examples.topeft.cfg import fileset_from_samples, read_cfg
from analysis_examples.topeft.compare import assert_outputs_equal
from analysis_examples.topeft.processor import TopEFTLikeProcessor
from coffea_wq.executor import last_report
from tests import support

pytestmark = pytest.mark.slow

SAMPLE_CFG = support.REPO / "analysis_examples" / "data" / "sample" / "samples.cfg"
CHUNKSIZE = 1500


@pytest.fixture(scope="module")
def fileset():
    return fileset_from_samples(read_cfg(SAMPLE_CFG))


@pytest.fixture(scope="module")
def reference(fileset):
    runner = processor.Runner(executor=processor.IterativeExecutor(status=False), chunksize=CHUNKSIZE,
                              schema=NanoAODSchema)
    return runner(fileset, TopEFTLikeProcessor(), treename="Events")


def test_example_through_runner_equals_iterative(fileset, reference):
    executor = coffea_wq.WorkQueueExecutor(local_workers=2, status=False)
    runner = processor.Runner(executor=executor, chunksize=CHUNKSIZE, schema=NanoAODSchema, metadata_cache={})
    out = runner(fileset, TopEFTLikeProcessor(), treename="Events")
    assert_outputs_equal(reference, out)
    assert len(last_report("Processing").accumulated) > 2


def test_example_through_run_uproot_job_equals_iterative(fileset, reference):
    out = coffea_wq.run_uproot_job(fileset, "Events", TopEFTLikeProcessor(), executor=coffea_wq.work_queue_executor,
                                   executor_args={"schema": NanoAODSchema, "local-workers": 2, "status": False},
                                   chunksize=CHUNKSIZE)
    assert_outputs_equal(reference, out)
