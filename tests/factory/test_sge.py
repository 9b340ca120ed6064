"""The factory's SGE back-end on a real Grid Engine cell started by the tests (tests/factory/sge_cluster.py):
`coffea-wq factory -T sge` serving a CCTools manager, and the executor's ``factory={"batch_type": "sge"}``
running the example analysis with histograms equal to IterativeExecutor's."""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.factory.helpers import CCToolsManager
from tests.support import REPO, LineReader, coffea_wq_command, requires_cctools_python

pytestmark = [pytest.mark.sge, pytest.mark.slow]

JOB_NAME = "coffea-wq-worker"
SAMPLE_CFG = REPO / "analysis_examples" / "data" / "sample" / "samples.cfg"
CHUNKSIZE = 2500


def wait_for_no_jobs(cell, timeout: float = 60) -> None:
    """qdel'ed jobs pass through state ``dr`` and leave qstat within seconds."""
    deadline = time.monotonic() + timeout
    while cell.job_ids() and time.monotonic() < deadline:
        time.sleep(0.3)
    assert not cell.job_ids(), f"jobs left in qstat: {cell.job_states()}"


def job_logs(scratch) -> dict[str, str]:
    """job id -> the job's output (``-o <scratch>/logs/``: ``coffea-wq-worker.o<id>``)."""
    return {path.name.rsplit(".o", 1)[1]: path.read_text(errors="replace")
            for path in (scratch / "logs").glob(f"{JOB_NAME}.o*")}


