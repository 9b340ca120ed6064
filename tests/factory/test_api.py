"""`coffea_wq.Factory` as a context manager around a run, as CCTools' `work_queue.Factory`."""

from __future__ import annotations

import time

import psutil
import pytest

import coffea_wq
from coffea_wq.factory.config import ConfigError
from tests.support import requires_cctools, wait_until


@requires_cctools
@pytest.mark.slow
def test_factory_context_manager_serves_a_coffea_wq_manager_and_removes_its_workers(tmp_path):
    import coffea_wq.work_queue as wq

    q = wq.WorkQueue(port=0, name="fac-api")
    try:
        for i in range(3):
            task = wq.Task(f"echo api {i}")
            task.specify_cores(1)
            q.submit(task)
        with coffea_wq.Factory("local", manager=q, min_workers=1, max_workers=2, cores=1, timeout=30,
                               cycle_interval=1, scratch_dir=tmp_path / "scratch") as factory:
            # The first cycle ran in start(): the minimum is there before the with-body starts.
            assert len(factory.job_ids()) >= 1
            outputs = []
            deadline = time.monotonic() + 90
            while len(outputs) < 3 and time.monotonic() < deadline:
                task = q.wait(1)
                if task:
                    outputs.append(task.output.strip())
            assert sorted(outputs) == ["api 0", "api 1", "api 2"]
            pids = [int(job) for job in factory.job_ids()]
            # Settings change while running, as attributes (CCTools' Factory style).
            factory.max_workers = 1
            assert factory.max_workers == 1
            wait_until(lambda: len(factory.job_ids()) == 1, 30, "the pool to follow max_workers=1")
        # Leaving the block removed every worker it had started.
        for pid in pids:
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    finally:
        q.shutdown_workers(0)


def test_factory_rejects_unknown_and_invalid_settings(tmp_path):
    with pytest.raises(TypeError, match="unknown setting.*max_worker"):
        coffea_wq.Factory("local", manager_name="x", max_worker=3)
    with pytest.raises(ConfigError, match="min-workers \\(4\\) is greater than max-workers \\(2\\)"):
        coffea_wq.Factory("local", manager_name="x", min_workers=4, max_workers=2, scratch_dir=tmp_path)
    with pytest.raises(ConfigError, match="manager_host_port must be HOST:PORT"):
        coffea_wq.Factory("local", manager_host_port="localhost", scratch_dir=tmp_path)
    factory = coffea_wq.Factory("local", manager_name="x", min_workers=0, max_workers=2, scratch_dir=tmp_path,
                                python_package=tmp_path / "env.tar.gz")
    assert factory.python_env == tmp_path / "env.tar.gz"  # CCTools' name is an alias
    with pytest.raises(ConfigError, match="min-workers \\(3\\) is greater than max-workers \\(2\\)"):
        factory.min_workers = 3
    assert factory.min_workers == 0


def test_cctools_only_options_are_accepted_and_remembered(tmp_path, caplog):
    # what CCTools' Python Factory takes that means nothing here: its binary, log file, debug flags
    factory = coffea_wq.Factory("local", manager_name="x", min_workers=0, scratch_dir=tmp_path,
                                factory_binary="/usr/bin/work_queue_factory", log_file="factory.log")
    with caplog.at_level("INFO", logger="coffea_wq.factory.api"):
        factory.debug = "all"
    assert factory.debug == "all" and factory.log_file == "factory.log"
    assert "debug='all' is CCTools' work_queue_factory's" in caplog.text
    with pytest.raises(AttributeError, match="not a factory setting"):
        factory.debugg = "all"


def test_from_options_takes_the_executor_dict_in_either_spelling(tmp_path):
    class Manager:  # what the factory reads from a manager object: its port and name
        port = 9999
        name = "fac-options"

    factory = coffea_wq.Factory.from_options(
        {"batch-type": "local", "max-workers": 4, "min_workers": 0, "cores": 2, "scratch-dir": str(tmp_path)},
        manager=Manager())
    assert (factory.batch_type, factory.max_workers, factory.min_workers, factory.cores) == ("local", 4, 0, 2)
    assert (factory.manager_host, factory.manager_port) == ("127.0.0.1", 9999)
    assert factory.scratch_dir == tmp_path


