"""checkpoint_dir: results kept on the submit host, a rerun after SIGKILL submits only the rest."""

from __future__ import annotations

import json
import pickle
import stat
import time
from pathlib import Path

import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema
from coffea.processor import SimpleCheckpointer
from coffea.processor.executor import WorkItem

import coffea_wq
from analysis_examples.topeft.compare import assert_outputs_equal
from analysis_examples.topeft.processor import TopEFTLikeProcessor
from coffea_wq.executor.errors import ExecutorConfigError
from coffea_wq.executor.results.checkpoint import CheckpointStore, source_id
from coffea_wq.executor.tasks import task_script
from tests import support
from tests.executor import helpers, lifecycle_child, nano
from tests.executor.test_lifecycle import (
    CHUNKSIZE,
    TOTAL_CHUNKS,
    finish,
    result_of,
    start_child,
    wait_for_progress,
)


def item(start: int, stop: int, dataset: str = "d") -> WorkItem:
    return WorkItem(dataset, "/data/f.root", "Events", start, stop, b"\x01" * 16)


def store_value(store: CheckpointStore, work_item: WorkItem, value, tmp_path: Path) -> None:
    record = tmp_path / "record.lz4"
    task_script._write_record(str(record), {"status": "ok", "value": value}, 1)
    store.save(work_item, record)


def test_stored_ranges_need_not_match_the_new_chunks(tmp_path):
    store = CheckpointStore(tmp_path / "ckpt", "digest-a")
    store_value(store, item(0, 300), {"n": 300}, tmp_path)
    store_value(store, item(300, 450), {"n": 150}, tmp_path)
    store_value(store, item(0, 300, dataset="other"), {"n": -1}, tmp_path)  # another dataset: not ours
    found = store.restore([item(0, 200), item(200, 400), item(400, 600)])
    assert sorted((i.entrystart, i.entrystop, v["n"]) for i, v in found.results) == [(0, 300, 300), (300, 450, 150)]
    assert [(i.entrystart, i.entrystop) for i in found.remaining] == [(450, 600)]
    assert found.remaining[0].fileuuid == b"\x01" * 16 and found.remaining[0].dataset == "d"
    folder = tmp_path / "ckpt" / "digest-a" / source_id(item(0, 1))
    assert json.loads((folder / "source.json").read_text())["dataset"] == "d"
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_another_processor_or_a_corrupt_record_is_processed_again(tmp_path, caplog):
    store = CheckpointStore(tmp_path / "ckpt", "digest-a")
    store_value(store, item(0, 100), {"n": 100}, tmp_path)
    store_value(store, item(100, 200), {"n": 100}, tmp_path)
    other = CheckpointStore(tmp_path / "ckpt", "digest-b")
    assert other.restore([item(0, 100)]).results == []
    assert "digest-a" in caplog.text and "none match" in caplog.text
    corrupt = next((tmp_path / "ckpt" / "digest-a").glob("*/100-200.lz4"))
    corrupt.write_bytes(b"garbage")
    found = store.restore([item(0, 100), item(100, 200)])
    assert [i.entrystart for i, _ in found.results] == [0]
    assert [(i.entrystart, i.entrystop) for i in found.remaining] == [(100, 200)]
    assert "100-200.lz4 cannot be used" in caplog.text


def test_checkpoint_dir_must_be_a_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ExecutorConfigError, match="checkpoint_dir"):
        coffea_wq.WorkQueueExecutor(checkpoint_dir=str(tmp_path / "file"))


@pytest.mark.slow
def stored_chunks(checkpoint_dir: Path) -> int:
    """Chunks in a checkpoint folder: one per result file, and each chunk a bundle's manifest names."""
    singles = [p for p in checkpoint_dir.glob("*/*/*.lz4") if p.parent.name != "bundles"]
    bundled = sum(len(json.loads(m.read_text())["chunks"]) for m in checkpoint_dir.glob("*/bundles/*.json"))
    return len(singles) + bundled


@pytest.mark.parametrize("reduction", [False, True], ids=["per-chunk", "reduction"])
def test_sigkilled_run_resumes_with_remote_workers_and_equals_iterative(tmp_path, processes, reduction):
    port = support.free_port()
    env = helpers.worker_environment()
    for index in range(2):
        processes.start(helpers.worker_argv("coffea-wq", port, tmp_path / f"w{index}"), env=env)
    # with reduction a partial is stored once it comes back: every 3 chunks here (docs/reduction.md, 5)
    settings = {"local_workers": 0, "port": port, "checkpoint_dir": str(tmp_path / "ckpt"), "reduction": reduction,
                **({"chunks_per_accum": 3} if reduction else {})}
    child, first = start_child(tmp_path, **settings)
    wait_for_progress(child, first, 0.5)
    child.kill()
    finish(child)
    stored = stored_chunks(tmp_path / "ckpt")
    bundles = list((tmp_path / "ckpt").glob("*/bundles/*.json"))
    assert bool(bundles) == reduction
    assert 0.3 * TOTAL_CHUNKS <= stored < TOTAL_CHUNKS
    rerun, second = start_child(tmp_path, output=str(tmp_path / "out.pkl"), **settings)
    result = result_of(finish(rerun, timeout=240)[0])
    assert result["restored"] == stored and result["counted_twice"] == 0
    assert result["submitted"] < 0.7 * TOTAL_CHUNKS
    reference = processor.Runner(executor=processor.IterativeExecutor(status=False), chunksize=CHUNKSIZE,
                                 schema=NanoAODSchema)(lifecycle_child.fileset(), TopEFTLikeProcessor(),
                                                       treename="Events")
    assert_outputs_equal(reference, pickle.loads((tmp_path / "out.pkl").read_bytes()))


@pytest.mark.slow
def test_resume_with_dynamic_chunksize_and_coffeas_own_checkpointer(tmp_path):
    fileset = helpers.make_fileset(tmp_path / "nano")
    ours, theirs = tmp_path / "ckpt", tmp_path / "coffea-ckpt"

    def run(files: dict) -> dict:
        executor = coffea_wq.WorkQueueExecutor(local_workers=2, status=False, checkpoint_dir=str(ours),
                                               dynamic_chunksize={"wall_time": 0.5}, filepath=str(tmp_path))
        runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema,
                                  metadata_cache={}, checkpointer=SimpleCheckpointer(str(theirs)))
        return runner(files, nano.LeptonJetProcessor(sleep_per_event=0.0002), treename="Events")

    started = time.monotonic()
    run({"ttlike": fileset["ttlike"]})  # as if the run had stopped after this dataset
    first = coffea_wq.last_report("Processing")
    assert first.restored == [] and list(theirs.rglob("*.coffea"))  # coffea's checkpointer ran on the workers
    out = run(fileset)
    second = coffea_wq.last_report("Processing")
    assert {i.dataset for i in second.restored} == {"ttlike"}
    assert sum(i.entrystop - i.entrystart for i in second.restored) == 2800  # both ttlike files
    assert {i.dataset for i in second.accumulated if i not in second.restored} == {"dylike"}
    nano.assert_same_histograms(helpers.iterative_output(fileset), out)
    assert time.monotonic() - started < 120