@requires_cctools_python
def test_sge_workers_run_shell_tasks_of_a_real_cctools_manager(processes, sge_cell, tmp_path):
    manager = CCToolsManager(processes, "fac-sge")
    manager.submit(4, 1)
    scratch = tmp_path / "scratch"
    argv = coffea_wq_command("factory", "-T", "sge", "127.0.0.1", str(manager.port), "-S", str(scratch),
                             "--min-workers", "1", "--max-workers", "2", "--cores", "1", "--memory", "1000",
                             "--disk", "1000", "--timeout", "60", "--cycle-interval", "1")
    factory = processes.start(argv, env=sge_cell.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = LineReader(factory.stdout)
    output.wait_for(lambda s: "submitting" in s, 60, "the factory to submit SGE jobs")
    output.wait_for(lambda s: (JOB_NAME, "r") in sge_cell.job_states().values(), 60,
                    "a coffea-wq-worker job to run in Grid Engine")
    output.wait_for(lambda s: manager.done_count() == 4, 120, "the four tasks to finish on SGE workers")
    ours = set(sge_cell.job_ids())
    assert ours, "the factory's workers should still be queued (min-workers=1)"

    factory.send_signal(2)
    assert factory.wait(timeout=60) == 0
    assert "all workers removed." in output.snapshot()
    wait_for_no_jobs(sge_cell)
    logs = job_logs(scratch)
    assert ours <= set(logs), f"no job output in {scratch / 'logs'} for {sorted(ours - set(logs))}"
    assert "#$ -pe smp 1" in (scratch / "sge_submit_worker.sh").read_text().splitlines()


def _iterative_reference(fileset) -> dict:
    from coffea import processor
    from coffea.nanoevents import NanoAODSchema

    from analysis_examples.topeft.processor import TopEFTLikeProcessor

    runner = processor.Runner(executor=processor.IterativeExecutor(status=False), chunksize=CHUNKSIZE,
                              schema=NanoAODSchema)
    return runner(fileset, TopEFTLikeProcessor(), treename="Events")


def test_example_analysis_on_sge_workers_equals_iterative(sge_cell, tmp_path, monkeypatch):
    """The acceptance test: the executor's factory option submits workers to Grid Engine; histograms exact."""
    from coffea import processor
    from coffea.nanoevents import NanoAODSchema

    import coffea_wq
    from analysis_examples.topeft.cfg import fileset_from_samples, read_cfg
    from analysis_examples.topeft.compare import assert_outputs_equal
    from analysis_examples.topeft.work_queue_run import make_processor, quiet_crossref_warnings

    _sge_env(monkeypatch, sge_cell)  # the factory runs qsub/qstat/qdel from this process
    quiet_crossref_warnings()
    fileset = fileset_from_samples(read_cfg(SAMPLE_CFG))
    scratch = tmp_path / "factory"
    seen_jobs: set[str] = set()

    def note_jobs(queue) -> None:
        seen_jobs.update(job for job, (name, _) in sge_cell.job_states().items() if name == JOB_NAME)

    executor = coffea_wq.WorkQueueExecutor(
        status=False, custom_init=note_jobs,
        factory={"batch_type": "sge", "min_workers": 1, "max_workers": 2, "cores": 1, "memory": 2000,
                 "disk": 2000, "timeout": 60, "cycle_interval": 1, "scratch_dir": str(scratch)})
    runner = processor.Runner(executor=executor, chunksize=CHUNKSIZE, schema=NanoAODSchema, metadata_cache={})
    out = runner(fileset, make_processor(), treename="Events")

    assert seen_jobs, "no coffea-wq-worker job was in Grid Engine when the run started"
    wait_for_no_jobs(sge_cell)  # the executor stopped its factory, which qdel'ed its jobs
    assert seen_jobs <= set(job_logs(scratch)), "every worker job should have run and written its output"
    assert_outputs_equal(_iterative_reference(fileset), out)


def _sge_env(monkeypatch, cell) -> None:
    """Point qsub, qstat and qdel run from this process at the test's cell."""
    for name in ("SGE_ROOT", "SGE_CELL", "SGE_QMASTER_PORT", "SGE_EXECD_PORT"):
        monkeypatch.setenv(name, cell.env[name])


def test_a_job_in_error_state_is_no_worker_and_is_deleted_with_its_reason(sge_cell, tmp_path, monkeypatch, caplog):
    from coffea_wq.factory.backends import make_backend
    from coffea_wq.resources.types import Resources

    _sge_env(monkeypatch, sge_cell)
    # A later -wd overrides the script's: the job cannot chdir, Grid Engine holds it in Eqw for ever.
    backend = make_backend("sge", tmp_path, batch_options=f"-wd {tmp_path / 'missing'}")
    [job] = backend.submit(1, ["/bin/sleep", "60"], Resources(cores=1))
    deadline = time.monotonic() + 60
    while "E" not in sge_cell.job_states().get(job, ("", ""))[1] and time.monotonic() < deadline:
        time.sleep(0.3)
    assert sge_cell.job_states()[job][1] == "Eqw", sge_cell.job_states()

    assert backend.list() == []
    assert f"SGE worker job {job} is in an error state" in caplog.text
    assert f"can't chdir to {tmp_path / 'missing'}" in caplog.text
    wait_for_no_jobs(sge_cell)


def test_removing_jobs_of_which_one_already_ended_is_no_error(sge_cell, tmp_path, monkeypatch):
    from coffea_wq.factory.backends import make_backend
    from coffea_wq.resources.types import Resources

    _sge_env(monkeypatch, sge_cell)
    backend = make_backend("sge", tmp_path)
    [short] = backend.submit(1, ["/bin/true"], Resources(cores=1))
    [long] = backend.submit(1, ["/bin/sleep", "60"], Resources(cores=1))
    deadline = time.monotonic() + 60
    while (short in sge_cell.job_ids() or sge_cell.job_states().get(long, ("", ""))[1] != "r") \
            and time.monotonic() < deadline:
        time.sleep(0.3)
    assert short not in sge_cell.job_ids() and sge_cell.job_states()[long][1] == "r", sge_cell.job_states()

    backend.remove([short, long])  # as the factory's shutdown does, without a list() in between
    assert backend.list() == []
    wait_for_no_jobs(sge_cell)
