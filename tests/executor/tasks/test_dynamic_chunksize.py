"""dynamic_chunksize: chunks re-cut to a wall-time or memory target, with the same output."""

from __future__ import annotations

import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema
from coffea.processor.executor import WorkItem

import coffea_wq
from coffea_wq.executor import last_report
from coffea_wq.executor.errors import ExecutorConfigError
from coffea_wq.executor.tasks.dynamic_chunks import ChunkSizeModel, EntryRanges, parse_targets
from tests.executor import helpers, nano


@pytest.mark.parametrize("option, culprit", [
    ({"walltime": 60}, "'walltime'"),
    ({"wall_time": -1}, "wall_time=-1"),
    ({"memory": "2GB"}, "memory='2GB'"),
    ({}, "expected a dict"),
    (60, "expected a dict"),
])
def test_bad_targets_are_config_errors_naming_the_culprit(option, culprit):
    with pytest.raises(ExecutorConfigError, match=culprit):
        coffea_wq.WorkQueueExecutor(dynamic_chunksize=option)


def test_a_single_target_is_enough():
    # coffea 0.7 needed "memory" as soon as it had two reports, even with only "wall_time" given
    assert parse_targets({"wall_time": 60}) == {"wall_time": 60.0}
    model = ChunkSizeModel(parse_targets({"wall_time": 60}), base=1000)
    for events, seconds in ((1000, 1.0), (2000, 2.0), (4000, 4.0)):
        model.observe(events, seconds, memory_mb=None)
    assert model.size() == 32768  # 1000 events/s x 60 s = 60000, rounded down to a power of two


def test_the_memory_fit_absorbs_the_interpreter_baseline():
    model = ChunkSizeModel({"memory": 2000.0}, base=1000)
    for events in (1000, 2000, 3000, 4000):
        model.observe(events, wall_time_s=None, memory_mb=300 + events / 100)  # 300 MB before any event
    # events = 100 * (memory - 300): 170,000 events fit 2000 MB; a ratio through zero would say 2000 * 10 / 1.3
    assert model.size() == 131072


def test_the_smallest_prediction_wins_and_the_base_holds_until_two_reports():
    model = ChunkSizeModel({"wall_time": 60.0, "memory": 2000.0}, base=5000)
    model.observe(1000, 1.0, 300 + 10)
    assert model.size() == 4096  # one report is no model: the base, as a power of two
    model.observe(2000, 2.0, 300 + 20)
    assert model.size() == 32768  # wall time allows 60000, memory 170000
    model.lower_to(700)  # a chunk of 1400 exhausted its resources
    assert model.size() == 512


def _item(filename, start, stop, dataset="d"):
    return WorkItem(dataset, filename, "Events", start, stop, b"uuid-" + filename.encode())


def test_entry_ranges_join_a_files_chunks_and_cut_each_event_exactly_once():
    items = [_item("a", 0, 700), _item("a", 700, 1400), _item("a", 1400, 2000), _item("b", 0, 700),
             _item("b", 700, 1000), _item("a", 5000, 5100, dataset="other")]
    ranges = EntryRanges(items)
    assert ranges.events == 2000 + 1000 + 100
    sizes = [256, 256, 1024, 4096, 100, 100]
    chunks = []
    while (chunk := ranges.cut(sizes[min(len(chunks), len(sizes) - 1)])) is not None:
        chunks.append(chunk)
    covered = sorted((c.dataset, c.filename, c.entrystart, c.entrystop) for c in chunks)
    # 512 + 1024 would leave 464 events, less than half a chunk: they join that chunk; never across files
    assert [(c.entrystart, c.entrystop) for c in chunks[:4]] == [(0, 256), (256, 512), (512, 2000), (0, 1000)]
    assert all(c.fileuuid == b"uuid-" + c.filename.encode() for c in chunks)  # nothing but the range changes
    for (d1, f1, _, stop), (d2, f2, start, _) in zip(covered, covered[1:], strict=False):
        if (d1, f1) == (d2, f2):
            assert stop == start  # no gap, no overlap
    assert sum(c.entrystop - c.entrystart for c in chunks) == ranges.events
    assert {(c.dataset, c.filename) for c in chunks} == {("d", "a"), ("d", "b"), ("other", "a")}


@pytest.mark.slow
def test_dynamic_chunks_follow_the_target_and_give_the_iterative_output(tmp_path):
    fileset = helpers.make_fileset(tmp_path)
    # 0.2 ms per event: a 700-event chunk takes over 140 ms, the 40 ms target fits at most 200 events
    executor = coffea_wq.WorkQueueExecutor(local_workers=2, status=False, dynamic_chunksize={"wall_time": 0.04})
    runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema)
    out = runner(fileset, nano.LeptonJetProcessor(sleep_per_event=0.0002), treename="Events")
    nano.assert_same_histograms(helpers.iterative_output(fileset), out)
    report = last_report("Processing")
    # chunks are cut file after file, in entry order; they come back merged in any order (partials)
    files = [path for paths in fileset.values() for path in paths]
    cut_order = sorted(report.accumulated, key=lambda item: (files.index(item.filename), item.entrystart))
    sizes = [item.entrystop - item.entrystart for item in cut_order]
    assert sum(sizes) == 5000 and not report.failed
    # the first chunks have the Runner's size (as a power of two); once two came back, the target's
    assert sizes[0] == 512 and max(sizes[-5:]) <= 256 and report.items == len(report.accumulated) > 7


def test_run_uproot_job_passes_dynamic_chunksize_to_the_executor(tmp_path):
    # checked before anything runs: a bad target from either spelling is the executor's error
    with pytest.raises(ExecutorConfigError, match="'walltime'"):
        coffea_wq.run_uproot_job({"d": [str(tmp_path / "none.root")]}, "Events", nano.LeptonJetProcessor(),
                                 executor_args={"local-workers": 0}, dynamic_chunksize={"walltime": 60})
    with pytest.raises(ExecutorConfigError, match="'walltime'"):
        coffea_wq.run_uproot_job({"d": [str(tmp_path / "none.root")]}, "Events", nano.LeptonJetProcessor(),
                                 executor_args={"local-workers": 0, "dynamic-chunksize": {"walltime": 60}})
