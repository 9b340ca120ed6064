"""Preprocessing in batches of files, a bad file inside a batch, and preprocessing kept in checkpoint_dir."""

from __future__ import annotations

import os

import awkward as ak
import pytest
from coffea import processor
from coffea.nanoevents import BaseSchema, NanoAODSchema

import coffea_wq
from coffea_wq.executor.errors import TaskFailedError
from coffea_wq.executor.tasks.preprocessing import expected_tasks
from tests.executor import helpers, nano


class CountEvents(processor.ProcessorABC):
    """As cheap as a processor gets: the scale tests measure the executor, not the analysis."""

    def process(self, events):
        return {"events": len(events), "files": {events.metadata["filename"]}, "sum": float(ak.sum(events.run))}

    def postprocess(self, accumulator):
        return accumulator


def many_entries_of_one_file(directory, count: int, events: int = 20) -> dict[str, list[str]]:
    """``count`` files that are links to one small NanoAOD file: a huge fileset at no cost in disk."""
    source = nano.write_nano_file(directory / "one.root", events, seed=5)
    names = []
    for index in range(count):
        link = directory / f"f{index:06d}.root"
        os.symlink(source, link)
        names.append(str(link))
    return {"many": names}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_thousand_files_are_preprocessed_in_batches(tmp_path):
    """The CI-sized variant of benchmarks/bench_huge_fileset.py (100,000 files, processed too)."""
    fileset = many_entries_of_one_file(tmp_path, 2000)
    executor = coffea_wq.WorkQueueExecutor(local_workers=2, status=False)
    runner = processor.Runner(executor=executor, chunksize=1000, schema=BaseSchema)
    chunks = list(runner.preprocess(fileset, treename="Events"))
    pre = coffea_wq.last_report("Preprocessing")
    assert pre.tasks_submitted == expected_tasks(2000, None) <= 2000 // 10  # 200 tasks of 10 files
    assert len(chunks) == 2000 and {c.filename for c in chunks} == set(fileset["many"])
    out = runner.run(chunks[:100], CountEvents(), treename="Events")["out"]  # a sample; the benchmark runs all
    assert out["events"] == 100 * 20 and len(out["files"]) == 100


@pytest.mark.slow
def test_a_bad_file_in_a_batch_is_named_and_skipped_alone(tmp_path):
    fileset = helpers.make_fileset(tmp_path)
    files = fileset["ttlike"] + fileset["dylike"]
    missing = str(tmp_path / "missing.root")
    broken = {"ttlike": [*fileset["ttlike"], missing], "dylike": fileset["dylike"]}
    executor = coffea_wq.WorkQueueExecutor(local_workers=2, status=False, preprocessing_batch=2)
    runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema, skipbadfiles=True)
    out = runner(broken, nano.LeptonJetProcessor(), treename="Events")
    nano.assert_same_histograms(helpers.iterative_output(fileset), out)
    pre = coffea_wq.last_report("Preprocessing")
    assert [s.filename for s in pre.skipped] == [missing]
    assert len(pre.bad_files) == 1 and "missing.root" in pre.bad_files[0]
    assert len(pre.split) == 1 and len(pre.split[0][1]) == 2  # the failed batch ran again as single files
    # 2 batches, the failed one's 2 files alone, the missing file once more on the other worker
    assert pre.tasks_submitted == 2 + 2 + 1 and len(files) + 1 == 4
    assert pre.read_retries == {"missing-here": 1}
    with pytest.raises(TaskFailedError, match="missing.root"):  # named without skipbadfiles too
        processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema)(
            broken, nano.LeptonJetProcessor(), treename="Events")


@pytest.mark.slow
def test_a_rerun_with_checkpoint_dir_does_no_preprocessing(tmp_path):
    fileset = helpers.make_fileset(tmp_path)
    calls: list[str] = []
    executor = coffea_wq.WorkQueueExecutor(local_workers=1, status=False, checkpoint_dir=str(tmp_path / "ckpt"),
                                           custom_init=lambda queue: calls.append("call"))

    def run():
        # a fresh metadata cache each time, as in a new Python process
        runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema,
                                  metadata_cache={})
        return runner(fileset, nano.LeptonJetProcessor(), treename="Events")

    first = run()
    assert len(calls) == 2 and (tmp_path / "ckpt" / "preprocessing").is_dir()
    second = run()
    assert len(calls) == 3  # only the processing call: no preprocessing task
    nano.assert_same_histograms(first, second)
    nano.assert_same_histograms(helpers.iterative_output(fileset), second)
