"""Acceptance: WorkQueueExecutor's histograms and cutflow equal IterativeExecutor's, bin by bin."""

from __future__ import annotations

import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

import coffea_wq
from coffea_wq.executor import last_report
from tests import support
from tests.executor import helpers, nano

pytestmark = pytest.mark.slow


def _run(executor, fileset, **runner_options):
    # a fresh metadata cache: preprocessing runs as tasks too (Runner's default cache is global)
    runner = processor.Runner(executor=executor, chunksize=helpers.CHUNKSIZE, schema=NanoAODSchema,
                              metadata_cache={}, **runner_options)
    return runner(fileset, nano.LeptonJetProcessor(), treename="Events")


def _assert_every_chunk_once(fileset):
    report = last_report("Processing")
    assert report is not None and report.failed == [] and report.duplicates_ignored == 0
    assert sorted(report.accumulated, key=repr) == sorted(helpers.all_chunks(fileset), key=repr)


def test_runner_with_two_local_workers(fileset, reference, tmp_path):
    out = _run(coffea_wq.WorkQueueExecutor(local_workers=2, status=False, filepath=str(tmp_path)), fileset)
    nano.assert_same_histograms(reference, out)
    assert len(out["pid"]) > 1  # chunks really ran in other processes
    _assert_every_chunk_once(fileset)
    preprocessing = last_report("Preprocessing")
    assert preprocessing is not None and len(preprocessing.accumulated) == 3  # one task per file
    assert list(tmp_path.iterdir()) == []  # staging directory removed at the end


def test_run_uproot_job_with_a_topeft_style_dict(fileset, reference, tmp_path):
    extra = tmp_path / "topeft.py"
    extra.write_text("# shipped with every task\n")
    executor_args = {
        "schema": NanoAODSchema, "master-name": "coffea-wq-test-topeft", "port": [9123, 9130],
        "local-workers": 2, "extra-input-files": [str(extra)], "cores": 1, "memory": 4000, "disk": 4000,
        "verbose": False, "debug-log": str(tmp_path / "debug.log"),
        "transactions-log": str(tmp_path / "tr.log"), "stats-log": str(tmp_path / "stats.log"),
        "skipbadfiles": False, "xrootdtimeout": 180, "retries": 2, "compression": 9, "status": False,
        "filepath": str(tmp_path),
    }
    snapshot = repr(executor_args)
    out = coffea_wq.run_uproot_job(fileset, "Events", nano.LeptonJetProcessor(),
                                   executor=coffea_wq.work_queue_executor, executor_args=executor_args,
                                   chunksize=helpers.CHUNKSIZE)
    assert repr(executor_args) == snapshot  # the caller's dict is unchanged
    nano.assert_same_histograms(reference, out)
    _assert_every_chunk_once(fileset)
    assert (tmp_path / "tr.log").stat().st_size > 0 and (tmp_path / "stats.log").stat().st_size > 0


def test_run_uproot_job_rejects_a_misspelt_key(fileset):
    args = {"schema": NanoAODSchema, "manger-name": "x"}
    with pytest.raises(ValueError, match=r"'manger-name'.*'manager_name'"):
        coffea_wq.run_uproot_job(fileset, "Events", nano.LeptonJetProcessor(), executor_args=args)
    assert args == {"schema": NanoAODSchema, "manger-name": "x"}


def _external_workers(processes, kinds, port, tmp_path):
    env = helpers.worker_environment()
    for index, kind in enumerate(kinds):
        processes.start(helpers.worker_argv(kind, port, tmp_path / f"w{index}"), env=env)


@support.requires_cctools
def test_two_real_cctools_workers(fileset, reference, processes, tmp_path, capsys):
    port = support.free_port()
    _external_workers(processes, ["cctools", "cctools"], port, tmp_path)
    out = _run(coffea_wq.WorkQueueExecutor(port=port, local_workers=0, status=False, verbose=True), fileset)
    nano.assert_same_histograms(reference, out)
    _assert_every_chunk_once(fileset)
    printed = capsys.readouterr().out
    assert f"Listening for work queue workers on port {port}." in printed
    chunks = helpers.all_chunks(fileset)
    assert printed.count("complete: python3 coffea_wq_task.py") == 3 + len(chunks)  # per file, per chunk
    assert "    Allocated cores: 1" in printed and "entries [0, " in printed


@support.requires_cctools
def test_mixed_pool_of_a_real_and_a_coffea_wq_worker(fileset, reference, processes, tmp_path):
    port = support.free_port()
    _external_workers(processes, ["cctools", "coffea-wq"], port, tmp_path)
    out = _run(coffea_wq.WorkQueueExecutor(port=port, local_workers=0, status=False), fileset)
    nano.assert_same_histograms(reference, out)
    _assert_every_chunk_once(fileset)
