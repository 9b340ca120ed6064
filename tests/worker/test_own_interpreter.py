"""``.venv/bin/coffea-wq worker`` started without activating the venv (as in a batch script) gives its
tasks its own Python: the venv's ``bin/`` comes first on the tasks' PATH, unless ``--keep-path``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from coffea import processor
from coffea.nanoevents import NanoAODSchema

import coffea_wq
import coffea_wq.work_queue as wq
from analysis_examples.topeft.cfg import fileset_from_samples, read_cfg
from analysis_examples.topeft.compare import assert_outputs_equal
from analysis_examples.topeft.work_queue_run import make_processor, quiet_crossref_warnings
from tests import support

VENV_ENTRY = Path(sys.executable).parent / "coffea-wq"
SYSTEM_PATH = "/usr/bin:/bin"  # python3 here is the system's, without coffea
SAMPLE_CFG = support.REPO / "analysis_examples" / "data" / "sample" / "samples.cfg"


@pytest.fixture(autouse=True)
def venv_entry_point():
    """The console script that installing the package (make venv, which make test runs) puts next to the
    interpreter: missing only where the tests run from a checkout that is not installed."""
    if not VENV_ENTRY.exists():
        support.cannot_run_here(f"{VENV_ENTRY} is missing: coffea-wq is not installed in this interpreter "
                                "(make venv installs it)")


def start_unactivated_worker(processes, port: int, workdir: Path, *options: str) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [str(VENV_ENTRY), "worker", "--cores", "2", "-t", "60", "-s", str(workdir), *options,
            support.LOOPBACK, str(port)]
    processes.start(argv, env={"PATH": SYSTEM_PATH, "HOME": str(workdir)},
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_one(q: wq.WorkQueue, command: str) -> wq.Task:
    q.submit(wq.Task(command))
    task = support.wait_until(lambda: q.wait(1), 60, f"the task {command!r}")
    assert task.result == wq.WORK_QUEUE_RESULT_SUCCESS, task.result_str
    return task


def system_python_prefix() -> str:
    probe = subprocess.run(["python3", "-c", "import sys; print(sys.prefix)"], capture_output=True, text=True,
                           env={"PATH": SYSTEM_PATH}, timeout=30, check=True)
    return probe.stdout.strip()


def test_tasks_get_the_worker_python_first_unless_keep_path(processes, tmp_path):
    probe = 'python3 -c "import sys, coffea, lz4; print(sys.prefix)"'
    with wq.WorkQueue(port=0, host=support.LOOPBACK) as q:
        start_unactivated_worker(processes, q.port, tmp_path / "default")
        task = run_one(q, probe)
        assert task.return_status == 0, task.output
        assert task.output.strip() == sys.prefix
        assert run_one(q, 'echo "$VIRTUAL_ENV"').output.strip() == (sys.prefix if sys.prefix != sys.base_prefix
                                                                      else "")
    with wq.WorkQueue(port=0, host=support.LOOPBACK) as q:
        start_unactivated_worker(processes, q.port, tmp_path / "keep", "--keep-path")
        task = run_one(q, 'python3 -c "import sys; print(sys.prefix)"')
        assert task.return_status == 0, task.output
        # the PATH the worker was given: its python3 is the system's, not the worker's venv
        assert task.output.strip() == system_python_prefix() != sys.prefix


@pytest.mark.slow
def test_coffea_run_on_an_unactivated_worker_without_environment_file(processes, tmp_path):
    quiet_crossref_warnings()
    fileset = fileset_from_samples(read_cfg(SAMPLE_CFG))
    port = support.free_port()
    start_unactivated_worker(processes, port, tmp_path / "worker")
    executor = coffea_wq.WorkQueueExecutor(port=port, manager_host=support.LOOPBACK, local_workers=0,
                                           environment_file=None, status=False,
                                           filepath=str(tmp_path), retries=0)
    out = processor.Runner(executor=executor, chunksize=15000, schema=NanoAODSchema, metadata_cache={})(
        fileset, make_processor(), treename="Events")
    reference = processor.Runner(executor=processor.IterativeExecutor(status=False), chunksize=15000,
                                 schema=NanoAODSchema)(fileset, make_processor(), treename="Events")
    assert_outputs_equal(reference, out)