def test_factory_timeout_ends_the_loop_when_no_manager_answers(tmp_path):
    from coffea_wq.factory.config import FactoryConfig
    from coffea_wq.factory.loop import FactoryLoop
    from tests.support import free_port

    lines = []
    loop = FactoryLoop(FactoryConfig(manager_host="127.0.0.1", manager_port=free_port(), min_workers=0,
                                     cycle_interval=0.2, factory_timeout=1, scratch_dir=tmp_path),
                       echo=lines.append)
    started = time.monotonic()
    loop.run()  # returns by itself: nobody listens on that port
    assert time.monotonic() - started < 10
    assert lines[-1] == "no manager seen for 1 s (factory timeout): exiting"
    assert loop.shutdown()


def test_manager_name_may_come_from_the_config_file_alone(tmp_path):
    from coffea_wq.factory.loop import FactoryLoop

    config = tmp_path / "fac.json"
    config.write_text('{"manager-name": "from-json", "min-workers": 0, "max-workers": 3}')
    loop = FactoryLoop({"batch_type": "local", "scratch_dir": tmp_path}, config_file=config)
    assert loop.current_config().manager_name == "from-json"
    assert loop.current_config().max_workers == 3


def test_batch_workers_reach_a_manager_object_by_host_name_unless_told_otherwise(tmp_path):
    import socket

    class Manager:
        port = 9999

    slurm = coffea_wq.Factory("slurm", manager=Manager(), max_workers=1, scratch_dir=tmp_path)
    assert (slurm.manager_host, slurm.manager_port) == (socket.getfqdn(), 9999)
    chosen = coffea_wq.Factory("slurm", manager=Manager(), manager_host="10.1.2.3", max_workers=1,
                               scratch_dir=tmp_path)
    assert chosen.manager_host == "10.1.2.3"


@pytest.mark.slow
def test_factory_around_run_uproot_job_gives_the_iterative_histograms(tmp_path):
    """`with coffea_wq.Factory(...):` around a coffea run, as CCTools' Factory is used."""
    import warnings

    from coffea import processor
    from coffea.nanoevents import NanoAODSchema

    from analysis_examples.topeft.cfg import fileset_from_samples, read_cfg
    from analysis_examples.topeft.compare import assert_outputs_equal
    from analysis_examples.topeft.processor import TopEFTLikeProcessor
    from analysis_examples.topeft.work_queue_run import make_processor  # pickled by value for workers
    from tests.support import REPO, free_port

    fileset = fileset_from_samples(read_cfg(REPO / "analysis_examples" / "topeft" / "cfg" / "demo.cfg"))
    port = free_port()
    warnings.filterwarnings("ignore", message="Missing cross-reference")
    # The factory starts first: its workers wait for the manager the run is about to open.
    with coffea_wq.Factory("local", manager_host_port=f"127.0.0.1:{port}", min_workers=2, max_workers=2,
                           cores=1, timeout=60, cycle_interval=1, scratch_dir=tmp_path / "scratch") as factory:
        assert len(factory.job_ids()) == 2
        output = coffea_wq.run_uproot_job(
            fileset, "Events", make_processor(), executor=coffea_wq.work_queue_executor,
            executor_args={"schema": NanoAODSchema, "port": port, "status": False, "retries": 2},
            chunksize=5000)
        pids = [int(job) for job in factory.job_ids()]
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    reference = processor.Runner(executor=processor.IterativeExecutor(status=False), chunksize=5000,
                                 schema=NanoAODSchema)(fileset, TopEFTLikeProcessor(), treename="Events")
    assert_outputs_equal(output, reference)
