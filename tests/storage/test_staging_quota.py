"""The manager's staging quota: an honest but huge output is refused and named, not written here."""

from __future__ import annotations

import numpy as np
import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

import coffea_wq
from coffea_wq.executor.errors import ExecutorConfigError, TaskFailedError
from coffea_wq.manager.staging_quota import over_quota, quota_bytes
from tests.executor import helpers


class HugeOutput(processor.ProcessorABC):
    """Returns 2 MB of incompressible numbers per chunk."""

    def process(self, events):
        return {"noise": np.random.default_rng(len(events)).random(250_000)}

    def postprocess(self, accumulator):
        return accumulator


def test_the_quota_is_bytes_above_one_and_a_fraction_of_the_free_disk_up_to_one(tmp_path):
    assert over_quota(0, str(tmp_path / "out"), 10**15) is None  # no quota
    assert over_quota(1000, str(tmp_path / "out"), 1000) is None
    assert over_quota(1000, str(tmp_path / "out"), 1001) == "over the staging quota of 1000 bytes"
    half = quota_bytes(0.5, str(tmp_path / "not" / "yet" / "made"))  # measured on the nearest existing folder
    assert half is not None and half > 0
    assert "of the disk space free there" in over_quota(0.5, str(tmp_path / "out"), half + 1)
    with pytest.raises(ExecutorConfigError, match="staging_quota"):
        coffea_wq.WorkQueueExecutor(staging_quota=-1)


@pytest.mark.slow
def test_an_output_over_the_quota_is_refused_and_named_without_retries(tmp_path):
    fileset = helpers.make_fileset(tmp_path)
    executor = coffea_wq.WorkQueueExecutor(local_workers=1, status=False, reduction=False, staging_quota=200_000,
                                           filepath=str(tmp_path))
    runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema)
    with pytest.raises(TaskFailedError) as info:
        runner(fileset, HugeOutput(), treename="Events")
    text = str(info.value)
    assert "refused: over the staging quota of 200000 bytes" in text and "raise staging_quota" in text
    assert info.value.attempts == 1 and info.value.filename in fileset[info.value.dataset]
    assert not list(tmp_path.glob("coffea-wq-*/outputs/*.lz4")) or \
        all(p.stat().st_size <= 200_000 for p in tmp_path.glob("coffea-wq-*/outputs/*.lz4"))  # never written
