"""A warm slot keeps the chunk's ROOT file open for the next chunk of that file (task_script.OpenFiles).

Each test runs coffea's own Runner closure through the real task script, in this process, with
the warm-slot module in ``sys.modules`` exactly as a slot has it, and compares with a cold run.
"""

from __future__ import annotations

import dataclasses
import pickle
import sys
import types

import cloudpickle
import pytest
import uproot
from coffea import processor
from coffea.nanoevents import NanoAODSchema
from coffea.processor.executor import ExecutorBase

from coffea_wq.executor.results.outcome import OutcomeKind, read_outcome
from coffea_wq.executor.tasks import task_script
from tests.executor import helpers, nano

SLOT = task_script.WARM_SLOT_MODULE


class ScriptExecutor(ExecutorBase):
    """Runs each item through ``task_script.run_task`` here, as one warm slot would, in order."""

    def __init__(self, workdir, **kwargs):
        super().__init__(**kwargs)
        self.workdir = workdir

    def copy(self, **kwargs):
        return ScriptExecutor(self.workdir, **{"status": False, **kwargs})

    def __call__(self, items, function, accumulator):
        fn = self.workdir / "fn.pkl"
        fn.write_bytes(cloudpickle.dumps({"function": function, "compression": 1}))
        for n, item in enumerate(items):
            item_path, out = self.workdir / f"item-{n}.pkl", self.workdir / f"out-{n}.lz4"
            item_path.write_bytes(pickle.dumps(item))
            assert task_script.run_task(str(fn), str(item_path), str(out)) == 0
            outcome = read_outcome(out)
            assert outcome.kind is OutcomeKind.OK, outcome.detail
            accumulator = processor.accumulate([outcome.value], accumulator)
        return accumulator, 0


@pytest.fixture
def slot():
    """The warm-slot module as a slot has it; its kept files are closed at the end."""
    module = types.ModuleType(SLOT)
    module.function_cache = {}
    sys.modules[SLOT] = module
    try:
        yield module
    finally:
        del sys.modules[SLOT]
        files = getattr(module, "open_files", None)
        if files is not None:
            files.close_all()


@pytest.fixture(scope="module")
def fileset(tmp_path_factory):
    return helpers.make_fileset(tmp_path_factory.mktemp("nano"))


def _run(fileset, workdir, chunksize=helpers.CHUNKSIZE):
    runner = processor.Runner(executor=ScriptExecutor(workdir, status=False), chunksize=chunksize,
                              schema=NanoAODSchema, metadata_cache={})
    return runner(fileset, nano.LeptonJetProcessor(), treename="Events")


def test_slot_opens_each_file_once_and_results_equal_iterative(fileset, slot, tmp_path):
    reference = helpers.iterative_output(fileset)
    out = _run(fileset, tmp_path)
    nano.assert_same_histograms(reference, out)
    files = slot.open_files
    # 3 files; preprocessing opens each once, and all 7 chunks then find their file open
    assert files.opens == 3
    assert files.hits == 7
    assert uproot.open is files._real_open  # the wrapper is only in place while a task runs
    assert all(not directory.closed for _identity, directory in files.files.values())


def test_cold_run_keeps_nothing(fileset, tmp_path):
    assert SLOT not in sys.modules
    real_open = uproot.open
    nano.assert_same_histograms(helpers.iterative_output(fileset), _run(fileset, tmp_path))
    assert uproot.open is real_open


def test_a_replaced_file_is_opened_again(tmp_path, slot):
    path = nano.write_nano_file(tmp_path / "f.root", 1400, seed=3)
    fileset = {"ds": [str(path)]}
    first = _run(fileset, tmp_path)
    files = slot.open_files
    assert (files.opens, files.hits) == (1, 2)
    nano.write_nano_file(path, 1400, seed=4)  # same name, other events and ROOT UUID
    second = _run(fileset, tmp_path)
    assert (files.opens, files.hits) == (2, 4)  # reopened once, for its preprocessing
    nano.assert_same_histograms(helpers.iterative_output(fileset), second)
    assert first["cutflow"] != second["cutflow"]


def test_a_file_closed_meanwhile_or_of_another_uuid_is_opened_again(tmp_path, slot):
    path = str(nano.write_nano_file(tmp_path / "f.root", 1400, seed=3))
    _run({"ds": [path]}, tmp_path)
    files = slot.open_files
    (_identity, directory), = files.files.values()
    directory.close()
    item = processor.executor.WorkItem("ds", path, "Events", 0, 700, directory.file.uuid.bytes)
    files.install(uproot, item)
    try:
        reopened = uproot.open({path: None})
        assert reopened is not directory and not reopened.closed and files.opens == 2
        assert uproot.open({path: None}) is reopened and files.hits == 3
        files._item = dataclasses.replace(item, fileuuid=b"\0" * 16)  # the item names another file
        assert uproot.open({path: None}) is not reopened and files.opens == 3
        assert reopened.closed  # the one it replaced is closed
    finally:
        files.uninstall()


def test_only_the_chunks_own_file_opened_as_coffea_does_is_kept(tmp_path, slot):
    path = str(nano.write_nano_file(tmp_path / "f.root", 100, seed=3))
    other = str(nano.write_nano_file(tmp_path / "g.root", 100, seed=4))
    files = task_script.OpenFiles(limit=1)
    item = processor.executor.WorkItem("ds", path, "Events", 0, 100, b"")
    files.install(uproot, item)
    try:
        for opened in (uproot.open(path), uproot.open({other: None}), uproot.open({path: "Events"})):
            with opened:
                pass
            assert opened.closed  # not the item's file in coffea's form: a plain open, closed as usual
        with uproot.open({path: None}) as kept:
            assert kept.file.array_cache is not None
        assert not kept.closed and isinstance(kept, uproot.reading.ReadOnlyDirectory)
        assert (files.opens, files.hits) == (1, 0)
        files._item = dataclasses.replace(item, filename=other)
        with uproot.open({other: None}):
            pass
        assert kept.closed and len(files.files) == 1  # the limit: the least recently used is closed
    finally:
        files.uninstall()
        files.close_all()
