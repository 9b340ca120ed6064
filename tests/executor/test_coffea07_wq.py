"""Acceptance: a coffea 0.7 Work Queue test, in our words, runs unchanged on coffea-wq.

What coffea 0.7's own Work Queue test does: ``import work_queue as wq`` (here an import shim onto
``coffea_wq.work_queue``), a ``wq.Factory("local", manager_host_port=...)`` with one 4-core worker
set up through attributes, and ``run_uproot_job`` with coffea's Work Queue executor and fixed
resources over sample files given by RELATIVE paths (``./samples/...``), which the executor must
send to the workers. Both worker kinds; the histograms must equal IterativeExecutor's.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

import coffea_wq
from analysis_examples.topeft.cfg import fileset_from_samples, read_cfg
from analysis_examples.topeft.compare import assert_outputs_equal
from analysis_examples.topeft.work_queue_run import make_processor, quiet_crossref_warnings
from coffea_wq.executor.errors import ExecutorConfigError, TaskFailedError
from coffea_wq.executor.tasks.staging import shipped_input_name
from tests import support

SAMPLE_CFG = support.REPO / "analysis_examples" / "data" / "sample" / "samples.cfg"
CHUNKSIZE = 5000
SHIM = "import sys\nimport coffea_wq.work_queue\nsys.modules[__name__] = coffea_wq.work_queue\n"


@pytest.fixture
def relative_fileset(tmp_path, monkeypatch):
    """The bundled samples copied to ``./samples`` of a fresh working directory, named relatively."""
    quiet_crossref_warnings()
    fileset = fileset_from_samples(read_cfg(SAMPLE_CFG))
    (tmp_path / "samples").mkdir()
    for spec in fileset.values():
        first = Path(spec["files"][0])
        shutil.copy(first, tmp_path / "samples" / first.name)
        spec["files"] = [f"./samples/{first.name}"]
    monkeypatch.chdir(tmp_path)
    return fileset


@pytest.fixture
def work_queue_shim(tmp_path, monkeypatch):
    """``import work_queue`` gives coffea_wq.work_queue, as a user's shim module on PYTHONPATH does."""
    shims = tmp_path / "shims"
    shims.mkdir()
    (shims / "work_queue.py").write_text(SHIM)
    monkeypatch.syspath_prepend(str(shims))
    monkeypatch.delitem(sys.modules, "work_queue", raising=False)
    import work_queue

    yield work_queue
    monkeypatch.delitem(sys.modules, "work_queue", raising=False)


@pytest.mark.slow
@pytest.mark.parametrize("worker_kind", [
    "coffea-wq", pytest.param("cctools", marks=[support.requires_cctools, pytest.mark.cctools])])
def test_relative_sample_paths_with_a_factory_from_the_shim(worker_kind, relative_fileset, work_queue_shim,
                                                          monkeypatch, tmp_path):
    wq = work_queue_shim
    assert wq.Factory is coffea_wq.Factory
    # a named manager advertises itself: to a catalog address that is ours and silent
    monkeypatch.setenv("CATALOG_HOST", support.LOOPBACK)
    monkeypatch.setenv("CATALOG_PORT", str(support.free_port()))
    if worker_kind == "cctools":
        # CCTools' worker gives tasks its own PATH: the user's environment, activated
        monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:/usr/bin:/bin")
    port = support.free_port()

    workers = wq.Factory(batch_type="local", manager_host_port=f"localhost:{port}")
    workers.max_workers = 1
    workers.min_workers = 1
    workers.cores = 4
    workers.memory = 1000
    workers.disk = 4000
    workers.scratch_dir = str(tmp_path / "factory")
    workers.cycle_interval = 1
    if worker_kind == "cctools":
        workers.worker_binary = "work_queue_worker"
    executor_args = {"schema": NanoAODSchema, "compression": 2, "environment_file": None,
                     "resources_mode": "fixed", "cores": 2, "memory": 500, "disk": 1000,
                     "master_name": "coffea_test", "port": port, "print_stdout": False, "status": False}
    with workers:
        out = coffea_wq.run_uproot_job(relative_fileset, "Events", make_processor(),
                                       executor=coffea_wq.work_queue_executor, executor_args=executor_args,
                                       chunksize=CHUNKSIZE)
    reference = processor.Runner(executor=processor.IterativeExecutor(status=False), chunksize=CHUNKSIZE,
                                 schema=NanoAODSchema)(relative_fileset, make_processor(), treename="Events")
    assert_outputs_equal(reference, out)


def test_which_paths_are_shipped(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert shipped_input_name("./samples/a.root") == "samples/a.root"
    assert shipped_input_name("samples/sub/../b.root") == "samples/b.root"
    assert shipped_input_name("/abs/a.root") is None
    assert shipped_input_name("root://eos.example//store/a.root") is None
    assert shipped_input_name("https://example.org/a.root") is None
    with pytest.raises(ExecutorConfigError, match=r"'\.\./up\.root' is outside the current directory"):
        shipped_input_name("../up.root")


@pytest.mark.slow
def test_without_shipping_relative_paths_are_not_found_on_workers(relative_fileset, tmp_path):
    executor = coffea_wq.WorkQueueExecutor(ship_input_files=False, local_workers=1, retries=0, status=False,
                                           filepath=str(tmp_path))
    runner = processor.Runner(executor=executor, chunksize=CHUNKSIZE, schema=NanoAODSchema, metadata_cache={})
    with pytest.raises(TaskFailedError, match=r"file './samples/.*FileNotFoundError.*/t\.\d+/samples/"):
        runner(relative_fileset, make_processor(), treename="Events")
