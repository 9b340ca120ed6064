"""The executor's ``factory={...}`` option: a coffea_wq.Factory supplies the run's workers and is
stopped, its workers removed, at the end of the run, also when the run fails."""

from __future__ import annotations

import sys

import cloudpickle
import psutil
import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

import coffea_wq
from analysis_examples.topeft.cfg import fileset_from_samples, read_cfg
from analysis_examples.topeft.compare import assert_outputs_equal
from analysis_examples.topeft.processor import TopEFTLikeProcessor
from analysis_examples.topeft.work_queue_run import make_processor, quiet_crossref_warnings
from coffea_wq.executor.errors import ExecutorConfigError, TaskFailedError
from tests import support

cloudpickle.register_pickle_by_value(sys.modules[__name__])

SAMPLE_CFG = support.REPO / "analysis_examples" / "data" / "sample" / "samples.cfg"
CHUNKSIZE = 2500


def worker_processes() -> list[psutil.Process]:
    """This process's descendants that are Work Queue workers (the factory forks them from here)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            cmdline = " ".join(child.cmdline())
            if child.status() != psutil.STATUS_ZOMBIE and ("coffea_wq worker" in cmdline
                                                           or "work_queue_worker" in cmdline):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


class WorkerSpy:
    """``custom_init``: records the workers alive when each phase starts submitting."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def __call__(self, queue) -> None:
        workers = worker_processes()
        self.seen.extend(p.pid for p in workers)
        self.argv = [p.cmdline() for p in workers]


def factory_options(tmp_path, **more) -> dict:
    return {"batch_type": "local", "min_workers": 1, "max_workers": 2, "cores": 1, "timeout": 60,
            "cycle_interval": 1, "scratch_dir": str(tmp_path / "factory"), **more}


def assert_all_gone(pids: list[int]) -> None:
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, pid
    assert worker_processes() == []


@pytest.fixture(scope="module")
def fileset():
    quiet_crossref_warnings()
    return fileset_from_samples(read_cfg(SAMPLE_CFG))


@pytest.fixture(scope="module")
def reference(fileset):
    runner = processor.Runner(executor=processor.IterativeExecutor(status=False), chunksize=CHUNKSIZE,
                              schema=NanoAODSchema)
    return runner(fileset, TopEFTLikeProcessor(), treename="Events")


@pytest.mark.slow
def test_factory_option_serves_the_run_and_removes_its_workers(tmp_path, fileset, reference):
    assert worker_processes() == []
    spy = WorkerSpy()
    executor = coffea_wq.WorkQueueExecutor(local_workers=0, status=False, custom_init=spy,
                                           factory=factory_options(tmp_path))
    runner = processor.Runner(executor=executor, chunksize=CHUNKSIZE, schema=NanoAODSchema, metadata_cache={})
    out = runner(fileset, make_processor(), treename="Events")
    assert_outputs_equal(reference, out)
    # the factory's first cycle ran before preprocessing submitted anything: its minimum was there
    assert spy.seen, "no factory worker was alive when the run started"
    assert_all_gone(spy.seen)
    assert list((tmp_path / "factory" / "logs").glob("local-*.log"))


@pytest.mark.slow
def test_factory_workers_get_the_runs_password_and_tls(tmp_path, fileset, reference):
    # min_workers=0: every worker comes from demand, which the factory reads in-process (a password
    # and TLS close the manager's port to status queries)
    spy = WorkerSpy()
    executor = coffea_wq.WorkQueueExecutor(local_workers=0, status=False, custom_init=spy, ssl=True,
                                           factory=factory_options(tmp_path, min_workers=0))
    runner = processor.Runner(executor=executor, chunksize=CHUNKSIZE, schema=NanoAODSchema, metadata_cache={})
    out = runner(fileset, make_processor(), treename="Events")
    assert_outputs_equal(reference, out)
    assert spy.argv and all("--ssl" in argv and "-P" in argv for argv in spy.argv)
    assert_all_gone(spy.seen)


@pytest.mark.slow
def test_factory_through_run_uproot_job_executor_args(tmp_path, fileset, reference):
    spy = WorkerSpy()
    args = {"schema": NanoAODSchema, "status": False, "custom-init": spy,
            "factory": {"batch-type": "local", "min-workers": 1, "max-workers": 2, "cores": 1, "timeout": 60,
                        "cycle-interval": 1, "scratch-dir": str(tmp_path / "factory")}}
    out = coffea_wq.run_uproot_job(fileset, "Events", make_processor(), executor=coffea_wq.work_queue_executor,
                                   executor_args=args, chunksize=CHUNKSIZE)
    assert_outputs_equal(reference, out)
    assert spy.seen
    assert_all_gone(spy.seen)
    assert args["factory"]["max-workers"] == 2  # the caller's dict is untouched


def fails_on_every_chunk(events):
    raise ValueError("deliberate failure")


@pytest.mark.slow
def test_factory_workers_are_removed_when_the_run_fails(tmp_path, fileset):
    spy = WorkerSpy()
    executor = coffea_wq.WorkQueueExecutor(status=False, retries=0, custom_init=spy,
                                           factory=factory_options(tmp_path, min_workers=2))
    runner = processor.Runner(executor=executor, chunksize=CHUNKSIZE, schema=NanoAODSchema, metadata_cache={})
    with pytest.raises(TaskFailedError, match="deliberate failure"):
        runner(fileset, fails_on_every_chunk, treename="Events")
    assert len(set(spy.seen)) >= 1
    assert_all_gone(spy.seen)


def test_factory_option_errors_name_the_key():
    with pytest.raises(ExecutorConfigError, match="factory: unknown key 'max-worker'; did you mean 'max_workers'"):
        coffea_wq.WorkQueueExecutor(factory={"max-worker": 2})
    with pytest.raises(ExecutorConfigError, match="batch_type 'pbs' is not one of"):
        coffea_wq.WorkQueueExecutor(factory={"batch-type": "pbs"})
    with pytest.raises(ExecutorConfigError, match="expected a dict"):
        coffea_wq.WorkQueueExecutor(factory=4)


def test_factory_means_no_local_workers_by_default():
    from coffea_wq.executor.options import resolved_local_workers

    assert resolved_local_workers(coffea_wq.WorkQueueExecutor(factory={"max_workers": 2})) == 0
    assert resolved_local_workers(coffea_wq.WorkQueueExecutor(factory={"max_workers": 2}, local_workers=1)) == 1


def test_invalid_factory_setting_fails_when_the_run_starts(tmp_path, fileset):
    # min above max is only known to the factory's own validation: the error names it, nothing is left
    executor = coffea_wq.WorkQueueExecutor(status=False, factory=factory_options(tmp_path, min_workers=3))
    runner = processor.Runner(executor=executor, chunksize=CHUNKSIZE, schema=NanoAODSchema, metadata_cache={})
    with pytest.raises(ExecutorConfigError, match=r"factory: min-workers \(3\) is greater than max-workers \(2\)"):
        runner(fileset, make_processor(), treename="Events")
    assert worker_processes() == []
    assert coffea_wq.executor.session.open_sessions() == []
